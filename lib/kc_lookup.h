/*  =========================================================================
    kc_lookup - "is this key trusted?" in microseconds, in the application's
    process: an in-memory index of the agent's cache (opened read-only) that
    follows the agent's updates without reopening.

    The index holds every key with its status, validity window, name and
    tags (about 100 bytes a key). Every call checks, at most once per refresh
    interval, whether the agent committed anything (sqlite data_version) and
    applies just what changed (the cache's change feed); a cache rebuilt by
    the agent (a new file) is reloaded whole.

    Freshness comes from the file too: the agent stores each head it accepts,
    so a handle knows how long ago the directory was last confirmed, even if
    the agent is dead.

    A handle is not thread-safe: open one per thread (each holds its own
    sqlite connection and index).
    =========================================================================
*/
#ifndef KC_LOOKUP_H_INCLUDED
#define KC_LOOKUP_H_INCLUDED

#include "kc_util.h"
#include "kc_record.h"

#define KC_LOOKUP_REFRESH_MS    10          //  default refresh interval
#define KC_LOOKUP_HEAD_BYTES    157         //  a signed head (docs/protocol.md 2.2)

typedef enum {
    KC_VERDICT_UNKNOWN = 0,
    KC_VERDICT_TRUSTED,
    KC_VERDICT_REVOKED,
    KC_VERDICT_EXPIRED,
    KC_VERDICT_NOT_YET_VALID
} kc_verdict_t;

//  One key as the directory holds it.
typedef struct {
    uint8_t key [KC_KEY_BYTES];
    kc_verdict_t verdict;                   //  at the time of the lookup
    uint8_t status;                         //  0 unknown, 1 active, 2 revoked
    uint64_t version;
    uint64_t not_before;
    uint64_t not_after;
    uint64_t seq;
    char name [KC_RECORD_NAME_MAX + 1];
    char tags [KC_RECORD_TAGS_TEXT_MAX];    //  joined by ','
} kc_lookup_entry_t;

typedef struct _kc_lookup_t kc_lookup_t;

//  Called for each key of a name lookup; return 0 to go on, -1 to stop.
typedef int (kc_lookup_fn) (const kc_lookup_entry_t *entry, void *arg);

//  Opens the agent's cache read-only and loads it. NULL with a reason if the
//  file is missing or not a keyclone cache.
kc_lookup_t *
    kc_lookup_new (const char *cache_path, kc_why_t *why);

//  Closes the handle and frees its index. Nulls *self_p.
void
    kc_lookup_destroy (kc_lookup_t **self_p);

//  Sets how often lookups check the cache for changes (0: every call).
void
    kc_lookup_set_refresh (kc_lookup_t *self, int interval_ms);

//  Applies the agent's latest changes now. Returns 1 if anything changed,
//  0 if not, -1 with a reason (the index is kept as it was).
int
    kc_lookup_refresh (kc_lookup_t *self, kc_why_t *why);

//  The verdict on a key at this moment; fills entry (may be NULL).
kc_verdict_t
    kc_lookup_key (kc_lookup_t *self, const uint8_t key [static KC_KEY_BYTES],
                   kc_lookup_entry_t *entry);

//  Calls fn for every key registered under name whose verdict is trusted
//  (all keys when all is set). Returns how many it gave.
int
    kc_lookup_name (kc_lookup_t *self, const char *name, bool all, kc_lookup_fn *fn, void *arg);

//  Milliseconds since the directory was last confirmed by a head the agent
//  accepted; INT64_MAX if never.
int64_t
    kc_lookup_head_age (kc_lookup_t *self);

//  --- Heads in the handshake (docs/protocol.md 9.4) ------------------------
//  Two peers that authenticate each other from keyclone each send the head
//  their agent last accepted (KC_CURVE_HEAD in the CurveZMQ metadata) and
//  check the other's: two chains for one seq, both signed by a server of
//  the root, prove the server showed them two logs.

//  The head the agent last stored (KC_LOOKUP_HEAD_BYTES): 0, or -1 if none yet.
int
    kc_lookup_head (kc_lookup_t *self, uint8_t head [static KC_LOOKUP_HEAD_BYTES]);

//  Checks a peer's head against ours: 0 when they agree or cannot be
//  compared (another seq, no head of ours yet), 1 on a conflict (why says
//  it; proof receives our head then theirs, the proof of equivocation the
//  agent takes with kc_lookup_report), -1 with a reason when the peer's
//  head is malformed, for another directory, or names another chain
//  without a valid signature (the peer lies; no proof against the server).
int
    kc_lookup_check_head (kc_lookup_t *self, const uint8_t *peer, size_t size,
                          uint8_t proof [static 2 * KC_LOOKUP_HEAD_BYTES], kc_why_t *why) KC_WUR;

//  Conflicts found by kc_lookup_check_head since the handle opened.
uint64_t
    kc_lookup_conflicts (const kc_lookup_t *self);

//  Whether kc_auth_curve_authorizer denies a peer whose head conflicts with
//  ours (the agent's fail-closed policy; default: allowed, reported).
void
    kc_lookup_set_fail_closed (kc_lookup_t *self, bool fail_closed);
bool
    kc_lookup_fail_closed (const kc_lookup_t *self);

//  The agent's local endpoint (ipc://DIR/agent.ipc), where
//  kc_auth_curve_authorizer reports conflicts; NULL: not reported.
void
    kc_lookup_set_agent (kc_lookup_t *self, const char *endpoint);

//  Gives a proof (kc_lookup_check_head) to the agent, which checks it with
//  its root, keeps it and refuses that server. 0, or -1 with a reason.
int
    kc_lookup_report (kc_lookup_t *self, const uint8_t proof [static 2 * KC_LOOKUP_HEAD_BYTES],
                      kc_why_t *why) KC_WUR;

//  The cache's sequence number and key count as this handle sees them.
uint64_t
    kc_lookup_seq (const kc_lookup_t *self);
size_t
    kc_lookup_size (const kc_lookup_t *self);

//  A word for a verdict ("trusted", "revoked", ...).
const char *
    kc_verdict_name (kc_verdict_t verdict);

//  The verdict of a record's fields at time now (seconds).
kc_verdict_t
    kc_verdict_at (uint8_t status, uint64_t not_before, uint64_t not_after, uint64_t now);

//  Self test of this module.
void
    kc_lookup_test (bool verbose);

#endif
