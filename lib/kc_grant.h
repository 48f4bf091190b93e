/*  =========================================================================
    kc_grant - enrolment grants and their uses (docs/records.md section 8).

    A grant, signed by an operator quorum, lets the holder of a grant key's
    secret half (the token) register new nodes whose names match a pattern,
    with the grant's tags, until its not-after, at most its number of uses.
    A grant use is one such registration: a record signed with the token.
    Every agent checks each use against the grant in log order (signature,
    pattern, tags, expiry, count), so the server still cannot mint a member.
    Both are log entries beside batches and root changes, told apart by
    their magic ("KCGR", "KCGU").
    =========================================================================
*/
#ifndef KC_GRANT_H_INCLUDED
#define KC_GRANT_H_INCLUDED

#include "kc_util.h"
#include "kc_record.h"
#include "kc_root.h"
#include "kc_batch.h"

#define KC_GRANT_FORMAT             1
#define KC_GRANT_USES_MAX           1000000     //  uses one grant allows
#define KC_GRANT_PATTERN_MAX        255         //  bytes of a name pattern
#define KC_GRANT_SIGNATURES_MAX     32
#define KC_GRANT_BYTES_MAX          4096        //  a whole grant encoding
#define KC_GRANT_USE_BYTES_MAX      (4 + 1 + 32 + 32 + 8 + 2 * KC_RECORD_BYTES_MAX + KC_SIGNATURE_BYTES)
                                                //  (a rotation holds two records)
#define KC_CONTEXT_GRANT            "keyclone grant v1"
#define KC_CONTEXT_GRANT_USE        "keyclone grant use v1"

typedef struct {
    uint8_t directory [KC_HASH_BYTES];
    uint8_t grant_key [KC_KEY_BYTES];       //  Ed25519 public key; the token is its secret
    uint8_t status;                         //  1 active, 2 revoked (KC_STATUS_*)
    uint64_t created;                       //  seconds (informational)
    uint64_t not_after;                     //  seconds: uses must be made before
    uint32_t uses;                          //  at most this many registrations
    char pattern [KC_GRANT_PATTERN_MAX + 1];
    char tags [KC_RECORD_TAGS_MAX][KC_RECORD_TAG_MAX + 1];
    size_t tag_count;
    char reason [KC_RECORD_REASON_MAX + 1];
    uint8_t digest [KC_HASH_BYTES];         //  H(body)
    uint8_t *data;                          //  the encoding (owned)
    size_t size, body_size;
    kc_signature_t signatures [KC_GRANT_SIGNATURES_MAX];    //  views into data
    size_t signature_count;
} kc_grant_t;

typedef struct {
    uint8_t directory [KC_HASH_BYTES];
    uint8_t grant_key [KC_KEY_BYTES];
    uint64_t created;                       //  seconds, the node's clock
    kc_record_t record;                     //  a view into data
    bool rotation;                          //  a rotation by grant ("KCGX"): the node's
    kc_record_t replaced;                   //  key it replaces, ending (a view into data)
    uint8_t digest [KC_HASH_BYTES];
    uint8_t *data;                          //  the encoding (owned)
    size_t size, body_size;
} kc_grant_use_t;

//  True when data starts as a grant or as a grant use (their magic; a use
//  is a registration "KCGU" or a rotation "KCGX" by grant).
bool
    kc_grant_is_grant (const uint8_t *data, size_t size);
bool
    kc_grant_is_use (const uint8_t *data, size_t size);

//  --- Grants --------------------------------------------------------------------

//  A grant (status active: pattern, tags, not_after, uses; revoked: the
//  grant key and a reason), signed by each signer. NULL with a reason when
//  a field is invalid.
kc_grant_t *
    kc_grant_new (const kc_grant_t *fields, kc_signer_t *const *signers, size_t signer_count,
                  kc_why_t *why);

//  Decodes a grant (copies data). NULL with a reason unless it is the
//  canonical encoding of one.
kc_grant_t *
    kc_grant_decode (const uint8_t *data, size_t size, kc_why_t *why);

//  A copy with the signer's signature added (replacing its earlier one).
kc_grant_t *
    kc_grant_cosign (const kc_grant_t *self, const kc_signer_t *signer);

//  Checks a grant against the root in force: its directory, and operator
//  signatures reaching the register threshold (active) or the revoke
//  threshold (revoked). 0 or -1 with a reason.
int
    kc_grant_verify (const kc_grant_t *self, const kc_root_t *root, kc_why_t *why) KC_WUR;

void
    kc_grant_destroy (kc_grant_t **self_p);

//  Does name match pattern ('*' stands for any run of characters, the rest
//  for itself)?
bool
    kc_grant_pattern_match (const char *pattern, const char *name, size_t name_size);

//  --- Grant uses ----------------------------------------------------------------

//  A node's registration under a grant: the record spec (active, version 1,
//  no not-before) signed with the token. NULL with a reason.
kc_grant_use_t *
    kc_grant_use_new (const uint8_t directory [static KC_HASH_BYTES], const kc_signer_t *token,
                      uint64_t created, const kc_record_spec_t *spec, kc_why_t *why);

//  A node's rotation under a grant (docs/records.md 8.5): the new key's
//  record (spec: active, version 1, no not-before) and the record of the
//  key it replaces (replaced: the same name and tags, a higher version than
//  the stored one, not-after the end of the overlap), signed with the
//  token. NULL with a reason.
kc_grant_use_t *
    kc_grant_use_new_rotation (const uint8_t directory [static KC_HASH_BYTES], const kc_signer_t *token,
                               uint64_t created, const kc_record_spec_t *spec, const kc_record_spec_t *replaced,
                               kc_why_t *why);

//  Decodes a grant use (copies data); NULL with a reason unless canonical.
kc_grant_use_t *
    kc_grant_use_decode (const uint8_t *data, size_t size, kc_why_t *why);

//  The checks every party makes on a use in log order (docs/records.md
//  8.3): grant is the grant its key names (NULL: unknown), used how many
//  uses came before it. 0 or -1 with a reason.
int
    kc_grant_use_check (const kc_grant_use_t *self, const kc_grant_t *grant, uint64_t used,
                        kc_why_t *why) KC_WUR;

//  A rotation's rule on the stored state (docs/records.md 8.5): the key it
//  replaces is registered (status active) under the new key's name
//  (stored_name, NUL-terminated). 0 (also for a use that is no rotation)
//  or -1 with a reason.
int
    kc_grant_use_check_replaced (const kc_grant_use_t *self, uint8_t stored_status, const char *stored_name,
                                 kc_why_t *why) KC_WUR;

//  The use's records as an unsigned batch (one record, or two for a
//  rotation, in key order), for the code that applies batches. The caller
//  destroys it.
kc_batch_t *
    kc_grant_use_batch (const kc_grant_use_t *self);

void
    kc_grant_use_destroy (kc_grant_use_t **self_p);

//  chain(seq) from chain(seq-1) and the bytes of any log entry at seq: a
//  batch, a root change, a grant or a registration by grant (decoded, not
//  verified: the chain says where an entry sits, not whether it is valid).
//  0, or -1 with a reason when the bytes are none of these.
int
    kc_log_entry_chain (const uint8_t previous [static KC_HASH_BYTES], uint64_t seq, const uint8_t *data,
                        size_t size, uint8_t chain [static KC_HASH_BYTES], kc_why_t *why) KC_WUR;

//  Self test of this module.
void
    kc_grant_test (bool verbose);

#endif
