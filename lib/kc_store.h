/*  =========================================================================
    kc_store - the server's durable store: the sequenced log of accepted
    batches and root changes with its chain, and the current record of every
    key (schema/server). One connection, used by one thread.

    Submissions are applied in groups: kc_store_begin, then for each batch
    kc_store_check + kc_store_append, then kc_store_commit (synchronous=FULL:
    on disk when it returns). Each batch is checked against the state that
    includes the batches appended before it in the same group.
    =========================================================================
*/
#ifndef KC_STORE_H_INCLUDED
#define KC_STORE_H_INCLUDED

#include "kc_util.h"
#include "kc_batch.h"
#include "kc_root.h"
#include "kc_grant.h"
#include <sqlite3.h>

typedef struct _kc_store_t kc_store_t;

//  What the store knows about one key.
typedef struct {
    uint8_t status;                     //  0 = unknown key
    uint64_t version;
    uint64_t not_before;
    uint64_t not_after;
    uint64_t seq;                       //  batch that set it
    char name [KC_RECORD_NAME_MAX + 1];
} kc_store_key_t;

//  Called for each batch read from the log, with when it was accepted
//  (unix ms) and who submitted it (NULL: unknown); return 0 to go on, -1 to
//  stop.
typedef int (kc_store_batch_fn) (uint64_t seq, const uint8_t *chain, const uint8_t *data,
                                 size_t size, uint64_t accepted, const uint8_t *submitter,
                                 void *arg);

//  Called for each stored record (QUERY); return 0 to go on, -1 to stop.
typedef int (kc_store_record_fn) (uint64_t seq, const uint8_t *key, const uint8_t *record,
                                  size_t size, void *arg);

//  Opens (creating) the store at path for root's directory. Refuses a store
//  that belongs to another directory. NULL with a reason.
kc_store_t *
    kc_store_open (const char *path, const kc_root_t *root, kc_why_t *why);

//  Closes the store. Nulls *self_p.
void
    kc_store_destroy (kc_store_t **self_p);

//  The last sequence number and chain of the log (chain(0) when empty).
uint64_t
    kc_store_seq (const kc_store_t *self);
const uint8_t *
    kc_store_chain (const kc_store_t *self);

//  Keys and revoked keys currently stored.
uint64_t
    kc_store_key_count (const kc_store_t *self);
uint64_t
    kc_store_revoked_count (const kc_store_t *self);

//  If a batch with this body digest is in the log, returns 1 and its seq and
//  chain; 0 if not; -1 on a store error.
int
    kc_store_find_digest (kc_store_t *self, const uint8_t digest [static KC_HASH_BYTES],
                          uint64_t *seq, uint8_t chain [static KC_HASH_BYTES], kc_why_t *why) KC_WUR;

//  Starts a group of appends.
int
    kc_store_begin (kc_store_t *self, kc_why_t *why) KC_WUR;

//  Checks every record of a verified batch against the stored state
//  (docs/protocol.md 7.2) at time now (seconds). 0, or -1 with a reason.
int
    kc_store_check (kc_store_t *self, const kc_batch_t *batch, uint64_t now, kc_why_t *why) KC_WUR;

//  Appends a checked batch inside the group: next seq, next chain, key rows.
//  Returns 0 and the seq and chain, or -1 (the group must be rolled back).
int
    kc_store_append (kc_store_t *self, const kc_batch_t *batch, uint64_t *seq,
                     uint8_t chain [static KC_HASH_BYTES], kc_why_t *why) KC_WUR;

//  Appends a root change (checked by the caller against the root in force
//  with kc_root_verify_successor) with the next sequence number, inside the
//  group. From that seq on the root in force is root.
int
    kc_store_append_root (kc_store_t *self, const kc_root_t *root, uint64_t *seq,
                          uint8_t chain [static KC_HASH_BYTES], kc_why_t *why) KC_WUR;

//  The accepted time (unix ms) of the appends that follow, as a cluster's
//  leader decided it for every member (docs/cluster.md 3); 0: the clock.
void
    kc_store_set_time (kc_store_t *self, uint64_t time_ms);

//  The submitter (a client's CURVE public key, or NULL) recorded with the
//  appends that follow, for the audit view.
void
    kc_store_set_submitter (kc_store_t *self, const uint8_t *key);

//  When the last append was accepted (unix ms), as recorded in the log.
uint64_t
    kc_store_accepted (const kc_store_t *self);

//  Calls fn for up to max_count log entries (batches and root changes)
//  after seq after, in order, stopping before max_bytes (at least one);
//  accepted is unix milliseconds, submitter NULL when unknown. fn returns
//  0 to go on. Returns how many, or -1 with a reason.
typedef int (kc_store_log_fn) (uint64_t seq, uint64_t accepted, const uint8_t *submitter,
                               const uint8_t *data, size_t size, void *arg);
int
    kc_store_log (kc_store_t *self, uint64_t after, size_t max_count, size_t max_bytes,
                  kc_store_log_fn *fn, void *arg, kc_why_t *why);

//  Calls fn for each root change in the log, in order; fn returns 0 to go
//  on. Returns how many, or -1 with a reason.
typedef int (kc_store_root_fn) (uint64_t seq, const uint8_t *data, size_t size, void *arg);
int
    kc_store_roots (kc_store_t *self, kc_store_root_fn *fn, void *arg, kc_why_t *why);

//  The root in force after the whole log: pinned, followed through every
//  root change stored (each checked as a successor of the one before, as of
//  its own creation time). NULL with a reason if a stored change does not
//  follow.
kc_root_t *
    kc_store_current_root (kc_store_t *self, const kc_root_t *pinned, kc_why_t *why);

//  Commits the group durably; on failure rolls it back. 0 or -1.
int
    kc_store_commit (kc_store_t *self, kc_why_t *why) KC_WUR;

//  Abandons the group: the log and keys are as before kc_store_begin.
void
    kc_store_rollback (kc_store_t *self);

//  Reads batches with seq > from in order, up to max_count batches and
//  about max_bytes, calling fn for each. Returns the number read or -1.
int
    kc_store_read (kc_store_t *self, uint64_t from, size_t max_count, size_t max_bytes,
                   kc_store_batch_fn *fn, void *arg, kc_why_t *why);

//  Grants (docs/records.md section 8). grant: 1 with the grant for key (the
//  caller destroys it), how often it was used and whether it was revoked;
//  0 when there is none; -1 on a failure. check_grant: may this grant or
//  revocation be appended (a grant key is granted once; only a grant is
//  revoked, once)? check_use: the checks of a use against the store at
//  time now (records.md 8.3, the grant not expired now, the key new).
//  append_grant and append_use as kc_store_append.
int
    kc_store_grant (kc_store_t *self, const uint8_t key [static KC_KEY_BYTES], kc_grant_t **grant,
                    uint64_t *used, bool *revoked, kc_why_t *why);
int
    kc_store_check_grant (kc_store_t *self, const kc_grant_t *grant, kc_why_t *why) KC_WUR;
int
    kc_store_append_grant (kc_store_t *self, const kc_grant_t *grant, uint64_t *seq,
                           uint8_t chain [static KC_HASH_BYTES], kc_why_t *why) KC_WUR;
int
    kc_store_check_use (kc_store_t *self, const kc_grant_use_t *use, uint64_t now, kc_why_t *why) KC_WUR;
int
    kc_store_append_use (kc_store_t *self, const kc_grant_use_t *use, uint64_t *seq,
                         uint8_t chain [static KC_HASH_BYTES], kc_why_t *why) KC_WUR;

//  The store's database, for the server's own tables beside the log (the
//  enrolments, server/kc_pending.h). Never inside an open transaction.
sqlite3 *
    kc_store_db (kc_store_t *self);

//  Looks a key up. Returns 0 (info->status 0 if unknown) or -1.
int
    kc_store_key (kc_store_t *self, const uint8_t key [static KC_KEY_BYTES],
                  kc_store_key_t *info, kc_why_t *why) KC_WUR;

//  Records for a key, for a name, or in key order after a cursor (list);
//  calls fn for each, at most limit. Returns the number given or -1.
int
    kc_store_query (kc_store_t *self, const char *kind, const uint8_t *argument,
                    size_t size, size_t limit, kc_store_record_fn *fn, void *arg,
                    kc_why_t *why);

//  An agent's last acknowledgement (docs/protocol.md 6.3).
typedef struct {
    uint8_t key [KC_KEY_BYTES];             //  the agent's CURVE key
    uint64_t seq;
    uint8_t chain [KC_HASH_BYTES];
    uint64_t acked;                         //  unix milliseconds
} kc_store_ack_t;

//  Called for each stored acknowledgement; return 0 to go on.
typedef int (kc_store_ack_fn) (const kc_store_ack_t *ack, void *arg);

//  Saves acknowledgements (inserted or replaced) in one transaction; not
//  inside a group of appends. Returns 0 or -1 with a reason.
int
    kc_store_save_acks (kc_store_t *self, const kc_store_ack_t *acks, size_t count,
                        kc_why_t *why) KC_WUR;

//  Gives every stored acknowledgement to fn. Returns how many, or -1.
int
    kc_store_load_acks (kc_store_t *self, kc_store_ack_fn *fn, void *arg, kc_why_t *why);

//  Self test of this module.
void
    kc_store_test (bool verbose);

#endif
