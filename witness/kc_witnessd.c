/*  =========================================================================
    kc_witnessd - follows the log into its own store and cosigns it.
    =========================================================================
*/
#include "kc_witnessd.h"

#include <signal.h>
#include <sodium.h>

#define LOG_PERIOD_MS       10000
#define LOG_PER_PEER        3
#define LOG_PER_KIND        20
#define TICK_MS             1000

typedef struct {
    kc_witnessd_config_t config;
    kc_root_t *root;                        //  in force at the store's seq
    kc_cert_t *cert;
    kc_store_t *store;
    kc_follow_t *follow;
    kc_cosigner_t *cosigner;
    zloop_t *loop;
    kc_ratelog_t *log;
    uint64_t applied;
} s_witness_t;

static volatile sig_atomic_t s_reopen_wanted;

void
kc_witnessd_reopen_wanted (void)
{
    s_reopen_wanted = 1;
}

//  Entries were verified and stored (kc_follow, kc_keep_follow). A root
//  change names, from its seq on, other witnesses and servers to cosign to.
static void
s_kept (void *arg, const kc_proto_msg_t *msg, int count, bool revoked, bool root_changed)
{
    (void) msg;
    (void) revoked;
    s_witness_t *self = arg;
    self->applied += (uint64_t) count;
    if (root_changed) {
        kc_cosigner_connect (self->cosigner, self->root, kc_cert_public_key (self->cert),
                             kc_cert_secret_key (self->cert), NULL);
    }
}

//  A head that names exactly the copy, signed by a server of the root in
//  force (kc_follow judged it; it left an upstream that equivocated): it
//  is cosigned.
static void
s_head (void *arg, const kc_proto_msg_t *msg, bool from_end)
{
    (void) from_end;
    s_witness_t *self = arg;
    const kc_head_t *head = &msg->head;
    uint64_t seq = kc_store_seq (self->store);
    kc_cosigner_cosign (self->cosigner, head->directory, seq, kc_store_chain (self->store));
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_witness_t *self = arg;
    if (s_reopen_wanted) {
        s_reopen_wanted = 0;
        kc_log_reopen_logged ("kc_witness");
    }
    kc_ratelog_flush (self->log);
    return 0;
}

static int
s_load (s_witness_t *self, kc_why_t *why)
{
    self->cert = kc_cert_load_secret (self->config.key_path, why);
    if (!self->cert || kc_keep_open (self->config.root_path, self->config.store_path, &self->store, &self->root, why)) {
        return -1;
    }
    char floor [4200];
    snprintf (floor, sizeof floor, "%s.witness-floor", self->config.store_path);
    self->cosigner = kc_cosigner_new ("kc_witness", self->config.witness_path, floor, self->log, why);
    if (!self->cosigner) {
        return -1;
    }
    kc_cosigner_set_copy (self->cosigner, kc_store_seq (self->store), kc_store_chain (self->store));
    return 0;
}

int
kc_witnessd_run (const kc_witnessd_config_t *config)
{
    s_witness_t self = { .config = *config };
    kc_why_t why;
    int rc = 1;
    self.log = kc_ratelog_new ("kc_witness", LOG_PERIOD_MS, LOG_PER_PEER, LOG_PER_KIND);
    if (s_load (&self, &why)) {
        zsys_error ("kc_witness: %s", why.text);
        goto cleanup;
    }
    self.loop = zloop_new ();
    kc_cosigner_connect (self.cosigner, self.root, kc_cert_public_key (self.cert), kc_cert_secret_key (self.cert),
                         NULL);
    kc_follow_config_t following = {
        .name = "kc_witness", .public_key = kc_cert_public_key (self.cert),
        .secret_key = kc_cert_secret_key (self.cert), .directory = kc_root_directory (self.root), .credit = 16,
        .store = self.store, .root = &self.root, .kept = s_kept, .head = s_head, .arg = &self, .log = self.log
    };
    self.follow = kc_follow_new (&following, self.loop);
    if (kc_follow_set_upstreams (self.follow, config->upstreams, self.root, config->stale_after_ms, &why)) {
        zsys_error ("kc_witness: %s", why.text);
        goto cleanup;
    }
    zloop_timer (self.loop, TICK_MS, 0, s_on_tick, &self);
    char hex [65];
    zsys_info ("kc_witness: directory %.16s... seq %llu; upstreams %s", kc_hex (kc_root_directory (self.root), 32, hex),
               (unsigned long long) kc_store_seq (self.store), config->upstreams);
    zloop_start (self.loop);
    zsys_info ("kc_witness: shutting down at seq %llu: %llu cosignatures sent, up to seq %llu, %llu heads not "
               "cosigned", (unsigned long long) kc_store_seq (self.store),
               (unsigned long long) kc_cosigner_cosigned (self.cosigner),
               (unsigned long long) kc_cosigner_floor (self.cosigner),
               (unsigned long long) kc_cosigner_refusals (self.cosigner));
    rc = 0;
cleanup:
    kc_follow_destroy (&self.follow);
    kc_cosigner_destroy (&self.cosigner);
    zloop_destroy (&self.loop);
    kc_ratelog_destroy (&self.log);
    kc_store_destroy (&self.store);
    kc_cert_destroy (&self.cert);
    kc_root_destroy (&self.root);
    return rc;
}
