/*  =========================================================================
    kc_server - the clone server engine: one zloop thread, one sqlite
    connection. Submissions that arrive together are committed together
    (group commit, synchronous=FULL) and answered after the commit.
    =========================================================================
*/
#include "kc_server.h"
#include "kc_raft.h"

#include <malloc.h>
#include <signal.h>
#include <sodium.h>

#define GROUP_MAX           256             //  submissions per group commit
#define LOG_BYTES           (4 * 1024 * 1024)   //  entries in one LOG reply
#define HEAD_OVERLAP_MS     (10 * 60 * 1000)    //  heads under the previous key after a rotation
#define CURVE_OVERLAP_MS    (24 * 3600 * 1000LL)    //  old CURVE key served after a rotation,
                                            //  unless DIR/server/curve-next.overlap says
#define CURVE_OVERLAP_MIN_MS 2000           //  even with --overlap 0
#define REBIND_ATTEMPTS     100             //  at a key switch, 20 ms apart
#define LOG_PERIOD_MS       10000           //  refusals: a few lines per peer and kind
#define LOG_PER_PEER        3               //  per LOG_PERIOD_MS, then one summary
#define LOG_PER_KIND        20
#define ROOT_WARN_DAYS      30              //  warn this long before the root expires
#define ZAP_DOMAIN_SNAPSHOT "keyclone-snapshot"
#define ZAP_DOMAIN_UPDATES  "keyclone-updates"
#define ZAP_DOMAIN_SUBMIT   "keyclone-submit"

typedef struct {
    kc_server_config_t config;
    kc_root_t *root;
    kc_cert_t *cert;
    kc_signer_t *head_signer;
    kc_store_t *store;
    kc_pending_t *pending;                  //  enrolment requests (kc_pending.h)
    zsock_t *zap, *snapshot, *updates, *submit;
    zloop_t *loop;
    kc_publish_t *publish;                  //  serves the log on snapshot and updates
    kc_ratelog_t *log;                      //  refusals, bounded (kc_ratelog.h)
    uint64_t accepted, rejected;
    uint64_t rejected_by [KC_REASONS];      //  rejected, by class of reason (kc_metrics.h)
    bool revoked_in_group;                  //  the last group commit revoked a key
    int64_t root_warned;                    //  zclock_mono of the last expiry warning
    bool root_expired;                      //  and whether it said "expired"
    kc_signer_t *head_previous;             //  after a head key rotation, for the overlap:
    int64_t head_previous_until;            //  heads signed with it too, until then (mono)
    const char *endpoints [KC_ENDPOINTS];   //  bound (into endpoint_text: roots change)
    char endpoint_text [KC_ENDPOINTS][520];  //  config bind (main.c: 512) or root
    kc_cert_t *cert_next;                   //  a CURVE key rotation in force: the new key,
    uint64_t switch_at;                     //  served from then (unix ms)
    int switch_timer;                       //  -1 when none
    int heartbeat_timer;
    //  A cluster member (docs/cluster.md); raft is NULL on a single server
    kc_raft_t *raft;
    kc_raft_member_t members [KC_RAFT_MEMBERS_MAX];
    char member_names [KC_RAFT_MEMBERS_MAX][KC_ROOT_OPERATOR_NAME_MAX + 1];
    size_t member_count;
    raft_id member_id;                      //  this member's
    char raft_state [16];                   //  as the engine last said: follower, leader...
    raft_id leader;                         //  0: none known
    uint64_t term, raft_last, raft_refused;     //  as the engine last said
    struct _s_pending_t *queue;             //  submissions for the next proposal (GROUP_MAX)
    size_t queued;
    struct _s_pending_t *flying;            //  the submissions of the proposal in flight
    size_t flying_count;
    uint64_t flying_tag, next_tag;          //  0: none in flight
    int flying_tries;                       //  proposals of the same submissions
    uint64_t entry_index;                   //  the last Raft entry applied here,
    int entry_outcome;                      //  what became of it (s_entry_outcome_t)
    kc_why_t entry_why;
    bool submit_paused;                     //  the queue is full: not reading submissions
    struct {
        char name [KC_ROOT_OPERATOR_NAME_MAX + 1];
        char address [KC_RAFT_ADDRESS_MAX + 1];
    } listed [KC_RAFT_MEMBERS_MAX];         //  --cluster: Raft addresses by name
    size_t listed_count;
    bool named;                             //  the root in force names this member
    bool removed;                           //  and then no longer did: it stops
} s_server_t;

static void s_cluster_root_changed (s_server_t *self);

//  How s_decide ends its transaction: a single server commits what it
//  accepted; a cluster's leader only decides what to propose, and rolls
//  back; a cluster member applies a committed entry, all of it or nothing.
typedef enum { S_COMMIT, S_PROPOSE, S_APPLY } s_decide_mode_t;

//  One submission waiting for the group commit.
typedef struct _s_pending_t {
    zframe_t *identity;
    bool delimiter;                         //  REQ client: reply with an empty frame
    zmsg_t *msg;                            //  the submission (NULL: a cluster entry's item)
    const uint8_t *data;                    //  the log entry's bytes (in msg, or the entry)
    size_t size;
    const uint8_t *expect_chain;            //  a cluster entry's item: the chain it must have
    kc_batch_t *batch;                      //  a batch, or
    kc_root_t *root;                        //  a root change, or
    kc_grant_t *grant;                      //  a grant (or its revocation), or
    kc_grant_use_t *use;                    //  a registration under a grant
    uint64_t seq;
    uint8_t chain [KC_HASH_BYTES];
    const char *status;                     //  "accepted", "duplicate" or NULL
    kc_why_t why;
    uint64_t accepted;                      //  as the log records it (unix ms)
    uint8_t submitter [KC_KEY_BYTES];
    bool has_submitter;
    bool answered;
} s_pending_t;

static kc_pending_config_t
s_enrol_config (const kc_server_config_t *config)
{
    return (kc_pending_config_t) { .expiry_ms = config->enrol_expiry_ms, .max = (size_t) config->enrol_max,
                                   .per_minute = (uint32_t) config->enrol_rate };
}

void
kc_server_config_defaults (kc_server_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->heartbeat_ms = 1000;
    config->head_valid_ms = 5000;
    config->sndhwm = 100000;
    config->sync_idle_ms = 30000;
    config->enrol_expiry_ms = 24 * 3600 * 1000ULL;
    config->enrol_max = 1000;
    config->enrol_rate = 10;
    config->election_ms = 500;
    config->raft_heartbeat_ms = 50;
}

static const char *
s_fp (const uint8_t *key, char text [static KC_FINGERPRINT_CHARS + 1])
{
    return kc_fingerprint (key, text);
}

//  A fresh signed head for the store's current log.
static void
s_head (s_server_t *self, kc_head_t *head)
{
    memset (head, 0, sizeof *head);
    memcpy (head->directory, kc_root_directory (self->root), KC_HASH_BYTES);
    head->seq = kc_store_seq (self->store);
    memcpy (head->chain, kc_store_chain (self->store), KC_HASH_BYTES);
    head->time = kc_now_ms ();
    head->valid_until = head->time + (uint64_t) self->config.head_valid_ms;
    kc_head_sign (head, self->head_signer);
}

//  The heads to publish now (kc_publish_heads_fn): one for the store's
//  log; during the overlap of a head key rotation, the same signed with the
//  previous key too, for agents that have not applied the root change yet
//  (and notice they are behind); the others ignore it.
static size_t
s_heads (void *arg, kc_head_t heads [2])
{
    s_server_t *self = arg;
    s_head (self, &heads [0]);
    if (self->head_previous && zclock_mono () < self->head_previous_until) {
        heads [1] = heads [0];
        kc_head_sign (&heads [1], self->head_previous);
        return 2;
    }
    if (self->head_previous) {
        kc_signer_destroy (&self->head_previous);
        zsys_info ("kc_server: head key rotation overlap ended");
    }
    return 1;
}

static const kc_root_t *
s_root_in_force (void *arg)
{
    return ((s_server_t *) arg)->root;
}

//  "DIR/server/curve" -> "DIR/server/curve-next" + suffix: where `keyclone
//  root rotate-server-key` stages the next CURVE key (and its overlap).
static void
s_next_curve_path (s_server_t *self, char *path, size_t size, const char *suffix)
{
    snprintf (path, size, "%s-next%s", self->config.curve_path, suffix);
}

//  The public key of the staged next CURVE key, if there is one.
static int
s_staged_curve_key (s_server_t *self, uint8_t key [static KC_KEY_BYTES])
{
    if (self->cert_next) {
        memcpy (key, kc_cert_public_key (self->cert_next), KC_KEY_BYTES);
        return 0;
    }
    char path [4200];
    kc_why_t why;
    s_next_curve_path (self, path, sizeof path, "");
    kc_cert_t *cert = kc_file_exists (path) ? kc_cert_load_public (path, &why) : NULL;
    if (!cert) {
        return -1;
    }
    memcpy (key, kc_cert_public_key (cert), KC_KEY_BYTES);
    kc_cert_destroy (&cert);
    return 0;
}

//  This server's entry in root (found by its CURVE key, or by the staged
//  next one: a key rotation), or NULL.
static const kc_root_server_t *
s_this_server (s_server_t *self, const kc_root_t *root)
{
    uint8_t staged [KC_KEY_BYTES];
    bool has_staged = false, looked = false;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < kc_root_server_count (root); i++) {
            const kc_root_server_t *server = kc_root_server (root, i);
            if (pass == 0 && memcmp (server->server_key, kc_cert_public_key (self->cert),
                                     KC_KEY_BYTES) == 0) {
                return server;
            }
            if (pass == 1 && !looked) {
                has_staged = s_staged_curve_key (self, staged) == 0;
                looked = true;
            }
            if (pass == 1 && has_staged && memcmp (server->server_key, staged, KC_KEY_BYTES) == 0) {
                return server;
            }
        }
    }
    return NULL;
}

//  "DIR/server/head" -> "DIR/server/head-next": where `keyclone root
//  rotate-head-key` stages the next head key on the server's host.
static void
s_next_head_path (s_server_t *self, char *path, size_t size)
{
    snprintf (path, size, "%s-next", self->config.head_path);
}

//  The staged next head key, if its public key is key. NULL otherwise.
static kc_signer_t *
s_staged_head (s_server_t *self, const uint8_t key [static KC_KEY_BYTES])
{
    char path [4200];
    kc_why_t why;
    s_next_head_path (self, path, sizeof path);
    kc_signer_t *next = kc_file_exists (path) ? kc_signer_load (path, &why) : NULL;
    if (next && memcmp (kc_signer_public_key (next), key, KC_KEY_BYTES)) {
        kc_signer_destroy (&next);
    }
    return next;
}

//  A root change in force names a new head key for this server: sign with
//  the staged key from now on (and with the old one too for the overlap),
//  and make it the server's head key file.
static void
s_rotate_head (s_server_t *self)
{
    const kc_root_server_t *server = s_this_server (self, self->root);
    const uint8_t *wanted = server ? server->head_key : NULL;
    if (!wanted || memcmp (wanted, kc_signer_public_key (self->head_signer), KC_KEY_BYTES) == 0) {
        return;
    }
    kc_signer_t *next = s_staged_head (self, wanted);
    if (!next) {
        zsys_error ("kc_server: the root in force names a head key this server does not hold");
        return;
    }
    char staged [4200], staged_secret [4300], secret [4300];
    s_next_head_path (self, staged, sizeof staged);
    snprintf (staged_secret, sizeof staged_secret, "%s_secret", staged);
    snprintf (secret, sizeof secret, "%s_secret", self->config.head_path);
    //  The secret first: a crash in between leaves a server that signs with
    //  the new key (its public file is informational)
    if (rename (staged_secret, secret) || rename (staged, self->config.head_path)) {
        zsys_error ("kc_server: cannot install the new head key '%s': %s", staged, strerror (errno));
    }
    kc_signer_destroy (&self->head_previous);
    self->head_previous = self->head_signer;
    self->head_signer = next;
    self->head_previous_until = zclock_mono () + HEAD_OVERLAP_MS;
    char fp [KC_FINGERPRINT_CHARS + 1];
    zsys_info ("kc_server: head key rotated to %s; heads signed with the previous one too for %d s",
               kc_fingerprint (wanted, fp), HEAD_OVERLAP_MS / 1000);
}

//  --- ZAP (kc_publish answers it: the read policy; submissions here) ---------

//  ZAP for the submission channel: any key may submit (what it submits is
//  judged by its signatures), read requests are judged per request.
static const char *
s_other_domain (void *arg, const char *domain, const uint8_t key [KC_KEY_BYTES])
{
    (void) arg;
    (void) key;
    return KC_STREQ (domain, ZAP_DOMAIN_SUBMIT) ? NULL : "unknown ZAP domain";
}

static const char *
s_reader_denied (s_server_t *self, const uint8_t key [static KC_KEY_BYTES])
{
    return kc_publish_reader_denied (self->publish, key);
}

//  --- Submission channel ---------------------------------------------------

static void
s_reply (s_server_t *self, zframe_t *identity, bool delimiter, zmsg_t **reply_p)
{
    if (delimiter) {
        zmsg_pushmem (*reply_p, NULL, 0);
    }
    zframe_t *copy = zframe_dup (identity);
    zmsg_prepend (*reply_p, &copy);
    if (zmsg_send (reply_p, self->submit)) {
        zmsg_destroy (reply_p);
    }
}

typedef struct {
    zmsg_t *msg;
    size_t count;
    uint8_t last [KC_KEY_BYTES];
} s_records_t;

static int
s_add_record (uint64_t seq, const uint8_t *key, const uint8_t *record, size_t size, void *arg)
{
    s_records_t *records = arg;
    kc_proto_add_record (records->msg, seq, record, size);
    memcpy (records->last, key, KC_KEY_BYTES);
    records->count++;
    return 0;
}

static zmsg_t *
s_query (s_server_t *self, kc_proto_msg_t *query)
{
    char kind [8];
    snprintf (kind, sizeof kind, "%.*s", (int) query->text_size, query->text);
    zmsg_t *body = zmsg_new ();
    s_records_t records = { body, 0, { 0 } };
    kc_why_t why;
    size_t limit = query->credit;
    if (kc_store_query (self->store, kind, query->argument, query->argument_size, limit,
                        s_add_record, &records, &why) < 0) {
        zmsg_destroy (&body);
        return kc_proto_error ("%s", why.text);
    }
    bool more = KC_STREQ (kind, "list") && records.count == limit;
    zmsg_t *reply = kc_proto_records (records.last, more ? KC_KEY_BYTES : 0);
    for (zframe_t *frame = zmsg_pop (body); frame; frame = zmsg_pop (body)) {
        zmsg_append (reply, &frame);
    }
    zmsg_destroy (&body);
    return reply;
}

static void s_status (s_server_t *self, char **json, size_t *size, char **text, size_t *text_size);
static void s_metrics (s_server_t *self, FILE *out);

//  With read = members, QUERY and STATUS are answered only to a registered
//  member's key or to a request an operator signed (kc_access.h); anyone
//  else learns nothing but the refusal. Returns true with the reason when
//  the request is refused.
static bool
s_read_refused (s_server_t *self, zmsg_t *msg, const kc_proto_msg_t *decoded, kc_why_t *reason)
{
    uint8_t key [KC_KEY_BYTES];
    if (self->config.read_any) {
        return false;
    }
    if (kc_publish_sender (zmsg_first (msg), key)) {
        kc_why (reason, "refused: the request has no client key");
        return true;
    }
    if (!s_reader_denied (self, key)) {
        return false;
    }
    char fp [KC_FINGERPRINT_CHARS + 1];
    kc_why_t why;
    if (decoded->auth) {
        if (kc_access_verify (msg, self->root, kc_cert_public_key (self->cert), key, kc_now_ms (),
                              &why) >= 0) {
            return false;
        }
        kc_why (reason, "refused: %s", why.text);
    }
    else {
        kc_why (reason, "refused: read = members: %s needs a registered member's key or an "
                "operator's signature", kc_proto_name (decoded->type));
    }
    kc_ratelog (self->log, KC_LOG_WARNING, "read refused", s_fp (key, fp), "kc_server: %s from %s %s",
                kc_proto_name (decoded->type), fp, reason->text);
    return true;
}


//  0 when this server (its CURVE key and head key) is one of root's
//  servers, so it can go on serving under it; else -1 with a reason.
static int
s_serves (s_server_t *self, const kc_root_t *root, kc_why_t *why)
{
    char fp [KC_FINGERPRINT_CHARS + 1], ours [KC_FINGERPRINT_CHARS + 1];
    const kc_root_server_t *server = s_this_server (self, root);
    if (!server) {
        return kc_why (why, "root v%llu does not name this server (CURVE key %s) among its servers",
                       (unsigned long long) kc_root_version (root),
                       kc_fingerprint (kc_cert_public_key (self->cert), fp));
    }
    if (memcmp (server->head_key, kc_signer_public_key (self->head_signer), KC_KEY_BYTES) == 0) {
        return 0;
    }
    kc_signer_t *staged = s_staged_head (self, server->head_key);
    if (staged) {
        kc_signer_destroy (&staged);            //  a rotation: the key is at hand
        return 0;
    }
    return kc_why (why, "root v%llu names head key %s for this server, which signs its heads with %s",
                   (unsigned long long) kc_root_version (root), kc_fingerprint (server->head_key, fp),
                   kc_fingerprint (kc_signer_public_key (self->head_signer), ours));
}

static int
    s_rotate_curve (s_server_t *self);

//  Decides every pending submission inside one store transaction. Batches
//  after a root change in the same group are verified with the new root.
//  Returns how many were accepted (and, in S_APPLY, stored: all or none).
static size_t
s_decide (s_server_t *self, s_pending_t *pending, size_t count, uint64_t now, s_decide_mode_t mode)
{
    kc_why_t why;
    if (kc_store_begin (self->store, &why)) {
        for (size_t i = 0; i < count; i++) {
            pending [i].why = why;
        }
        return 0;
    }
    size_t accepted = 0;
    const kc_root_t *group_root = self->root;
    for (size_t i = 0; i < count; i++) {
        s_pending_t *p = &pending [i];
        kc_keep_entry_t entry = { .data = p->data, .size = p->size };
        if (kc_keep_decode (&entry, &p->why)) {
            continue;
        }
        p->batch = entry.batch;             //  the submission owns what was decoded
        p->root = entry.root;
        p->grant = entry.grant;
        p->use = entry.use;
        kc_store_set_submitter (self->store, p->has_submitter ? p->submitter : NULL);
        int found = kc_store_find_digest (self->store, entry.digest, &p->seq, p->chain, &p->why);
        if (found == 1) {
            p->status = "duplicate";
        }
        else
        if (found == 0 && p->root && mode == S_COMMIT && s_serves (self, p->root, &p->why)) {
            //  A single server refuses a root that would not name it; a
            //  cluster's members do not ask (a member removed by it leaves)
        }
        else
        if (found == 0 && p->use && p->use->rotation
        &&  (!p->has_submitter || memcmp (p->submitter, p->use->replaced.key, KC_KEY_BYTES))) {
            //  Not a rule agents can check (the handshake is not in the log),
            //  but this server admits a rotation only from the key it replaces
            kc_why (&p->why, "refused: a rotation by grant comes from the key it replaces");
        }
        else
        if (found == 0 && kc_keep_append (self->store, &entry, &group_root, now, &p->why) == 0) {
            p->seq = entry.seq;
            memcpy (p->chain, entry.chain, KC_HASH_BYTES);
            p->status = "accepted";
            p->accepted = kc_store_accepted (self->store);
            self->revoked_in_group |= entry.revokes;
            accepted++;
        }
    }
    if (mode == S_APPLY) {
        //  Everything the leader accepted, at its seq and with its chain
        for (size_t i = 0; i < count; i++) {
            s_pending_t *p = &pending [i];
            if (p->status && KC_STREQ (p->status, "accepted")
            &&  memcmp (p->chain, p->expect_chain, KC_HASH_BYTES)) {
                kc_why (&p->why, "stored with another chain than the leader's at seq %llu",
                        (unsigned long long) p->seq);
                p->status = NULL;
                accepted--;
            }
        }
    }
    if (accepted == 0 || mode == S_PROPOSE || (mode == S_APPLY && accepted < count)) {
        kc_store_rollback (self->store);
        self->revoked_in_group = false;
        if (mode == S_APPLY) {
            return 0;
        }
    }
    else
    if (kc_store_commit (self->store, &why)) {
        self->revoked_in_group = false;
        for (size_t i = 0; i < count; i++) {
            if (pending [i].status && KC_STREQ (pending [i].status, "accepted")) {
                pending [i].status = NULL;
                pending [i].why = why;
            }
        }
        accepted = 0;
    }
    else
    if (group_root != self->root) {
        //  From the change's seq on, everything is verified with the new root
        for (size_t i = 0; i < count; i++) {
            if (pending [i].root && pending [i].root == group_root) {
                kc_root_destroy (&self->root);
                self->root = pending [i].root;
                pending [i].root = kc_root_dup (self->root);
            }
        }
        s_rotate_head (self);
        kc_publish_root_changed (self->publish);
        if (s_rotate_curve (self)) {
            zsys_error ("kc_server: cannot serve after the key switch");
        }
        if (self->raft) {
            s_cluster_root_changed (self);
        }
    }
    return accepted;
}

//  The bytes of a submission as the log holds them.
static const uint8_t *
s_entry_data (const s_pending_t *p, size_t *size)
{
    if (p->grant || p->use) {
        *size = p->grant ? p->grant->size : p->use->size;
        return p->grant ? p->grant->data : p->use->data;
    }
    return p->root ? kc_root_data (p->root, size) : kc_batch_data (p->batch, size);
}

//  Publishes the accepted batches of a group, in order, grouped into UPDATE
//  messages, then a head.
static void
s_publish (s_server_t *self, s_pending_t *pending, size_t count)
{
    zmsg_t *update = NULL;
    size_t entries = 0, bytes = 0;
    for (size_t i = 0; i < count; i++) {
        s_pending_t *p = &pending [i];
        if (!p->status || !KC_STREQ (p->status, "accepted")) {
            continue;
        }
        size_t size;
        const uint8_t *data = s_entry_data (p, &size);
        if (update && (entries == KC_PROTO_BATCHES_MAX || bytes + size > KC_PUBLISH_UPDATE_BYTES)) {
            kc_publish_update (self->publish, &update);
            entries = bytes = 0;
        }
        if (!update) {
            update = kc_proto_entries ("UPDATE");
        }
        kc_proto_add_entry_meta (update, p->seq, p->chain, p->accepted,
                                 p->has_submitter ? p->submitter : NULL, data, size);
        entries++;
        bytes += size;
    }
    if (update) {
        kc_publish_update (self->publish, &update);
    }
}

//  The operators who signed a batch or root change, by name ("alice, bob").
static const char *
s_signers (s_server_t *self, const s_pending_t *p, char *text, size_t size)
{
    size_t at = 0;
    text [0] = 0;
    if (p->use) {
        char fp [KC_FINGERPRINT_CHARS + 1];
        snprintf (text, size, "the token of grant %s", kc_fingerprint (p->use->grant_key, fp));
        return text;
    }
    size_t count = p->root ? kc_root_signature_count (p->root)
                 : p->grant ? p->grant->signature_count : kc_batch_signature_count (p->batch);
    for (size_t i = 0; i < count && at < size; i++) {
        const uint8_t *key = p->root ? kc_root_signature (p->root, i).key
                           : p->grant ? p->grant->signatures [i].key : kc_batch_signature (p->batch, i).key;
        //  A name from the root in force, or from the root change itself
        int index = kc_root_operator_index (self->root, key);
        const kc_root_t *names = self->root;
        if (index < 0 && p->root) {
            index = kc_root_operator_index (p->root, key);
            names = p->root;
        }
        char fp [KC_FINGERPRINT_CHARS + 1];
        int n = snprintf (text + at, size - at, "%s%s", i ? ", " : "",
                          index >= 0 ? kc_root_operator (names, (size_t) index)->name
                                     : kc_fingerprint (key, fp));
        at += n > 0 ? (size_t) n : 0;
    }
    return text;
}

static void
s_answer (s_server_t *self, s_pending_t *pending, size_t count)
{
    char fp [KC_FINGERPRINT_CHARS + 1];
    for (size_t i = 0; i < count; i++) {
        s_pending_t *p = &pending [i];
        if (p->answered || !p->identity) {
            continue;
        }
        p->answered = true;
        kc_publish_sender_fp (zmsg_first (p->msg), fp, "????????");
        zmsg_t *reply;
        if (p->status) {
            reply = kc_proto_ok (p->seq, p->chain, p->status);
            bool fresh = KC_STREQ (p->status, "accepted");
            self->accepted += fresh;
            char signers [KC_WHY_BYTES], when [32];
            if (p->grant || p->use) {
                char gfp [KC_FINGERPRINT_CHARS + 1], name [KC_RECORD_NAME_MAX + 1];
                if (p->use) {
                    snprintf (name, sizeof name, "%.*s", p->use->record.name_size, p->use->record.name);
                }
                zsys_info ("kc_server: %s %s %s at seq %llu signed by %s; submitted by %s",
                           fresh ? "accepted" : "duplicate of",
                           p->use ? "registration by grant of" : p->grant->status == KC_STATUS_ACTIVE
                                  ? "grant" : "revocation of grant",
                           p->use ? name : kc_fingerprint (p->grant->grant_key, gfp), (unsigned long long) p->seq,
                           s_signers (self, p, signers, sizeof signers), fp);
            }
            else
            if (p->root) {
                zsys_info ("kc_server: %s root change to v%llu at seq %llu (expires %s) signed by %s; "
                           "submitted by %s", fresh ? "accepted" : "duplicate of",
                           (unsigned long long) kc_root_version (p->root), (unsigned long long) p->seq,
                           kc_time_format (kc_root_expires (p->root), when),
                           s_signers (self, p, signers, sizeof signers), fp);
            }
            else {
                zsys_info ("kc_server: %s batch %llu (%zu record%s) signed by %s; submitted by %s",
                           fresh ? "accepted" : "duplicate of", (unsigned long long) p->seq,
                           kc_batch_count (p->batch), kc_batch_count (p->batch) == 1 ? "" : "s",
                           s_signers (self, p, signers, sizeof signers), fp);
            }
        }
        else {
            reply = kc_proto_error ("%s", p->why.text);
            self->rejected++;
            self->rejected_by [kc_reason_class (p->why.text)]++;
            const uint8_t *data = zframe_data (zmsg_last (p->msg));
            size_t size = zframe_size (zmsg_last (p->msg));
            const char *what = kc_root_is_root (data, size) ? "root change"
                             : kc_grant_is_grant (data, size) ? "grant"
                             : kc_grant_is_use (data, size) ? "registration by grant" : "batch";
            kc_ratelog (self->log, KC_LOG_WARNING, p->root ? "rejected root change" : "rejected batch", fp,
                        "kc_server: rejected %s from %s: %s", what, fp, p->why.text);
        }
        s_reply (self, p->identity, p->delimiter, &reply);
    }
}

//  --- Enrolment (docs/protocol.md 6.4) ------------------------------------------

//  The tags of a stored record (its key's), into asked. 0 to go on.
static int
s_copy_tags (uint64_t seq, const uint8_t *key, const uint8_t *record, size_t size, void *arg)
{
    (void) seq;
    (void) key;
    kc_enrolment_t *asked = arg;
    kc_reader_t reader;
    kc_record_t decoded;
    kc_reader_init (&reader, record, size);
    if (kc_record_decode (&reader, &decoded, NULL) == 0) {
        const uint8_t *p = decoded.tags;
        for (size_t i = 0; i < decoded.tag_count; i++, p += 1 + *p) {
            memcpy (asked->tags [i], p + 1, *p);
            asked->tags [i][*p] = 0;
        }
        asked->tag_count = decoded.tag_count;
    }
    return 1;
}

//  Where a key stands in the store: -1 revoked (error set), 1 registered
//  and in force (*out says so), 0 neither.
static int
s_key_standing (s_server_t *self, const kc_enrolment_t *asked, kc_enrolment_t *out, zmsg_t **error)
{
    kc_store_key_t stored;
    kc_why_t why;
    char fp [KC_FINGERPRINT_CHARS + 1];
    if (kc_store_key (self->store, asked->key, &stored, &why)) {
        *error = kc_proto_error ("%s", why.text);
        return -1;
    }
    s_fp (asked->key, fp);
    if (stored.status == KC_STATUS_REVOKED) {
        kc_ratelog (self->log, KC_LOG_WARNING, "enrolment refused", fp,
                    "kc_server: enrolment of '%s' refused: key %s is revoked", asked->name, fp);
        *error = kc_proto_error ("refused: key %s is revoked, and revocation is terminal: make a new key "
                                 "and enrol that", fp);
        return -1;
    }
    if (stored.status == KC_STATUS_ACTIVE && (stored.not_after == 0 || kc_now () < stored.not_after)) {
        *out = *asked;
        out->state = KC_ENROL_REGISTERED;
        out->requested = out->expires = 0;
        out->seq = stored.seq;
        out->rotation = false;
        out->overlap = 0;
        snprintf (out->name, sizeof out->name, "%s", stored.name);
        out->tag_count = 0;                 //  the record holds them; ask the agent
        return 1;
    }
    return 0;
}

//  A new request (or the one kept) for asked, from msg's address; the reply.
static zmsg_t *
s_request (s_server_t *self, zmsg_t *msg, kc_enrolment_t *asked)
{
    const char *address = zframe_meta (zmsg_first (msg), "Peer-Address");
    address = address && *address ? address : "local";
    kc_escape (address, strlen (address), asked->source, sizeof asked->source, 0);
    kc_enrolment_t out;
    zmsg_t *error = NULL;
    int standing = s_key_standing (self, asked, &out, &error);
    if (standing < 0) {
        return error;
    }
    if (standing == 0) {
        kc_why_t why;
        char fp [KC_FINGERPRINT_CHARS + 1];
        s_fp (asked->key, fp);
        size_t before = kc_pending_count (self->pending);
        if (kc_pending_request (self->pending, asked, kc_now_ms (), &out, &why)) {
            kc_ratelog (self->log, KC_LOG_WARNING, "enrolment refused", asked->source,
                        "kc_server: enrolment of '%s' (%s) from %s %s", asked->name, fp, asked->source, why.text);
            return kc_proto_error ("%s", why.text);
        }
        if (kc_pending_count (self->pending) > before) {
            char code [KC_ENROL_CODE_CHARS + 1], old [KC_FINGERPRINT_CHARS + 1] = "";
            zsys_info ("kc_server: enrolment request from %s: '%s' %s%s%s, code %s (%zu pending)", out.source,
                       out.name, fp, out.rotation ? " to replace " : "", out.rotation ? s_fp (out.replaces, old) : "",
                       kc_enrol_code (out.key, out.name, (const char (*)[KC_RECORD_TAG_MAX + 1]) out.tags,
                                      out.tag_count, code), kc_pending_count (self->pending));
        }
    }
    return kc_proto_enrolment (&out);
}

//  The reply to ENROL: where this key stands. A member's key is registered
//  (from the store, the authority); a revoked key can never join; else the
//  request kept for it, or a new one.
static zmsg_t *
s_enrol (s_server_t *self, zmsg_t *msg, const kc_proto_msg_t *decoded)
{
    kc_enrolment_t asked = { 0 };
    kc_why_t why;
    if (kc_publish_sender (zmsg_first (msg), asked.key)) {
        return kc_proto_error ("refused: the request has no client key");
    }
    if (kc_enrolment_set (&asked, decoded->text, decoded->text_size, decoded->tags, decoded->tag_sizes,
                          decoded->tag_count, &why)) {
        return kc_proto_error ("refused: %s", why.text);
    }
    return s_request (self, msg, &asked);
}

//  The reply to ROTATE: a member in force asks for a new key to replace its
//  own, under its name and tags; the request waits for operators as an
//  enrolment does.
static zmsg_t *
s_rotate (s_server_t *self, zmsg_t *msg, const kc_proto_msg_t *decoded)
{
    kc_enrolment_t asked = { .rotation = true, .overlap = decoded->seq }, member;
    if (kc_publish_sender (zmsg_first (msg), asked.replaces)) {
        return kc_proto_error ("refused: the request has no client key");
    }
    memcpy (member.key, asked.replaces, KC_KEY_BYTES);
    member.name [0] = 0;
    zmsg_t *error = NULL;
    kc_enrolment_t standing;
    int rc = s_key_standing (self, &member, &standing, &error);
    if (rc <= 0) {
        zmsg_destroy (&error);
        return kc_proto_error ("refused: only a registered key in force can ask to be replaced");
    }
    if (memcmp (decoded->argument, asked.replaces, KC_KEY_BYTES) == 0) {
        return kc_proto_error ("refused: the new key is the key in use");
    }
    memcpy (asked.key, decoded->argument, KC_KEY_BYTES);
    snprintf (asked.name, sizeof asked.name, "%s", standing.name);
    kc_why_t why;
    if (kc_store_query (self->store, "key", asked.replaces, KC_KEY_BYTES, 1, s_copy_tags, &asked, &why) < 0) {
        return kc_proto_error ("%s", why.text);
    }
    return s_request (self, msg, &asked);
}

static int
s_add_pending (const uint8_t *data, size_t size, void *arg)
{
    zmsg_addmem ((zmsg_t *) arg, data, size);
    return zmsg_size ((zmsg_t *) arg) > KC_PROTO_PENDING_MAX;
}

//  REJECT: only with an operator's authorization, whatever the read policy.
static zmsg_t *
s_reject (s_server_t *self, zmsg_t *msg, const kc_proto_msg_t *decoded)
{
    uint8_t key [KC_KEY_BYTES];
    kc_why_t why;
    if (kc_publish_sender (zmsg_first (msg), key)) {
        return kc_proto_error ("refused: the request has no client key");
    }
    if (kc_access_verify (msg, self->root, kc_cert_public_key (self->cert), key, kc_now_ms (), &why) < 0) {
        return kc_proto_error ("refused: %s", why.text);
    }
    char reason [KC_RECORD_REASON_MAX + 1], fp [KC_FINGERPRINT_CHARS + 1];
    snprintf (reason, sizeof reason, "%.*s", (int) decoded->text_size, decoded->text);
    kc_enrolment_t out;
    if (kc_pending_reject (self->pending, decoded->argument, reason, kc_now_ms (), &out, &why)) {
        return kc_proto_error ("%s", why.text);
    }
    zsys_info ("kc_server: enrolment of '%s' %s rejected: %s", out.name, s_fp (out.key, fp), out.reason);
    return kc_proto_enrolment (&out);
}

//  After a group commit: the requests of keys just registered are done.
static void
s_enrolled (s_server_t *self, const s_pending_t *pending, size_t count)
{
    if (kc_pending_count (self->pending) == 0) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        if ((pending [i].batch || pending [i].use) && pending [i].status
        &&  KC_STREQ (pending [i].status, "accepted")) {
            kc_batch_t *batch = pending [i].use ? kc_grant_use_batch (pending [i].use) : NULL;
            kc_pending_forget (self->pending, batch ? batch : pending [i].batch);
            kc_batch_destroy (&batch);
        }
    }
}

//  What s_decide decoded of a submission; then the submission itself.
static void
s_pending_forget (s_pending_t *p)
{
    kc_batch_destroy (&p->batch);
    kc_root_destroy (&p->root);
    kc_grant_destroy (&p->grant);
    kc_grant_use_destroy (&p->use);
}

static void
s_pending_free (s_pending_t *p)
{
    s_pending_forget (p);
    zframe_destroy (&p->identity);
    zmsg_destroy (&p->msg);
}

static bool s_is_leader (s_server_t *self);
static void s_not_leader (s_server_t *self, kc_why_t *why);
static void s_propose_next (s_server_t *self);

static int
s_on_submit (zloop_t *loop, zsock_t *socket, void *arg)
{
    (void) loop;
    s_server_t *self = arg;
    static s_pending_t pending [GROUP_MAX];
    size_t count = 0;
    while (count < GROUP_MAX && (zsock_events (socket) & ZMQ_POLLIN)) {
        zmsg_t *msg = zmsg_recv (socket);
        if (!msg) {
            break;
        }
        zframe_t *identity = zmsg_pop (msg);
        bool delimiter = zmsg_first (msg) && zframe_size (zmsg_first (msg)) == 0 && zmsg_size (msg) > 1;
        if (delimiter) {
            zframe_t *empty = zmsg_pop (msg);
            zframe_destroy (&empty);
        }
        kc_proto_msg_t decoded;
        kc_why_t why, refusal;
        zmsg_t *reply = NULL;
        if (!identity || kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &decoded, &why)) {
            char fp [KC_FINGERPRINT_CHARS + 1];
            kc_publish_sender_fp (zmsg_first (msg), fp, "????????");
            kc_ratelog (self->log, KC_LOG_WARNING, "malformed submission", fp,
                        "kc_server: malformed submission from %s: %s", fp, why.text);
            reply = kc_proto_error ("malformed request: %s", why.text);
        }
        else
        if (decoded.type == KC_MSG_SUBMIT) {
            s_pending_t submission = { .identity = identity, .delimiter = delimiter, .msg = msg,
                                       .data = zframe_data (zmsg_last (msg)), .size = zframe_size (zmsg_last (msg)) };
            submission.has_submitter = kc_publish_sender (zmsg_first (msg), submission.submitter) == 0;
            kc_proto_msg_reset (&decoded);
            if (!self->raft) {
                pending [count++] = submission;
                continue;
            }
            if (s_is_leader (self)) {
                self->queue [self->queued++] = submission;
                if (self->queued == GROUP_MAX) {
                    //  Until the proposal in flight is done: the rest waits in libzmq
                    zloop_reader_end (self->loop, self->submit);
                    self->submit_paused = true;
                    break;
                }
                continue;
            }
            s_not_leader (self, &why);
            reply = kc_proto_error ("%s", why.text);
        }
        else
        if (decoded.type == KC_MSG_ROOTS) {
            //  Public, like the root file every node holds: the root
            //  changes in the log, for clients to follow from their pin
            reply = kc_proto_roots_reply ();
            if (kc_store_roots (self->store, kc_proto_add_root_fn, reply, &why) < 0) {
                zmsg_destroy (&reply);
                reply = kc_proto_error ("%s", why.text);
            }
        }
        else
        if (decoded.type == KC_MSG_ENROL) {
            reply = s_enrol (self, msg, &decoded);      //  open to every key, like SUBMIT
        }
        else
        if (decoded.type == KC_MSG_REJECT) {
            reply = s_reject (self, msg, &decoded);
        }
        else
        if (decoded.type == KC_MSG_ROTATE) {
            reply = s_rotate (self, msg, &decoded);
        }
        else
        if (s_read_refused (self, msg, &decoded, &refusal)) {
            reply = kc_proto_error ("%s", refusal.text);
        }
        else
        if (decoded.type == KC_MSG_QUERY) {
            reply = s_query (self, &decoded);
        }
        else
        if (decoded.type == KC_MSG_PENDING) {
            reply = kc_proto_pending_reply ();
            if (kc_pending_list (self->pending, kc_now_ms (), s_add_pending, reply, &why) < 0) {
                zmsg_destroy (&reply);
                reply = kc_proto_error ("%s", why.text);
            }
        }
        else
        if (decoded.type == KC_MSG_LOG) {
            //  The audit view: entries as accepted, with when and from whom
            reply = kc_proto_log_reply ();
            if (kc_store_log (self->store, decoded.seq, decoded.credit, LOG_BYTES, kc_proto_add_log_fn, reply,
                              &why) < 0) {
                zmsg_destroy (&reply);
                reply = kc_proto_error ("%s", why.text);
            }
        }
        else
        if (decoded.type == KC_MSG_METRICS) {
            char *text = NULL;
            size_t text_size = 0;
            FILE *out = open_memstream (&text, &text_size);
            s_metrics (self, out);
            fclose (out);
            static const char json [] = "{\"format\": \"prometheus text 0.0.4\"}";
            reply = kc_proto_status_reply (json, sizeof json - 1, text, text_size);
            free (text);
        }
        else {
            char *json, *text;
            size_t size, text_size;
            s_status (self, &json, &size, &text, &text_size);
            reply = kc_proto_status_reply (json, size, text, text_size);
            free (json);
            free (text);
        }
        kc_proto_msg_reset (&decoded);
        if (identity) {
            s_reply (self, identity, delimiter, &reply);
        }
        zmsg_destroy (&reply);
        zframe_destroy (&identity);
        zmsg_destroy (&msg);
    }
    if (self->raft) {
        s_propose_next (self);
    }
    if (count) {
        s_decide (self, pending, count, kc_now (), S_COMMIT);
        s_enrolled (self, pending, count);
        s_answer (self, pending, count);
        s_publish (self, pending, count);
        if (self->revoked_in_group) {
            //  Before anything later is published: a revoked reader must
            //  not read it
            kc_publish_end_refused (self->publish);
            self->revoked_in_group = false;
        }
        kc_publish_grown (self->publish);
        for (size_t i = 0; i < count; i++) {
            s_pending_free (&pending [i]);
        }
    }
    return 0;
}

//  --- Cluster (docs/cluster.md) ---------------------------------------------------
//
//  The leader decides a group of submissions against its store without
//  keeping anything (S_PROPOSE), proposes the accepted ones as one Raft
//  entry (kc_group) on top of the log head it saw, and answers once that
//  entry is committed and applied. Every member, the leader too, applies
//  committed entries in log order (S_APPLY): verified again, stored at the
//  leader's seq, time and chain, or not at all. One proposal is in flight at
//  a time; submissions that arrive meanwhile wait for the next (group commit).

typedef enum {
    S_ENTRY_APPLIED,                        //  stored now
    S_ENTRY_ALREADY,                        //  stored before (a restart replays the log)
    S_ENTRY_SUPERSEDED,                     //  proposed on a head another entry moved on
    S_ENTRY_REFUSED,                        //  not a valid continuation: nothing stored
    S_ENTRY_FATAL                           //  this member's store cannot follow the log
} s_entry_outcome_t;

static bool
s_is_leader (s_server_t *self)
{
    return self->raft && KC_STREQ (self->raft_state, "leader");
}

static const char *
s_member_name (s_server_t *self, raft_id id)
{
    for (size_t i = 0; i < self->member_count; i++) {
        if (self->members [i].id == id) {
            return self->member_names [i];
        }
    }
    return NULL;
}

//  The answer to a submission on a member that is not the leader: clients
//  (kc_client) go to the leader named, from the root's list of servers, or
//  try again shortly when there is none.
static void
s_not_leader (s_server_t *self, kc_why_t *why)
{
    const char *leader = self->leader != self->member_id ? s_member_name (self, self->leader) : NULL;
    if (leader) {
        kc_why (why, KC_NOT_LEADER "%s", leader);
    }
    else {
        kc_why (why, KC_NO_LEADER "member %s of %zu cannot reach a majority now (an election, or this member is "
                "in a minority); it still serves reads", s_member_name (self, self->member_id), self->member_count);
    }
}

static void
s_resume_submit (s_server_t *self)
{
    if (self->submit_paused && self->queued < GROUP_MAX) {
        self->submit_paused = false;
        zloop_reader (self->loop, self->submit, s_on_submit, self);
    }
}

//  Answers every submission of the proposal in flight not answered yet with
//  reason, and forgets them.
static void
s_flying_end (s_server_t *self, const char *reason)
{
    for (size_t i = 0; i < self->flying_count; i++) {
        s_pending_t *p = &self->flying [i];
        if (reason && !p->answered) {
            p->status = NULL;
            kc_why (&p->why, "%s", reason);
        }
        s_answer (self, p, 1);
        s_pending_free (p);
    }
    self->flying_count = 0;
    self->flying_tag = 0;
    self->flying_tries = 0;
}

//  Decides the submissions in flight and proposes what was accepted.
static void s_propose_next (s_server_t *self);

static void
s_propose_flying (s_server_t *self)
{
    //  Decided again (a superseded proposal): those answered already (a
    //  duplicate, a refusal) are done, whatever the new head would say
    size_t kept = 0;
    for (size_t i = 0; i < self->flying_count; i++) {
        s_pending_t *p = &self->flying [i];
        if (p->answered) {
            s_pending_free (p);
            continue;
        }
        s_pending_forget (p);
        p->status = NULL;
        self->flying [kept++] = *p;
    }
    self->flying_count = kept;
    uint64_t time_ms = kc_now_ms ();
    kc_group_t *group = calloc (1, sizeof *group);
    assert (group);
    uint8_t base_chain [KC_HASH_BYTES];
    memcpy (base_chain, kc_store_chain (self->store), KC_HASH_BYTES);
    group->base_seq = kc_store_seq (self->store);
    group->base_chain = base_chain;
    group->time_ms = time_ms;
    kc_store_set_time (self->store, time_ms);
    s_decide (self, self->flying, self->flying_count, time_ms / 1000, S_PROPOSE);
    kc_store_set_time (self->store, 0);
    for (size_t i = 0; i < self->flying_count; i++) {
        s_pending_t *p = &self->flying [i];
        if (p->status && KC_STREQ (p->status, "accepted")) {
            group->items [group->count++] = (kc_group_item_t) {
                .seq = p->seq, .chain = p->chain, .data = p->data, .size = p->size,
                .submitter = p->has_submitter ? p->submitter : NULL };
        }
        else {
            s_answer (self, p, 1);          //  a duplicate or a refusal: nothing to wait for
        }
    }
    kc_why_t why;
    size_t size = 0, count = group->count;
    uint8_t *data = count ? kc_group_encode (group, &size, &why) : NULL;
    free (group);
    if (!data) {
        s_flying_end (self, count ? why.text : NULL);
        s_propose_next (self);
        return;
    }
    self->flying_tag = ++self->next_tag;
    if (kc_raft_apply (self->raft, self->flying_tag, data, size, &why)) {
        s_flying_end (self, why.text);
    }
    free (data);
}

//  The queued submissions become the proposal in flight.
static void
s_propose_next (s_server_t *self)
{
    if (self->flying_tag || self->queued == 0) {
        return;
    }
    s_pending_t *spare = self->flying;
    self->flying = self->queue;
    self->flying_count = self->queued;
    self->queue = spare;
    self->queued = 0;
    s_resume_submit (self);
    s_propose_flying (self);
}

//  The chain after seq (0: the directory's genesis), or -1.
static int
s_chain_after (uint64_t seq, const uint8_t *chain, const uint8_t *data, size_t size, uint64_t accepted,
               const uint8_t *submitter, void *arg)
{
    (void) seq;
    (void) data;
    (void) size;
    (void) accepted;
    (void) submitter;
    memcpy (arg, chain, KC_HASH_BYTES);
    return -1;
}

static int
s_chain_at (s_server_t *self, uint64_t seq, uint8_t chain [static KC_HASH_BYTES])
{
    kc_why_t why;
    if (seq == kc_store_seq (self->store)) {
        memcpy (chain, kc_store_chain (self->store), KC_HASH_BYTES);
        return 0;
    }
    if (seq == 0) {
        kc_chain_genesis (kc_root_directory (self->root), chain);
        return 0;
    }
    return kc_store_read (self->store, seq - 1, 1, SIZE_MAX, s_chain_after, chain, &why) == 1 ? 0 : -1;
}

//  Applies the committed Raft entry index: what became of it.
static s_entry_outcome_t
s_apply_entry (s_server_t *self, uint64_t index, const uint8_t *data, size_t size)
{
    kc_why_clear (&self->entry_why);
    kc_group_t *group = malloc (sizeof *group);
    assert (group);
    if (kc_group_decode (data, size, group, &self->entry_why)) {
        zsys_warning ("kc_server: Raft entry %llu refused: %s", (unsigned long long) index, self->entry_why.text);
        free (group);
        return S_ENTRY_REFUSED;
    }
    const kc_group_item_t *last = &group->items [group->count - 1];
    uint64_t seq = kc_store_seq (self->store);
    uint8_t chain [KC_HASH_BYTES];
    s_entry_outcome_t outcome;
    if (seq >= last->seq && s_chain_at (self, last->seq, chain) == 0
    &&  memcmp (chain, last->chain, KC_HASH_BYTES) == 0) {
        outcome = S_ENTRY_ALREADY;          //  stored before this start: the log is replayed
    }
    else
    if (seq > group->base_seq) {
        outcome = S_ENTRY_SUPERSEDED;       //  another entry took these sequences first
        kc_why (&self->entry_why, "superseded: the log moved on from seq %llu before it was committed",
                (unsigned long long) group->base_seq);
    }
    else
    if (seq < group->base_seq || memcmp (kc_store_chain (self->store), group->base_chain, KC_HASH_BYTES)) {
        outcome = S_ENTRY_FATAL;
        kc_why (&self->entry_why, "this member's store is at seq %llu but the cluster's log goes on from seq %llu",
                (unsigned long long) seq, (unsigned long long) group->base_seq);
    }
    else {
        s_pending_t *items = calloc (group->count, sizeof *items);
        assert (items);
        for (size_t i = 0; i < group->count; i++) {
            const kc_group_item_t *item = &group->items [i];
            items [i].data = item->data;
            items [i].size = item->size;
            items [i].expect_chain = item->chain;
            items [i].has_submitter = item->submitter != NULL;
            if (item->submitter) {
                memcpy (items [i].submitter, item->submitter, KC_KEY_BYTES);
            }
        }
        kc_store_set_time (self->store, group->time_ms);
        size_t stored = s_decide (self, items, group->count, group->time_ms / 1000, S_APPLY);
        kc_store_set_time (self->store, 0);
        if (stored == group->count) {
            outcome = S_ENTRY_APPLIED;
            if (self->config.verbose) {
                zsys_info ("kc_server: applied Raft entry %llu: seq %llu to %llu", (unsigned long long) index,
                           (unsigned long long) group->items [0].seq, (unsigned long long) last->seq);
            }
            s_enrolled (self, items, group->count);
            s_publish (self, items, group->count);
            if (self->revoked_in_group) {
                kc_publish_end_refused (self->publish);
                self->revoked_in_group = false;
            }
            kc_publish_grown (self->publish);
        }
        else {
            outcome = S_ENTRY_REFUSED;
            for (size_t i = 0; i < group->count; i++) {
                if (!items [i].status || !KC_STREQ (items [i].status, "accepted")) {
                    kc_why (&self->entry_why, "seq %llu: %s", (unsigned long long) group->items [i].seq,
                            items [i].status ? "already in the log" : items [i].why.text);
                    break;
                }
            }
        }
        for (size_t i = 0; i < group->count; i++) {
            s_pending_free (&items [i]);
        }
        free (items);
    }
    if (outcome == S_ENTRY_REFUSED) {
        zsys_warning ("kc_server: Raft entry %llu refused, nothing stored: %s", (unsigned long long) index,
                      self->entry_why.text);
    }
    if (outcome == S_ENTRY_FATAL) {
        zsys_error ("kc_server: Raft entry %llu cannot be applied: %s; this member stops applying (start it "
                    "again with an empty data directory to catch up from the others)", (unsigned long long) index,
                    self->entry_why.text);
    }
    free (group);
    return outcome;
}

static uint64_t
s_frame_u64 (zmsg_t *msg)
{
    zframe_t *frame = zmsg_pop (msg);
    uint64_t value = frame && zframe_size (frame) == 8 ? kc_get_u64 (zframe_data (frame)) : 0;
    zframe_destroy (&frame);
    return value;
}

//  What became of the proposal in flight.
static void
s_proposal_done (s_server_t *self, int status, uint64_t index, const char *reason)
{
    if (status == 0 && index == self->entry_index && self->entry_outcome == S_ENTRY_APPLIED) {
        s_flying_end (self, NULL);
    }
    else
    if (status == 0 && self->entry_outcome == S_ENTRY_SUPERSEDED && ++self->flying_tries < 4 && s_is_leader (self)) {
        s_propose_flying (self);            //  decided again on the head that won
        return;
    }
    else {
        kc_why_t why;
        if (status == 0 && self->entry_outcome == S_ENTRY_SUPERSEDED) {
            //  The leader's store kept moving (it is applying what an
            //  earlier leader committed): clients try again
            kc_why (&why, "not acknowledged: %s; submit it again", self->entry_why.text);
        }
        else
        if (status == 0) {
            kc_why (&why, "not stored: %s", self->entry_why.text);
        }
        else
        if (status == RAFT_NOTLEADER || !s_is_leader (self)) {
            s_not_leader (self, &why);
        }
        else {
            kc_why (&why, "not acknowledged: %s before a majority of members had it (it may still be "
                    "committed: submit it again, a duplicate is recognized)", reason);
        }
        s_flying_end (self, why.text);
    }
    s_propose_next (self);
}

static void
s_raft_status (s_server_t *self, zmsg_t *msg)
{
    char *state = zmsg_popstr (msg);
    raft_id leader = s_frame_u64 (msg);
    char *address = zmsg_popstr (msg);
    uint64_t term = s_frame_u64 (msg);
    self->raft_last = s_frame_u64 (msg);
    s_frame_u64 (msg);                      //  last applied: entry_index says it here
    self->raft_refused = s_frame_u64 (msg);
    bool was_leader = s_is_leader (self);
    if (state && (!KC_STREQ (state, self->raft_state) || leader != self->leader || term != self->term)) {
        const char *name = s_member_name (self, leader);
        zsys_info ("kc_server: cluster term %llu: this member (%s) is %s; leader %s",
                   (unsigned long long) term, s_member_name (self, self->member_id), state,
                   name ? name : "unknown");
    }
    snprintf (self->raft_state, sizeof self->raft_state, "%s", state ? state : "unavailable");
    self->leader = leader;
    self->term = term;
    if (was_leader && !s_is_leader (self) && self->queued) {
        //  Waiting submissions go to the new leader (clients follow)
        kc_why_t why;
        s_not_leader (self, &why);
        for (size_t i = 0; i < self->queued; i++) {
            self->queue [i].why = why;
            s_answer (self, &self->queue [i], 1);
            s_pending_free (&self->queue [i]);
        }
        self->queued = 0;
        s_resume_submit (self);
    }
    zstr_free (&state);
    zstr_free (&address);
}

static int
s_on_raft (zloop_t *loop, zsock_t *events, void *arg)
{
    (void) loop;
    s_server_t *self = arg;
    zmsg_t *msg = zmsg_recv (events);
    char *kind = msg ? zmsg_popstr (msg) : NULL;
    if (kind && KC_STREQ (kind, "ENTRY")) {
        uint64_t index = s_frame_u64 (msg);
        zframe_t *data = zmsg_pop (msg);
        s_entry_outcome_t outcome = s_apply_entry (self, index, data ? zframe_data (data) : NULL,
                                                   data ? zframe_size (data) : 0);
        self->entry_index = index;
        self->entry_outcome = outcome;
        kc_raft_applied (self->raft, index, outcome != S_ENTRY_FATAL);
        zframe_destroy (&data);
        if (self->removed && !self->flying_tag) {
            zstr_free (&kind);
            zmsg_destroy (&msg);
            return -1;                      //  ends the loop: a clean shutdown
        }
    }
    else
    if (kind && KC_STREQ (kind, "DONE")) {
        uint64_t tag = s_frame_u64 (msg);
        zframe_t *code = zmsg_pop (msg);
        int32_t status = RAFT_IOERR;
        if (code && zframe_size (code) == sizeof status) {
            memcpy (&status, zframe_data (code), sizeof status);
        }
        zframe_destroy (&code);
        uint64_t index = s_frame_u64 (msg);
        s_frame_u64 (msg);                  //  the leader: STATUS says it too
        char *address = zmsg_popstr (msg), *reason = zmsg_popstr (msg);
        if (tag && tag == self->flying_tag) {
            s_proposal_done (self, status, index, reason ? reason : "");
        }
        zstr_free (&address);
        zstr_free (&reason);
        if (self->removed) {
            //  Removed while leading: its submitters answered, it stops
            zstr_free (&kind);
            zmsg_destroy (&msg);
            return -1;
        }
    }
    else
    if (kind && KC_STREQ (kind, "STATUS")) {
        s_raft_status (self, msg);
    }
    zstr_free (&kind);
    zmsg_destroy (&msg);
    return 0;
}

//  A member's Raft id, from its name: stable while members come and go.
static raft_id
s_member_id (const char *name)
{
    uint8_t hash [8];
    crypto_generichash (hash, sizeof hash, (const uint8_t *) name, strlen (name), NULL, 0);
    raft_id id = kc_get_u64 (hash) >> 1;
    return id ? id : 1;
}

//  The Raft address of the member called name: as --cluster lists it, else
//  its submission endpoint's host with the next port (tcp://H:P -> H:P+1,
//  as 'keyclone init --members' and 'cluster add' lay members out). 0 or -1.
static int
s_member_address (s_server_t *self, const char *name, const char *submit, char *address, size_t size)
{
    for (size_t i = 0; i < self->listed_count; i++) {
        if (KC_STREQ (self->listed [i].name, name)) {
            snprintf (address, size, "%s", self->listed [i].address);
            return 0;
        }
    }
    return kc_root_raft_address (submit, address, size);
}

//  The members of root (its servers) as the engine knows them; a member
//  joining (not in root yet) is added with its own key. Their count, or -1.
static int
s_cluster_members (s_server_t *self, const kc_root_t *root, kc_raft_member_t *members,
                   char names [][KC_ROOT_OPERATOR_NAME_MAX + 1], kc_why_t *why)
{
    size_t count = 0;
    for (size_t i = 0; i < kc_root_server_count (root) && count < KC_RAFT_MEMBERS_MAX; i++) {
        const kc_root_server_t *server = kc_root_server (root, i);
        kc_raft_member_t *member = &members [count];
        if (s_member_address (self, server->name, server->endpoints [KC_ENDPOINT_SUBMIT], member->address,
                              sizeof member->address)) {
            return kc_why (why, "no Raft address for member '%.64s' (give it in --cluster)", server->name);
        }
        member->id = s_member_id (server->name);
        memcpy (member->key, server->server_key, KC_KEY_BYTES);
        snprintf (names [count++], KC_ROOT_OPERATOR_NAME_MAX + 1, "%s", server->name);
    }
    if (!s_this_server (self, root) && self->config.member && count < KC_RAFT_MEMBERS_MAX) {
        kc_raft_member_t *member = &members [count];
        if (s_member_address (self, self->config.member, self->config.bind [KC_ENDPOINT_SUBMIT], member->address,
                              sizeof member->address)) {
            return kc_why (why, "no Raft address for this member '%.64s' (give it in --cluster)",
                           self->config.member);
        }
        member->id = s_member_id (self->config.member);
        memcpy (member->key, kc_cert_public_key (self->cert), KC_KEY_BYTES);
        snprintf (names [count++], KC_ROOT_OPERATOR_NAME_MAX + 1, "%s", self->config.member);
    }
    return (int) count;
}

//  After a root change in the log: the members are the new root's servers.
//  A member the root no longer names stops (it was removed).
static void
s_cluster_root_changed (s_server_t *self)
{
    kc_why_t why;
    int count = s_cluster_members (self, self->root, self->members, self->member_names, &why);
    if (count < 0) {
        zsys_error ("kc_server: %s", why.text);
        return;
    }
    self->member_count = (size_t) count;
    kc_raft_set_members (self->raft, self->members, self->member_count);
    if (s_this_server (self, self->root)) {
        self->named = true;
    }
    else
    if (self->named) {
        zsys_info ("kc_server: root v%llu no longer names this server: it left the cluster; stopping",
                   (unsigned long long) kc_root_version (self->root));
        self->removed = true;
    }
}

//  Starts this server's cluster member. Its members are the servers of
//  the root in force (Raft ids from their names); --cluster gives their Raft
//  addresses (by default: the submission port + 1). A first start
//  bootstraps the servers of the pinned root; a member that root does not
//  name joins instead, and a leader adds it once the log names it.
static int
s_cluster_start (s_server_t *self, kc_why_t *why)
{
    char *list = strdup (self->config.cluster), *save = NULL;
    assert (list);
    int rc = 0;
    for (char *item = strtok_r (list, ", ", &save); item && rc == 0; item = strtok_r (NULL, ", ", &save)) {
        char *equals = strchr (item, '=');
        if (!equals || equals == item || !equals [1]) {
            rc = kc_why (why, "--cluster: '%.100s' is not name=host:port", item);
            break;
        }
        *equals = 0;
        if (self->listed_count == KC_RAFT_MEMBERS_MAX) {
            rc = kc_why (why, "--cluster: more than %d members", KC_RAFT_MEMBERS_MAX);
            break;
        }
        if (strlen (item) > KC_ROOT_OPERATOR_NAME_MAX || strlen (equals + 1) > KC_RAFT_ADDRESS_MAX) {
            rc = kc_why (why, "--cluster: '%.64s' or its address is too long", item);
            break;
        }
        snprintf (self->listed [self->listed_count].name, sizeof self->listed [0].name, "%s", item);
        snprintf (self->listed [self->listed_count].address, sizeof self->listed [0].address, "%s", equals + 1);
        self->listed_count++;
    }
    free (list);
    if (rc) {
        return -1;
    }
    const kc_root_server_t *me = s_this_server (self, self->root);
    const char *name = me ? me->name : self->config.member;
    char fp [KC_FINGERPRINT_CHARS + 1];
    if (!name) {
        return kc_why (why, "this server's CURVE key %s is not the key of a server of root v%llu (a member "
                       "joining a cluster names itself with 'member')",
                       kc_fingerprint (kc_cert_public_key (self->cert), fp),
                       (unsigned long long) kc_root_version (self->root));
    }
    self->named = me != NULL;
    self->member_id = s_member_id (name);
    int count = s_cluster_members (self, self->root, self->members, self->member_names, why);
    if (count < 0) {
        return -1;
    }
    self->member_count = (size_t) count;
    if (self->member_count < 3) {
        return kc_why (why, "root v%llu names %zu server%s; a cluster has 3 or more (5 to survive two failures)",
                       (unsigned long long) kc_root_version (self->root), self->member_count,
                       self->member_count == 1 ? "" : "s");
    }
    //  The first configuration: the pinned root's servers, the same on
    //  every member that starts with it
    kc_root_t *pinned = kc_root_load (self->config.root_path, why);
    if (!pinned) {
        return -1;
    }
    kc_raft_member_t voters [KC_RAFT_MEMBERS_MAX];
    char voter_names [KC_RAFT_MEMBERS_MAX][KC_ROOT_OPERATOR_NAME_MAX + 1];
    bool joining = true;
    for (size_t i = 0; i < kc_root_server_count (pinned); i++) {
        joining = joining && !KC_STREQ (kc_root_server (pinned, i)->name, name);
    }
    int voter_count = joining ? 0 : s_cluster_members (self, pinned, voters, voter_names, why);
    kc_root_destroy (&pinned);
    if (voter_count < 0) {
        return -1;
    }
    char dir [PATH_MAX];
    if (self->config.raft_dir) {
        snprintf (dir, sizeof dir, "%s", self->config.raft_dir);
    }
    else {
        const char *slash = strrchr (self->config.store_path, '/');
        snprintf (dir, sizeof dir, "%.*s%sraft", slash ? (int) (slash - self->config.store_path) : 0,
                  self->config.store_path, slash ? "/" : "");
    }
    kc_raft_config_t config = { .id = self->member_id, .dir = dir, .cert = self->cert, .members = self->members,
                                .count = self->member_count, .voters = voters, .voter_count = (size_t) voter_count,
                                .join = joining, .election_ms = (unsigned) self->config.election_ms,
                                .heartbeat_ms = (unsigned) self->config.raft_heartbeat_ms };
    //  What makes an entry durable in a cluster is the Raft log, on a
    //  majority of members; the store is made from it, and a store that
    //  lost its last commits in a power cut gets them again when libraft
    //  replays the log at the start (entries stored are skipped). One fsync
    //  less on the way to every answer.
    if (kc_db_exec (kc_store_db (self->store), "PRAGMA synchronous = NORMAL", why)) {
        return -1;
    }
    self->raft = kc_raft_new (&config, why);
    if (!self->raft) {
        return -1;
    }
    snprintf (self->raft_state, sizeof self->raft_state, "follower");
    self->queue = calloc (GROUP_MAX, sizeof *self->queue);
    self->flying = calloc (GROUP_MAX, sizeof *self->flying);
    assert (self->queue && self->flying);
    const char *address = "";
    for (size_t i = 0; i < self->member_count; i++) {
        address = self->members [i].id == self->member_id ? self->members [i].address : address;
    }
    zsys_info ("kc_server: cluster member %s of %zu, Raft at %s, directory %s%s", name, self->member_count,
               address, dir, joining ? "; joining: a leader adds this member once the log names it" : "");
    return 0;
}

//  --- Status -----------------------------------------------------------------

//  METRICS: the Prometheus text exposition (docs/operator.md section 6).
static void
s_metrics (s_server_t *self, FILE *out)
{
    kc_metrics_t m = { .out = out };
    char labels [200], hex [65];
    uint64_t seq = kc_store_seq (self->store);
    snprintf (labels, sizeof labels, "version=\"%s\",directory=\"%.16s\"", kc_version (),
              kc_hex (kc_root_directory (self->root), 32, hex));
    kc_metric (&m, "keyclone_server_info", "gauge", "The server's version and directory.", labels, 1);
    kc_metric (&m, "keyclone_server_seq", "gauge", "The log's sequence number.", "", (double) seq);
    kc_metric (&m, "keyclone_server_keys", "gauge", "Keys stored.", "", (double) kc_store_key_count (self->store));
    kc_metric (&m, "keyclone_server_revoked_keys", "gauge", "Revoked keys stored.", "",
               (double) kc_store_revoked_count (self->store));
    kc_metric (&m, "keyclone_server_root_expiry_timestamp_seconds", "gauge", "When the root in force expires.", "",
               (double) kc_root_expires (self->root));
    kc_metric (&m, "keyclone_server_accepted_total", "counter", "Submissions accepted into the log.", "",
               (double) self->accepted);
    for (int r = 0; r < KC_REASONS; r++) {
        snprintf (labels, sizeof labels, "reason=\"%s\"", kc_reason_name ((kc_reason_t) r));
        kc_metric (&m, "keyclone_server_rejected_total", "counter", "Submissions refused, by class of reason.",
                   labels, (double) self->rejected_by [r]);
    }
    kc_metric (&m, "keyclone_server_enrolments_pending", "gauge", "Enrolment requests kept (pending or rejected).",
               "", (double) kc_pending_count (self->pending));
    kc_metric (&m, "keyclone_server_enrolments_refused_total", "counter", "Enrolment requests refused.", "",
               (double) kc_pending_refused (self->pending));
    kc_publish_metrics (self->publish, &m, "keyclone_server");
}

static void
s_status (s_server_t *self, char **json, size_t *size, char **text, size_t *text_size)
{
    FILE *out = open_memstream (json, size), *human = open_memstream (text, text_size);
    char hex [65], when [32];
    uint64_t seq = kc_store_seq (self->store);
    fprintf (out, "{");
    kc_json_field_str (out, true, "role", "server");
    kc_json_field_str (out, false, "version", kc_version ());
    kc_json_field_str (out, false, "directory", kc_hex (kc_root_directory (self->root), 32, hex));
    kc_json_field_u64 (out, false, "seq", seq);
    kc_json_field_str (out, false, "chain", kc_hex (kc_store_chain (self->store), 32, hex));
    kc_json_field_u64 (out, false, "keys", kc_store_key_count (self->store));
    kc_json_field_u64 (out, false, "revoked", kc_store_revoked_count (self->store));
    kc_json_field_u64 (out, false, "root_version", kc_root_version (self->root));
    kc_json_field_u64 (out, false, "root_expires", kc_root_expires (self->root));
    kc_json_field_u64 (out, false, "accepted", self->accepted);
    kc_json_field_u64 (out, false, "rejected", self->rejected);
    kc_json_field_u64 (out, false, "syncs", kc_publish_syncs (self->publish));
    if (self->raft) {
        const char *leader = s_member_name (self, self->leader);
        fprintf (out, ", \"cluster\": {");
        kc_json_field_str (out, true, "member", s_member_name (self, self->member_id));
        kc_json_field_str (out, false, "state", self->raft_state);
        kc_json_field_str (out, false, "leader", leader ? leader : "");
        kc_json_field_u64 (out, false, "term", self->term);
        kc_json_field_u64 (out, false, "members", self->member_count);
        kc_json_field_u64 (out, false, "refused", self->raft_refused);
        kc_json_field_u64 (out, false, "last_index", self->raft_last);
        kc_json_field_u64 (out, false, "applied_index", self->entry_index);
        fprintf (out, "}");
        fprintf (human, "cluster member %s of %zu: %s, term %llu, leader %s\n", s_member_name (self, self->member_id),
                 self->member_count, self->raft_state, (unsigned long long) self->term, leader ? leader : "none");
        kc_raft_ask_status (self->raft);    //  fresh figures for the next STATUS
    }
    fprintf (human, "server: seq %llu, %llu keys (%llu revoked), root v%llu expires %s\n"
             "  chain %.16s..., accepted %llu batches, rejected %llu, %zu syncs running\n",
             (unsigned long long) seq, (unsigned long long) kc_store_key_count (self->store),
             (unsigned long long) kc_store_revoked_count (self->store),
             (unsigned long long) kc_root_version (self->root),
             kc_time_format (kc_root_expires (self->root), when), hex,
             (unsigned long long) self->accepted, (unsigned long long) self->rejected,
             kc_publish_syncs (self->publish));
    fprintf (human, "  keyclone-server %s\n", kc_version ());
    kc_publish_status_agents (self->publish, out, human);
    kc_publish_status_witnesses (self->publish, out, human);
    fprintf (out, "}");
    fclose (out);
    fclose (human);
}

//  --- Timers and start-up ---------------------------------------------------

//  From 30 days before the root expires, says so once a day: after that,
//  every batch is refused and agents go stale.
static void
s_root_warning (s_server_t *self)
{
    uint64_t now = kc_now (), expires = kc_root_expires (self->root);
    int64_t mono = zclock_mono ();
    if (expires - now >= ROOT_WARN_DAYS * 86400ULL && now < expires) {
        return;
    }
    bool expired = now >= expires;
    if (self->root_warned && mono - self->root_warned < 86400LL * 1000
    &&  expired == self->root_expired) {
        return;
    }
    self->root_warned = mono;
    self->root_expired = expired;
    char when [32];
    if (now >= expires) {
        zsys_error ("kc_server: the root v%llu expired at %s: every batch is refused and agents "
                    "are stale until it is renewed", (unsigned long long) kc_root_version (self->root),
                    kc_time_format (expires, when));
    }
    else {
        zsys_warning ("kc_server: the root v%llu expires at %s, in %llu days: renew it before then",
                      (unsigned long long) kc_root_version (self->root), kc_time_format (expires, when),
                      (unsigned long long) ((expires - now) / 86400));
    }
}

static volatile sig_atomic_t s_reload_wanted;

void
kc_server_reload_wanted (void)
{
    s_reload_wanted = 1;
}


static int
    s_on_heartbeat (zloop_t *loop, int timer_id, void *arg);

//  SIGHUP: the configuration built again; what can change while running
//  changes (heartbeat, head-valid), and the rest is named as needing a
//  restart. Logs go to standard output: nothing to reopen.
static void
s_reload (s_server_t *self)
{
    kc_server_config_t fresh;
    kc_log_reopen_logged ("kc_server");
    if (!self->config.reload || self->config.reload (self->config.reload_arg, &fresh)) {
        zsys_warning ("kc_server: SIGHUP: the configuration could not be read again; running as before");
        return;
    }
    char changed [512] = "", restart [512] = "";
    size_t n = 0, r = 0;
    if (fresh.heartbeat_ms != self->config.heartbeat_ms) {
        n += (size_t) snprintf (changed + n, sizeof changed - n, "%sheartbeat %d -> %d ms", n ? ", " : "",
                                self->config.heartbeat_ms, fresh.heartbeat_ms);
        self->config.heartbeat_ms = fresh.heartbeat_ms;
        zloop_timer_end (self->loop, self->heartbeat_timer);
        self->heartbeat_timer = zloop_timer (self->loop, (size_t) fresh.heartbeat_ms, 0, s_on_heartbeat, self);
    }
    if (fresh.head_valid_ms != self->config.head_valid_ms) {
        n += (size_t) snprintf (changed + n, sizeof changed - n, "%shead-valid %d -> %d ms", n ? ", " : "",
                                self->config.head_valid_ms, fresh.head_valid_ms);
        self->config.head_valid_ms = fresh.head_valid_ms;
    }
    if (fresh.enrol_expiry_ms != self->config.enrol_expiry_ms || fresh.enrol_max != self->config.enrol_max
    ||  fresh.enrol_rate != self->config.enrol_rate) {
        n += (size_t) snprintf (changed + n, sizeof changed - n, "%senrol expiry %llu s, max %d, rate %d/min",
                                n ? ", " : "", (unsigned long long) fresh.enrol_expiry_ms / 1000,
                                fresh.enrol_max, fresh.enrol_rate);
        self->config.enrol_expiry_ms = fresh.enrol_expiry_ms;
        self->config.enrol_max = fresh.enrol_max;
        self->config.enrol_rate = fresh.enrol_rate;
        kc_pending_config_t enrol = s_enrol_config (&self->config);
        kc_pending_configure (self->pending, &enrol);
    }
    struct { bool differs; const char *name; } later [] = {
        { !kc_same_text (fresh.root_path, self->config.root_path), "root" },
        { !kc_same_text (fresh.curve_path, self->config.curve_path), "curve" },
        { !kc_same_text (fresh.head_path, self->config.head_path), "head" },
        { !kc_same_text (fresh.store_path, self->config.store_path), "store" },
        { !kc_same_text (fresh.bind [0], self->config.bind [0]) || !kc_same_text (fresh.bind [1], self->config.bind [1])
          || !kc_same_text (fresh.bind [2], self->config.bind [2]), "bind" },
        { fresh.read_any != self->config.read_any, "read" },
        { fresh.sndhwm != self->config.sndhwm, "sndhwm" }
    };
    for (size_t i = 0; i < sizeof later / sizeof later [0]; i++) {
        if (later [i].differs) {
            r += (size_t) snprintf (restart + r, sizeof restart - r, "%s%s", r ? ", " : "", later [i].name);
        }
    }
    zsys_info ("kc_server: SIGHUP: configuration read again: %s%s", n ? "applied " : "nothing that applies "
               "while running changed", changed);
    if (r) {
        zsys_warning ("kc_server: SIGHUP: %s changed in the configuration; restart the server to apply",
                      restart);
    }
}

static int
s_on_heartbeat (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_server_t *self = arg;
    if (s_reload_wanted) {
        s_reload_wanted = 0;
        s_reload (self);
    }
    kc_publish_head (self->publish);
    kc_ratelog_flush (self->log);
    size_t expired = kc_pending_expire (self->pending, kc_now_ms ());
    if (expired) {
        zsys_info ("kc_server: %zu enrolment request%s expired unanswered", expired, expired == 1 ? "" : "s");
    }
    s_root_warning (self);
    kc_publish_tick (self->publish);
    return 0;
}

static zsock_t *
s_socket (s_server_t *self, int type, const char *domain, const char *endpoint, int attempts)
{
    zsock_t *socket = zsock_new (type);
    assert (socket);
    zsock_set_linger (socket, 0);
    //  Security options through libzmq, read back (kc_sockopt.h)
    kc_why_t why;
    char monitor [KC_TRACK_ENDPOINT_MAX];
    kc_track_t *track = kc_publish_track (self->publish);
    bool tracked = track && !KC_STREQ (domain, ZAP_DOMAIN_SUBMIT);
    if (kc_sockopt_curve_server (socket, kc_cert_public_key (self->cert),
                                 kc_cert_secret_key (self->cert), &why)
    ||  kc_sockopt_zap (socket, domain, &why)
    ||  kc_sockopt_maxmsgsize (socket, type == ZMQ_ROUTER && KC_STREQ (domain, ZAP_DOMAIN_SNAPSHOT)
                                       ? 4096 : KC_BATCH_BYTES_MAX + 4096, &why)
    ||  (tracked && (kc_track_install (socket, monitor, &why)
                 ||  kc_track_watch (track, monitor, &why)))) {
        zsys_error ("kc_server: %s socket: %s", domain, why.text);
        zsock_destroy (&socket);
        return NULL;
    }
    if (type == ZMQ_ROUTER) {
        zsock_set_router_mandatory (socket, 1);
        zsock_set_sndtimeo (socket, 0);
    }
    if (type == ZMQ_PUB) {
        zsock_set_sndhwm (socket, self->config.sndhwm);
    }
    //  After a key switch the old listener closes in libzmq's I/O thread:
    //  its port may stay taken for a moment
    int attempt = 0;
    while (zsock_bind (socket, "%s", endpoint) < 0) {
        if (zmq_errno () != EADDRINUSE || ++attempt >= attempts) {
            zsys_error ("kc_server: cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
            if (tracked) {
                kc_track_uninstall (socket);
            }
            zsock_destroy (&socket);
            break;
        }
        zclock_sleep (20);
    }
    return socket;
}

//  Creates the three sockets with the server's CURVE key, bound to
//  self->endpoints, and watches them in the loop when there is one.
static int
s_open_sockets (s_server_t *self, int attempts)
{
    self->snapshot = s_socket (self, ZMQ_ROUTER, ZAP_DOMAIN_SNAPSHOT,
                               self->endpoints [KC_ENDPOINT_SNAPSHOT], attempts);
    self->updates = s_socket (self, ZMQ_PUB, ZAP_DOMAIN_UPDATES, self->endpoints [KC_ENDPOINT_UPDATES],
                              attempts);
    self->submit = s_socket (self, ZMQ_ROUTER, ZAP_DOMAIN_SUBMIT, self->endpoints [KC_ENDPOINT_SUBMIT],
                             attempts);
    if (!self->snapshot || !self->updates || !self->submit) {
        return -1;
    }
    kc_publish_set_sockets (self->publish, self->snapshot, self->updates);
    if (self->loop) {
        zloop_reader (self->loop, self->snapshot, kc_publish_on_snapshot, self->publish);
        zloop_reader (self->loop, self->submit, s_on_submit, self);
    }
    return 0;
}

static void
s_close_sockets (s_server_t *self)
{
    zsock_t **sockets [] = { &self->submit, &self->updates, &self->snapshot };
    for (size_t i = 0; i < sizeof sockets / sizeof sockets [0]; i++) {
        if (*sockets [i]) {
            if (self->loop) {
                zloop_reader_end (self->loop, *sockets [i]);
            }
            kc_track_uninstall (*sockets [i]);
            zsock_destroy (sockets [i]);
        }
    }
    if (self->publish) {
        kc_publish_set_sockets (self->publish, NULL, NULL);
    }
}

//  The end of a CURVE key rotation's overlap: the staged key becomes the
//  server's key (its files first: the secret, then the public half), and
//  the sockets are bound again with it. Every connection made with the old
//  key closes; agents reconnect with the new one and resume by sequence.
//  Returns 0, or -1 when the sockets cannot be bound again (the server stops).
static int
s_switch_curve (s_server_t *self)
{
    char staged [4200], staged_secret [4300], secret [4300], path [4200];
    s_next_curve_path (self, staged, sizeof staged, "");
    snprintf (staged_secret, sizeof staged_secret, "%s_secret", staged);
    snprintf (secret, sizeof secret, "%s_secret", self->config.curve_path);
    if (rename (staged_secret, secret) || rename (staged, self->config.curve_path)) {
        zsys_error ("kc_server: cannot install the new CURVE key '%s': %s", staged, strerror (errno));
    }
    s_next_curve_path (self, path, sizeof path, ".overlap");
    unlink (path);
    s_next_curve_path (self, path, sizeof path, ".switch-at");
    unlink (path);
    kc_cert_destroy (&self->cert);
    self->cert = self->cert_next;
    self->cert_next = NULL;
    self->switch_at = 0;
    char fp [KC_FINGERPRINT_CHARS + 1];
    kc_fingerprint (kc_cert_public_key (self->cert), fp);
    if (!self->snapshot) {
        zsys_info ("kc_server: CURVE key rotation: serving with the new key %s", fp);
        return 0;
    }
    size_t syncs = kc_publish_syncs (self->publish);
    zsock_set_linger (self->updates, 500);      //  what was published still goes out
    s_close_sockets (self);
    if (s_open_sockets (self, REBIND_ATTEMPTS)) {
        zsys_error ("kc_server: CURVE key rotation: cannot bind the sockets again with the new key; "
                    "stopping (a restart serves with it)");
        return -1;
    }
    zsys_info ("kc_server: CURVE key rotation: the overlap ended; serving with the new key %s "
               "(connections made with the old key closed, %zu syncs ended; agents resume)", fp, syncs);
    return 0;
}

static int
    s_on_switch_due (zloop_t *loop, int timer_id, void *arg);

//  One timer for the end of the overlap (at most a day ahead: it re-arms).
static void
s_arm_switch (s_server_t *self)
{
    if (!self->loop || !self->cert_next || self->switch_timer != -1) {
        return;
    }
    uint64_t now = kc_now_ms ();
    uint64_t wait = self->switch_at > now ? self->switch_at - now : 0;
    self->switch_timer = zloop_timer (self->loop, (size_t) (wait < 86400000 ? wait : 86400000) + 1, 1,
                                      s_on_switch_due, self);
}

static int
s_on_switch_due (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_server_t *self = arg;
    self->switch_timer = -1;
    if (kc_now_ms () < self->switch_at) {
        s_arm_switch (self);
        return 0;
    }
    return s_switch_curve (self);
}

//  The overlap of a CURVE key rotation, in ms: DIR/server/curve-next.overlap
//  (written by `keyclone root rotate-server-key --overlap`), else a day.
static uint64_t
s_curve_overlap (s_server_t *self)
{
    char path [4200];
    s_next_curve_path (self, path, sizeof path, ".overlap");
    uint64_t overlap = CURVE_OVERLAP_MS;
    kc_why_t why;
    size_t size;
    uint8_t *text = kc_file_exists (path) ? kc_file_read (path, 64, false, &size, &why) : NULL;
    unsigned long long value;
    char extra;
    if (text && sscanf ((char *) text, "%llu%c", &value, &extra) >= 1 && value <= 366ULL * 86400000) {
        overlap = value;
    }
    else
    if (text) {
        zsys_warning ("kc_server: '%s' holds no overlap in ms; using %lld ms", path,
                      (long long) CURVE_OVERLAP_MS);
    }
    kc_file_free (&text, false);
    return overlap;
}

//  The root in force names a new CURVE key for this server (the staged
//  one): serve the old key until the overlap has passed (its end recorded
//  in DIR/server/curve-next.switch-at, so a restart keeps it), then switch.
//  At start-up, before the sockets exist, a past end switches at once.
static int
s_rotate_curve (s_server_t *self)
{
    const kc_root_server_t *server = s_this_server (self, self->root);
    if (!server || self->cert_next
    ||  memcmp (server->server_key, kc_cert_public_key (self->cert), KC_KEY_BYTES) == 0) {
        return 0;
    }
    char staged [4200], path [4200];
    kc_why_t why;
    s_next_curve_path (self, staged, sizeof staged, "");
    kc_cert_t *next = kc_cert_load_secret (staged, &why);
    if (!next || memcmp (kc_cert_public_key (next), server->server_key, KC_KEY_BYTES)) {
        zsys_error ("kc_server: the root in force names a CURVE key this server does not hold%s%s",
                    next ? "" : ": ", next ? "" : why.text);
        kc_cert_destroy (&next);
        return 0;
    }
    self->cert_next = next;
    s_next_curve_path (self, path, sizeof path, ".switch-at");
    uint64_t now = kc_now_ms ();
    size_t size;
    uint8_t *text = kc_file_exists (path) ? kc_file_read (path, 64, false, &size, &why) : NULL;
    unsigned long long at = 0;
    if (!text || sscanf ((char *) text, "%llu", &at) != 1 || at == 0) {
        //  Never before the change and a head have reached the connected
        //  agents, even with no overlap asked for
        uint64_t overlap = s_curve_overlap (self);
        at = now + (overlap > CURVE_OVERLAP_MIN_MS ? overlap : CURVE_OVERLAP_MIN_MS);
        char line [32];
        int length = snprintf (line, sizeof line, "%llu\n", at);
        if (kc_file_write_atomic (path, line, (size_t) length, 0644, &why)) {
            zsys_warning ("kc_server: %s (a restart would start the overlap again)", why.text);
        }
    }
    kc_file_free (&text, false);
    self->switch_at = at;
    char fp [KC_FINGERPRINT_CHARS + 1], when [32];
    if (at <= now) {
        return s_switch_curve (self);
    }
    zsys_info ("kc_server: CURVE key rotation to %s: serving the old key until %s, then the new one",
               kc_fingerprint (server->server_key, fp), kc_time_format (at / 1000, when));
    s_arm_switch (self);
    return 0;
}

static int
s_load (s_server_t *self, kc_why_t *why)
{
    //  The pinned root (the genesis, usually) is checked as of its own
    //  creation: it may have expired since, when root changes in the log
    //  renewed it. Its expiry, and the current root's, is judged below and
    //  in s_root_warning.
    self->cert = kc_cert_load_secret (self->config.curve_path, why);
    self->head_signer = self->cert ? kc_signer_load (self->config.head_path, why) : NULL;
    if (!self->head_signer
    ||  kc_keep_open (self->config.root_path, self->config.store_path, &self->store, &self->root, why)) {
        return -1;
    }
    kc_pending_config_t enrol = s_enrol_config (&self->config);
    self->pending = kc_pending_new (kc_store_db (self->store), &enrol, why);
    if (!self->pending) {
        return -1;
    }
    kc_why_t reason;
    if (s_serves (self, self->root, &reason)) {
        if (self->config.cluster && self->config.member && !s_this_server (self, self->root)) {
            //  A member joining a cluster: the log names it later
            zsys_info ("kc_server: root v%llu does not name this server (yet): joining the cluster as '%s'",
                       (unsigned long long) kc_root_version (self->root), self->config.member);
            return 0;
        }
        return kc_why (why, "'%s' and '%s' are not keys of a server of the root in force: %s",
                       self->config.curve_path, self->config.head_path, reason.text);
    }
    //  A rotation committed before a crash, its key not installed yet
    s_rotate_head (self);
    return s_rotate_curve (self);
}

static void
s_destroy (s_server_t *self)
{
    //  The engine first: it may wait for an entry this thread will not store
    kc_raft_destroy (&self->raft);
    for (size_t i = 0; i < self->queued; i++) {
        s_pending_free (&self->queue [i]);
    }
    for (size_t i = 0; i < self->flying_count; i++) {
        s_pending_free (&self->flying [i]);
    }
    free (self->queue);
    free (self->flying);
    zloop_destroy (&self->loop);
    s_close_sockets (self);
    zsock_destroy (&self->zap);
    kc_publish_destroy (&self->publish);    //  saves the acknowledgements
    kc_ratelog_destroy (&self->log);
    kc_pending_destroy (&self->pending);
    kc_store_destroy (&self->store);
    kc_signer_destroy (&self->head_signer);
    kc_signer_destroy (&self->head_previous);
    kc_cert_destroy (&self->cert);
    kc_cert_destroy (&self->cert_next);
    kc_root_destroy (&self->root);
}

int
kc_server_run (const kc_server_config_t *config)
{
    s_server_t self = { .config = *config, .switch_timer = -1 };
    kc_why_t why;
    int rc = 1;
    self.log = kc_ratelog_new ("kc_server", LOG_PERIOD_MS, LOG_PER_PEER, LOG_PER_KIND);
    if (s_load (&self, &why)) {
        zsys_error ("kc_server: %s", why.text);
        goto cleanup;
    }
    kc_publish_config_t serving = {
        .name = "kc_server", .store = self.store, .root = s_root_in_force, .heads = s_heads,
        .domain = s_other_domain, .arg = &self,
        .log = self.log, .read_any = config->read_any, .sync_idle_ms = config->sync_idle_ms,
        .verbose = config->verbose
    };
    self.publish = kc_publish_new (&serving);
    //  The ZAP handler first: a CURVE socket must never run without it
    self.zap = zsock_new (ZMQ_REP);
    if (zsock_bind (self.zap, "inproc://zeromq.zap.01")) {
        zsys_error ("kc_server: cannot bind the ZAP handler (another in this process?)");
        goto cleanup;
    }
    const char **endpoints = self.endpoints;
    const kc_root_server_t *named = s_this_server (&self, self.root);
    for (int i = 0; i < KC_ENDPOINTS; i++) {
        if (!config->bind [i] && !named) {
            zsys_error ("kc_server: a member joining a cluster binds where its configuration says (bind/...): "
                        "the root in force does not name it yet");
            goto cleanup;
        }
        snprintf (self.endpoint_text [i], sizeof self.endpoint_text [i], "%s",
                  config->bind [i] ? config->bind [i] : named->endpoints [i]);
        endpoints [i] = self.endpoint_text [i];
    }
    self.loop = zloop_new ();
    kc_publish_set_loop (self.publish, self.loop);
    if (s_open_sockets (&self, 1)) {
        goto cleanup;
    }
    if (config->cluster) {
        if (s_cluster_start (&self, &why)) {
            zsys_error ("kc_server: %s", why.text);
            goto cleanup;
        }
        zloop_reader (self.loop, kc_raft_events (self.raft), s_on_raft, &self);
    }
    zloop_reader (self.loop, self.zap, kc_publish_on_zap, self.publish);
    self.heartbeat_timer = zloop_timer (self.loop, (size_t) config->heartbeat_ms, 0, s_on_heartbeat, &self);
    s_arm_switch (&self);
    char hex [65];
    zsys_info ("kc_server: directory %.16s... seq %llu, %llu keys; snapshot %s, updates %s, "
               "submit %s; read = %s", kc_hex (kc_root_directory (self.root), 32, hex),
               (unsigned long long) kc_store_seq (self.store),
               (unsigned long long) kc_store_key_count (self.store),
               endpoints [0], endpoints [1], endpoints [2], config->read_any ? "any" : "members");
    zloop_start (self.loop);
    zsys_info ("kc_server: shutting down at seq %llu", (unsigned long long) kc_store_seq (self.store));
    rc = 0;
cleanup:
    s_destroy (&self);
    return rc;
}
