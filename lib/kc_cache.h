/*  =========================================================================
    kc_cache - the agent's verified cache of the directory (schema/agent):
    the current record of every key and where the cache stands in the server's
    log (seq, chain, last head). One writer connection, in keyclone-agent.

    Batches reach the cache only after the agent verified them; the cache
    still re-checks the per-key rules (revocation terminal, versions strictly
    increasing) so nothing can regress it. Storage is bucketed (kc_bucket): a
    cold sync builds a whole new file with kc_cache_create in one pass.
    =========================================================================
*/
#ifndef KC_CACHE_H_INCLUDED
#define KC_CACHE_H_INCLUDED

#define KC_CACHE_CHANGES_KEEP   10000   //  change feed keeps this many batches
#define KC_CACHE_HISTORY_ENTRIES 10000  //  audit history: at most this many entries
#define KC_CACHE_HISTORY_BYTES  (8 * 1024 * 1024)   //  and bytes of them

#include "kc_util.h"
#include "kc_batch.h"
#include "kc_head.h"
#include "kc_keyindex.h"
#include "kc_root.h"
#include "kc_grant.h"

typedef struct _kc_cache_t kc_cache_t;

//  One key as the cache holds it.
typedef struct {
    uint8_t key [KC_KEY_BYTES];
    uint8_t status;                         //  0 unknown, 1 active, 2 revoked
    uint64_t version;
    uint64_t not_before;
    uint64_t not_after;
    uint64_t seq;
    char name [KC_RECORD_NAME_MAX + 1];
    char tags [KC_RECORD_TAGS_TEXT_MAX];    //  joined by ','
    char reason [KC_RECORD_REASON_MAX + 1];
} kc_cache_entry_t;

//  Called for each entry of a name lookup; return 0 to go on, -1 to stop.
typedef int (kc_cache_entry_fn) (const kc_cache_entry_t *entry, void *arg);

//  Opens (creating) the cache at path for root's directory. NULL with a
//  reason if the file is not a keyclone cache, is corrupt, or belongs to
//  another directory. *corrupt is set when the file exists but cannot be
//  used, so the caller can move it aside and start again.
kc_cache_t *
    kc_cache_open (const char *path, const kc_root_t *root, bool *corrupt, kc_why_t *why);

//  Closes the cache. Nulls *self_p.
void
    kc_cache_destroy (kc_cache_t **self_p);

//  True once any operation hit SQLITE_CORRUPT or SQLITE_NOTADB: the file is
//  damaged and the cache must be rebuilt.
bool
    kc_cache_damaged (const kc_cache_t *self);

//  Where the cache stands.
uint64_t
    kc_cache_seq (const kc_cache_t *self);
const uint8_t *
    kc_cache_chain (const kc_cache_t *self);
uint64_t
    kc_cache_key_count (const kc_cache_t *self);
uint64_t
    kc_cache_revoked_count (const kc_cache_t *self);

//  The last accepted head; returns 0, or -1 if there is none yet.
int
    kc_cache_head (const kc_cache_t *self, kc_head_t *head);

//  Records a newly accepted head (durably). 0 or -1.
int
    kc_cache_set_head (kc_cache_t *self, const kc_head_t *head, kc_why_t *why) KC_WUR;

//  Records the head keys of root's servers (the root in force) for readers
//  that check a peer's head (kc_lookup_check_head); written only when they
//  changed. 0 or -1.
int
    kc_cache_set_head_keys (kc_cache_t *self, const kc_root_t *root, kc_why_t *why) KC_WUR;

//  Starts a group of applies.
int
    kc_cache_begin (kc_cache_t *self, kc_why_t *why) KC_WUR;

//  Checks the per-key rules of a verified batch against the cache (including
//  earlier applies of this group). 0, or -1 with a reason.
int
    kc_cache_check (kc_cache_t *self, const kc_batch_t *batch, kc_why_t *why) KC_WUR;

//  Applies a checked batch as log entry seq with chain(seq). seq must be the
//  cache's seq + 1. 0, or -1 (roll the group back).
int
    kc_cache_apply (kc_cache_t *self, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                    const kc_batch_t *batch, kc_why_t *why) KC_WUR;

//  Commits the group; on failure rolls it back. 0 or -1.
int
    kc_cache_commit (kc_cache_t *self, kc_why_t *why) KC_WUR;

//  Abandons the group: the cache is as before kc_cache_begin.
void
    kc_cache_rollback (kc_cache_t *self);

//  The cache does not checkpoint its WAL on commit (a checkpoint fsyncs the
//  database, which would stall the commit that triggers it). Call this
//  often (the agent does every 5 ms): it runs a passive checkpoint once no
//  commit has happened for KC_CACHE_IDLE_MS, or at once when the WAL holds
//  KC_CACHE_WAL_FRAMES_MAX pages. Returns 1 if it checkpointed, 0 if there
//  was nothing to do yet, -1 on error (why says).
#define KC_CACHE_IDLE_MS        100
#define KC_CACHE_WAL_FRAMES_MAX 4096
int
    kc_cache_checkpoint (kc_cache_t *self, kc_why_t *why) KC_WUR;

//  Builds a new cache file at path from a verified run of batches (seqs
//  1..count, in order), for a cold sync or a rebuild: writes path.new in one
//  pass (every record sorted by key, per-key rules checked across the run,
//  each key written once), fsyncs it and renames it over path. Close any
//  cache open on path first. Returns the new cache, or NULL with a reason
//  (path untouched). chain is chain(count); head may be NULL.
kc_cache_t *
    kc_cache_create (const char *path, const kc_root_t *root, kc_batch_t *const *batches,
                     size_t count, const uint8_t chain [static KC_HASH_BYTES],
                     const kc_head_t *head, kc_why_t *why);

//  The root changes of a run, with their sequence numbers.
typedef struct {
    kc_root_t **roots;
    uint64_t *seqs;
    size_t count, capacity;
} kc_cache_roots_t;

//  The same from a key index holding the whole run (seqs 1..seq, its
//  per-key rules already checked as each batch arrived) and the run's root
//  changes (roots may be NULL): how a cold sync builds its file without
//  holding the batches' decoded records. Sorts the index
//  (kc_keyindex_sort); the bytes it points into must stay alive.
kc_cache_t *
    kc_cache_create_from (const char *path, const kc_root_t *root, kc_keyindex_t *index,
                          uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                          const kc_cache_roots_t *roots, const kc_head_t *head, kc_why_t *why);

//  Applies a root change (already verified as the successor of the root in
//  force) at seq inside the open group: stored, seq and chain advance.
int
    kc_cache_apply_root (kc_cache_t *self, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                         const kc_root_t *root, kc_why_t *why) KC_WUR;

//  Adds a log entry (a batch or a root change, exactly as signed) to the
//  node's audit history, inside the open group, with when the server
//  accepted it (unix ms, 0 unknown) and who submitted it (NULL unknown).
//  The oldest entries are pruned at commit (KC_CACHE_HISTORY_*).
int
    kc_cache_add_history (kc_cache_t *self, uint64_t seq, uint64_t accepted, const uint8_t *submitter,
                          const uint8_t *data, size_t size, kc_why_t *why) KC_WUR;

//  Calls fn for up to max_count history entries after seq after, in order,
//  stopping before max_bytes (at least one); fn returns 0 to go on. Returns
//  how many, or -1 with a reason.
typedef int (kc_cache_history_fn) (uint64_t seq, uint64_t accepted, const uint8_t *submitter,
                                   const uint8_t *data, size_t size, void *arg);
int
    kc_cache_history (kc_cache_t *self, uint64_t after, size_t max_count, size_t max_bytes,
                      kc_cache_history_fn *fn, void *arg, kc_why_t *why);

//  Calls fn for each root change stored (seq, encoding), in order; fn
//  returns 0 to go on. Returns how many, or -1 with a reason.
typedef int (kc_cache_root_fn) (uint64_t seq, const uint8_t *data, size_t size, void *arg);
int
    kc_cache_roots (kc_cache_t *self, kc_cache_root_fn *fn, void *arg, kc_why_t *why);

//  Grants (docs/records.md section 8), in the open group or outside it.
//  grant: 1 with the grant for key (the caller destroys it), how often it
//  was used and whether it was revoked; 0 when there is none; -1 on a
//  failure. put_grant stores its state (in the open group); advance moves
//  the cache to (seq, chain) past an entry that holds no record (a grant).
int
    kc_cache_grant (kc_cache_t *self, const uint8_t key [static KC_KEY_BYTES], kc_grant_t **grant,
                    uint64_t *used, bool *revoked, kc_why_t *why);
int
    kc_cache_put_grant (kc_cache_t *self, const kc_grant_t *grant, uint64_t seq, uint64_t used, bool revoked,
                        kc_why_t *why) KC_WUR;
int
    kc_cache_advance (kc_cache_t *self, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                      kc_why_t *why) KC_WUR;

//  The root in force at the cache's seq: pinned, followed through every
//  root change stored (each checked as the successor of the one before, as
//  of its own creation time). NULL with a reason if one does not follow.
//  fn, when given, sees pinned and each root followed to, in order.
kc_root_t *
    kc_cache_current_root (kc_cache_t *self, const kc_root_t *pinned, kc_root_visit_fn *fn, void *arg,
                           kc_why_t *why);

//  The change feed: calls fn for each (seq, key) changed by an incremental
//  apply with seq > after, in order. Returns the count, or -1.
typedef int (kc_cache_change_fn) (uint64_t seq, const uint8_t *key, void *arg);
int
    kc_cache_changes (kc_cache_t *self, uint64_t after, kc_cache_change_fn *fn, void *arg,
                      kc_why_t *why);

//  Looks a key up (entry->status 0 if unknown). 0, or -1 on a cache error.
int
    kc_cache_lookup (kc_cache_t *self, const uint8_t key [static KC_KEY_BYTES],
                     kc_cache_entry_t *entry, kc_why_t *why) KC_WUR;

//  Calls fn (until it returns non-zero) for every key whose hex starts with
//  the first nibbles half bytes of prefix (KC_CACHE_PREFIX_MIN to 64, so
//  the keys share one bucket): a fingerprint search. Returns how many keys
//  match (all of them, whatever fn said), or -1 with a reason.
#define KC_CACHE_PREFIX_MIN     4           //  nibbles: the bucket's two bytes
int
    kc_cache_prefix (kc_cache_t *self, const uint8_t *prefix, size_t nibbles, kc_cache_entry_fn *fn, void *arg,
                     kc_why_t *why);

//  Calls fn for every key of a node name. Returns the count, or -1.
int
    kc_cache_by_name (kc_cache_t *self, const char *name, kc_cache_entry_fn *fn, void *arg,
                      kc_why_t *why);

//  Checks the file's integrity on a separate read-only connection (sqlite
//  quick_check, and the key count against the state row). Safe to call from
//  another thread while the agent writes. 0 if sound, else -1 with a reason.
int
    kc_cache_check_file (const char *path, kc_why_t *why) KC_WUR;

//  Self test of this module.
void
    kc_cache_test (bool verbose);

#endif
