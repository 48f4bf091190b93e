/*  =========================================================================
    kc_auth - keyclone's ZAP handler actor with live revocation. Decisions
    come from the agent's cache (kc_lookup, kc_zap); connections are matched
    to keys by kc_track, which also closes those whose key stops being
    trusted.
    =========================================================================
*/
#include "kc_auth.h"
#include "kc_sockopt.h"
#include "kc_track.h"
#include "kc_z85.h"
#include "kc_zap.h"

#define SWEEP_EVERY_MS      1000                //  expiry needs no event
#define LOG_EVERY_MS        5000

typedef struct {
    kc_auth_config_t config;
    char *cache_path;
    zsock_t *pipe, *zap, *events;
    zloop_t *loop;
    kc_lookup_t *lookup;
    char lookup_error [KC_WHY_BYTES];
    zhashx_t *policies;                     //  domain -> required tags
    kc_track_t *track;                      //  connections and their keys
    uint64_t allowed, denied, malformed;
    int64_t last_log;
    char last_text [KC_WHY_BYTES];          //  the line last logged
    int64_t last_sweep;                     //  expiry check of open connections
    int64_t fresh_until;                    //  zclock_mono: the agent's last "head" event
                                            //  + stale-after
    const char *failure;                    //  why the actor cannot serve
} s_auth_t;

void
kc_auth_config_defaults (kc_auth_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->stale_after_ms = 5000;
    config->refresh_ms = 100;
}

//  --- Connections ---------------------------------------------------------

//  kc_track asks whether a matched connection may stay open.
static bool
s_keep (const uint8_t key [KC_KEY_BYTES], void *arg, char *label, size_t label_size)
{
    s_auth_t *self = arg;
    kc_lookup_entry_t entry;
    kc_verdict_t verdict = self->lookup ? kc_lookup_key (self->lookup, key, &entry)
                                        : KC_VERDICT_TRUSTED;
    if (verdict == KC_VERDICT_TRUSTED) {
        return true;
    }
    char fp [KC_FINGERPRINT_CHARS + 1];
    snprintf (label, label_size, "%s (%s): key %s", *entry.name ? entry.name : "key",
              kc_fingerprint (key, fp), kc_verdict_name (verdict));
    return false;
}

//  Shuts down every open connection whose key is no longer trusted.
static void
s_check_connections (s_auth_t *self)
{
    if (self->lookup) {
        kc_track_sweep (self->track);
    }
}

//  --- The cache -------------------------------------------------------------

static void
s_refresh (s_auth_t *self, bool check)
{
    kc_why_t why;
    if (!self->lookup) {
        self->lookup = kc_lookup_new (self->cache_path, &why);
        if (!self->lookup) {
            if (strcmp (why.text, self->lookup_error)) {
                zsys_warning ("kc_auth: %s; denying every peer until it can be read", why.text);
                snprintf (self->lookup_error, sizeof self->lookup_error, "%s", why.text);
            }
            return;
        }
        kc_lookup_set_refresh (self->lookup, self->config.refresh_ms);
        zsys_info ("kc_auth: answering from '%s' (%zu keys)", self->cache_path,
                   kc_lookup_size (self->lookup));
        self->lookup_error [0] = 0;
    }
    int rc = kc_lookup_refresh (self->lookup, &why);
    if (rc < 0 && strcmp (why.text, self->lookup_error)) {
        zsys_warning ("kc_auth: %s; answering from what was read before", why.text);
        snprintf (self->lookup_error, sizeof self->lookup_error, "%s", why.text);
    }
    if (rc > 0 || check) {
        s_check_connections (self);
    }
}

static int
s_on_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_auth_t *self = arg;
    int64_t now = zclock_mono ();
    //  Expiry needs no event: look at open connections once a second
    bool sweep = now - self->last_sweep >= SWEEP_EVERY_MS;
    if (sweep) {
        self->last_sweep = now;
    }
    s_refresh (self, sweep);
    return 0;
}

//  The agent's events: "head" (a fresh head, every heartbeat) only says
//  the directory is fresh; "stale" that it is not; anything else means
//  the cache changed.
static int
s_on_event (zloop_t *loop, zsock_t *events, void *arg)
{
    (void) loop;
    s_auth_t *self = arg;
    bool changed = false;
    while (zsock_events (events) & ZMQ_POLLIN) {
        zmsg_t *msg = zmsg_recv (events);
        zframe_t *name = msg ? zmsg_first (msg) : NULL;
        if (name && zframe_streq (name, "head")) {
            self->fresh_until = zclock_mono () + self->config.stale_after_ms;
        }
        else
        if (name && zframe_streq (name, "stale")) {
            self->fresh_until = 0;
        }
        else {
            changed |= msg != NULL;
        }
        zmsg_destroy (&msg);
    }
    if (changed) {
        s_refresh (self, true);
    }
    return 0;
}

//  Fresh when the agent said so within stale-after (its "head" events), or
//  when the cache's own head moved that recently.
static bool
s_fresh (s_auth_t *self)
{
    return zclock_mono () < self->fresh_until
        || kc_lookup_head_age (self->lookup) <= self->config.stale_after_ms;
}

//  --- ZAP ---------------------------------------------------------------------

//  Logs a denial; the same line repeated is logged at most every 5 s.
static void
s_log (s_auth_t *self, const char *format, const char *text)
{
    int64_t now = zclock_mono ();
    if (self->config.verbose || strcmp (text, self->last_text)
    ||  now - self->last_log >= LOG_EVERY_MS) {
        self->last_log = now;
        snprintf (self->last_text, sizeof self->last_text, "%s", text);
        zsys_warning (format, text);
    }
}

static int
s_on_zap (zloop_t *loop, zsock_t *zap, void *arg)
{
    (void) loop;
    s_auth_t *self = arg;
    zmsg_t *msg = zmsg_recv (zap);
    if (!msg) {
        return 0;
    }
    kc_zap_request_t request;
    kc_zap_reply_t reply;
    kc_why_t why;
    kc_track_ticket_t ticket;               //  the request dies before matching
    bool allowed = false;
    if (kc_zap_parse (msg, &request, &reply, &why)) {
        self->malformed++;
        s_log (self, "kc_auth: %s", why.text);
    }
    else
    if (!self->lookup) {
        memset (&reply, 0, sizeof reply);
        reply.status = 500;
        snprintf (reply.text, sizeof reply.text, "keyclone cache is not available");
        self->denied++;
    }
    else {
        kc_lookup_entry_t entry;
        kc_lookup_key (self->lookup, request.key, &entry);
        bool stale = self->config.fail_closed && !s_fresh (self);
        kc_zap_decide (&request, &entry, stale, zhashx_lookup (self->policies, request.domain),
                       &reply);
        if (reply.status == 200) {
            self->allowed++;
            allowed = true;
            kc_track_allowing (self->track, request.address, request.key, &ticket);
        }
        else {
            self->denied++;
            s_log (self, "kc_auth: denied: %s", reply.text);
        }
        if (self->config.verbose && reply.status == 200) {
            zsys_info ("kc_auth: allowed %s from %s on '%s'", reply.user, request.address,
                       request.domain);
        }
    }
    zmsg_t *answer = kc_zap_reply (request.request_id, request.request_id_size, &reply);
    zmsg_destroy (&msg);
    zmsg_send (&answer, zap);
    if (allowed) {
        kc_track_allowed (self->track, &ticket);
    }
    return 0;
}

//  --- Commands ---------------------------------------------------------------

static int
s_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void) loop;
    s_auth_t *self = arg;
    zmsg_t *msg = zmsg_recv (pipe);
    char *command = msg ? zmsg_popstr (msg) : NULL;
    int rc = 0;
    if (!command || KC_STREQ (command, "$TERM")) {
        rc = -1;
    }
    else
    if (KC_STREQ (command, "POLICY")) {
        char *domain = zmsg_popstr (msg), *tags = zmsg_popstr (msg);
        if (domain && tags) {
            zhashx_update (self->policies, domain, tags);
            tags = NULL;
        }
        zstr_free (&domain);
        zstr_free (&tags);
        zsock_signal (pipe, 0);
    }
    else
    if (KC_STREQ (command, "WATCH")) {
        char *endpoint = zmsg_popstr (msg);
        kc_why_t why;
        int ok = endpoint && kc_track_watch (self->track, endpoint, &why) == 0;
        if (!ok) {
            zsys_error ("kc_auth: %s", endpoint ? why.text : "WATCH without an endpoint");
        }
        zstr_free (&endpoint);
        zsock_signal (pipe, ok ? 0 : 1);
    }
    else
    if (KC_STREQ (command, "STATS")) {
        kc_track_update (self->track);
        kc_track_stats_t track;
        kc_track_stats (self->track, &track);
        zsock_send (pipe, "888888", self->allowed, self->denied, self->malformed,
                    track.closed, track.unmatched, track.open);
    }
    else
    if (KC_STREQ (command, "READY")) {
        zstr_send (pipe, self->failure ? self->failure : "OK");
    }
    else
    if (KC_STREQ (command, "CHECK")) {
        s_refresh (self, true);
        zsock_signal (pipe, 0);
    }
    zstr_free (&command);
    zmsg_destroy (&msg);
    return rc;
}

static void
s_destroy (s_auth_t *self)
{
    zloop_destroy (&self->loop);
    //  Unbound first, in this thread: a closed socket leaves its inproc
    //  endpoint to libzmq's reaper thread for a moment, and a handshake that
    //  connected to it then would wait for an answer that never comes
    //  instead of being refused at once
    if (self->zap) {
        zsock_unbind (self->zap, "inproc://zeromq.zap.01");
    }
    zsock_destroy (&self->zap);
    zsock_destroy (&self->events);
    //  Sockets still protected keep their monitors read (kc_track_destroy)
    //  and, with no handler bound, refuse every new peer
    kc_track_destroy (&self->track);
    zhashx_destroy (&self->policies);
    kc_lookup_destroy (&self->lookup);
    free (self->cache_path);
    free ((char *) self->config.events_endpoint);
    free (self);
}

void
kc_auth (zsock_t *pipe, void *args)
{
    s_auth_t *self = calloc (1, sizeof *self);
    assert (self);
    self->config = *(const kc_auth_config_t *) args;
    const char *dir = self->config.agent_dir;
    self->cache_path = self->config.cache_path ? strdup (self->config.cache_path)
                     : dir ? zsys_sprintf ("%s/agent.db", dir) : strdup ("");
    self->config.cache_path = self->cache_path;
    self->config.events_endpoint = self->config.events_endpoint ? strdup (self->config.events_endpoint)
                                 : dir ? zsys_sprintf ("ipc://%s/events.ipc", dir) : NULL;
    self->config.agent_dir = NULL;
    self->pipe = pipe;
    self->policies = zhashx_new ();
    zhashx_set_destructor (self->policies, (zhashx_destructor_fn *) zstr_free);
    self->track = kc_track_new (s_keep, self);
    self->loop = zloop_new ();
    kc_track_set_loop (self->track, self->loop);
    //  The owner stops the actor ($TERM), not SIGINT: the application may
    //  still ask for statistics while it shuts down
    zloop_set_nonstop (self->loop, true);
    zloop_reader (self->loop, pipe, s_on_pipe, self);
    self->zap = zsock_new (ZMQ_REP);
    if (zsock_bind (self->zap, "inproc://zeromq.zap.01")) {
        //  Another handler owns ZAP in this context: say so, then wait for $TERM
        self->failure = "cannot bind inproc://zeromq.zap.01: another ZAP handler runs in this process";
        zsock_signal (pipe, 0);
        zloop_start (self->loop);
        s_destroy (self);
        return;
    }
    zloop_reader (self->loop, self->zap, s_on_zap, self);
    if (self->config.events_endpoint) {
        self->events = zsock_new_sub (self->config.events_endpoint, "");
        zloop_reader (self->loop, self->events, s_on_event, self);
    }
    //  With the agent's events, changes wake the handler and a timer is only
    //  needed for expiry (once a second); without them, it polls the cache
    int refresh = self->config.refresh_ms > 0 ? self->config.refresh_ms : 100;
    zloop_timer (self->loop, (size_t) (self->events && refresh < SWEEP_EVERY_MS ? SWEEP_EVERY_MS : refresh),
                 0, s_on_timer, self);
    s_refresh (self, false);
    zsock_signal (pipe, 0);
    zloop_start (self->loop);
    s_destroy (self);
}

//  --- Application side --------------------------------------------------------

zactor_t *
kc_auth_new (const kc_auth_config_t *config, kc_why_t *why)
{
    if (!config->cache_path && !config->agent_dir) {
        kc_why (why, "kc_auth needs the agent's directory or its cache path");
        return NULL;
    }
    //  zactor_new discards the start-up status: ask for it
    zactor_t *self = zactor_new (kc_auth, (void *) config);
    char *ready = zstr_send (self, "READY") == 0 ? zstr_recv (self) : NULL;
    if (!ready || !KC_STREQ (ready, "OK")) {
        kc_why (why, "%s", ready ? ready : "the handler did not start");
        zactor_destroy (&self);
    }
    zstr_free (&ready);
    return self;
}

int
kc_auth_policy (zactor_t *self, const char *domain, const char *tags)
{
    zstr_sendx (self, "POLICY", domain, tags, NULL);
    return zsock_wait (self);
}

int
kc_auth_protect (zactor_t *self, zsock_t *socket, const char *domain, kc_why_t *why)
{
    if (!domain || !*domain) {
        return kc_why (why, "a protected socket needs a ZAP domain");
    }
    //  Through libzmq and read back: czmq 4.2.1's zsock_set_zap_enforce_domain
    //  does nothing, and without enforcement a dead handler means "allow"
    char endpoint [KC_TRACK_ENDPOINT_MAX];
    if (kc_sockopt_zap (socket, domain, why) || kc_track_install (socket, endpoint, why)) {
        return kc_why_prefix (why, "cannot protect the socket");
    }
    zstr_sendx (self, "WATCH", endpoint, NULL);
    if (zsock_wait (self)) {
        return kc_why (why, "the handler cannot watch the socket");
    }
    return 0;
}

int
kc_auth_stats (zactor_t *self, kc_auth_stats_t *stats)
{
    if (zstr_send (self, "STATS")) {
        return -1;
    }
    zsock_set_rcvtimeo (self, 2000);
    int rc = zsock_recv (self, "888888", &stats->allowed, &stats->denied, &stats->malformed,
                         &stats->closed, &stats->unmatched, &stats->open);
    zsock_set_rcvtimeo (self, -1);
    return rc;
}

void
kc_auth_check (zactor_t *self)
{
    zstr_send (self, "CHECK");
    zsock_wait (self);
}

int
kc_auth_curve_authorizer (const uint8_t client_key [KC_KEY_BYTES], const kc_meta_t *metadata,
                          void *arg, kc_curve_identity_t *identity)
{
    kc_lookup_t *lookup = arg;
    kc_lookup_entry_t entry;
    if (kc_lookup_key (lookup, client_key, &entry) != KC_VERDICT_TRUSTED) {
        return KC_CURVE_DENY;
    }
    //  The client's head (docs/protocol.md 9.4): two chains at one seq,
    //  both signed by a server of our root, prove the server showed us two
    //  logs. Reported to our agent; denied under fail-closed
    size_t head_size;
    const uint8_t *head = metadata ? kc_meta_get (metadata, KC_CURVE_HEAD, &head_size) : NULL;
    uint8_t proof [2 * KC_LOOKUP_HEAD_BYTES];
    kc_why_t why;
    int conflict = head ? kc_lookup_check_head (lookup, head, head_size, proof, &why) : 0;
    if (conflict) {
        char fp [KC_FINGERPRINT_CHARS + 1];
        zsys_warning ("kc_auth: peer %s: %s", kc_fingerprint (client_key, fp), why.text);
    }
    if (conflict > 0) {
        kc_why_t reported;
        if (kc_lookup_report (lookup, proof, &reported)) {
            zsys_warning ("kc_auth: the proof of equivocation was not reported: %s", reported.text);
        }
        if (kc_lookup_fail_closed (lookup)) {
            return KC_CURVE_DENY;
        }
    }
    snprintf (identity->name, sizeof identity->name, "%s", entry.name);
    identity->tag_count = 0;
    const char *p = entry.tags;
    while (*p && identity->tag_count < KC_RECORD_TAGS_MAX) {
        size_t size = strcspn (p, ",");
        snprintf (identity->tags [identity->tag_count++], KC_RECORD_TAG_MAX + 1, "%.*s", (int) size, p);
        p += size + (p [size] == ',');
    }
    return KC_CURVE_ALLOW;
}

//  --- Self test -----------------------------------------------------------------

void
kc_auth_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_auth: ");
    }
    kc_why_t why;
    kc_auth_config_t config;
    kc_auth_config_defaults (&config);
    assert (kc_auth_new (&config, &why) == NULL && strstr (why.text, "agent's directory"));

    //  agent_dir alone: DIR/agent.db (missing here: every peer is refused
    //  with 500) and ipc://DIR/events.ipc
    char dir [] = "/tmp/kc_auth_test.XXXXXX";
    assert (mkdtemp (dir));
    config.agent_dir = dir;
    zactor_t *auth = kc_auth_new (&config, &why);
    assert (auth);
    zsock_t *client = zsock_new_req ("inproc://zeromq.zap.01");
    assert (client);
    uint8_t key [KC_KEY_BYTES] = { 1 };
    zmsg_t *request = zmsg_new ();
    zmsg_addstr (request, "1.0");
    zmsg_addstr (request, "7");
    zmsg_addstr (request, "app");
    zmsg_addstr (request, "127.0.0.1");
    zmsg_addstr (request, "");
    zmsg_addstr (request, "CURVE");
    zmsg_addmem (request, key, sizeof key);
    assert (zmsg_send (&request, client) == 0);
    zmsg_t *reply = zmsg_recv (client);
    assert (reply && zmsg_size (reply) == 6);
    char *version = zmsg_popstr (reply), *id = zmsg_popstr (reply);
    char *status = zmsg_popstr (reply), *text = zmsg_popstr (reply);
    assert (KC_STREQ (version, "1.0") && KC_STREQ (id, "7") && KC_STREQ (status, "500"));
    assert (strstr (text, "cache is not available"));
    zstr_free (&version);
    zstr_free (&id);
    zstr_free (&status);
    zstr_free (&text);
    zmsg_destroy (&reply);
    kc_auth_stats_t stats;
    assert (kc_auth_stats (auth, &stats) == 0 && stats.denied == 1 && stats.allowed == 0);
    zsock_destroy (&client);
    zactor_destroy (&auth);
    assert (rmdir (dir) == 0);
    if (verbose) {
        printf ("OK\n");
    }
}
