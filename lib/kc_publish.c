/*  =========================================================================
    kc_publish - serving the log: snapshot cursors with credit, the update
    stream with heads and cosignatures, acknowledgements, the read policy.
    =========================================================================
*/
#include "kc_publish.h"
#include "kc_batch.h"
#include "kc_json.h"
#include "kc_z85.h"
#include "kc_sock.h"

#include <assert.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_BYTES_MAX    (8 * KC_PUBLISH_SNAPSHOT_BYTES)    //  in flight to one agent
#define SEND_BUDGET         (64 * 1024 * 1024)  //  in flight to all syncing agents
#define STORM_SYNCS         20              //  report syncs from this many at once
#define STORM_PERIOD_MS     10000

typedef struct {
    zframe_t *identity;                     //  ROUTER routing id
    char agent [KC_Z85_KEY_CHARS + 1];      //  the agent's CURVE key (User-Id)
    uint64_t from, next;                    //  sync start, last seq sent
    uint32_t credit;
    uint64_t batches, records;
    int64_t started, touched;               //  zclock_mono
    size_t sizes [KC_PROTO_CREDIT_MAX];     //  bytes of the messages in flight, oldest
    size_t oldest, flying;                  //  first, and how many
    size_t inflight;                        //  their sum
    size_t *total;                          //  the publisher's sum over all cursors
    bool waiting;                           //  held back by the send budget
    bool headless;                          //  all sent; waits for a head to END with
} s_cursor_t;

typedef struct {
    uint8_t key [KC_KEY_BYTES];
    uint64_t seq;
    uint8_t chain [KC_HASH_BYTES];
    int64_t acked;                          //  zclock_time of the last ACK
    bool dirty;                             //  seq or chain not yet in the store
} s_agent_t;

struct _kc_publish_t {
    kc_publish_config_t config;
    zsock_t *snapshot, *updates;            //  not owned
    zloop_t *loop;
    kc_track_t *track;                      //  readers' connections and their keys
    uint64_t zap_allowed, zap_denied;       //  handshakes, as the ZAP handler answered
    zhashx_t *cursors;                      //  routing id hex -> s_cursor_t
    zhashx_t *agents;                       //  Z85 key -> s_agent_t
    size_t inflight;                        //  snapshot bytes sent, not yet credited back
    bool trim_due;                          //  syncs ran: give their buffers back when idle
    uint64_t syncs_started;                 //  since the last storm report
    int64_t storm_reported;                 //  zclock_mono
    int64_t head_sent;                      //  zclock_mono of the last HEAD
    int head_timer;                         //  a coalesced HEAD is due, or -1
    kc_head_t relayed;                      //  relayed heads: the newest
    bool has_relayed;
    struct {
        uint8_t bytes [KC_COSIG_BYTES];
        kc_cosig_t cosig;
        bool used;
    } cosigs [KC_ROOT_WITNESSES_MAX];       //  the newest of each witness, published with heads
    uint64_t cosigs_taken, cosigs_refused, cosigs_ahead;
};

static const kc_root_t *
s_root (kc_publish_t *self)
{
    return self->config.root (self->config.arg);
}

int
kc_publish_sender (zframe_t *frame, uint8_t key [KC_KEY_BYTES])
{
    const char *user = frame ? zframe_meta (frame, "User-Id") : NULL;
    return user && kc_z85_decode (user, key, KC_KEY_BYTES) == 0 ? 0 : -1;
}

void
kc_publish_sender_fp (zframe_t *frame, char text [KC_FINGERPRINT_CHARS + 1], const char *unknown)
{
    uint8_t key [KC_KEY_BYTES];
    if (kc_publish_sender (frame, key) == 0) {
        kc_fingerprint (key, text);
    }
    else {
        snprintf (text, KC_FINGERPRINT_CHARS + 1, "%s", unknown);
    }
}

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_cursor_destroy (void **item)
{
    s_cursor_t *cursor = *item;
    if (cursor) {
        *cursor->total -= cursor->inflight;
        zframe_destroy (&cursor->identity);
        free (cursor);
        *item = NULL;
    }
}

static int
s_load_ack (const kc_store_ack_t *ack, void *arg)
{
    kc_publish_t *self = arg;
    s_agent_t *agent = calloc (1, sizeof *agent);
    assert (agent);
    memcpy (agent->key, ack->key, KC_KEY_BYTES);
    agent->seq = ack->seq;
    memcpy (agent->chain, ack->chain, KC_HASH_BYTES);
    agent->acked = (int64_t) ack->acked;
    char z85 [KC_Z85_KEY_CHARS + 1];
    zhashx_update (self->agents, kc_z85_encode (ack->key, KC_KEY_BYTES, z85), agent);
    return 0;
}

static bool s_keep_reader (const uint8_t key [KC_KEY_BYTES], void *arg, char *label, size_t label_size);

kc_publish_t *
kc_publish_new (const kc_publish_config_t *config)
{
    kc_publish_t *self = calloc (1, sizeof *self);
    assert (self);
    self->config = *config;
    self->head_timer = -1;
    self->cursors = zhashx_new ();
    zhashx_set_destructor (self->cursors, s_cursor_destroy);
    self->agents = zhashx_new ();
    zhashx_set_destructor (self->agents, s_free_item);
    kc_why_t why;
    if (kc_store_load_acks (config->store, s_load_ack, self, &why) < 0) {
        zsys_warning ("%s: %s", config->name, why.text);
    }
    //  With read = members, readers' connections are matched to their keys
    //  so that they are closed when the key is revoked or expires
    if (!config->read_any) {
        self->track = kc_track_new (s_keep_reader, self);
    }
    return self;
}

kc_track_t *
kc_publish_track (kc_publish_t *self)
{
    return self->track;
}

static void s_save_acks (kc_publish_t *self);

void
kc_publish_destroy (kc_publish_t **self_p)
{
    kc_publish_t *self = *self_p;
    if (self) {
        s_save_acks (self);
        if (self->loop && self->head_timer != -1) {
            zloop_timer_end (self->loop, self->head_timer);
        }
        zhashx_destroy (&self->cursors);
        zhashx_destroy (&self->agents);
        kc_track_destroy (&self->track);
        free (self);
        *self_p = NULL;
    }
}

void
kc_publish_set_sockets (kc_publish_t *self, zsock_t *snapshot, zsock_t *updates)
{
    self->snapshot = snapshot;
    self->updates = updates;
}

void
kc_publish_set_loop (kc_publish_t *self, zloop_t *loop)
{
    self->loop = loop;
    if (self->track) {
        kc_track_set_loop (self->track, loop);
    }
}

void
kc_publish_set_read_any (kc_publish_t *self, bool read_any)
{
    self->config.read_any = read_any;
}

size_t
kc_publish_syncs (const kc_publish_t *self)
{
    return zhashx_size (self->cursors);
}

//  --- Heads and cosignatures -------------------------------------------------------

//  Appends the newest cosignature of each witness of the root in force.
static zmsg_t *
s_cosigned (kc_publish_t *self, zmsg_t *msg)
{
    for (size_t i = 0; i < KC_ROOT_WITNESSES_MAX; i++) {
        if (self->cosigs [i].used) {
            kc_proto_add_cosig (msg, self->cosigs [i].bytes);
        }
    }
    return msg;
}

//  A head for the store's current (seq, chain) to END a sync with: own (a
//  fresh one), or the newest relayed if it names it. 0, or -1 if none.
static int
s_end_head (kc_publish_t *self, kc_head_t *head)
{
    if (self->config.heads) {
        kc_head_t heads [2];
        if (self->config.heads (self->config.arg, heads) == 0) {
            return -1;
        }
        *head = heads [0];
        return 0;
    }
    if (self->has_relayed && self->relayed.seq == kc_store_seq (self->config.store)
    &&  memcmp (self->relayed.chain, kc_store_chain (self->config.store), KC_HASH_BYTES) == 0) {
        *head = self->relayed;
        return 0;
    }
    return -1;
}

void
kc_publish_head (kc_publish_t *self)
{
    if (!self->config.heads || !self->updates) {
        return;
    }
    kc_head_t heads [2];
    size_t count = self->config.heads (self->config.arg, heads);
    for (size_t i = 0; i < count; i++) {
        zmsg_t *msg = s_cosigned (self, kc_proto_head (&heads [i]));
        zmsg_send (&msg, self->updates);
    }
    self->head_sent = zclock_mono ();
}

static int
s_on_head_due (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    kc_publish_t *self = arg;
    self->head_timer = -1;
    kc_publish_head (self);
    return 0;
}

//  One HEAD per UPDATE would cost every agent a signature check per update
//  (a quarter of its time under load): coalesced to one per HEAD_AFTER_MS.
void
kc_publish_head_soon (kc_publish_t *self)
{
    if (!self->config.heads || self->head_timer != -1) {
        return;
    }
    int64_t wait = self->head_sent + KC_PUBLISH_HEAD_AFTER_MS - zclock_mono ();
    if (wait <= 0 || !self->loop) {
        kc_publish_head (self);
    }
    else {
        self->head_timer = zloop_timer (self->loop, (size_t) wait, 1, s_on_head_due, self);
    }
}

static void s_pump_all (kc_publish_t *self);

void
kc_publish_relay (kc_publish_t *self, const kc_head_t *head)
{
    self->relayed = *head;
    self->has_relayed = true;
    if (self->updates) {
        zmsg_t *msg = s_cosigned (self, kc_proto_head (head));
        zmsg_send (&msg, self->updates);
        self->head_sent = zclock_mono ();
    }
    s_pump_all (self);                      //  syncs that waited for a head to END with
}

void
kc_publish_update (kc_publish_t *self, zmsg_t **update_p)
{
    if (!self->updates || zmsg_send (update_p, self->updates)) {
        zmsg_destroy (update_p);
    }
    kc_publish_head_soon (self);
}

void
kc_publish_root_changed (kc_publish_t *self)
{
    const kc_root_t *root = s_root (self);
    for (size_t i = 0; i < KC_ROOT_WITNESSES_MAX; i++) {
        size_t index;
        kc_why_t why;
        if (self->cosigs [i].used
        &&  kc_cosig_verify (&self->cosigs [i].cosig, kc_root_directory (root), root, &index, &why)) {
            self->cosigs [i].used = false;
        }
    }
}

static int
s_chain_at_fn (uint64_t seq, const uint8_t *chain, const uint8_t *data, size_t size, uint64_t accepted,
               const uint8_t *submitter, void *arg)
{
    (void) seq, (void) data, (void) size, (void) accepted, (void) submitter;
    memcpy (arg, chain, KC_HASH_BYTES);
    return -1;
}

//  Checks that a verified cosignature names a (seq, chain) of the log
//  served, at a time not from the future. 0, or -1 with a reason.
static int
s_cosig_matches (kc_publish_t *self, const kc_cosig_t *cosig, const char *witness, kc_why_t *why)
{
    uint64_t now = kc_now_ms (), seq = kc_store_seq (self->config.store);
    if (cosig->time > now + KC_PUBLISH_COSIG_SKEW_MS) {
        return kc_why (why, "witness %s cosigned %llu ms in the future (its clock is ahead by more than "
                       "%d s)", witness, (unsigned long long) (cosig->time - now), KC_PUBLISH_COSIG_SKEW_MS / 1000);
    }
    if (cosig->seq > seq) {
        //  A cluster member a little behind the one the witness follows:
        //  not kept (nothing to check it against yet), not an offence
        kc_why (why, "witness %s cosigned seq %llu, beyond this server's log (seq %llu)", witness,
                (unsigned long long) cosig->seq, (unsigned long long) seq);
        return 1;
    }
    uint8_t chain [KC_HASH_BYTES];
    if (cosig->seq == seq) {
        memcpy (chain, kc_store_chain (self->config.store), KC_HASH_BYTES);
    }
    else
    if (cosig->seq == 0) {
        kc_chain_genesis (kc_root_directory (s_root (self)), chain);
    }
    else
    if (kc_store_read (self->config.store, cosig->seq - 1, 1, SIZE_MAX, s_chain_at_fn, chain, why) < 0) {
        return -1;
    }
    if (sodium_memcmp (chain, cosig->chain, KC_HASH_BYTES)) {
        return kc_why (why, "witness %s cosigned another chain at seq %llu than this server's log: it "
                       "follows a different log (a fork)", witness, (unsigned long long) cosig->seq);
    }
    return 0;
}

int
kc_publish_take_cosig (kc_publish_t *self, const uint8_t bytes [KC_COSIG_BYTES], kc_why_t *why)
{
    //  A mirror gets the same cosignatures again with every head it relays:
    //  one held already costs a comparison, not a verification
    for (size_t i = 0; i < KC_ROOT_WITNESSES_MAX; i++) {
        if (self->cosigs [i].used && memcmp (self->cosigs [i].bytes, bytes, KC_COSIG_BYTES) == 0) {
            return 0;
        }
    }
    const kc_root_t *root = s_root (self);
    kc_cosig_t cosig;
    size_t index;
    if (kc_cosig_decode (bytes, KC_COSIG_BYTES, &cosig, why)
    ||  kc_cosig_verify (&cosig, kc_root_directory (root), root, &index, why)) {
        self->cosigs_refused++;
        return -1;
    }
    int matches = s_cosig_matches (self, &cosig, kc_root_witness (root, index)->name, why);
    if (matches) {
        self->cosigs_refused += matches < 0;
        self->cosigs_ahead += matches > 0;
        return matches;
    }
    size_t slot = KC_ROOT_WITNESSES_MAX;
    for (size_t i = 0; i < KC_ROOT_WITNESSES_MAX; i++) {
        if (self->cosigs [i].used && memcmp (self->cosigs [i].cosig.witness, cosig.witness, KC_KEY_BYTES) == 0) {
            slot = i;
            break;
        }
        if (!self->cosigs [i].used && slot == KC_ROOT_WITNESSES_MAX) {
            slot = i;
        }
    }
    assert (slot < KC_ROOT_WITNESSES_MAX);  //  one per witness of the root, at most 16
    if (self->cosigs [slot].used && self->cosigs [slot].cosig.time >= cosig.time) {
        return 0;                           //  not newer than the one we have
    }
    bool moved = !self->cosigs [slot].used || self->cosigs [slot].cosig.seq != cosig.seq;
    if (!self->cosigs [slot].used) {
        zsys_info ("%s: witness %s cosigned seq %llu", self->config.name, kc_root_witness (root, index)->name,
                   (unsigned long long) cosig.seq);
    }
    self->cosigs [slot].cosig = cosig;
    memcpy (self->cosigs [slot].bytes, bytes, KC_COSIG_BYTES);
    self->cosigs [slot].used = true;
    self->cosigs_taken++;
    //  A witness caught up with a new seq: agents learn it soon, not at the
    //  next heartbeat; a mere new time waits for the heartbeat
    if (moved) {
        kc_publish_head_soon (self);
    }
    return 0;
}

//  --- Snapshot channel --------------------------------------------------------------

typedef struct {
    zmsg_t *msg;
    s_cursor_t *cursor;
} s_fill_t;

static int
s_add_batch (uint64_t seq, const uint8_t *chain, const uint8_t *data, size_t size, uint64_t accepted,
             const uint8_t *submitter, void *arg)
{
    s_fill_t *fill = arg;
    kc_proto_add_entry_meta (fill->msg, seq, chain, accepted, submitter, data, size);
    fill->cursor->next = seq;
    fill->cursor->batches++;
    fill->cursor->records += kc_batch_peek_count (data, size);
    return 0;
}

//  Sends one message to a cursor's agent without blocking; returns 0, or -1
//  if the agent is gone or its queue is full.
static int
s_send_cursor (kc_publish_t *self, s_cursor_t *cursor, zmsg_t **msg_p)
{
    zframe_t *identity = zframe_dup (cursor->identity);
    zmsg_prepend (*msg_p, &identity);
    if (!self->snapshot || zmsg_send (msg_p, self->snapshot)) {
        zmsg_destroy (msg_p);
        return -1;
    }
    return 0;
}

//  Sends what a cursor's credit allows; ends the sync when caught up.
//  Returns false if the cursor is finished or abandoned (remove it).
static bool
s_pump (kc_publish_t *self, s_cursor_t *cursor)
{
    kc_store_t *store = self->config.store;
    while (cursor->credit > 0) {
        if (cursor->next >= kc_store_seq (store)) {
            kc_head_t head;
            if (s_end_head (self, &head)) {
                cursor->headless = true;    //  a mirror waits for its upstream's head
                return true;
            }
            zmsg_t *msg = s_cosigned (self, kc_proto_end (cursor->batches, cursor->records, &head));
            if (s_send_cursor (self, cursor, &msg) == 0 && self->config.verbose) {
                zsys_info ("%s: sync for %.8s from %llu: %llu batches, %llu records, %lld ms",
                           self->config.name, cursor->agent, (unsigned long long) cursor->from,
                           (unsigned long long) cursor->batches, (unsigned long long) cursor->records,
                           (long long) (zclock_mono () - cursor->started));
            }
            return false;
        }
        //  Memory stays bounded however many agents sync at once: a few
        //  messages in flight to each, a budget for all (credit counted in
        //  bytes; the agent's credit in messages is only the upper bound)
        if (cursor->inflight >= CURSOR_BYTES_MAX || self->inflight >= SEND_BUDGET) {
            cursor->waiting = true;
            return true;
        }
        cursor->waiting = false;
        s_fill_t fill = { kc_proto_entries ("BATCHES"), cursor };
        kc_why_t why;
        if (kc_store_read (store, cursor->next, KC_PROTO_BATCHES_MAX, KC_PUBLISH_SNAPSHOT_BYTES,
                           s_add_batch, &fill, &why) <= 0) {
            zsys_error ("%s: sync for %.8s: %s", self->config.name, cursor->agent, why.text);
            zmsg_destroy (&fill.msg);
            return false;
        }
        size_t size = zmsg_content_size (fill.msg);
        if (s_send_cursor (self, cursor, &fill.msg)) {
            zsys_warning ("%s: sync for %.8s abandoned: agent gone", self->config.name, cursor->agent);
            return false;
        }
        cursor->credit--;
        self->trim_due = true;
        cursor->sizes [(cursor->oldest + cursor->flying++) % KC_PROTO_CREDIT_MAX] = size;
        cursor->inflight += size;
        self->inflight += size;
    }
    return true;
}

//  Pumps the cursors chosen (all, or those waiting for the budget), and
//  removes the finished ones.
static void
s_pump_some (kc_publish_t *self, bool waiting_only)
{
    zlistx_t *finished = zlistx_new ();
    for (s_cursor_t *cursor = zhashx_first (self->cursors); cursor; cursor = zhashx_next (self->cursors)) {
        if (waiting_only && self->inflight >= SEND_BUDGET) {
            break;
        }
        if ((!waiting_only || cursor->waiting) && !s_pump (self, cursor)) {
            zlistx_add_end (finished, (void *) zhashx_cursor (self->cursors));
        }
    }
    for (const char *key = zlistx_first (finished); key; key = zlistx_next (finished)) {
        zhashx_delete (self->cursors, key);
    }
    zlistx_destroy (&finished);
}

static void
s_pump_all (kc_publish_t *self)
{
    s_pump_some (self, false);
}

void
kc_publish_grown (kc_publish_t *self)
{
    s_pump_all (self);
}

static void
s_on_sync (kc_publish_t *self, zframe_t **identity_p, const char *id, kc_proto_msg_t *msg,
           const char *agent)
{
    kc_store_t *store = self->config.store;
    if (memcmp (msg->directory, kc_root_directory (s_root (self)), KC_HASH_BYTES)) {
        zmsg_t *error = kc_proto_error ("SYNC for another directory");
        s_send_cursor (self, &(s_cursor_t) { .identity = *identity_p }, &error);
        return;
    }
    if (msg->seq > kc_store_seq (store)) {
        zmsg_t *error = kc_proto_error ("SYNC from %llu is ahead of the server's log (%llu)",
                                        (unsigned long long) msg->seq, (unsigned long long) kc_store_seq (store));
        s_send_cursor (self, &(s_cursor_t) { .identity = *identity_p }, &error);
        kc_ratelog (self->config.log, KC_LOG_WARNING, "sync ahead of the log", agent,
                    "%s: %.8s asked to sync from %llu, ahead of the log (%llu)", self->config.name, agent,
                    (unsigned long long) msg->seq, (unsigned long long) kc_store_seq (store));
        return;
    }
    s_cursor_t *cursor = calloc (1, sizeof *cursor);
    assert (cursor);
    cursor->identity = *identity_p;
    *identity_p = NULL;
    snprintf (cursor->agent, sizeof cursor->agent, "%s", agent);
    cursor->from = cursor->next = msg->seq;
    cursor->credit = msg->credit;
    cursor->total = &self->inflight;
    self->syncs_started++;
    cursor->started = cursor->touched = zclock_mono ();
    zhashx_update (self->cursors, id, cursor);      //  replaces an older sync
    if (!s_pump (self, cursor)) {
        zhashx_delete (self->cursors, id);
    }
}

static void
s_on_credit (kc_publish_t *self, const char *id, const kc_proto_msg_t *msg)
{
    s_cursor_t *cursor = zhashx_lookup (self->cursors, id);
    if (!cursor) {
        return;
    }
    //  Each credit says the agent applied the oldest message in flight
    for (uint32_t c = 0; c < msg->credit && cursor->flying; c++) {
        size_t size = cursor->sizes [cursor->oldest];
        cursor->oldest = (cursor->oldest + 1) % KC_PROTO_CREDIT_MAX;
        cursor->flying--;
        cursor->inflight -= size;
        self->inflight -= size;
    }
    cursor->credit += msg->credit;
    if (cursor->credit > KC_PROTO_CREDIT_MAX) {
        cursor->credit = KC_PROTO_CREDIT_MAX;
    }
    cursor->touched = zclock_mono ();
    if (!s_pump (self, cursor)) {
        zhashx_delete (self->cursors, id);
    }
    if (self->inflight < SEND_BUDGET) {
        s_pump_some (self, true);           //  the budget freed goes to the syncs that waited
    }
}

static void
s_on_ack (kc_publish_t *self, zframe_t *frame, kc_proto_msg_t *msg)
{
    uint8_t key [KC_KEY_BYTES];
    char z85 [KC_Z85_KEY_CHARS + 1], fp [KC_FINGERPRINT_CHARS + 1];
    if (kc_publish_sender (frame, key)) {
        return;
    }
    //  A mirror relays its agents' acknowledgements (the mirror's word:
    //  status only, docs/protocol.md 10)
    if (msg->argument_size == KC_KEY_BYTES) {
        memcpy (key, msg->argument, KC_KEY_BYTES);
    }
    kc_z85_encode (key, KC_KEY_BYTES, z85);
    s_agent_t *agent = zhashx_lookup (self->agents, z85);
    if (!agent) {
        agent = calloc (1, sizeof *agent);
        assert (agent);
        memcpy (agent->key, key, KC_KEY_BYTES);
        zhashx_update (self->agents, z85, agent);
        zsys_info ("%s: agent %s acknowledged seq %llu", self->config.name, kc_fingerprint (key, fp),
                   (unsigned long long) msg->seq);
    }
    //  An agent ahead of the log: this store lost entries it holds (a
    //  restore from an older backup); said without --verbose
    uint64_t seq = kc_store_seq (self->config.store);
    if (msg->seq > seq && (msg->seq != agent->seq || agent->acked == 0)) {
        kc_ratelog (self->config.log, KC_LOG_WARNING, "agent ahead of the log", kc_fingerprint (key, fp),
                    "%s: agent %s holds seq %llu, beyond this server's log (seq %llu): this store lost "
                    "entries (restored from an older backup?); 'keyclone recover' on that node gives them back",
                    self->config.name, fp, (unsigned long long) msg->seq, (unsigned long long) seq);
    }
    //  Persisted (on the next tick) when where it stands changes
    agent->dirty |= agent->seq != msg->seq || memcmp (agent->chain, msg->chain, KC_HASH_BYTES)
                 || agent->acked == 0;
    agent->seq = msg->seq;
    memcpy (agent->chain, msg->chain, KC_HASH_BYTES);
    agent->acked = zclock_time ();
    if (self->config.ack) {
        self->config.ack (self->config.arg, key, msg->seq, msg->chain);
    }
}

int
kc_publish_on_snapshot (zloop_t *loop, zsock_t *socket, void *arg)
{
    (void) loop;
    kc_publish_t *self = arg;
    for (int i = 0; i < 64 && (zsock_events (socket) & ZMQ_POLLIN); i++) {
        zmsg_t *msg = zmsg_recv (socket);
        if (!msg) {
            break;
        }
        zframe_t *identity = zmsg_pop (msg);
        char fp [KC_FINGERPRINT_CHARS + 1], agent [KC_Z85_KEY_CHARS + 1] = "unknown";
        uint8_t key [KC_KEY_BYTES];
        if (kc_publish_sender (zmsg_first (msg), key) == 0) {
            kc_z85_encode (key, KC_KEY_BYTES, agent);
        }
        kc_proto_msg_t decoded;
        kc_why_t why;
        char *id = identity ? zframe_strhex (identity) : NULL;
        if (!id || kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &decoded, &why)) {
            kc_publish_sender_fp (zmsg_first (msg), fp, "unknown");
            kc_ratelog (self->config.log, KC_LOG_WARNING, "malformed snapshot message", fp,
                        "%s: malformed message on snapshot from %s: %s", self->config.name, fp,
                        id ? why.text : "no routing id");
        }
        else
        if (decoded.type == KC_MSG_SYNC) {
            s_on_sync (self, &identity, id, &decoded, agent);
        }
        else
        if (decoded.type == KC_MSG_CREDIT) {
            s_on_credit (self, id, &decoded);
        }
        else
        if (decoded.type == KC_MSG_COSIGN) {
            kc_publish_sender_fp (zmsg_first (msg), fp, "unknown");
            if (kc_publish_take_cosig (self, decoded.cosigs [0], &why) < 0) {
                kc_ratelog (self->config.log, KC_LOG_WARNING, "cosignature refused", fp,
                            "%s: cosignature from %s refused: %s", self->config.name, fp, why.text);
            }
        }
        else {
            s_on_ack (self, zmsg_first (msg), &decoded);
        }
        kc_proto_msg_reset (&decoded);
        zstr_free (&id);
        zframe_destroy (&identity);
        zmsg_destroy (&msg);
    }
    return 0;
}

//  --- Readers -----------------------------------------------------------------------

const char *
kc_publish_reader_denied (kc_publish_t *self, const uint8_t key [KC_KEY_BYTES])
{
    if (self->config.read_any) {
        return NULL;
    }
    kc_store_key_t info;
    kc_why_t why;
    if (kc_store_key (self->config.store, key, &info, &why)) {
        zsys_error ("%s: %s", self->config.name, why.text);
        return "server store error";
    }
    uint64_t now = kc_now ();
    if (info.status == 0) {
        return "key is not registered in this directory";
    }
    if (info.status == KC_STATUS_REVOKED) {
        return "key is revoked";
    }
    if (info.not_after && now >= info.not_after) {
        return "key has expired";
    }
    if (now < info.not_before) {
        return "key is not valid yet";
    }
    return NULL;
}

//  kc_track asks whether a reader's open connection may stay: with read =
//  members, only while its key is registered, unrevoked and in force.
static bool
s_keep_reader (const uint8_t key [KC_KEY_BYTES], void *arg, char *label, size_t label_size)
{
    kc_publish_t *self = arg;
    const char *denied = kc_publish_reader_denied (self, key);
    if (!denied) {
        return true;
    }
    kc_store_key_t info;
    kc_why_t why;
    char fp [KC_FINGERPRINT_CHARS + 1];
    if (kc_store_key (self->config.store, key, &info, &why)) {
        info.name [0] = 0;
    }
    snprintf (label, label_size, "reader %s (%s): %s", *info.name ? info.name : "key",
              kc_fingerprint (key, fp), denied);
    return false;
}

//  Sends a ZAP reply; takes the request id frame.
static void
s_zap_reply (zsock_t *zap, zframe_t **request_id_p, const char *status, const char *text,
             const char *user)
{
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    zmsg_append (reply, request_id_p);
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, user);
    zmsg_addmem (reply, NULL, 0);
    zmsg_send (&reply, zap);
}

int
kc_publish_on_zap (zloop_t *loop, zsock_t *zap, void *arg)
{
    (void) loop;
    kc_publish_t *self = arg;
    zmsg_t *request = zmsg_recv (zap);
    if (!request) {
        return 0;
    }
    zframe_t *version = zmsg_pop (request), *request_id = zmsg_pop (request);
    char *domain = zmsg_popstr (request);
    zframe_t *address = zmsg_pop (request), *identity = zmsg_pop (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *credential = zmsg_pop (request);
    if (!request_id) {
        request_id = zframe_new ("", 0);
    }
    char z85 [KC_Z85_KEY_CHARS + 1] = "", fp [KC_FINGERPRINT_CHARS + 1] = "????????";
    if (!version || !zframe_streq (version, "1.0")) {
        s_zap_reply (zap, &request_id, "500", "unsupported ZAP version", "");
    }
    else
    if (!domain || !mechanism || !KC_STREQ (mechanism, "CURVE") || !credential
    ||  zframe_size (credential) != KC_KEY_BYTES || zmsg_size (request)) {
        s_zap_reply (zap, &request_id, "400", "CURVE with one 32-byte key required", "");
    }
    else {
        const uint8_t *key = zframe_data (credential);
        kc_z85_encode (key, KC_KEY_BYTES, z85);
        kc_fingerprint (key, fp);
        bool reader = KC_STREQ (domain, KC_PUBLISH_DOMAIN_SNAPSHOT) || KC_STREQ (domain, KC_PUBLISH_DOMAIN_UPDATES);
        const char *denied = reader ? kc_publish_reader_denied (self, key)
                           : self->config.domain ? self->config.domain (self->config.arg, domain, key)
                           : "unknown ZAP domain";
        bool tracked = !denied && self->track && reader;
        kc_track_ticket_t ticket;
        if (tracked) {
            char ip [KC_SOCK_ADDRESS_MAX];
            size_t size = address ? zframe_size (address) : 0;
            snprintf (ip, sizeof ip, "%.*s", (int) (size < sizeof ip ? size : 0),
                      address ? (const char *) zframe_data (address) : "");
            kc_track_allowing (self->track, ip, key, &ticket);
        }
        self->zap_allowed += !denied;
        self->zap_denied += denied != NULL;
        if (denied) {
            char kind [64];
            snprintf (kind, sizeof kind, "denied on %s", domain);
            kc_ratelog (self->config.log, KC_LOG_WARNING, kind, fp, "%s: denied %s on %s: %s", self->config.name,
                        fp, domain, denied);
            s_zap_reply (zap, &request_id, "400", denied, "");
        }
        else {
            s_zap_reply (zap, &request_id, "200", "OK", z85);
        }
        if (tracked) {
            kc_track_allowed (self->track, &ticket);
        }
    }
    zframe_destroy (&version);
    zframe_destroy (&request_id);
    zframe_destroy (&address);
    zframe_destroy (&identity);
    zframe_destroy (&credential);
    zstr_free (&domain);
    zstr_free (&mechanism);
    zmsg_destroy (&request);
    return 0;
}

void
kc_publish_end_refused (kc_publish_t *self)
{
    if (!self->track) {
        return;
    }
    kc_track_sweep (self->track);
    zlistx_t *refused = zlistx_new ();
    for (s_cursor_t *cursor = zhashx_first (self->cursors); cursor; cursor = zhashx_next (self->cursors)) {
        uint8_t key [KC_KEY_BYTES];
        if (kc_z85_decode (cursor->agent, key, KC_KEY_BYTES) == 0 && kc_publish_reader_denied (self, key)) {
            zlistx_add_end (refused, (void *) zhashx_cursor (self->cursors));
        }
    }
    for (const char *id = zlistx_first (refused); id; id = zlistx_next (refused)) {
        s_cursor_t *cursor = zhashx_lookup (self->cursors, id);
        zsys_info ("%s: sync for %.8s ended: the reader's key is no longer a member", self->config.name,
                   cursor->agent);
        zhashx_delete (self->cursors, id);
    }
    zlistx_destroy (&refused);
}

//  --- Housekeeping ------------------------------------------------------------------

//  Writes the acknowledgements that changed since the last call to the
//  store, so status --server remembers every agent across a restart.
static void
s_save_acks (kc_publish_t *self)
{
    size_t count = 0, capacity = zhashx_size (self->agents);
    kc_store_ack_t *acks = capacity ? malloc (capacity * sizeof *acks) : NULL;
    for (s_agent_t *agent = zhashx_first (self->agents); agent && acks; agent = zhashx_next (self->agents)) {
        if (agent->dirty) {
            kc_store_ack_t *ack = &acks [count++];
            memcpy (ack->key, agent->key, KC_KEY_BYTES);
            ack->seq = agent->seq;
            memcpy (ack->chain, agent->chain, KC_HASH_BYTES);
            ack->acked = (uint64_t) agent->acked;
        }
    }
    kc_why_t why;
    if (count && kc_store_save_acks (self->config.store, acks, count, &why)) {
        zsys_error ("%s: %s", self->config.name, why.text);
    }
    else {
        for (s_agent_t *agent = zhashx_first (self->agents); agent; agent = zhashx_next (self->agents)) {
            agent->dirty = false;
        }
    }
    free (acks);
}

void
kc_publish_tick (kc_publish_t *self)
{
    //  Expiry needs no event: readers whose key expired are closed here
    kc_publish_end_refused (self);
    s_save_acks (self);
    //  Abandon syncs whose agent stopped granting credit
    int64_t now = zclock_mono ();
    zlistx_t *stale = zlistx_new ();
    size_t waiting = 0;
    for (s_cursor_t *cursor = zhashx_first (self->cursors); cursor; cursor = zhashx_next (self->cursors)) {
        if (cursor->waiting || cursor->headless) {
            cursor->touched = now;          //  it waits for us, not for its agent
            waiting++;
        }
        if (now - cursor->touched > self->config.sync_idle_ms) {
            zlistx_add_end (stale, (void *) zhashx_cursor (self->cursors));
            zsys_warning ("%s: sync for %.8s abandoned: no credit for %d ms", self->config.name,
                          cursor->agent, self->config.sync_idle_ms);
        }
    }
    for (const char *key = zlistx_first (stale); key; key = zlistx_next (stale)) {
        zhashx_delete (self->cursors, key);
    }
    zlistx_destroy (&stale);
    //  The last sync ended: the buffers its messages used go back to the
    //  system (malloc keeps them while syncs run, kc_malloc_tune)
    if (self->trim_due && zhashx_size (self->cursors) == 0) {
        malloc_trim (0);
        self->trim_due = false;
    }
    //  Many agents syncing at once (a restart, a network blip): say so
    //  without --verbose, every 10 s while it lasts
    if (now - self->storm_reported >= STORM_PERIOD_MS
    &&  (zhashx_size (self->cursors) >= STORM_SYNCS || self->syncs_started >= STORM_SYNCS)) {
        zsys_info ("%s: %zu agents syncing (%llu syncs started in the last %lld s), "
                   "%.1f MiB in flight of a %d MiB budget, %zu waiting for it", self->config.name,
                   zhashx_size (self->cursors), (unsigned long long) self->syncs_started,
                   (long long) ((now - self->storm_reported) / 1000),
                   (double) self->inflight / (1024 * 1024), SEND_BUDGET / (1024 * 1024), waiting);
        self->storm_reported = now;
        self->syncs_started = 0;
    }
    else
    if (now - self->storm_reported >= STORM_PERIOD_MS) {
        self->storm_reported = now;
        self->syncs_started = 0;
    }
}

//  --- Status ------------------------------------------------------------------------

void
kc_publish_status_agents (kc_publish_t *self, FILE *out, FILE *human)
{
    char z85 [KC_Z85_KEY_CHARS + 1], fp [KC_FINGERPRINT_CHARS + 1];
    uint64_t seq = kc_store_seq (self->config.store);
    int64_t now = zclock_time ();
    size_t behind = 0, ahead = 0;
    bool first = true;
    fprintf (out, ", \"agents\": [");
    for (s_agent_t *agent = zhashx_first (self->agents); agent; agent = zhashx_next (self->agents)) {
        kc_store_key_t info;
        kc_why_t why;
        if (kc_store_key (self->config.store, agent->key, &info, &why)) {
            info.name [0] = 0;
        }
        uint64_t lag = seq > agent->seq ? seq - agent->seq : 0;
        behind += lag > 0;
        ahead += agent->seq > seq;
        fprintf (out, "%s{", first ? "" : ", ");
        first = false;
        kc_json_field_str (out, true, "key", kc_z85_encode (agent->key, 32, z85));
        kc_json_field_str (out, false, "fingerprint", kc_fingerprint (agent->key, fp));
        kc_json_field_str (out, false, "name", info.name);
        kc_json_field_u64 (out, false, "seq", agent->seq);
        kc_json_field_u64 (out, false, "ack_age_ms", (uint64_t) (now - agent->acked));
        kc_json_field_u64 (out, false, "behind", lag);
        kc_json_field_u64 (out, false, "ahead", agent->seq > seq ? agent->seq - seq : 0);
        kc_json_field_str (out, false, "key_status", info.status == KC_STATUS_REVOKED ? "revoked"
                           : info.status == 0 ? "unknown"
                           : info.not_after && kc_now () >= info.not_after ? "expired" : "active");
        fprintf (out, "}");
        //  Every agent that ever acknowledged stays listed; one whose key
        //  was revoked (or has expired) is marked, not dropped
        const char *standing = info.status == KC_STATUS_REVOKED ? "  (key revoked)"
                             : info.status == 0 ? "  (key unknown)"
                             : info.not_after && kc_now () >= info.not_after ? "  (key expired)" : "";
        fprintf (human, "    %-20s %s  seq %-10llu %-14s acked %.1f s ago%s\n",
                 *info.name ? info.name : "-", fp, (unsigned long long) agent->seq,
                 lag ? "behind" : agent->seq > seq ? "AHEAD" : "up to date", (double) (now - agent->acked) / 1000.0,
                 standing);
    }
    fprintf (out, "]");
    fprintf (human, "  agents: %zu, %zu up to date, %zu behind", zhashx_size (self->agents),
             zhashx_size (self->agents) - behind - ahead, behind);
    if (ahead) {
        fprintf (human, ", %zu AHEAD of this server: its store lost entries they hold (restored from an older "
                 "backup?); run 'keyclone recover' on one of those nodes", ahead);
    }
    fprintf (human, "\n");
}

void
kc_publish_status_witnesses (kc_publish_t *self, FILE *out, FILE *human)
{
    const kc_root_t *root = s_root (self);
    size_t count = kc_root_witness_count (root);
    fprintf (out, ", \"witness_threshold\": %u, \"cosignatures\": %llu, \"cosignatures_refused\": %llu, "
             "\"cosignatures_ahead\": %llu, \"witnesses\": [", kc_root_witness_threshold (root),
             (unsigned long long) self->cosigs_taken, (unsigned long long) self->cosigs_refused,
             (unsigned long long) self->cosigs_ahead);
    uint64_t now = kc_now_ms ();
    for (size_t w = 0; w < count; w++) {
        const kc_witness_t *witness = kc_root_witness (root, w);
        const kc_cosig_t *cosig = NULL;
        for (size_t i = 0; i < KC_ROOT_WITNESSES_MAX && !cosig; i++) {
            if (self->cosigs [i].used && memcmp (self->cosigs [i].cosig.witness, witness->key, KC_KEY_BYTES) == 0) {
                cosig = &self->cosigs [i].cosig;
            }
        }
        uint64_t age = cosig && now > cosig->time ? now - cosig->time : 0;
        fprintf (out, "%s{", w ? ", " : "");
        kc_json_field_str (out, true, "name", witness->name);
        kc_json_field_u64 (out, false, "seq", cosig ? cosig->seq : 0);
        kc_json_field_u64 (out, false, "age_ms", age);
        fprintf (out, ", \"cosigned\": %s}", cosig ? "true" : "false");
        if (cosig) {
            fprintf (human, "  witness %-16s cosigned seq %llu %.1f s ago\n", witness->name,
                     (unsigned long long) cosig->seq, (double) age / 1000.0);
        }
        else {
            fprintf (human, "  witness %-16s no cosignature yet\n", witness->name);
        }
    }
    fprintf (out, "]");
}

void
kc_publish_metrics (kc_publish_t *self, kc_metrics_t *m, const char *prefix)
{
    char name [96], labels [64], fp [KC_FINGERPRINT_CHARS + 1];
    uint64_t seq = kc_store_seq (self->config.store);
    snprintf (name, sizeof name, "%s_handshakes_total", prefix);
    kc_metric (m, name, "counter", "CURVE handshakes the ZAP handler answered.", "result=\"allowed\"",
               (double) self->zap_allowed);
    kc_metric (m, name, "counter", "CURVE handshakes the ZAP handler answered.", "result=\"denied\"",
               (double) self->zap_denied);
    if (self->track) {
        kc_track_stats_t track = { 0 };
        kc_track_stats (self->track, &track);
        snprintf (name, sizeof name, "%s_connections_closed_total", prefix);
        kc_metric (m, name, "counter", "Readers' connections closed because their key was revoked or expired.",
                   "", (double) track.closed);
    }
    snprintf (name, sizeof name, "%s_syncs", prefix);
    kc_metric (m, name, "gauge", "Syncs running.", "", (double) zhashx_size (self->cursors));
    snprintf (name, sizeof name, "%s_sync_bytes_inflight", prefix);
    kc_metric (m, name, "gauge", "Snapshot bytes sent and not yet credited.", "", (double) self->inflight);
    snprintf (name, sizeof name, "%s_agents", prefix);
    kc_metric (m, name, "gauge", "Agents that ever acknowledged.", "", (double) zhashx_size (self->agents));
    int64_t now = zclock_time ();
    snprintf (name, sizeof name, "%s_agent_lag", prefix);
    for (s_agent_t *agent = zhashx_first (self->agents); agent; agent = zhashx_next (self->agents)) {
        snprintf (labels, sizeof labels, "agent=\"%s\"", kc_fingerprint (agent->key, fp));
        kc_metric (m, name, "gauge", "Log entries an agent has not acknowledged.", labels,
                   (double) (seq > agent->seq ? seq - agent->seq : 0));
    }
    snprintf (name, sizeof name, "%s_agent_ack_age_seconds", prefix);
    for (s_agent_t *agent = zhashx_first (self->agents); agent; agent = zhashx_next (self->agents)) {
        snprintf (labels, sizeof labels, "agent=\"%s\"", kc_fingerprint (agent->key, fp));
        kc_metric (m, name, "gauge", "Seconds since an agent's last acknowledgement.", labels,
                   (double) (now - agent->acked) / 1000.0);
    }
}

//  --- Self test ---------------------------------------------------------------------

void
kc_publish_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_publish: ");
    }
    //  Its behaviour is tested end to end (every integration test serves
    //  through it); here, the life cycle with an empty store
    char dir [] = "/tmp/kc_publish_test.XXXXXX";
    assert (mkdtemp (dir));
    char path [256];
    snprintf (path, sizeof path, "%s/store.db", dir);
    uint8_t key [32] = { 3 }, fill [32];
    memset (fill, 0x55, 32);
    kc_operator_t op = { .name = "op" };
    memcpy (op.key, key, 32);
    kc_root_spec_t spec = {
        .version = 1, .created = 1, .expires = 4000000000ULL, .operators = &op, .operator_count = 1,
        .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1, .head_key = fill, .server_key = fill,
        .endpoints = { "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3" }
    };
    kc_why_t why;
    kc_root_t *root = kc_root_new (&spec, &why);
    kc_store_t *store = kc_store_open (path, root, &why);
    assert (root && store);
    kc_publish_config_t config = { .name = "test", .store = store, .sync_idle_ms = 1000 };
    kc_publish_t *pub = kc_publish_new (&config);
    assert (pub && kc_publish_syncs (pub) == 0);
    memset (key, 9, 32);
    assert (kc_publish_reader_denied (pub, key) && strstr (kc_publish_reader_denied (pub, key), "not registered"));
    kc_publish_set_read_any (pub, true);
    assert (kc_publish_reader_denied (pub, key) == NULL);
    kc_publish_tick (pub);
    kc_publish_head (pub);                  //  relayed heads, no socket: nothing happens
    kc_publish_destroy (&pub);
    kc_publish_destroy (&pub);
    kc_store_destroy (&store);
    kc_root_destroy (&root);
    snprintf (path, sizeof path, "rm -rf %s", dir);
    assert (system (path) == 0);
    if (verbose) {
        printf ("OK\n");
    }
}
