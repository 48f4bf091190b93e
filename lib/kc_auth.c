/*  =========================================================================
    kc_auth - keyclone's ZAP handler actor with live revocation.

    Matching connections to keys: each protected socket is monitored
    (ACCEPTED, DISCONNECTED and CLOSED carry the connection's fd). When the
    handler allows a key, the connection being authenticated is one whose
    peer has the request's IP, that no key is matched to yet, and that is
    waiting for this answer: on TCP it has sent exactly the greeting and
    WELCOME and nothing more. If several such connections wait (one host
    connecting several times at once), the reply goes out first and the
    one that then sends READY is it. The handler does not wait for that
    READY while it can keep answering: the answer stays pending (checked
    every MONITOR_DRAIN_MS and before each later decision) and the handler only
    blocks when a later request for a different key could be from one of
    the same connections, so the READY it waits for is unambiguous.
    =========================================================================
*/
#include "kc_auth.h"
#include "kc_sock.h"
#include "kc_z85.h"
#include "kc_zap.h"

#include <sys/socket.h>
#include <unistd.h>

#define HANDSHAKE_SENT      (64 + 2 + 168)      //  greeting + WELCOME frame
#define MATCH_WAIT_US       100000              //  blocked for READY, when ambiguous
#define PENDING_WAIT_US     2000000             //  for READY, not blocked
#define FDS_MAX             65536
#define CANDIDATES_MAX      64
#define PENDING_MAX         64                  //  answers whose READY is awaited
#define MONITOR_DRAIN_MS    10                  //  besides before every decision
#define LOG_EVERY_MS        5000

typedef struct {
    uint64_t serial;                        //  tells a reused fd from the old one
    zsock_t *monitor;                       //  of the socket that accepted it
    bool tcp;
    char ip [KC_SOCK_ADDRESS_MAX];
    uint16_t port;
    bool matched;
    uint8_t key [KC_KEY_BYTES];
} s_conn_t;

//  An allowed key whose connection is one of several candidates
typedef struct {
    uint8_t key [KC_KEY_BYTES];
    int fds [CANDIDATES_MAX];
    uint64_t serials [CANDIDATES_MAX];
    uint64_t sent [CANDIDATES_MAX];         //  bytes each had sent at the reply
    size_t count;
    int64_t deadline;                       //  zclock_usecs
} s_pending_t;

typedef struct {
    kc_auth_config_t config;
    char *cache_path;
    zsock_t *pipe, *zap, *events;
    zloop_t *loop;
    kc_lookup_t *lookup;
    char lookup_error [KC_WHY_BYTES];
    zhashx_t *policies;                     //  domain -> required tags
    s_conn_t *conns [FDS_MAX];              //  by fd
    int fd_limit;                           //  above every fd in conns
    uint64_t serials;                       //  last s_conn_t.serial given
    s_pending_t pending [PENDING_MAX];      //  oldest first
    size_t pending_count;
    zlistx_t *monitors;                     //  PAIR sockets
    kc_auth_stats_t stats;
    int64_t last_log;
    char last_text [KC_WHY_BYTES];          //  the line last logged
    int64_t last_sweep;                     //  expiry check of open connections
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

static void
s_forget (s_auth_t *self, int fd)
{
    if (fd >= 0 && fd < FDS_MAX && self->conns [fd]) {
        self->stats.open -= self->conns [fd]->matched;
        free (self->conns [fd]);
        self->conns [fd] = NULL;
    }
}

//  Reads a protected socket's pending monitor events. Monitors are read
//  when a decision needs them and every MONITOR_DRAIN_MS, not on every
//  event: waking for each costs a handshake more than a tenth.
static void
s_read_monitor (s_auth_t *self, zsock_t *monitor)
{
    while (zsock_events (monitor) & ZMQ_POLLIN) {
        zmsg_t *msg = zmsg_recv (monitor);
        zframe_t *event = msg ? zmsg_first (msg) : NULL;
        if (event && zframe_size (event) == 6) {
            uint16_t type;
            int32_t value;
            memcpy (&type, zframe_data (event), 2);
            memcpy (&value, zframe_data (event) + 2, 4);
            if (type == ZMQ_EVENT_ACCEPTED && value >= 0 && value < FDS_MAX) {
                s_forget (self, value);
                s_conn_t *conn = calloc (1, sizeof *conn);
                assert (conn);
                conn->serial = ++self->serials;
                conn->monitor = monitor;
                conn->tcp = kc_sock_peer (value, conn->ip, &conn->port) == 1;
                self->conns [value] = conn;
                if (value >= self->fd_limit) {
                    self->fd_limit = value + 1;
                }
            }
            else
            if ((type == ZMQ_EVENT_DISCONNECTED || type == ZMQ_EVENT_CLOSED)
            &&  value >= 0 && value < FDS_MAX && self->conns [value]
            &&  self->conns [value]->monitor == monitor) {
                //  Another socket may have accepted the fd again already:
                //  monitors are read one after the other
                s_forget (self, value);
            }
            else
            if (type == ZMQ_EVENT_MONITOR_STOPPED) {
                void *handle = zlistx_find (self->monitors, monitor);
                if (handle) {
                    zlistx_delete (self->monitors, handle);
                }
                zsock_destroy (&monitor);
                zmsg_destroy (&msg);
                return;
            }
        }
        zmsg_destroy (&msg);
    }
}

//  Reads every pending monitor event, so the connection table is current.
static void
s_drain_monitors (s_auth_t *self)
{
    zsock_t *monitor = zlistx_first (self->monitors);
    while (monitor) {
        zsock_t *next = zlistx_next (self->monitors);
        s_read_monitor (self, monitor);
        monitor = next;
    }
}

//  The connections that could be the one being authenticated.
static size_t
s_candidates (s_auth_t *self, const char *address, s_pending_t *into)
{
    into->count = 0;
    for (int fd = 0; fd < self->fd_limit && into->count < CANDIDATES_MAX; fd++) {
        s_conn_t *conn = self->conns [fd];
        if (!conn || conn->matched || (conn->tcp && !KC_STREQ (conn->ip, address))) {
            continue;
        }
        uint64_t bytes = 0, received;
        bool known = conn->tcp && kc_sock_bytes (fd, &bytes, &received) == 0;
        if (known && bytes != HANDSHAKE_SENT) {
            continue;                       //  not at the ZAP step of its handshake
        }
        into->fds [into->count] = fd;
        into->serials [into->count] = conn->serial;
        into->sent [into->count] = known ? bytes : UINT64_MAX;
        into->count++;
    }
    return into->count;
}

static void
s_match (s_auth_t *self, int fd, const uint8_t *key)
{
    self->conns [fd]->matched = true;
    memcpy (self->conns [fd]->key, key, KC_KEY_BYTES);
    self->stats.open++;
}

//  Shuts the matched connection on fd down if its key is no longer trusted.
static void
s_close_if_untrusted (s_auth_t *self, int fd)
{
    s_conn_t *conn = self->conns [fd];
    kc_lookup_entry_t entry;
    kc_verdict_t verdict = self->lookup ? kc_lookup_key (self->lookup, conn->key, &entry)
                                        : KC_VERDICT_TRUSTED;
    if (verdict == KC_VERDICT_TRUSTED) {
        return;
    }
    //  Make sure the fd still is that connection before shutting it down
    char ip [KC_SOCK_ADDRESS_MAX], fp [KC_FINGERPRINT_CHARS + 1];
    uint16_t port;
    int family = kc_sock_peer (fd, ip, &port);
    if (family >= 0 && (!conn->tcp || (KC_STREQ (ip, conn->ip) && port == conn->port))) {
        shutdown (fd, SHUT_RDWR);
        self->stats.closed++;
        zsys_info ("kc_auth: closed the connection of %s (%s) from %s:%u: key %s",
                   *entry.name ? entry.name : "key", kc_fingerprint (conn->key, fp),
                   conn->tcp ? conn->ip : "ipc", conn->port, kc_verdict_name (verdict));
    }
    s_forget (self, fd);
}

//  True when the pending answer is settled: its connection has sent more
//  than it had (READY), and is matched, or the wait is over.
static bool
s_pending_settle (s_auth_t *self, s_pending_t *pending, int64_t now)
{
    for (size_t i = 0; i < pending->count; i++) {
        int fd = pending->fds [i];
        s_conn_t *conn = self->conns [fd];
        uint64_t bytes, received;
        if (conn && conn->serial == pending->serials [i] && !conn->matched
        &&  pending->sent [i] != UINT64_MAX
        &&  kc_sock_bytes (fd, &bytes, &received) == 0 && bytes > pending->sent [i]) {
            s_match (self, fd, pending->key);
            s_close_if_untrusted (self, fd);   //  revoked while it was pending
            return true;
        }
    }
    if (now >= pending->deadline) {
        self->stats.unmatched++;
        return true;
    }
    return false;
}

//  Brings the connection table up to date: reads the monitors, then
//  settles the pending answers it can, oldest first. Returns how many were
//  settled.
static size_t
s_pending_check (s_auth_t *self)
{
    s_drain_monitors (self);
    if (self->pending_count == 0) {
        return 0;
    }
    int64_t now = zclock_usecs ();
    size_t kept = 0, settled = self->pending_count;
    for (size_t i = 0; i < self->pending_count; i++) {
        if (!s_pending_settle (self, &self->pending [i], now)) {
            if (kept != i) {
                self->pending [kept] = self->pending [i];
            }
            kept++;
        }
    }
    settled -= kept;
    self->pending_count = kept;
    return settled;
}

static bool
s_pending_overlaps (const s_pending_t *a, const s_pending_t *b)
{
    for (size_t i = 0; i < a->count; i++) {
        for (size_t j = 0; j < b->count; j++) {
            if (a->fds [i] == b->fds [j] && a->serials [i] == b->serials [j]) {
                return true;
            }
        }
    }
    return false;
}

//  True when a pending answer for another key could be for one of these
//  candidates: a READY would then be ambiguous. With drop, such answers
//  are given up (unmatched) instead.
static bool
s_pending_conflict (s_auth_t *self, const s_pending_t *candidates, bool drop)
{
    bool conflict = false;
    size_t kept = 0;
    for (size_t i = 0; i < self->pending_count; i++) {
        const s_pending_t *pending = &self->pending [i];
        bool this_one = memcmp (pending->key, candidates->key, KC_KEY_BYTES)
                     && s_pending_overlaps (pending, candidates);
        conflict |= this_one;
        if (drop && this_one) {
            self->stats.unmatched++;
        }
        else
        if (kept++ != i) {
            self->pending [kept - 1] = *pending;
        }
    }
    if (drop) {
        self->pending_count = kept;
    }
    return conflict;
}

//  Blocks until no pending answer for another key could be for one of
//  these candidates, for up to MATCH_WAIT_US; then gives those up.
static void
s_pending_separate (s_auth_t *self, const char *address, s_pending_t *candidates)
{
    for (int waited = 0; waited < MATCH_WAIT_US; waited += 100) {
        if (!s_pending_conflict (self, candidates, false)) {
            return;
        }
        usleep (100);
        if (s_pending_check (self) > 0) {
            s_candidates (self, address, candidates);
        }
    }
    s_pending_conflict (self, candidates, true);
}

//  Keeps the monitors' pipes short and settles pending answers between
//  decisions (a revocation settles them first anyway)
static int
s_on_monitors (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_pending_check (arg);
    return 0;
}

//  After allowing a key: match it to its connection now or when it is
//  known.
static void
s_match_after_reply (s_auth_t *self, s_pending_t *candidates)
{
    if (candidates->count == 1) {
        int fd = candidates->fds [0];
        if (self->conns [fd] && self->conns [fd]->serial == candidates->serials [0]
        &&  !self->conns [fd]->matched) {
            s_match (self, fd, candidates->key);
        }
        return;
    }
    if (self->pending_count == PENDING_MAX) {
        self->stats.unmatched++;
        return;
    }
    candidates->deadline = zclock_usecs () + PENDING_WAIT_US;
    self->pending [self->pending_count++] = *candidates;
}

//  Shuts down every open connection whose key is no longer trusted.
static void
s_check_connections (s_auth_t *self)
{
    s_pending_check (self);
    if (!self->lookup || self->stats.open == 0) {
        return;
    }
    for (int fd = 0; fd < self->fd_limit; fd++) {
        if (self->conns [fd] && self->conns [fd]->matched) {
            s_close_if_untrusted (self, fd);
        }
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
    bool sweep = now - self->last_sweep >= 1000;
    if (sweep) {
        self->last_sweep = now;
    }
    s_refresh (self, sweep);
    return 0;
}

static int
s_on_event (zloop_t *loop, zsock_t *events, void *arg)
{
    (void) loop;
    s_auth_t *self = arg;
    bool any = false;
    while (zsock_events (events) & ZMQ_POLLIN) {
        zmsg_t *msg = zmsg_recv (events);
        any |= msg != NULL;
        zmsg_destroy (&msg);
    }
    if (any) {
        s_refresh (self, true);
    }
    return 0;
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
    s_pending_t candidates;                 //  the request dies before matching
    candidates.count = 0;
    if (kc_zap_parse (msg, &request, &reply, &why)) {
        self->stats.malformed++;
        s_log (self, "kc_auth: %s", why.text);
    }
    else
    if (!self->lookup) {
        memset (&reply, 0, sizeof reply);
        reply.status = 500;
        snprintf (reply.text, sizeof reply.text, "keyclone cache is not available");
        self->stats.denied++;
    }
    else {
        kc_lookup_entry_t entry;
        kc_lookup_key (self->lookup, request.key, &entry);
        bool stale = self->config.fail_closed
                  && kc_lookup_head_age (self->lookup) > self->config.stale_after_ms;
        kc_zap_decide (&request, &entry, stale, zhashx_lookup (self->policies, request.domain),
                       &reply);
        if (reply.status == 200) {
            self->stats.allowed++;
            memcpy (candidates.key, request.key, KC_KEY_BYTES);
            s_pending_check (self);
            if (s_candidates (self, request.address, &candidates) && self->pending_count) {
                s_pending_separate (self, request.address, &candidates);
            }
        }
        else {
            self->stats.denied++;
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
    if (candidates.count) {
        s_match_after_reply (self, &candidates);
    }
    else
    if (reply.status == 200 && zlistx_size (self->monitors) > 0) {
        self->stats.unmatched++;
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
        zsock_t *monitor = zsock_new (ZMQ_PAIR);
        int ok = endpoint && zsock_connect (monitor, "%s", endpoint) == 0;
        if (ok) {
            if (zlistx_size (self->monitors) == 0) {
                zloop_timer (self->loop, MONITOR_DRAIN_MS, 0, s_on_monitors, self);
            }
            zlistx_add_end (self->monitors, monitor);
        }
        else {
            zsock_destroy (&monitor);
        }
        zstr_free (&endpoint);
        zsock_signal (pipe, ok ? 0 : 1);
    }
    else
    if (KC_STREQ (command, "STATS")) {
        s_pending_check (self);
        zsock_send (pipe, "888888", self->stats.allowed, self->stats.denied, self->stats.malformed,
                    self->stats.closed, self->stats.unmatched, self->stats.open);
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
    zsock_destroy (&self->zap);
    zsock_destroy (&self->events);
    for (zsock_t *monitor = zlistx_first (self->monitors); monitor;
         monitor = zlistx_next (self->monitors)) {
        zsock_destroy (&monitor);
    }
    zlistx_destroy (&self->monitors);
    zhashx_destroy (&self->policies);
    for (int fd = 0; fd < self->fd_limit; fd++) {
        free (self->conns [fd]);
    }
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
    self->monitors = zlistx_new ();
    self->loop = zloop_new ();
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
    zloop_timer (self->loop, (size_t) (self->config.refresh_ms > 0 ? self->config.refresh_ms : 100),
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
    zsock_set_zap_domain (socket, domain);
    zsock_set_zap_enforce_domain (socket, 1);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://kc-auth-monitor-%p", (void *) socket);
    if (zmq_socket_monitor (zsock_resolve (socket), endpoint,
                            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED)) {
        return kc_why (why, "cannot monitor the socket: %s", zmq_strerror (zmq_errno ()));
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
    (void) metadata;
    kc_lookup_entry_t entry;
    if (kc_lookup_key ((kc_lookup_t *) arg, client_key, &entry) != KC_VERDICT_TRUSTED) {
        return KC_CURVE_DENY;
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
