/*  =========================================================================
    kc_follow - keeping a copy of the log up with an upstream.
    =========================================================================
*/
#include "kc_follow.h"
#include "kc_keep.h"
#include "kc_sockopt.h"
#include "kc_z85.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SNAPSHOT_MAX        64              //  snapshot messages handled per wake-up

struct _kc_follow_t {
    kc_follow_config_t config;
    kc_ratelog_t *own_log;                  //  when the caller gave none
    zloop_t *loop;
    kc_follow_upstream_t upstream;
    bool connected, admitted;
    zsock_t *snapshot, *updates;
    zactor_t *monitor [2];                  //  config.monitor: handshakes on snapshot, updates
    //  The sync in progress
    bool syncing;
    uint64_t generation;                    //  moves at every sync, fault and connect: a
                                            //  callback that started one is seen
    uint64_t sync_batches, sync_records;
    int sync_timer;                         //  one-shot: no progress for SYNC_TIMEOUT_MS, or -1
    zlistx_t *buffered;                     //  update messages held during a sync, and
    size_t buffered_bytes;                  //  after it until drained a slice at a time
    bool overflowed;                        //  the buffer was dropped: sync again after END
    int drain_timer;                        //  one-shot: the next slice, or -1
    //  Faults
    int retry_timer;                        //  one-shot: sync again after a back-off, or -1
    int64_t backoff;
    uint64_t syncs, faults;
    //  The upstreams (kc_follow_set_upstreams)
    char texts [KC_FOLLOW_UPSTREAMS_MAX][300];
    size_t count, current;
    const kc_root_t *root;                  //  the consumer's root in force (borrowed)
    int stale_after_ms;
    int stale_timer;                        //  one-shot: no news for stale_after_ms, or -1
    bool said_stale;
    uint64_t moves;
};

static void s_arm_sync_timer (kc_follow_t *self);
static void s_drain (kc_follow_t *self);

static uint64_t
s_store_seq (void *arg)
{
    return kc_store_seq (arg);
}

static const uint8_t *
s_store_chain (void *arg)
{
    return kc_store_chain (arg);
}

static void
s_end_timer (kc_follow_t *self, int *timer)
{
    if (*timer != -1) {
        zloop_timer_end (self->loop, *timer);
        *timer = -1;
    }
}

static void
s_free_buffered (kc_follow_t *self)
{
    for (zmsg_t *msg = zlistx_first (self->buffered); msg; msg = zlistx_next (self->buffered)) {
        zmsg_destroy (&msg);
    }
    zlistx_purge (self->buffered);
    self->buffered_bytes = 0;
    s_end_timer (self, &self->drain_timer);
}

static uint64_t
s_seq (kc_follow_t *self)
{
    return self->config.seq (self->config.seq == s_store_seq ? (void *) self->config.store : self->config.arg);
}

static const uint8_t *
s_chain (kc_follow_t *self)
{
    return self->config.chain (self->config.chain == s_store_chain ? (void *) self->config.store : self->config.arg);
}

//  True when the store is the copy: the follower judges heads itself.
static bool
s_judges (const kc_follow_t *self)
{
    return self->config.seq == s_store_seq;
}

kc_follow_t *
kc_follow_new (const kc_follow_config_t *config, zloop_t *loop)
{
    kc_follow_t *self = calloc (1, sizeof *self);
    assert (self);
    self->config = *config;
    if (!self->config.seq) {
        self->config.seq = s_store_seq;     //  the copy is a store
        self->config.chain = s_store_chain;
    }
    if (self->config.credit == 0 || self->config.credit > KC_PROTO_CREDIT_MAX) {
        self->config.credit = 8;
    }
    if (!self->config.log) {
        self->config.log = self->own_log = kc_ratelog_new (self->config.name, 10000, 2, 2);
    }
    if (self->config.buffer_bytes == 0) {
        self->config.buffer_bytes = KC_FOLLOW_BUFFER_BYTES_MAX;
    }
    self->loop = loop;
    self->sync_timer = self->retry_timer = self->stale_timer = self->drain_timer = -1;
    self->backoff = KC_FOLLOW_BACKOFF_MIN_MS;
    self->buffered = zlistx_new ();
    return self;
}

static void
s_close (kc_follow_t *self)
{
    //  Monitors first: a zmonitor stops its socket's monitor on the way
    //  out, and one left bound to a freed socket's inproc endpoint makes
    //  the next socket at that address fail zmonitor's assertion
    zactor_destroy (&self->monitor [0]);
    zactor_destroy (&self->monitor [1]);
    if (self->snapshot) {
        zloop_reader_end (self->loop, self->snapshot);
        zsock_destroy (&self->snapshot);
    }
    if (self->updates) {
        zloop_reader_end (self->loop, self->updates);
        zsock_destroy (&self->updates);
    }
    self->connected = false;
}

void
kc_follow_destroy (kc_follow_t **self_p)
{
    kc_follow_t *self = *self_p;
    if (self) {
        s_end_timer (self, &self->sync_timer);
        s_end_timer (self, &self->retry_timer);
        s_end_timer (self, &self->stale_timer);
        s_close (self);
        s_free_buffered (self);
        zlistx_destroy (&self->buffered);
        kc_ratelog_destroy (&self->own_log);
        free (self);
        *self_p = NULL;
    }
}

bool
kc_follow_syncing (const kc_follow_t *self)
{
    return self->syncing;
}

bool
kc_follow_backing_off (const kc_follow_t *self)
{
    return self->retry_timer != -1;
}

bool
kc_follow_admitted (const kc_follow_t *self)
{
    return self->admitted;
}

zsock_t *
kc_follow_monitor (kc_follow_t *self, int which)
{
    return which >= 0 && which < 2 && self->monitor [which] ? zactor_sock (self->monitor [which]) : NULL;
}

void
kc_follow_set_keys (kc_follow_t *self, const uint8_t *public_key, const uint8_t *secret_key)
{
    self->config.public_key = public_key;
    self->config.secret_key = secret_key;
}

const kc_follow_upstream_t *
kc_follow_upstream (const kc_follow_t *self)
{
    return self->connected ? &self->upstream : NULL;
}

uint64_t
kc_follow_syncs (const kc_follow_t *self)
{
    return self->syncs;
}

uint64_t
kc_follow_faults (const kc_follow_t *self)
{
    return self->faults;
}

int
kc_follow_send (kc_follow_t *self, zmsg_t **msg_p)
{
    if (!self->snapshot || zmsg_send (msg_p, self->snapshot)) {
        zmsg_destroy (msg_p);
        return -1;
    }
    return 0;
}

//  --- Syncs and faults ---------------------------------------------------------------

void
kc_follow_sync (kc_follow_t *self, const char *why)
{
    if (!self->connected) {
        return;
    }
    s_end_timer (self, &self->retry_timer);
    s_free_buffered (self);
    self->overflowed = false;
    self->generation++;
    if (self->config.syncing) {
        self->config.syncing (self->config.arg);
    }
    self->syncing = true;
    self->sync_batches = self->sync_records = 0;
    self->syncs++;
    uint64_t from = s_seq (self);
    if (why) {
        zsys_info ("%s: %s; syncing from seq %llu with %s", self->config.name, why, (unsigned long long) from,
                   self->upstream.name);
    }
    zmsg_t *msg = kc_proto_sync (self->config.directory, from, self->config.credit);
    kc_follow_send (self, &msg);
    s_arm_sync_timer (self);
}

static int
s_on_retry (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    kc_follow_t *self = arg;
    self->retry_timer = -1;
    kc_follow_sync (self, "retrying");
    return 0;
}

void
kc_follow_fault (kc_follow_t *self, const char *what, const kc_why_t *why)
{
    self->faults++;
    self->syncing = false;
    self->generation++;
    s_end_timer (self, &self->sync_timer);
    s_free_buffered (self);
    if (self->retry_timer == -1) {
        //  Once per failed attempt: the same bad update repeated while we
        //  wait does not stretch the wait. Jitter (half to one and a half
        //  times the back-off): the followers of one upstream that faulted
        //  together do not come back together
        int64_t wait = self->backoff / 2 + (int64_t) randombytes_uniform ((uint32_t) self->backoff + 1);
        //  Each reason is a kind of its own: one cannot hide another
        char kind [49];
        snprintf (kind, sizeof kind, "%.48s", why->text);
        kc_ratelog (self->config.log, KC_LOG_ERROR, kind, self->upstream.name,
                    "%s: rejected %s from %s: %s; copy kept at seq %llu, syncing again in %.1f s",
                    self->config.name, what, self->upstream.name, why->text, (unsigned long long) s_seq (self),
                    (double) wait / 1000.0);
        self->retry_timer = zloop_timer (self->loop, (size_t) wait, 1, s_on_retry, self);
        self->backoff = self->backoff * 2 > KC_FOLLOW_BACKOFF_MAX_MS ? KC_FOLLOW_BACKOFF_MAX_MS : self->backoff * 2;
    }
    if (self->config.fault) {
        self->config.fault (self->config.arg, what, why);
    }
}

static int
s_on_sync_timeout (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    kc_follow_t *self = arg;
    self->sync_timer = -1;
    if (self->syncing) {
        kc_follow_sync (self, "the sync made no progress");
    }
    return 0;
}

static void
s_arm_sync_timer (kc_follow_t *self)
{
    s_end_timer (self, &self->sync_timer);
    self->sync_timer = zloop_timer (self->loop, KC_FOLLOW_SYNC_TIMEOUT_MS, 1, s_on_sync_timeout, self);
}

//  --- Heads ------------------------------------------------------------------------------

//  With a store: a head signed by a server of the root in force that names
//  the copy goes to the consumer; one at the copy's seq with another chain
//  is an equivocation (the upstream is faulted and left); others are not
//  news (ahead: a sync runs; behind: said).
static void
s_judge_head (kc_follow_t *self, const kc_proto_msg_t *msg, bool from_end)
{
    const kc_head_t *head = &msg->head;
    const char *name = self->upstream.name;
    const kc_root_t *root = self->config.root ? *self->config.root : NULL;
    if (!root || !kc_head_signer (head, root)) {
        kc_ratelog (self->config.log, KC_LOG_WARNING, "head refused", name,
                    "%s: head from %s refused: not signed by a server of root v%llu", self->config.name, name,
                    root ? (unsigned long long) kc_root_version (root) : 0ULL);
        return;
    }
    uint64_t seq = s_seq (self);
    if (head->seq < seq) {
        kc_ratelog (self->config.log, KC_LOG_WARNING, "head behind", name,
                    "%s: %s's log ends at seq %llu, behind this copy (seq %llu): not news (nothing is cosigned, "
                    "relayed or rolled back)", self->config.name, name,
                    (unsigned long long) head->seq, (unsigned long long) seq);
        return;
    }
    if (head->seq > seq) {
        return;                             //  the follower syncs
    }
    if (sodium_memcmp (head->chain, s_chain (self), KC_HASH_BYTES)) {
        kc_why_t why;
        kc_why (&why, "its head names another chain at seq %llu than this copy (equivocation)",
                (unsigned long long) seq);
        kc_follow_fault (self, "a head", &why);
        kc_follow_next (self, "the upstream equivocated");
        return;
    }
    kc_follow_fresh (self);
    self->config.head (self->config.arg, msg, from_end);
}

//  Entries that follow the copy: with a store, verified and stored here
//  (and a root change in them followed); else the consumer's. 0, or -1
//  with a reason.
static int
s_entries (kc_follow_t *self, const kc_proto_msg_t *msg, kc_why_t *why)
{
    if (!s_judges (self)) {
        return self->config.entries (self->config.arg, msg, why);
    }
    kc_root_t *before = *self->config.root;
    bool revoked;
    int count = kc_keep_follow (self->config.store, msg, self->config.root, &revoked, why);
    if (count <= 0) {
        return count;
    }
    bool root_changed = *self->config.root != before;
    if (root_changed) {
        //  In force from its seq on: other servers, upstream endpoints
        zsys_info ("%s: root v%llu in force from seq %llu", self->config.name,
                   (unsigned long long) kc_root_version (*self->config.root),
                   (unsigned long long) kc_store_seq (self->config.store));
        kc_follow_root_changed (self, *self->config.root);
    }
    if (self->config.kept) {
        self->config.kept (self->config.arg, msg, count, revoked, root_changed);
    }
    return 0;
}

static void
s_head (kc_follow_t *self, const kc_proto_msg_t *msg, bool from_end)
{
    if (s_judges (self)) {
        s_judge_head (self, msg, from_end);
    }
    else {
        self->config.head (self->config.arg, msg, from_end);
    }
}

//  --- The update channel ---------------------------------------------------------------

//  One update-channel message outside a sync.
static void
s_on_update (kc_follow_t *self, zmsg_t *msg)
{
    kc_proto_msg_t decoded;
    kc_why_t why;
    if (kc_proto_decode (msg, KC_CHANNEL_UPDATES, &decoded, &why)) {
        kc_ratelog (self->config.log, KC_LOG_WARNING, "malformed update", self->upstream.name,
                    "%s: malformed message on the update channel of %s: %s", self->config.name,
                    self->upstream.name, why.text);
        return;
    }
    uint64_t seq = s_seq (self);
    if (decoded.type == KC_MSG_HEAD) {
        if (decoded.head.seq > seq && !self->syncing && self->retry_timer == -1) {
            char text [120];
            snprintf (text, sizeof text, "missed updates (head at %llu, copy at %llu)",
                      (unsigned long long) decoded.head.seq, (unsigned long long) seq);
            kc_follow_sync (self, text);
        }
        s_head (self, &decoded, false);
    }
    else
    if (decoded.entries [decoded.entry_count - 1].seq > seq) {
        if (decoded.entries [0].seq > seq + 1) {
            if (self->retry_timer == -1) {
                char text [120];
                snprintf (text, sizeof text, "gap in updates (expected %llu, got %llu)",
                          (unsigned long long) seq + 1, (unsigned long long) decoded.entries [0].seq);
                kc_follow_sync (self, text);
            }
        }
        else
        if (s_entries (self, &decoded, &why)) {
            kc_follow_fault (self, "an update", &why);
        }
    }
    kc_proto_msg_reset (&decoded);
}

//  Batches in an update-channel message (a HEAD counts as one).
static size_t
s_msg_batches (zmsg_t *msg)
{
    size_t frames = zmsg_size (msg);
    return frames > 2 ? (frames - 1) / 2 : 1;
}

//  Holds an update message (during a sync, and behind those held until
//  they are drained): bounded, else all are dropped and a sync follows.
static void
s_hold (kc_follow_t *self, zmsg_t **msg_p)
{
    size_t size = zmsg_content_size (*msg_p);
    if (self->overflowed || self->buffered_bytes + size > self->config.buffer_bytes) {
        zmsg_destroy (msg_p);
        s_free_buffered (self);
        self->overflowed = true;
        if (!self->syncing && self->retry_timer == -1) {
            kc_follow_sync (self, "updates overflowed while held");
        }
        return;
    }
    zlistx_add_end (self->buffered, *msg_p);
    self->buffered_bytes += size;
    *msg_p = NULL;
}

static void
s_flush (kc_follow_t *self)
{
    if (self->config.flush) {
        self->config.flush (self->config.arg);
    }
}

static int
s_on_updates (zloop_t *loop, zsock_t *socket, void *arg)
{
    (void) loop;
    kc_follow_t *self = arg;
    if (socket != self->updates) {
        return 0;                           //  a socket closed in this pass
    }
    size_t batches = 0;
    for (int n = 0; n < KC_FOLLOW_DRAIN_MAX && batches < KC_FOLLOW_DRAIN_BATCHES_MAX
                    && socket == self->updates && (zsock_events (socket) & ZMQ_POLLIN); n++) {
        zmsg_t *msg = zmsg_recv (socket);
        if (!msg) {
            break;
        }
        self->admitted = true;              //  the handshake passed
        if (self->syncing || zlistx_size (self->buffered)) {
            s_hold (self, &msg);
            continue;
        }
        batches += s_msg_batches (msg);
        s_on_update (self, msg);
        zmsg_destroy (&msg);
    }
    s_flush (self);
    return 0;
}

static int
s_on_drain (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    kc_follow_t *self = arg;
    self->drain_timer = -1;
    s_drain (self);
    return 0;
}

//  Handles the next slice of the updates held during a sync, and comes
//  back for the rest after the loop has served the consumer's other work.
static void
s_drain (kc_follow_t *self)
{
    size_t batches = 0;
    uint64_t generation = self->generation;
    for (int n = 0; n < KC_FOLLOW_DRAIN_MAX && batches < KC_FOLLOW_DRAIN_BATCHES_MAX
                    && generation == self->generation; n++) {
        zmsg_t *msg = zlistx_detach (self->buffered, NULL);
        if (!msg) {
            break;
        }
        self->buffered_bytes -= zmsg_content_size (msg);
        batches += s_msg_batches (msg);
        s_on_update (self, msg);
        zmsg_destroy (&msg);
    }
    s_flush (self);
    if (generation == self->generation && zlistx_size (self->buffered) && self->drain_timer == -1) {
        self->drain_timer = zloop_timer (self->loop, 1, 1, s_on_drain, self);
    }
}

//  --- The snapshot channel --------------------------------------------------------------

static void
s_end (kc_follow_t *self, kc_proto_msg_t *end)
{
    kc_why_t why;
    uint64_t seq = s_seq (self);
    if (end->batches != self->sync_batches || end->records != self->sync_records) {
        kc_why (&why, "END counts %llu batches and %llu records, %llu and %llu came",
                (unsigned long long) end->batches, (unsigned long long) end->records,
                (unsigned long long) self->sync_batches, (unsigned long long) self->sync_records);
        kc_follow_fault (self, "a sync", &why);
        return;
    }
    if (end->head.seq != seq || sodium_memcmp (end->head.chain, s_chain (self), KC_HASH_BYTES)) {
        kc_why (&why, "END's head (seq %llu) does not name the copy the sync made (seq %llu)",
                (unsigned long long) end->head.seq, (unsigned long long) seq);
        kc_follow_fault (self, "a sync", &why);
        return;
    }
    self->syncing = false;
    s_end_timer (self, &self->sync_timer);
    uint64_t generation = self->generation;
    s_head (self, end, true);
    if (generation != self->generation) {
        return;                             //  refused, or another sync or upstream
    }
    self->backoff = KC_FOLLOW_BACKOFF_MIN_MS;
    if (self->overflowed) {
        kc_follow_sync (self, "updates overflowed during the sync");
    }
    else {
        s_drain (self);                     //  what came on the update channel meanwhile
    }
}

static void
s_on_batches (kc_follow_t *self, const kc_proto_msg_t *msg)
{
    kc_why_t why;
    uint64_t seq = s_seq (self), generation = self->generation;
    if (msg->entries [0].seq != seq + 1) {
        kc_why (&why, "BATCHES from seq %llu, the copy is at %llu", (unsigned long long) msg->entries [0].seq,
                (unsigned long long) seq);
        kc_follow_fault (self, "a snapshot", &why);
    }
    else
    if (s_entries (self, msg, &why)) {
        if (generation == self->generation) {
            kc_follow_fault (self, "a snapshot", &why);
        }
    }
    else
    if (generation == self->generation) {
        self->sync_batches += msg->entry_count;
        for (size_t i = 0; i < msg->entry_count; i++) {
            self->sync_records += kc_batch_peek_count (msg->entries [i].data, msg->entries [i].size);
        }
        zmsg_t *credit = kc_proto_credit (1);
        kc_follow_send (self, &credit);
        s_arm_sync_timer (self);
    }
}

static int
s_on_snapshot (zloop_t *loop, zsock_t *socket, void *arg)
{
    (void) loop;
    kc_follow_t *self = arg;
    for (int n = 0; n < SNAPSHOT_MAX && socket == self->snapshot && (zsock_events (socket) & ZMQ_POLLIN); n++) {
        zmsg_t *msg = zmsg_recv (socket);
        if (!msg) {
            break;
        }
        self->admitted = true;              //  the handshake passed
        kc_proto_msg_t decoded;
        kc_why_t why;
        if (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_AGENT, &decoded, &why)) {
            if (self->syncing) {
                kc_follow_fault (self, "a snapshot message", &why);
            }
        }
        else
        if (!self->syncing) {
            //  Late: what a sync given up sends after it
        }
        else
        if (decoded.type == KC_MSG_ERROR) {
            kc_why (&why, "the upstream refused the sync: %.*s", (int) decoded.text_size, decoded.text);
            kc_follow_fault (self, "a sync", &why);
        }
        else
        if (decoded.type == KC_MSG_BATCHES) {
            s_on_batches (self, &decoded);
        }
        else
        if (decoded.type == KC_MSG_END) {
            s_end (self, &decoded);
        }
        kc_proto_msg_reset (&decoded);
        zmsg_destroy (&msg);
    }
    return 0;
}

//  --- Connecting --------------------------------------------------------------------------

static zsock_t *
s_socket (kc_follow_t *self, int type, const char *endpoint, kc_why_t *why)
{
    zsock_t *socket = zsock_new (type);
    assert (socket);
    zsock_set_linger (socket, 0);
    if (kc_sockopt_curve_client (socket, self->config.public_key, self->config.secret_key,
                                 self->upstream.server_key, why)
    ||  kc_sockopt_maxmsgsize (socket, KC_PROTO_MESSAGE_MAX, why)) {
        zsock_destroy (&socket);
        return NULL;
    }
    zsock_set_rcvhwm (socket, 100000);
    zsock_set_sndtimeo (socket, 0);         //  never block on an upstream that is not there
    if (type == ZMQ_SUB) {
        zsock_set_subscribe (socket, "UPDATE");
        zsock_set_subscribe (socket, "HEAD");
    }
    if (zsock_connect (socket, "%s", endpoint)) {
        kc_why (why, "invalid endpoint '%.200s'", endpoint);
        zsock_destroy (&socket);
    }
    return socket;
}

int
kc_follow_connect (kc_follow_t *self, const kc_follow_upstream_t *upstream, kc_why_t *why)
{
    s_close (self);
    s_end_timer (self, &self->sync_timer);
    s_end_timer (self, &self->retry_timer);
    self->syncing = false;
    self->admitted = false;
    self->generation++;
    s_free_buffered (self);
    self->upstream = *upstream;
    self->updates = s_socket (self, ZMQ_SUB, upstream->updates, why);
    self->snapshot = self->updates ? s_socket (self, ZMQ_DEALER, upstream->snapshot, why) : NULL;
    if (!self->snapshot) {
        s_close (self);
        return -1;
    }
    for (int which = 0; which < 2 && self->config.monitor; which++) {
        //  Read by the consumer when it chooses (each socket zloop watches
        //  costs every wake-up two system calls)
        zactor_t *monitor = zactor_new (zmonitor, which ? self->updates : self->snapshot);
        zstr_sendx (monitor, "LISTEN", "HANDSHAKE_FAILED_NO_DETAIL", "HANDSHAKE_FAILED_PROTOCOL",
                    "HANDSHAKE_FAILED_AUTH", NULL);
        zstr_sendx (monitor, "START", NULL);
        zsock_wait (monitor);
        self->monitor [which] = monitor;
    }
    zloop_reader (self->loop, self->snapshot, s_on_snapshot, self);
    zloop_reader (self->loop, self->updates, s_on_updates, self);
    self->connected = true;
    self->backoff = KC_FOLLOW_BACKOFF_MIN_MS;
    kc_follow_sync (self, NULL);
    return 0;
}

//  --- Upstreams -----------------------------------------------------------------------------

int
kc_follow_parse_upstream (const char *text, const kc_root_t *root, kc_follow_upstream_t *upstream, kc_why_t *why)
{
    memset (upstream, 0, sizeof *upstream);
    //  Printable ASCII only: what is parsed here is logged as a name
    for (const char *p = text; *p; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            return kc_why (why, "upstream '%.100s' holds a space or a control character", text);
        }
    }
    if (strncmp (text, "tcp://", 6) == 0 || strncmp (text, "ipc://", 6) == 0) {
        //  A mirror: its base endpoint and its CURVE key (the last 40
        //  characters: Z85 has '=' among its digits)
        size_t length = strlen (text);
        const char *equals = length > KC_Z85_KEY_CHARS && text [length - KC_Z85_KEY_CHARS - 1] == '='
                           ? text + length - KC_Z85_KEY_CHARS - 1 : NULL;
        const char *colon = equals ? memrchr (text, ':', (size_t) (equals - text)) : NULL;
        char *end = NULL;
        long port = colon ? strtol (colon + 1, &end, 10) : 0;
        if (!equals || !colon || end != equals || port < 1 || port > 65534
        ||  kc_z85_key (equals + 1, upstream->server_key, why)) {
            return kc_why (why, "upstream '%.100s' is not NAME or tcp://HOST:PORT=KEY (a mirror's CURVE key, Z85)",
                           text);
        }
        snprintf (upstream->name, sizeof upstream->name, "%.*s", (int) (equals - text), text);
        snprintf (upstream->snapshot, sizeof upstream->snapshot, "%.*s", (int) (equals - text), text);
        snprintf (upstream->updates, sizeof upstream->updates, "%.*s:%ld", (int) (colon - text), text, port + 1);
        return 0;
    }
    for (size_t i = 0; i < kc_root_server_count (root); i++) {
        const kc_root_server_t *server = kc_root_server (root, i);
        if (KC_STREQ (server->name, text)) {
            snprintf (upstream->name, sizeof upstream->name, "%s", server->name);
            snprintf (upstream->snapshot, sizeof upstream->snapshot, "%s", server->endpoints [0]);
            snprintf (upstream->updates, sizeof upstream->updates, "%s", server->endpoints [1]);
            memcpy (upstream->server_key, server->server_key, KC_KEY_BYTES);
            return 0;
        }
    }
    return kc_why (why, "upstream '%.100s' is no server of root v%llu", text,
                   (unsigned long long) kc_root_version (root));
}

static int
s_on_stale (zloop_t *loop, int timer_id, void *arg);

static void
s_arm_stale (kc_follow_t *self)
{
    s_end_timer (self, &self->stale_timer);
    if (self->stale_after_ms > 0) {
        self->stale_timer = zloop_timer (self->loop, (size_t) self->stale_after_ms, 1, s_on_stale, self);
    }
}

void
kc_follow_fresh (kc_follow_t *self)
{
    if (self->said_stale) {
        zsys_info ("%s: news from %s again", self->config.name, self->upstream.name);
        self->said_stale = false;
    }
    s_arm_stale (self);
}

//  Connects to the upstream at self->current, or the next that works.
static void
s_connect_current (kc_follow_t *self, const char *why)
{
    for (size_t tried = 0; tried < self->count; tried++) {
        kc_follow_upstream_t upstream;
        kc_why_t reason;
        if (kc_follow_parse_upstream (self->texts [self->current], self->root, &upstream, &reason) == 0
        &&  kc_follow_connect (self, &upstream, &reason) == 0) {
            if (why) {
                zsys_info ("%s: %s; following %s now", self->config.name, why, upstream.name);
            }
            s_arm_stale (self);
            return;
        }
        zsys_error ("%s: %s", self->config.name, reason.text);
        self->current = (self->current + 1) % self->count;
    }
}

void
kc_follow_next (kc_follow_t *self, const char *why)
{
    if (self->count == 0) {
        return;
    }
    self->current = (self->current + 1) % self->count;
    self->moves++;
    s_connect_current (self, why);
}

static int
s_on_stale (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    kc_follow_t *self = arg;
    self->stale_timer = -1;
    char text [200];
    snprintf (text, sizeof text, "no news from %s for %d ms", self->upstream.name, self->stale_after_ms);
    if (self->count > 1) {
        kc_follow_next (self, text);
    }
    else {
        if (!self->said_stale) {
            zsys_warning ("%s: %s; connecting to it again every %d ms", self->config.name, text,
                          self->stale_after_ms);
            self->said_stale = true;
        }
        //  New sockets: libzmq does not try again after a refusal (a key
        //  registered meanwhile), nor after every kind of failure
        s_connect_current (self, NULL);
    }
    return 0;
}

int
kc_follow_set_upstreams (kc_follow_t *self, const char *list, const kc_root_t *root, int stale_after_ms,
                         kc_why_t *why)
{
    char copy [sizeof self->texts];
    snprintf (copy, sizeof copy, "%s", list ? list : "");
    self->count = 0;
    self->root = root;
    char *state = NULL;
    for (char *item = strtok_r (copy, ",", &state); item; item = strtok_r (NULL, ",", &state)) {
        kc_follow_upstream_t upstream;
        if (self->count == KC_FOLLOW_UPSTREAMS_MAX) {
            return kc_why (why, "at most %d upstreams", KC_FOLLOW_UPSTREAMS_MAX);
        }
        if (kc_follow_parse_upstream (item, root, &upstream, why)) {
            return -1;
        }
        snprintf (self->texts [self->count++], sizeof self->texts [0], "%s", item);
    }
    if (self->count == 0) {
        return kc_why (why, "no upstream (NAME or tcp://HOST:PORT=KEY)");
    }
    self->stale_after_ms = stale_after_ms;
    self->current = 0;
    s_connect_current (self, NULL);
    return 0;
}

void
kc_follow_root_changed (kc_follow_t *self, const kc_root_t *root)
{
    self->root = root;
    kc_follow_upstream_t again;
    kc_why_t why;
    if (self->connected && self->count
    &&  kc_follow_parse_upstream (self->texts [self->current], root, &again, &why) == 0
    &&  (memcmp (again.server_key, self->upstream.server_key, KC_KEY_BYTES)
         || strcmp (again.snapshot, self->upstream.snapshot))) {
        s_connect_current (self, "the root in force moved the upstream");
    }
}

uint64_t
kc_follow_moves (const kc_follow_t *self)
{
    return self->moves;
}

//  --- Self test ---------------------------------------------------------------------------

//  The test's copy: entries are taken as they come (no verification), and
//  what the follower asked of it is counted.
typedef struct {
    kc_follow_t *follow;
    uint64_t seq;
    uint8_t chain [KC_HASH_BYTES];
    int syncs, entries, heads, ends, flushes, faults;
    bool sync_inside;                       //  the next BATCHES starts another sync
} s_test_copy_t;

static uint64_t
s_test_seq (void *arg)
{
    return ((s_test_copy_t *) arg)->seq;
}

static const uint8_t *
s_test_chain (void *arg)
{
    return ((s_test_copy_t *) arg)->chain;
}

static int
s_test_entries (void *arg, const kc_proto_msg_t *msg, kc_why_t *why)
{
    s_test_copy_t *copy = arg;
    copy->entries++;
    if (copy->sync_inside && kc_follow_syncing (copy->follow)) {
        copy->sync_inside = false;
        kc_follow_sync (copy->follow, NULL);   //  a rebuilt copy, say: not this batch's
        return 0;
    }
    for (size_t i = 0; i < msg->entry_count; i++) {
        if (msg->entries [i].seq <= copy->seq) {
            continue;
        }
        if (msg->entries [i].seq != copy->seq + 1) {
            return kc_why (why, "entry %llu after %llu", (unsigned long long) msg->entries [i].seq,
                           (unsigned long long) copy->seq);
        }
        copy->seq = msg->entries [i].seq;
        memcpy (copy->chain, msg->entries [i].chain, KC_HASH_BYTES);
    }
    return 0;
}

static void
s_test_head (void *arg, const kc_proto_msg_t *msg, bool from_end)
{
    (void) msg;
    s_test_copy_t *copy = arg;
    *(from_end ? &copy->ends : &copy->heads) += 1;
}

static void
s_test_syncing (void *arg)
{
    ((s_test_copy_t *) arg)->syncs++;
}

static void
s_test_fault (void *arg, const char *what, const kc_why_t *why)
{
    (void) what;
    (void) why;
    ((s_test_copy_t *) arg)->faults++;
}

static void
s_test_flush (void *arg)
{
    ((s_test_copy_t *) arg)->flushes++;
}

static int
s_test_stop (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    (void) arg;
    return -1;
}

//  Runs the follower's loop for ms.
static void
s_test_run (zloop_t *loop, size_t ms)
{
    zloop_timer (loop, ms, 1, s_test_stop, NULL);
    zloop_start (loop);
}

//  The chain of entry seq, as the test's upstream makes it up.
static void
s_test_chain_of (uint64_t seq, uint8_t chain [KC_HASH_BYTES])
{
    memset (chain, 0, KC_HASH_BYTES);
    memcpy (chain, &seq, sizeof seq);
}

static zmsg_t *
s_test_entries_msg (const char *command, uint64_t first, uint64_t last)
{
    zmsg_t *msg = kc_proto_entries (command);
    for (uint64_t seq = first; seq <= last; seq++) {
        uint8_t chain [KC_HASH_BYTES], data [64] = "an entry";
        s_test_chain_of (seq, chain);
        kc_proto_add_entry (msg, seq, chain, data, sizeof data);
    }
    return msg;
}

static kc_head_t
s_test_head_at (const uint8_t *directory, uint64_t seq)
{
    kc_head_t head = { .seq = seq, .time = kc_now_ms (), .valid_until = kc_now_ms () + 5000 };
    memcpy (head.directory, directory, KC_HASH_BYTES);
    s_test_chain_of (seq, head.chain);
    return head;
}

//  The SYNC the follower sent the test's snapshot ROUTER: its seq; the
//  peer's routing id in *id (the caller destroys it).
static uint64_t
s_test_sync_from (zsock_t *router, zframe_t **id)
{
    zsock_set_rcvtimeo (router, 2000);
    for (;;) {
        zmsg_t *msg = zmsg_recv (router);
        assert (msg);
        zframe_destroy (id);
        *id = zmsg_pop (msg);
        kc_proto_msg_t decoded;
        kc_why_t why;
        int rc = kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &decoded, &why);
        assert (rc == 0);
        bool sync = decoded.type == KC_MSG_SYNC;
        uint64_t from = decoded.seq;
        kc_proto_msg_reset (&decoded);
        zmsg_destroy (&msg);
        if (sync) {
            return from;                    //  (CREDIT and ACK skipped)
        }
    }
}

static void
s_test_reply (zsock_t *router, zframe_t *id, zmsg_t *msg)
{
    zmsg_pushmem (msg, zframe_data (id), zframe_size (id));
    zmsg_send (&msg, router);
}

void
kc_follow_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_follow: ");
    }
    zloop_t *loop = zloop_new ();
    uint8_t directory [32] = { 1 }, public_key [32], secret_key [32], server_public [32], server_secret [32];
    crypto_box_keypair (public_key, secret_key);
    crypto_box_keypair (server_public, server_secret);
    s_test_copy_t copy = { .seq = 0 };
    kc_follow_config_t config = {
        .name = "kc_follow_test", .public_key = public_key, .secret_key = secret_key, .directory = directory,
        .seq = s_test_seq, .chain = s_test_chain, .entries = s_test_entries, .head = s_test_head,
        .syncing = s_test_syncing, .fault = s_test_fault, .flush = s_test_flush, .arg = &copy,
        .buffer_bytes = 4096
    };
    kc_follow_t *follow = copy.follow = kc_follow_new (&config, loop);
    assert (follow && !kc_follow_syncing (follow) && !kc_follow_upstream (follow));
    kc_follow_upstream_t upstream = { .name = "nowhere", .snapshot = "bogus://x", .updates = "bogus://y" };
    memcpy (upstream.server_key, public_key, 32);
    kc_why_t why;
    assert (kc_follow_connect (follow, &upstream, &why) == -1 && strstr (why.text, "invalid endpoint"));
    zmsg_t *msg = zmsg_new ();
    assert (kc_follow_send (follow, &msg) == -1 && msg == NULL);

    //  An upstream: a snapshot ROUTER and an update PUB, CURVE servers
    zsock_t *router = zsock_new (ZMQ_ROUTER), *pub = zsock_new (ZMQ_PUB);
    assert (router && pub);
    zsock_set_linger (router, 0);
    zsock_set_linger (pub, 0);
    int rc = kc_sockopt_curve_server (router, server_public, server_secret, &why);
    rc |= kc_sockopt_curve_server (pub, server_public, server_secret, &why);
    assert (rc == 0);
    int snapshot_port = zsock_bind (router, "tcp://127.0.0.1:*"), updates_port = zsock_bind (pub, "tcp://127.0.0.1:*");
    assert (snapshot_port > 0 && updates_port > 0);
    memset (&upstream, 0, sizeof upstream);
    snprintf (upstream.name, sizeof upstream.name, "test");
    snprintf (upstream.snapshot, sizeof upstream.snapshot, "tcp://127.0.0.1:%d", snapshot_port);
    snprintf (upstream.updates, sizeof upstream.updates, "tcp://127.0.0.1:%d", updates_port);
    memcpy (upstream.server_key, server_public, 32);
    assert (kc_follow_connect (follow, &upstream, &why) == 0);
    assert (kc_follow_syncing (follow) && copy.syncs == 1);

    //  A sync from 0: entries 1-2; entry 3 published meanwhile is held,
    //  then applied after END, in order, and flushed
    zframe_t *id = NULL;
    assert (s_test_sync_from (router, &id) == 0);
    s_test_run (loop, 200);                 //  the SUB's subscription reaches the PUB
    s_test_reply (router, id, s_test_entries_msg ("BATCHES", 1, 2));
    zmsg_t *update = s_test_entries_msg ("UPDATE", 3, 3);
    zmsg_send (&update, pub);
    s_test_run (loop, 100);
    assert (kc_follow_syncing (follow) && copy.seq == 2);   //  3 held
    kc_head_t head = s_test_head_at (directory, 2);
    s_test_reply (router, id, kc_proto_end (2, 0, &head));
    s_test_run (loop, 100);
    assert (!kc_follow_syncing (follow) && copy.ends == 1 && copy.seq == 3 && copy.flushes >= 1);
    assert (copy.faults == 0 && kc_follow_admitted (follow));

    //  A gap on the update channel: another sync, from the copy's seq
    update = s_test_entries_msg ("UPDATE", 6, 6);
    zmsg_send (&update, pub);
    s_test_run (loop, 100);
    assert (kc_follow_syncing (follow) && copy.syncs == 2 && copy.seq == 3);
    assert (s_test_sync_from (router, &id) == 3);

    //  Held updates beyond the bound are dropped, and after END another
    //  sync follows
    for (uint64_t seq = 4; seq < 104; seq++) {
        update = s_test_entries_msg ("UPDATE", seq, seq);
        zmsg_send (&update, pub);
    }
    s_test_run (loop, 100);
    head = s_test_head_at (directory, 3);
    s_test_reply (router, id, kc_proto_end (0, 0, &head));
    s_test_run (loop, 100);
    assert (copy.ends == 2 && copy.seq == 3 && copy.syncs == 3 && kc_follow_syncing (follow));
    assert (s_test_sync_from (router, &id) == 3);

    //  A sync started by the consumer inside a BATCHES: that batch is not
    //  counted for the new sync, whose END (no batches) is taken
    copy.sync_inside = true;
    s_test_reply (router, id, s_test_entries_msg ("BATCHES", 4, 4));
    s_test_run (loop, 100);
    assert (copy.syncs == 4 && copy.seq == 3 && copy.faults == 0);
    assert (s_test_sync_from (router, &id) == 3);
    head = s_test_head_at (directory, 3);
    s_test_reply (router, id, kc_proto_end (0, 0, &head));
    s_test_run (loop, 100);
    assert (copy.ends == 3 && copy.faults == 0 && !kc_follow_syncing (follow));

    //  A HEAD ahead of the copy: a sync, and the head goes to the consumer;
    //  an END whose counts are wrong is a fault, with a back-off
    head = s_test_head_at (directory, 9);
    zmsg_t *message = kc_proto_head (&head);
    zmsg_send (&message, pub);
    s_test_run (loop, 100);
    assert (copy.heads == 1 && copy.syncs == 5 && kc_follow_syncing (follow));
    assert (s_test_sync_from (router, &id) == 3);
    s_test_reply (router, id, kc_proto_end (7, 0, &head));
    s_test_run (loop, 100);
    assert (copy.faults == 1 && !kc_follow_syncing (follow) && kc_follow_backing_off (follow));
    assert (kc_follow_faults (follow) == 1 && kc_follow_syncs (follow) == 5);

    zframe_destroy (&id);
    kc_follow_destroy (&follow);
    kc_follow_destroy (&follow);
    zsock_destroy (&router);
    zsock_destroy (&pub);
    zloop_destroy (&loop);
    sodium_memzero (secret_key, sizeof secret_key);
    sodium_memzero (server_secret, sizeof server_secret);
    if (verbose) {
        printf ("OK\n");
    }
}
