/*  =========================================================================
    kc_follow - the following half of the distribution protocol (KCP/1,
    docs/protocol.md sections 4 and 5): a copy of the log kept up with an
    upstream that serves it (a server, a cluster member, a mirror). It
    connects a DEALER to the upstream's snapshot channel and a SUB to its
    update channel (CURVE), syncs from the copy's sequence with credit,
    checks END's counts and that its head names the copy's (seq, chain),
    applies UPDATEs in order, resyncs on a gap or a head ahead of the copy,
    buffers what the update channel brings during a sync, and backs off
    (with jitter) after a fault. The consumer verifies and applies entries
    and judges heads; the follower only moves them, in order.

        kc_follow_t *follow = kc_follow_new (&config, loop);
        kc_follow_connect (follow, &upstream);    //  and a sync from the copy's seq
        ...
        kc_follow_destroy (&follow);

    With a store the follower keeps the copy itself: it verifies and stores
    entries (kc_keep_follow), follows root changes in the log (the consumer's
    root in force is replaced, said, and the upstreams read again), and
    judges heads: only those signed by a server of the root in force that
    name the copy reach the consumer, and an upstream whose head names
    another chain at the copy's seq is faulted and left. Without one
    (keyclone-agent, whose copy is its cache), the consumer applies entries
    and judges every head.

    Used by keyclone-agent, keyclone-mirror and keyclone-witness.
    =========================================================================
*/
#ifndef KC_FOLLOW_H_INCLUDED
#define KC_FOLLOW_H_INCLUDED

#include "kc_util.h"
#include "kc_proto.h"
#include "kc_ratelog.h"
#include "kc_root.h"
#include "kc_store.h"
#include <czmq.h>

#define KC_FOLLOW_SYNC_TIMEOUT_MS   10000   //  a sync without progress starts again
#define KC_FOLLOW_BACKOFF_MIN_MS    1000    //  after a fault, before syncing again,
#define KC_FOLLOW_BACKOFF_MAX_MS    30000   //  doubling to this (plus up to a half of jitter)
#define KC_FOLLOW_BUFFER_BYTES_MAX  (64 * 1024 * 1024)  //  update messages held during a sync
#define KC_FOLLOW_DRAIN_MAX         256     //  update messages handled per wake-up,
#define KC_FOLLOW_DRAIN_BATCHES_MAX 512     //  and batches, so the consumer's other work waits little

typedef struct _kc_follow_t kc_follow_t;

//  The consumer's copy: where it ends.
typedef uint64_t (kc_follow_seq_fn) (void *arg);
typedef const uint8_t *(kc_follow_chain_fn) (void *arg);

//  Verifies and applies the entries of msg (BATCHES of a sync, or an
//  UPDATE) that come after the copy's seq, in order, all or nothing: 0, or
//  -1 with a reason (a fault: the follower backs off and syncs again).
typedef int (kc_follow_entries_fn) (void *arg, const kc_proto_msg_t *msg, kc_why_t *why);

//  With a store: entries of msg were stored (count of them, the last ones
//  of msg; revoked: one of them revoked a key; root_changed: *config.root
//  is a new root in force).
typedef void (kc_follow_kept_fn) (void *arg, const kc_proto_msg_t *msg, int count, bool revoked,
                                  bool root_changed);

//  A head came (msg: HEAD with its cosignatures, or the END of a sync that
//  brought the copy to the head's seq). Without a store the consumer checks
//  its signature and decides what it means; it may call kc_follow_fault
//  (an END it refuses: the sync is over, faulted), kc_follow_sync or
//  kc_follow_connect from here. With a store, only heads that name the
//  copy come here, checked.
typedef void (kc_follow_head_fn) (void *arg, const kc_proto_msg_t *msg, bool from_end);

//  A sync is about to start: the consumer settles its copy (the follower
//  reads its seq next).
typedef void (kc_follow_syncing_fn) (void *arg);

//  The follower faulted the upstream (logged already): the copy is kept,
//  a sync follows after a back-off.
typedef void (kc_follow_fault_fn) (void *arg, const char *what, const kc_why_t *why);

//  The update messages of one wake-up are handled (the consumer may commit
//  what it applied in one transaction).
typedef void (kc_follow_flush_fn) (void *arg);

typedef struct {
    const char *name;                       //  for logs: "kc_mirror", "kc_witness"
    const uint8_t *public_key;              //  our CURVE key pair (kept by the caller)
    const uint8_t *secret_key;
    const uint8_t *directory;               //  the directory's id (32 bytes, kept by the caller)
    uint32_t credit;                        //  SYNC window, 1..KC_PROTO_CREDIT_MAX (0: 8)
    kc_follow_seq_fn *seq;                  //  NULL: the store's (below)
    kc_follow_chain_fn *chain;
    kc_store_t *store;                      //  with seq and chain NULL: the copy is this
                                            //  store (kc_keep_follow), its seq and chain
    kc_root_t **root;                       //  with a store: the root in force at its seq (the
                                            //  caller's; replaced at a root change in the log)
    kc_follow_kept_fn *kept;                //  with a store, instead of entries
    kc_follow_entries_fn *entries;
    kc_follow_head_fn *head;
    kc_follow_syncing_fn *syncing;          //  optional, the three of them
    kc_follow_fault_fn *fault;
    kc_follow_flush_fn *flush;
    void *arg;
    kc_ratelog_t *log;                      //  faults, bounded (kept by the caller; NULL:
                                            //  one of its own)
    size_t buffer_bytes;                    //  held during a sync (0: KC_FOLLOW_BUFFER_BYTES_MAX)
    bool monitor;                           //  watch the sockets' handshakes
                                            //  (kc_follow_monitor)
} kc_follow_config_t;

//  Where to follow from: the upstream's snapshot and update endpoints and
//  its CURVE key.
typedef struct {
    char name [128];                        //  for logs
    char snapshot [256], updates [256];
    uint8_t server_key [32];
} kc_follow_upstream_t;

#define KC_FOLLOW_UPSTREAMS_MAX     16

kc_follow_t *
    kc_follow_new (const kc_follow_config_t *config, zloop_t *loop);

//  Parses one upstream: NAME (a server of root: its snapshot and update
//  endpoints and CURVE key) or tcp://HOST:PORT=KEY (a mirror: snapshot PORT,
//  updates PORT+1, its CURVE key in Z85; the key is the last 40
//  characters). 0, or -1 with a reason.
int
    kc_follow_parse_upstream (const char *text, const kc_root_t *root, kc_follow_upstream_t *upstream,
                              kc_why_t *why) KC_WUR;

//  Upstreams in order of preference, comma-separated (each as
//  kc_follow_parse_upstream takes it), checked against root; the follower
//  connects to the first that works and moves to the next when the
//  consumer has had no news (kc_follow_fresh) for stale_after_ms. 0, or -1
//  with a reason (an upstream is not valid, or none).
int
    kc_follow_set_upstreams (kc_follow_t *self, const char *list, const kc_root_t *root, int stale_after_ms,
                             kc_why_t *why) KC_WUR;

//  The consumer got a head that names its copy: no move for stale_after_ms.
void
    kc_follow_fresh (kc_follow_t *self);

//  Moves to the next upstream of the list now (why: logged).
void
    kc_follow_next (kc_follow_t *self, const char *why);

//  The root in force changed: the upstreams named by it are read again,
//  and the follower connects again if the one followed moved.
void
    kc_follow_root_changed (kc_follow_t *self, const kc_root_t *root);

//  Closes the sockets and cancels the timers. Nulls *self_p.
void
    kc_follow_destroy (kc_follow_t **self_p);

//  (Re)connects to upstream and syncs from the copy's seq. 0, or -1 with a
//  reason (bad endpoint, bad key).
int
    kc_follow_connect (kc_follow_t *self, const kc_follow_upstream_t *upstream, kc_why_t *why) KC_WUR;

//  Syncs again from the copy's seq now (why: logged; NULL says nothing).
void
    kc_follow_sync (kc_follow_t *self, const char *why);

//  The consumer found the upstream wrong (what: "a head", why): it is
//  logged, and the follower backs off and syncs again.
void
    kc_follow_fault (kc_follow_t *self, const char *what, const kc_why_t *why);

//  Sends a message on the snapshot channel (ACK, COSIGN) without blocking;
//  takes it. 0, or -1 when it cannot go now (dropped).
int
    kc_follow_send (kc_follow_t *self, zmsg_t **msg_p);

//  True while a sync runs.
bool
    kc_follow_syncing (const kc_follow_t *self);

//  True while backing off after a fault (a sync waits).
bool
    kc_follow_backing_off (const kc_follow_t *self);

//  True once the upstream sent anything since kc_follow_connect (its CURVE
//  handshake admitted our key).
bool
    kc_follow_admitted (const kc_follow_t *self);

//  With config.monitor: the socket of the zmonitor actor watching the
//  handshakes (HANDSHAKE_FAILED_NO_DETAIL, _PROTOCOL, _AUTH) of the snapshot
//  socket (which 0) or of the update socket (which 1), for the consumer to
//  read when it chooses; NULL when not connected. Both: a member may admit
//  one and refuse the other (a registration applied between the two), and
//  libzmq never connects again after a refusal.
zsock_t *
    kc_follow_monitor (kc_follow_t *self, int which);

//  Our CURVE key pair changed (kept by the caller): the next
//  kc_follow_connect uses it.
void
    kc_follow_set_keys (kc_follow_t *self, const uint8_t *public_key, const uint8_t *secret_key);

//  The upstream followed now (NULL before kc_follow_connect).
const kc_follow_upstream_t *
    kc_follow_upstream (const kc_follow_t *self);

//  Counters: syncs started, faults, moves between upstreams.
uint64_t
    kc_follow_syncs (const kc_follow_t *self);
uint64_t
    kc_follow_moves (const kc_follow_t *self);
uint64_t
    kc_follow_faults (const kc_follow_t *self);

//  Self test of this module.
void
    kc_follow_test (bool verbose);

#endif
