/*  =========================================================================
    kc_mirror - follows an upstream into its own store and serves it.
    =========================================================================
*/
#include "kc_mirror.h"

#include <signal.h>
#include <sodium.h>

#define LOG_PERIOD_MS       10000           //  refusals: a few lines per peer and kind
#define LOG_PER_PEER        3
#define LOG_PER_KIND        20
#define TICK_MS             1000            //  housekeeping (acknowledgements, idle syncs)
#define ACK_EVERY_MS        1000            //  the mirror's own ACK upstream, at most this often

typedef struct {
    kc_mirror_config_t config;
    kc_root_t *root;                        //  in force at the store's seq
    kc_cert_t *cert;
    kc_store_t *store;
    kc_publish_t *publish;
    kc_follow_t *follow;
    zsock_t *zap, *snapshot, *updates;
    zloop_t *loop;
    kc_ratelog_t *log;
    int64_t last_ack;                       //  zclock_mono of the mirror's own last ACK
    uint64_t relayed, applied;
} s_mirror_t;

static volatile sig_atomic_t s_reopen_wanted;

void
kc_mirror_reopen_wanted (void)
{
    s_reopen_wanted = 1;
}

void
kc_mirror_config_defaults (kc_mirror_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->stale_after_ms = 5000;
    config->sync_idle_ms = 30000;
}

//  --- Following ---------------------------------------------------------------------

static const kc_root_t *
s_root (void *arg)
{
    return ((s_mirror_t *) arg)->root;
}

//  The last count entries of a BATCHES or UPDATE were verified and stored
//  (kc_follow, kc_keep_follow): published downstream.
static void
s_kept (void *arg, const kc_proto_msg_t *msg, int count, bool revoked, bool root_changed)
{
    s_mirror_t *self = arg;
    self->applied += (uint64_t) count;
    if (root_changed) {
        kc_publish_root_changed (self->publish);    //  its witnesses, from its seq on
    }
    //  Downstream: a revoked reader must not read what follows
    if (revoked) {
        kc_publish_end_refused (self->publish);
    }
    zmsg_t *update = kc_proto_entries ("UPDATE");
    uint64_t first = kc_store_seq (self->store) - (uint64_t) count;
    for (size_t i = 0; i < msg->entry_count; i++) {
        const kc_entry_t *in = &msg->entries [i];
        if (in->seq > first) {
            kc_proto_add_entry_meta (update, in->seq, in->chain, in->accepted, in->submitter, in->data, in->size);
        }
    }
    kc_publish_update (self->publish, &update);
    kc_publish_grown (self->publish);
}

//  A head from upstream that names the store's (seq, chain), signed by a
//  server of the root in force (kc_follow judged it): relayed downstream
//  with the cosignatures it came with.
static void
s_head (void *arg, const kc_proto_msg_t *msg, bool from_end)
{
    (void) from_end;
    s_mirror_t *self = arg;
    const kc_head_t *head = &msg->head;
    uint64_t seq = kc_store_seq (self->store);
    for (size_t i = 0; i < msg->cosig_count; i++) {
        kc_why_t ignored;
        (void) kc_publish_take_cosig (self->publish, msg->cosigs [i], &ignored);
    }
    kc_publish_relay (self->publish, head);
    self->relayed++;
    //  The mirror's own place, upstream, now and then
    int64_t now = zclock_mono ();
    if (now - self->last_ack >= ACK_EVERY_MS) {
        zmsg_t *ack = kc_proto_ack (seq, kc_store_chain (self->store));
        kc_follow_send (self->follow, &ack);
        self->last_ack = now;
    }
}

//  An agent's acknowledgement, passed upstream for 'status --server'.
static void
s_ack (void *arg, const uint8_t key [KC_KEY_BYTES], uint64_t seq, const uint8_t chain [KC_HASH_BYTES])
{
    s_mirror_t *self = arg;
    zmsg_t *ack = kc_proto_ack_for (seq, chain, key);
    kc_follow_send (self->follow, &ack);
}

//  --- Serving -----------------------------------------------------------------------

static zsock_t *
s_socket (s_mirror_t *self, int type, const char *domain, const char *endpoint)
{
    zsock_t *socket = zsock_new (type);
    assert (socket);
    zsock_set_linger (socket, 0);
    kc_why_t why;
    char monitor [KC_TRACK_ENDPOINT_MAX];
    kc_track_t *track = kc_publish_track (self->publish);
    if (kc_sockopt_curve_server (socket, kc_cert_public_key (self->cert), kc_cert_secret_key (self->cert), &why)
    ||  kc_sockopt_zap (socket, domain, &why)
    ||  kc_sockopt_maxmsgsize (socket, 4096, &why)
    ||  (track && (kc_track_install (socket, monitor, &why) || kc_track_watch (track, monitor, &why)))) {
        zsys_error ("kc_mirror: %s socket: %s", domain, why.text);
        zsock_destroy (&socket);
        return NULL;
    }
    if (type == ZMQ_ROUTER) {
        zsock_set_router_mandatory (socket, 1);
        zsock_set_sndtimeo (socket, 0);
    }
    if (zsock_bind (socket, "%s", endpoint) < 0) {
        zsys_error ("kc_mirror: cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        if (track) {
            kc_track_uninstall (socket);
        }
        zsock_destroy (&socket);
    }
    return socket;
}

static void
s_status (s_mirror_t *self, FILE *human)
{
    const kc_follow_upstream_t *upstream = kc_follow_upstream (self->follow);
    fprintf (human, "mirror: seq %llu, %llu keys, following %s; %llu entries applied, %llu heads relayed, "
             "%llu upstream moves, %zu syncs served\n", (unsigned long long) kc_store_seq (self->store),
             (unsigned long long) kc_store_key_count (self->store), upstream ? upstream->name : "nothing",
             (unsigned long long) self->applied, (unsigned long long) self->relayed,
             (unsigned long long) kc_follow_moves (self->follow), kc_publish_syncs (self->publish));
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_mirror_t *self = arg;
    if (s_reopen_wanted) {
        s_reopen_wanted = 0;
        kc_log_reopen_logged ("kc_mirror");
    }
    kc_publish_tick (self->publish);
    kc_ratelog_flush (self->log);
    return 0;
}

static int
s_load (s_mirror_t *self, kc_why_t *why)
{
    self->cert = kc_cert_load_secret (self->config.key_path, why);
    if (!self->cert || kc_keep_open (self->config.root_path, self->config.store_path, &self->store, &self->root, why)) {
        return -1;
    }
    return 0;
}

int
kc_mirror_run (const kc_mirror_config_t *config)
{
    s_mirror_t self = { .config = *config };
    kc_why_t why;
    int rc = 1;
    self.log = kc_ratelog_new ("kc_mirror", LOG_PERIOD_MS, LOG_PER_PEER, LOG_PER_KIND);
    if (s_load (&self, &why)) {
        zsys_error ("kc_mirror: %s", why.text);
        goto cleanup;
    }
    kc_publish_config_t serving = {
        .name = "kc_mirror", .store = self.store, .root = s_root, .ack = s_ack, .arg = &self, .log = self.log,
        .read_any = config->read_any, .sync_idle_ms = config->sync_idle_ms, .verbose = config->verbose
    };
    self.publish = kc_publish_new (&serving);
    //  The ZAP handler first: a CURVE socket must never run without it
    self.zap = zsock_new (ZMQ_REP);
    if (zsock_bind (self.zap, "inproc://zeromq.zap.01")) {
        zsys_error ("kc_mirror: cannot bind the ZAP handler");
        goto cleanup;
    }
    self.loop = zloop_new ();
    kc_publish_set_loop (self.publish, self.loop);
    self.snapshot = s_socket (&self, ZMQ_ROUTER, KC_PUBLISH_DOMAIN_SNAPSHOT, config->bind [0]);
    self.updates = self.snapshot ? s_socket (&self, ZMQ_PUB, KC_PUBLISH_DOMAIN_UPDATES, config->bind [1]) : NULL;
    if (!self.updates) {
        goto cleanup;
    }
    kc_publish_set_sockets (self.publish, self.snapshot, self.updates);
    zloop_reader (self.loop, self.zap, kc_publish_on_zap, self.publish);
    zloop_reader (self.loop, self.snapshot, kc_publish_on_snapshot, self.publish);
    kc_follow_config_t following = {
        .name = "kc_mirror", .public_key = kc_cert_public_key (self.cert), .secret_key = kc_cert_secret_key (self.cert),
        .directory = kc_root_directory (self.root), .credit = 16, .store = self.store,
        .root = &self.root, .kept = s_kept, .head = s_head, .arg = &self, .log = self.log
    };
    self.follow = kc_follow_new (&following, self.loop);
    if (kc_follow_set_upstreams (self.follow, config->upstreams, self.root, config->stale_after_ms, &why)) {
        zsys_error ("kc_mirror: %s", why.text);
        goto cleanup;
    }
    zloop_timer (self.loop, TICK_MS, 0, s_on_tick, &self);
    char hex [65], fp [KC_FINGERPRINT_CHARS + 1];
    zsys_info ("kc_mirror: directory %.16s... seq %llu, %llu keys; serving snapshot %s, updates %s with key %s; "
               "read = %s; upstreams %s", kc_hex (kc_root_directory (self.root), 32, hex),
               (unsigned long long) kc_store_seq (self.store), (unsigned long long) kc_store_key_count (self.store),
               config->bind [0], config->bind [1], kc_fingerprint (kc_cert_public_key (self.cert), fp),
               config->read_any ? "any" : "members", config->upstreams);
    zloop_start (self.loop);
    FILE *out = stdout;
    s_status (&self, out);
    zsys_info ("kc_mirror: shutting down at seq %llu", (unsigned long long) kc_store_seq (self.store));
    rc = 0;
cleanup:
    kc_follow_destroy (&self.follow);
    zloop_destroy (&self.loop);
    if (self.snapshot && kc_publish_track (self.publish)) {
        kc_track_uninstall (self.snapshot);
    }
    if (self.updates && kc_publish_track (self.publish)) {
        kc_track_uninstall (self.updates);
    }
    zsock_destroy (&self.snapshot);
    zsock_destroy (&self.updates);
    zsock_destroy (&self.zap);
    kc_publish_destroy (&self.publish);
    kc_ratelog_destroy (&self.log);
    kc_store_destroy (&self.store);
    kc_cert_destroy (&self.cert);
    kc_root_destroy (&self.root);
    return rc;
}
