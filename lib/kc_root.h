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

#define KC_ROOT_FORMAT              2       //  what new roots are written in
#define KC_ROOT_FORMAT_MIN          1       //  still decoded (frozen vectors)
#define KC_ROOT_OPERATORS_MAX       32      //  operator keys in one root
#define KC_ROOT_OPERATOR_NAME_MAX   64      //  bytes of an operator name
#define KC_ROOT_ENDPOINT_MAX        255     //  bytes of one endpoint
#define KC_ROOT_SERVERS_MAX         8       //  servers (cluster members, mirrors), format 2
#define KC_ROOT_WITNESSES_MAX       16      //  witness keys, format 2
#define KC_ROOT_SIGNATURES_MAX      64      //  old + new operators on rotation
#define KC_ROOT_BYTES_MAX           16384   //  whole encoding
#define KC_ROOT_SERVER_NAME         "server"    //  a format 1 root's only server

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

//  One server that speaks for the directory: its CURVE public key (agents
//  pin it), its Ed25519 head-signing key and its three endpoints.
typedef struct {
    char name [KC_ROOT_OPERATOR_NAME_MAX + 1];
    uint8_t server_key [KC_KEY_BYTES];
    uint8_t head_key [KC_KEY_BYTES];
    char endpoints [KC_ENDPOINTS][KC_ROOT_ENDPOINT_MAX + 1];
} kc_root_server_t;

//  A witness: an Ed25519 key that cosigns heads (same shape as an operator).
typedef kc_operator_t kc_witness_t;

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
    //  The servers: either servers (format 2, 1..KC_ROOT_SERVERS_MAX), or,
    //  when server_count is 0, the one server named by the three fields
    //  below (called KC_ROOT_SERVER_NAME)
    const kc_root_server_t *servers;
    size_t server_count;
    const uint8_t *head_key;            //  server's Ed25519 head-signing key
    const uint8_t *server_key;          //  server's CURVE public key
    const char *endpoints [KC_ENDPOINTS];
    const kc_witness_t *witnesses;      //  format 2: 0..KC_ROOT_WITNESSES_MAX
    size_t witness_count;
    uint8_t witness_threshold;          //  0 (none needed) .. witness_count
    uint8_t format;                     //  0: KC_ROOT_FORMAT; 1 only with one server, no witnesses
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

//  A copy of a root.
kc_root_t *
    kc_root_dup (const kc_root_t *self);

//  Destroys a root. Nulls *self_p.
void
    kc_root_destroy (kc_root_t **self_p);

//  Checks a root on its own (a pinned root): not expired at now, the
//  genesis form is right, and a root threshold of its own operators signed
//  it. Returns 0 or -1 with a reason.
int
    kc_root_verify (const kc_root_t *self, uint64_t now, kc_why_t *why) KC_WUR;

//  Checks that next may replace current: version +1, same directory,
//  previous digest, created no earlier than current and not expired at now,
//  no older format, and a root threshold of the current AND of the next
//  operators signed it (every signer an operator of one or the other).
//  Returns 0 or -1 with a reason.
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

//  Follows one root change of a log from *current, as the log did: a root
//  whose version is not above current's is skipped (a pinned root may be
//  newer than the log's first changes); any other must be current's
//  successor as of its own creation time, and replaces *current. Returns 0
//  (followed or skipped), or -1 with a reason (*current unchanged).
int
    kc_root_follow (kc_root_t **current, const uint8_t *data, size_t size, kc_why_t *why) KC_WUR;

//  Called for each root of a chain followed (kc_cache_current_root).
typedef void (kc_root_visit_fn) (const kc_root_t *root, void *arg);

//  Fills spec (and the arrays in storage, which must outlive spec) with
//  current's contents as the start of its successor: version + 1, the
//  directory, previous = current's digest, format KC_ROOT_FORMAT. The
//  caller changes what the new root changes, then calls kc_root_new.
typedef struct {
    kc_operator_t operators [KC_ROOT_OPERATORS_MAX];
    kc_root_server_t servers [KC_ROOT_SERVERS_MAX];
    kc_witness_t witnesses [KC_ROOT_WITNESSES_MAX];
} kc_root_storage_t;
void
    kc_root_successor_spec (const kc_root_t *current, kc_root_spec_t *spec,
                            kc_root_storage_t *storage);

//  Describes what next changes compared to current, one change per line
//  ("operator added: carol (3F2A9C1E)", "expires: 2027-... -> 2028-..."),
//  into text (NUL-terminated, cut at capacity). Returns the number of
//  changes.
int
    kc_root_diff (const kc_root_t *current, const kc_root_t *next, char *text, size_t capacity);

//  True when data starts like a root (its magic), whatever else it holds.
bool
    kc_root_is_root (const uint8_t *data, size_t size);

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
size_t
    kc_root_body_size (const kc_root_t *self);
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
//  The first server's keys and endpoints (a format 1 root's only server).
const uint8_t *
    kc_root_head_key (const kc_root_t *self);
const uint8_t *
    kc_root_server_key (const kc_root_t *self);
const char *
    kc_root_endpoint (const kc_root_t *self, kc_endpoint_t which);
int
    kc_root_format (const kc_root_t *self);
size_t
    kc_root_server_count (const kc_root_t *self);
const kc_root_server_t *
    kc_root_server (const kc_root_t *self, size_t index);

//  A cluster member's default Raft address (docs/cluster.md 1): the host of
//  its submission endpoint (tcp://HOST:PORT) with PORT + 1. 0, or -1 for an
//  endpoint that is not tcp://HOST:PORT.
int
    kc_root_raft_address (const char *submit, char *out, size_t size) KC_WUR;
size_t
    kc_root_witness_count (const kc_root_t *self);
const kc_witness_t *
    kc_root_witness (const kc_root_t *self, size_t index);
int
    kc_root_witness_threshold (const kc_root_t *self);
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
