/*  =========================================================================
    kc_root - the root document: who the operators are, how many must sign
    what, which server speaks for the directory, and until when (docs/records.md
    section 5).

    The directory id is the digest of the genesis root (version 1). Agents pin
    a root at install time; a successor root (version N+1) is accepted only if
    a threshold of the old operators AND a threshold of the new ones signed it.
    This module also holds the signature-counting rule every signed object in
    keyclone uses: thresholds count distinct operator public keys, and a key
    listed or signing twice counts once.
    =========================================================================
*/
#ifndef KC_ROOT_H_INCLUDED
#define KC_ROOT_H_INCLUDED

#include "kc_util.h"
#include "kc_keys.h"

#define KC_ROOT_FORMAT              1
#define KC_ROOT_OPERATORS_MAX       32      //  operator keys in one root
#define KC_ROOT_OPERATOR_NAME_MAX   64      //  bytes of an operator name
#define KC_ROOT_ENDPOINT_MAX        255     //  bytes of one endpoint
#define KC_ROOT_SIGNATURES_MAX      64      //  old + new operators on rotation
#define KC_ROOT_BYTES_MAX           16384   //  whole encoding

//  Signing contexts (domain separation); the signed message is
//  context || 0x00 || BLAKE2b-256(body).
#define KC_CONTEXT_BATCH            "keyclone batch v1"
#define KC_CONTEXT_ROOT             "keyclone root v1"
#define KC_CONTEXT_HEAD             "keyclone head v1"

typedef enum {
    KC_ENDPOINT_SNAPSHOT = 0,
    KC_ENDPOINT_UPDATES = 1,
    KC_ENDPOINT_SUBMIT = 2,
    KC_ENDPOINTS = 3
} kc_endpoint_t;

typedef struct {
    uint8_t key [KC_KEY_BYTES];                 //  Ed25519 public key
    char name [KC_ROOT_OPERATOR_NAME_MAX + 1];
} kc_operator_t;

typedef struct {
    const uint8_t *key;                         //  32 bytes
    const uint8_t *signature;                   //  64 bytes
} kc_signature_t;

//  What a caller fills in to build a root.
typedef struct {
    const uint8_t *directory;           //  NULL for a genesis root (version 1)
    const uint8_t *previous;            //  digest of version-1; NULL for genesis
    uint64_t version;                   //  1 for genesis
    uint64_t created;                   //  seconds
    uint64_t expires;                   //  seconds, > created
    const kc_operator_t *operators;
    size_t operator_count;
    uint8_t threshold_register;
    uint8_t threshold_revoke;
    uint8_t threshold_root;
    const uint8_t *head_key;            //  server's Ed25519 head-signing key
    const uint8_t *server_key;          //  server's CURVE public key
    const char *endpoints [KC_ENDPOINTS];
} kc_root_spec_t;

typedef struct _kc_root_t kc_root_t;

//  Builds an unsigned root from spec. NULL with a reason if spec is invalid.
kc_root_t *
    kc_root_new (const kc_root_spec_t *spec, kc_why_t *why);

//  Adds (or replaces) the signer's signature. Any Ed25519 key may sign; who
//  counts is decided by verification.
void
    kc_root_sign (kc_root_t *self, const kc_signer_t *signer);

//  Decodes a root (copies data). NULL with a reason on any malformed,
//  over-limit or non-canonical input.
kc_root_t *
    kc_root_decode (const uint8_t *data, size_t size, kc_why_t *why);

//  Loads a root file; NULL with a reason.
kc_root_t *
    kc_root_load (const char *path, kc_why_t *why);

//  Writes the root's encoding to path atomically (mode 0644).
int
    kc_root_save (const kc_root_t *self, const char *path, kc_why_t *why) KC_WUR;

//  Destroys a root. Nulls *self_p.
void
    kc_root_destroy (kc_root_t **self_p);

//  Checks a root on its own (a pinned root): not expired at now, the
//  genesis form is right, and a root threshold of its own operators signed
//  it. Returns 0 or -1 with a reason.
int
    kc_root_verify (const kc_root_t *self, uint64_t now, kc_why_t *why) KC_WUR;

//  Checks that next may replace current: version +1, same directory,
//  previous digest, not expired, and a root threshold of the current AND of
//  the next operators signed it. Returns 0 or -1 with a reason.
int
    kc_root_verify_successor (const kc_root_t *current, const kc_root_t *next,
                              uint64_t now, kc_why_t *why) KC_WUR;

//  Counts the distinct operators of self with a valid signature over
//  context || 0 || digest. With strict set, a signature from a key that is
//  not an operator, or a bad signature, fails at once. Returns 0 when at
//  least threshold distinct operators signed, else -1 with a reason such as
//  "signature threshold 2 not met (1 valid)".
int
    kc_root_check_signatures (const kc_root_t *self, const char *context,
                              const uint8_t digest [static KC_HASH_BYTES],
                              const kc_signature_t *signatures, size_t count,
                              int threshold, bool strict, int *valid, kc_why_t *why) KC_WUR;

//  Index of an operator key in the root, or -1.
int
    kc_root_operator_index (const kc_root_t *self, const uint8_t key [static KC_KEY_BYTES]);

//  Accessors; returned pointers are owned by the root.
const uint8_t *
    kc_root_data (const kc_root_t *self, size_t *size);
const uint8_t *
    kc_root_directory (const kc_root_t *self);
const uint8_t *
    kc_root_digest (const kc_root_t *self);
uint64_t
    kc_root_version (const kc_root_t *self);
uint64_t
    kc_root_created (const kc_root_t *self);
uint64_t
    kc_root_expires (const kc_root_t *self);
size_t
    kc_root_operator_count (const kc_root_t *self);
const kc_operator_t *
    kc_root_operator (const kc_root_t *self, size_t index);
int
    kc_root_threshold_register (const kc_root_t *self);
int
    kc_root_threshold_revoke (const kc_root_t *self);
int
    kc_root_threshold_root (const kc_root_t *self);
const uint8_t *
    kc_root_head_key (const kc_root_t *self);
const uint8_t *
    kc_root_server_key (const kc_root_t *self);
const char *
    kc_root_endpoint (const kc_root_t *self, kc_endpoint_t which);
size_t
    kc_root_signature_count (const kc_root_t *self);
kc_signature_t
    kc_root_signature (const kc_root_t *self, size_t index);

//  Computes the signed message context || 0x00 || digest into message
//  (capacity >= 64 bytes); returns its size.
size_t
    kc_signed_message (const char *context, const uint8_t digest [static KC_HASH_BYTES],
                       uint8_t *message);

//  Self test of this module.
void
    kc_root_test (bool verbose);

#endif
