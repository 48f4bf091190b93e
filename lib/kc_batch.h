/*  =========================================================================
    kc_batch - one or more records signed together by operators
    (docs/records.md section 4).

    A batch's signatures cover BLAKE2b-256 of its body (header and records)
    under the "keyclone batch v1" context, so verifying a batch costs one
    Ed25519 check per signer however many records it holds. Records are in
    strictly ascending key order: a key appears at most once per batch.
    =========================================================================
*/
#ifndef KC_BATCH_H_INCLUDED
#define KC_BATCH_H_INCLUDED

#include "kc_util.h"
#include "kc_record.h"
#include "kc_root.h"

#define KC_BATCH_FORMAT             1
#define KC_BATCH_RECORDS_MAX        100000          //  records in one batch
#define KC_BATCH_SIGNATURES_MAX     32              //  signatures on one batch
#define KC_BATCH_BYTES_MAX          (32 * 1024 * 1024)
#define KC_BATCH_HEADER_BYTES       (4 + 1 + 32 + 8 + 4)

typedef struct _kc_batch_t kc_batch_t;
typedef struct _kc_batch_builder_t kc_batch_builder_t;

//  --- Building ---------------------------------------------------------------

//  Starts a batch for a directory, stamped with a creation time (seconds).
kc_batch_builder_t *
    kc_batch_builder_new (const uint8_t directory [static KC_HASH_BYTES], uint64_t created);

//  Validates and adds a record (spec->directory is ignored: the builder's
//  directory is used). Returns 0 or -1 with a reason (limits, bad fields).
int
    kc_batch_builder_add (kc_batch_builder_t *self, const kc_record_spec_t *spec,
                          kc_why_t *why) KC_WUR;

//  Records added so far.
size_t
    kc_batch_builder_count (const kc_batch_builder_t *self);

//  Sorts the records, encodes the batch and signs it with each signer (may
//  be none: an unsigned batch can be cosigned later). NULL with a reason if
//  the batch is empty, too large or holds a key twice. The builder is
//  unchanged and still owned by the caller.
kc_batch_t *
    kc_batch_builder_finish (kc_batch_builder_t *self, kc_signer_t *const *signers,
                             size_t signer_count, kc_why_t *why);

//  Destroys a builder. Nulls *self_p.
void
    kc_batch_builder_destroy (kc_batch_builder_t **self_p);

//  --- Decoding, signing and verifying -----------------------------------------

//  Decodes a batch (copies data). NULL with a reason on malformed, over-limit
//  or non-canonical input.
kc_batch_t *
    kc_batch_decode (const uint8_t *data, size_t size, kc_why_t *why);

//  The same without the copy: the batch views data, which must outlive it
//  and stay unchanged (a cold sync's received messages).
kc_batch_t *
    kc_batch_view (const uint8_t *data, size_t size, kc_why_t *why);

//  Loads a batch file; NULL with a reason.
kc_batch_t *
    kc_batch_load (const char *path, kc_why_t *why);

//  Writes the batch to path atomically (mode 0644).
int
    kc_batch_save (const kc_batch_t *self, const char *path, kc_why_t *why) KC_WUR;

//  Returns a new batch: self plus the signer's signature (replacing the
//  signer's old one). The caller owns the result.
kc_batch_t *
    kc_batch_cosign (const kc_batch_t *self, const kc_signer_t *signer);

//  Checks the batch against a root at time now: directory, root not expired,
//  and distinct valid operator signatures reaching the register threshold
//  (if any record is active) and the revoke threshold (if any is revoked).
//  Any signature by a non-operator or any bad signature fails it. Returns 0 or
//  -1 with a reason. With now 0 the root's expiry is not judged: how a log is
//  replayed, each batch against the root in force at its seq (docs/protocol.md
//  2.3); accepting a new batch passes the current time.
int
    kc_batch_verify (const kc_batch_t *self, const kc_root_t *root, uint64_t now,
                     kc_why_t *why) KC_WUR;

//  Destroys a batch. Nulls *self_p.
void
    kc_batch_destroy (kc_batch_t **self_p);

//  Accessors; pointers are owned by the batch.
const uint8_t *
    kc_batch_data (const kc_batch_t *self, size_t *size);
const uint8_t *
    kc_batch_digest (const kc_batch_t *self);       //  BLAKE2b-256 of the body
size_t
    kc_batch_body_size (const kc_batch_t *self);    //  bytes before the signatures
const uint8_t *
    kc_batch_directory (const kc_batch_t *self);
uint64_t
    kc_batch_created (const kc_batch_t *self);
size_t
    kc_batch_count (const kc_batch_t *self);
const kc_record_t *
    kc_batch_record (const kc_batch_t *self, size_t index);
size_t
    kc_batch_signature_count (const kc_batch_t *self);
kc_signature_t
    kc_batch_signature (const kc_batch_t *self, size_t index);

//  The record count in a batch's header, without decoding it (0 if the
//  bytes are too short to hold a header).
size_t
    kc_batch_peek_count (const uint8_t *data, size_t size);

//  Test hook: appends a signature entry without keeping the list canonical,
//  to prove verification counts a repeated signer once.
void
    kc_batch_test_append_signature (kc_batch_t *self, kc_signature_t signature);

//  Self test of this module.
void
    kc_batch_test (bool verbose);

#endif
