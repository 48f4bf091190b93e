/*  =========================================================================
    kc_publish - the serving half of the distribution protocol (KCP/1,
    docs/protocol.md sections 4, 5 and 9): a log held in a kc_store served
    on a snapshot ROUTER (SYNC with credit, BATCHES, END) and an update PUB
    (UPDATE, HEAD with the witnesses' cosignatures), the agents'
    acknowledgements, the witnesses' COSIGN, and the read policy. One job,
    used by every daemon that serves the log: keyclone-server (a single
    server or a cluster member, which signs its own heads) and
    keyclone-mirror (which relays its upstream's heads).

        kc_publish_t *pub = kc_publish_new (&config);
        kc_publish_set_sockets (pub, snapshot, updates);   //  bound by the daemon
        zloop_reader (loop, snapshot, ..., kc_publish_on_snapshot (pub));
        kc_publish_update (pub, &update);    //  after each commit
        kc_publish_head (pub);               //  heartbeat (own heads), or
        kc_publish_relay (pub, &head);       //  a mirror: each upstream head
        kc_publish_tick (pub);               //  heartbeat housekeeping

    Memory stays bounded however many agents sync at once: a few messages in
    flight to each, a budget for all. The daemon owns the sockets, the
    store and the loop; the publisher owns the syncs, the acknowledgements
    table and the cosignatures.
    =========================================================================
*/
#ifndef KC_PUBLISH_H_INCLUDED
#define KC_PUBLISH_H_INCLUDED

#include "kc_util.h"
#include "kc_head.h"
#include "kc_cosig.h"
#include "kc_ratelog.h"
#include "kc_store.h"
#include "kc_proto.h"
#include "kc_metrics.h"
#include "kc_track.h"
#include <czmq.h>

#define KC_PUBLISH_SNAPSHOT_BYTES   (1024 * 1024)   //  aim of one BATCHES message
#define KC_PUBLISH_UPDATE_BYTES     (4 * 1024 * 1024)   //  aim of one UPDATE message
#define KC_PUBLISH_HEAD_AFTER_MS    25      //  heads after UPDATEs: at most one per 25 ms
#define KC_PUBLISH_COSIG_SKEW_MS    (5 * 60 * 1000)     //  a witness's clock may be this far ahead

typedef struct _kc_publish_t kc_publish_t;

//  Own heads: fills heads (1, or 2 during a head key rotation's overlap,
//  the previous key's second) for the store's current (seq, chain), fresh
//  and signed; returns how many.
typedef size_t (kc_publish_heads_fn) (void *arg, kc_head_t heads [2]);

//  The root in force (for cosignatures and the directory).
typedef const kc_root_t *(kc_publish_root_fn) (void *arg);

//  An agent acknowledged (seq, chain) (a mirror passes it upstream). May be NULL.
typedef void (kc_publish_ack_fn) (void *arg, const uint8_t key [KC_KEY_BYTES], uint64_t seq,
                                  const uint8_t chain [KC_HASH_BYTES]);

//  ZAP for a domain other than the readers' (KC_PUBLISH_DOMAIN_SNAPSHOT,
//  _UPDATES): NULL to allow the key, else the reason. NULL function: every
//  other domain is refused.
typedef const char *(kc_publish_domain_fn) (void *arg, const char *domain, const uint8_t key [KC_KEY_BYTES]);

#define KC_PUBLISH_DOMAIN_SNAPSHOT  "keyclone-snapshot"
#define KC_PUBLISH_DOMAIN_UPDATES   "keyclone-updates"

typedef struct {
    const char *name;                       //  for logs: "kc_server", "kc_mirror"
    kc_store_t *store;                      //  the log served (not owned)
    kc_publish_root_fn *root;
    kc_publish_heads_fn *heads;             //  NULL: relayed heads (kc_publish_relay)
    kc_publish_ack_fn *ack;
    kc_publish_domain_fn *domain;
    void *arg;
    kc_ratelog_t *log;                      //  refusals, bounded (not owned)
    bool read_any;                          //  read = any (default: members)
    int sync_idle_ms;                       //  abandon a sync without credit
    bool verbose;                           //  log every sync
} kc_publish_config_t;

//  Makes a publisher. The acknowledgements the store kept are loaded.
kc_publish_t *
    kc_publish_new (const kc_publish_config_t *config);

//  Destroys it (the acknowledgements not yet saved are saved). Nulls *self_p.
void
    kc_publish_destroy (kc_publish_t **self_p);

//  The sockets to serve on (bound by the daemon; replaced after a key switch).
void
    kc_publish_set_sockets (kc_publish_t *self, zsock_t *snapshot, zsock_t *updates);

//  The loop that runs the delayed heads (own heads only) and the readers'
//  connection tracking.
void
    kc_publish_set_loop (kc_publish_t *self, zloop_t *loop);

//  The readers' connections, matched to their keys so that a reader whose
//  key is revoked or expires is closed (kc_track.h): NULL with read = any.
//  The daemon installs it on its snapshot and update sockets.
kc_track_t *
    kc_publish_track (kc_publish_t *self);

//  A zloop reader for the ZAP handler's socket (bound by the daemon to
//  inproc://zeromq.zap.01): readers by the read policy, other domains by
//  the domain callback (arg: the publisher).
int
    kc_publish_on_zap (zloop_t *loop, zsock_t *zap, void *arg);

//  Changes read = any (a reload).
void
    kc_publish_set_read_any (kc_publish_t *self, bool read_any);

//  A zloop reader for the snapshot socket (arg: the publisher).
int
    kc_publish_on_snapshot (zloop_t *loop, zsock_t *socket, void *arg);

//  Publishes an UPDATE message (kc_proto_entries ("UPDATE") and entries);
//  with own heads a HEAD follows soon. Takes the message.
void
    kc_publish_update (kc_publish_t *self, zmsg_t **update_p);

//  The store grew: the syncs running go on to the new end.
void
    kc_publish_grown (kc_publish_t *self);

//  Own heads: publishes a HEAD now (the heartbeat).
void
    kc_publish_head (kc_publish_t *self);

//  Own heads: publishes a HEAD soon (at once if none went out for
//  KC_PUBLISH_HEAD_AFTER_MS, else once that has passed).
void
    kc_publish_head_soon (kc_publish_t *self);

//  Relayed heads: head, accepted from upstream (its signature checked by
//  the caller), is published with the cosignatures held, and ends the
//  syncs that waited for a head naming the store's (seq, chain).
void
    kc_publish_relay (kc_publish_t *self, const kc_head_t *head);

//  Takes a cosignature (as COSIGN does, also for a mirror relaying its
//  upstream's): checked against the root in force and the store, kept if
//  it is the witness's newest. Returns 0 (kept, or not newer), 1 with a
//  reason when it names a seq beyond the store (not kept: a cluster member
//  or mirror a little behind), or -1 with a reason (refused, counted).
int
    kc_publish_take_cosig (kc_publish_t *self, const uint8_t cosig [KC_COSIG_BYTES], kc_why_t *why);

//  The root in force changed: forgets the cosignatures of witnesses it no
//  longer names.
void
    kc_publish_root_changed (kc_publish_t *self);

//  Heartbeat housekeeping: readers whose key expired closed (expiry needs
//  no event), syncs without credit abandoned, memory given back after the
//  last sync, sync storms reported, acknowledgements saved.
void
    kc_publish_tick (kc_publish_t *self);

//  Decides a reader's access: with read = members its key must be active
//  and in force in the store. NULL to allow, else the reason.
const char *
    kc_publish_reader_denied (kc_publish_t *self, const uint8_t key [KC_KEY_BYTES]);

//  Closes the connections and ends the syncs of readers the read policy now
//  refuses (revoked, expired): they must not read what follows.
void
    kc_publish_end_refused (kc_publish_t *self);

//  The CURVE key of a message's sender, from the User-Id the ZAP handler
//  (kc_publish_on_zap) gave its connection: 0 and the key, or -1.
int
    kc_publish_sender (zframe_t *frame, uint8_t key [KC_KEY_BYTES]);

//  The sender's fingerprint into text, or unknown when its User-Id names
//  no key.
void
    kc_publish_sender_fp (zframe_t *frame, char text [KC_FINGERPRINT_CHARS + 1], const char *unknown);

//  Syncs running now.
size_t
    kc_publish_syncs (const kc_publish_t *self);

//  STATUS: the agents (JSON array "agents" and text lines) and the
//  witnesses ("witness_threshold", "cosignatures", "cosignatures_refused",
//  "witnesses"), each as ", field": ... to append to a JSON object.
void
    kc_publish_status_agents (kc_publish_t *self, FILE *out, FILE *human);
void
    kc_publish_status_witnesses (kc_publish_t *self, FILE *out, FILE *human);

//  METRICS: syncs, bytes in flight, agents, and each agent's lag and
//  acknowledgement age, named PREFIX_syncs and so on ("keyclone_server").
void
    kc_publish_metrics (kc_publish_t *self, kc_metrics_t *m, const char *prefix);

//  Self test of this module.
void
    kc_publish_test (bool verbose);

#endif
