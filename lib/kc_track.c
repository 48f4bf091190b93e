/*  =========================================================================
    kc_track - matching the open connections of CURVE server sockets to the
    keys they were authenticated with, and closing them when a key stops
    being trusted. See kc_track.h for the method; docs/zap.md section 4 for
    its limits.
    =========================================================================
*/
#include "kc_track.h"
#include "kc_sock.h"

#include <czmq.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define HANDSHAKE_SENT      (64 + 2 + 168)      //  greeting + WELCOME frame
#define MATCH_WAIT_US       100000              //  blocked for READY, when ambiguous
#define PENDING_WAIT_US     2000000             //  for READY, not blocked
#define FDS_MAX             65536
#define PENDING_MAX         64                  //  answers whose READY is awaited
#define MONITORS_MAX        64                  //  watched sockets per tracker
#define SETTLE_EVERY_MS     10                  //  while answers are pending
#define MONITOR_EVENTS      (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED \
                             | ZMQ_EVENT_MONITOR_STOPPED)

typedef struct {
    uint64_t serial;                        //  tells a reused fd from the old one
    void *monitor;                          //  of the socket that accepted it
    bool tcp;
    char ip [KC_SOCK_ADDRESS_MAX];
    uint16_t port;
    bool matched;
    uint8_t key [KC_KEY_BYTES];
} s_conn_t;

struct _kc_track_t {
    kc_track_keep_fn *keep;
    void *arg;
    s_conn_t *conns [FDS_MAX];              //  by fd
    int fd_limit;                           //  above every fd in conns
    uint64_t serials;                       //  last s_conn_t.serial given
    kc_track_ticket_t pending [PENDING_MAX];    //  oldest first
    size_t pending_count;
    void *monitors [MONITORS_MAX];          //  libzmq PAIR readers, live ones
    size_t monitor_count;
    kc_track_stats_t stats;
    zloop_t *loop;                          //  the owner's, for the settle timer
    int timer;                              //  while answers are pending, or -1
};

kc_track_t *
kc_track_new (kc_track_keep_fn *keep, void *arg)
{
    kc_track_t *self = calloc (1, sizeof *self);
    assert (self);
    self->keep = keep;
    self->arg = arg;
    self->timer = -1;
    return self;
}

static int
s_on_settle (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    kc_track_update (arg);
    return 0;
}

//  A short timer while answers are pending, none otherwise.
static void
s_schedule (kc_track_t *self)
{
    if (!self->loop) {
        return;
    }
    if (self->pending_count && self->timer == -1) {
        self->timer = zloop_timer (self->loop, SETTLE_EVERY_MS, 0, s_on_settle, self);
    }
    else
    if (!self->pending_count && self->timer != -1) {
        zloop_timer_end (self->loop, self->timer);
        self->timer = -1;
    }
}

void
kc_track_set_loop (kc_track_t *self, zloop_t *loop)
{
    self->loop = loop;
}

//  --- Monitors ------------------------------------------------------------------

int
kc_track_install (void *socket, char endpoint [static KC_TRACK_ENDPOINT_MAX], kc_why_t *why)
{
    void *handle = zsock_resolve (socket);
    snprintf (endpoint, KC_TRACK_ENDPOINT_MAX, "inproc://kc-track-%p", handle);
    if (zmq_socket_monitor (handle, endpoint, MONITOR_EVENTS)) {
        return kc_why (why, "cannot monitor the socket: %s", zmq_strerror (zmq_errno ()));
    }
    return 0;
}

void
kc_track_uninstall (void *socket)
{
    zmq_socket_monitor (zsock_resolve (socket), NULL, 0);
}

int
kc_track_watch (kc_track_t *self, const char *endpoint, kc_why_t *why)
{
    if (self->monitor_count == MONITORS_MAX) {
        return kc_why (why, "watching %d sockets already", MONITORS_MAX);
    }
    //  A raw libzmq socket, so a reader left to the drain thread at the end
    //  is not a "dangling" czmq socket; no receive limit, so libzmq's I/O
    //  thread never blocks on a monitor event however late it is read
    void *monitor = zmq_socket (zsys_init (), ZMQ_PAIR);
    int zero = 0;
    if (!monitor
    ||  zmq_setsockopt (monitor, ZMQ_RCVHWM, &zero, sizeof zero)
    ||  zmq_setsockopt (monitor, ZMQ_LINGER, &zero, sizeof zero)
    ||  zmq_connect (monitor, endpoint)) {
        int error = zmq_errno ();
        if (monitor) {
            zmq_close (monitor);
        }
        return kc_why (why, "cannot read the monitor at %s: %s", endpoint, zmq_strerror (error));
    }
    self->monitors [self->monitor_count++] = monitor;
    self->stats.watched = self->monitor_count;
    return 0;
}

//  Reads one monitor event without blocking: returns 1 and the event, 0 if
//  none is waiting, -1 if the context is terminating.
static int
s_event (void *monitor, uint16_t *type, int32_t *value)
{
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    if (zmq_msg_recv (&msg, monitor, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&msg);
        return zmq_errno () == ETERM ? -1 : 0;
    }
    bool valid = zmq_msg_size (&msg) == 6;
    if (valid) {
        memcpy (type, zmq_msg_data (&msg), 2);
        memcpy (value, (uint8_t *) zmq_msg_data (&msg) + 2, 4);
    }
    bool more = zmq_msg_more (&msg);
    zmq_msg_close (&msg);
    while (more) {                          //  the endpoint frame
        zmq_msg_init (&msg);
        more = zmq_msg_recv (&msg, monitor, 0) >= 0 && zmq_msg_more (&msg);
        zmq_msg_close (&msg);
    }
    if (!valid) {
        *type = 0;
    }
    return 1;
}

static void
s_forget (kc_track_t *self, int fd)
{
    if (fd >= 0 && fd < FDS_MAX && self->conns [fd]) {
        self->stats.open -= self->conns [fd]->matched;
        free (self->conns [fd]);
        self->conns [fd] = NULL;
    }
}

static void
s_accepted (kc_track_t *self, void *monitor, int fd)
{
    s_forget (self, fd);
    s_conn_t *conn = calloc (1, sizeof *conn);
    assert (conn);
    conn->serial = ++self->serials;
    conn->monitor = monitor;
    conn->tcp = kc_sock_peer (fd, conn->ip, &conn->port) == 1;
    self->conns [fd] = conn;
    if (fd >= self->fd_limit) {
        self->fd_limit = fd + 1;
    }
}

//  Reads a monitor's pending events. Returns false once the socket is
//  gone (its monitor stopped).
static bool
s_read_monitor (kc_track_t *self, void *monitor)
{
    uint16_t type = 0;
    int32_t value = -1;
    int rc;
    while ((rc = s_event (monitor, &type, &value)) == 1) {
        if (type == ZMQ_EVENT_MONITOR_STOPPED) {
            return false;
        }
        if (value < 0 || value >= FDS_MAX) {
            continue;
        }
        if (type == ZMQ_EVENT_ACCEPTED) {
            s_accepted (self, monitor, value);
        }
        else
        if ((type == ZMQ_EVENT_DISCONNECTED || type == ZMQ_EVENT_CLOSED)
        &&  self->conns [value] && self->conns [value]->monitor == monitor) {
            //  Another socket may have accepted the fd again already:
            //  monitors are read one after the other
            s_forget (self, value);
        }
    }
    return rc == 0;
}

//  Reads every monitor, so the connection table is current; closes the
//  readers of sockets that are gone.
static void
s_read_monitors (kc_track_t *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->monitor_count; i++) {
        void *monitor = self->monitors [i];
        if (s_read_monitor (self, monitor)) {
            self->monitors [kept++] = monitor;
        }
        else {
            zmq_close (monitor);
        }
    }
    self->monitor_count = kept;
    self->stats.watched = kept;
}

//  --- Matching -------------------------------------------------------------------

//  The connections that could be the one being authenticated.
static size_t
s_candidates (kc_track_t *self, const char *address, kc_track_ticket_t *into)
{
    into->count = 0;
    for (int fd = 0; fd < self->fd_limit && into->count < KC_TRACK_CANDIDATES_MAX; fd++) {
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
s_match (kc_track_t *self, int fd, const uint8_t *key)
{
    self->conns [fd]->matched = true;
    memcpy (self->conns [fd]->key, key, KC_KEY_BYTES);
    self->stats.open++;
}

//  Shuts the matched connection on fd down if keep refuses its key.
static void
s_close_if_refused (kc_track_t *self, int fd)
{
    s_conn_t *conn = self->conns [fd];
    char label [80] = "";
    if (self->keep (conn->key, self->arg, label, sizeof label)) {
        return;
    }
    //  Make sure the fd still is that connection before shutting it down
    char ip [KC_SOCK_ADDRESS_MAX];
    uint16_t port;
    int family = kc_sock_peer (fd, ip, &port);
    if (family >= 0 && (!conn->tcp || (KC_STREQ (ip, conn->ip) && port == conn->port))) {
        shutdown (fd, SHUT_RDWR);
        self->stats.closed++;
        zsys_info ("kc_track: closed the connection of %s from %s:%u", label,
                   conn->tcp ? conn->ip : "ipc", conn->port);
    }
    s_forget (self, fd);
}

//  True when the pending answer is settled: its connection has sent more
//  than it had (READY), and is matched, or the wait is over.
static bool
s_settle (kc_track_t *self, kc_track_ticket_t *pending, int64_t now)
{
    for (size_t i = 0; i < pending->count; i++) {
        int fd = pending->fds [i];
        s_conn_t *conn = self->conns [fd];
        uint64_t bytes, received;
        if (conn && conn->serial == pending->serials [i] && !conn->matched
        &&  pending->sent [i] != UINT64_MAX
        &&  kc_sock_bytes (fd, &bytes, &received) == 0 && bytes > pending->sent [i]) {
            s_match (self, fd, pending->key);
            s_close_if_refused (self, fd);  //  refused while it was pending
            return true;
        }
    }
    if (now >= pending->deadline) {
        self->stats.unmatched++;
        return true;
    }
    return false;
}

size_t
kc_track_update (kc_track_t *self)
{
    s_read_monitors (self);
    if (self->pending_count == 0) {
        s_schedule (self);
        return 0;
    }
    int64_t now = zclock_usecs ();
    size_t kept = 0;
    for (size_t i = 0; i < self->pending_count; i++) {
        if (!s_settle (self, &self->pending [i], now)) {
            if (kept != i) {
                self->pending [kept] = self->pending [i];
            }
            kept++;
        }
    }
    self->pending_count = kept;
    s_schedule (self);
    return kept;
}

static bool
s_overlaps (const kc_track_ticket_t *a, const kc_track_ticket_t *b)
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
s_conflict (kc_track_t *self, const kc_track_ticket_t *candidates, bool drop)
{
    bool conflict = false;
    size_t kept = 0;
    for (size_t i = 0; i < self->pending_count; i++) {
        const kc_track_ticket_t *pending = &self->pending [i];
        bool this_one = memcmp (pending->key, candidates->key, KC_KEY_BYTES)
                     && s_overlaps (pending, candidates);
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

void
kc_track_allowing (kc_track_t *self, const char *address, const uint8_t key [static KC_KEY_BYTES],
                   kc_track_ticket_t *ticket)
{
    memcpy (ticket->key, key, KC_KEY_BYTES);
    kc_track_update (self);
    if (s_candidates (self, address, ticket) == 0 || self->pending_count == 0) {
        return;
    }
    //  Block until no pending answer for another key could be for one of
    //  these candidates, for up to MATCH_WAIT_US; then give those up
    for (int waited = 0; waited < MATCH_WAIT_US; waited += 100) {
        if (!s_conflict (self, ticket, false)) {
            return;
        }
        usleep (100);
        size_t before = self->pending_count;
        if (kc_track_update (self) < before) {
            s_candidates (self, address, ticket);
        }
    }
    s_conflict (self, ticket, true);
}

void
kc_track_allowed (kc_track_t *self, kc_track_ticket_t *ticket)
{
    if (ticket->count == 0) {
        self->stats.unmatched += self->monitor_count > 0;
        return;
    }
    if (ticket->count == 1) {
        int fd = ticket->fds [0];
        if (self->conns [fd] && self->conns [fd]->serial == ticket->serials [0]
        &&  !self->conns [fd]->matched) {
            s_match (self, fd, ticket->key);
        }
        return;
    }
    if (self->pending_count == PENDING_MAX) {
        self->stats.unmatched++;
        return;
    }
    ticket->deadline = zclock_usecs () + PENDING_WAIT_US;
    self->pending [self->pending_count++] = *ticket;
    s_schedule (self);
}

size_t
kc_track_sweep (kc_track_t *self)
{
    kc_track_update (self);
    uint64_t before = self->stats.closed;
    if (self->stats.open == 0) {
        return 0;
    }
    for (int fd = 0; fd < self->fd_limit; fd++) {
        if (self->conns [fd] && self->conns [fd]->matched) {
            s_close_if_refused (self, fd);
        }
    }
    return (size_t) (self->stats.closed - before);
}

void
kc_track_stats (kc_track_t *self, kc_track_stats_t *stats)
{
    *stats = self->stats;
}

//  --- Destruction and the drain thread -------------------------------------------

typedef struct {
    void *monitors [MONITORS_MAX];
    size_t count;
} s_drain_t;

//  Reads the monitors of sockets that outlived their tracker until each
//  socket is closed (its monitor stops) or the context terminates.
static void *
s_drain (void *arg)
{
    s_drain_t *drain = arg;
    while (drain->count > 0) {
        zmq_pollitem_t items [MONITORS_MAX];
        for (size_t i = 0; i < drain->count; i++) {
            items [i] = (zmq_pollitem_t) { .socket = drain->monitors [i], .events = ZMQ_POLLIN };
        }
        if (zmq_poll (items, (int) drain->count, -1) < 0 && zmq_errno () != EINTR) {
            break;                          //  ETERM: the context is ending
        }
        size_t kept = 0;
        bool ended = false;
        for (size_t i = 0; i < drain->count; i++) {
            uint16_t type = 0;
            int32_t value = -1;
            int rc;
            bool stopped = false;
            while ((rc = s_event (drain->monitors [i], &type, &value)) == 1) {
                stopped |= type == ZMQ_EVENT_MONITOR_STOPPED;
            }
            ended |= rc < 0;
            if (stopped) {
                zmq_close (drain->monitors [i]);
            }
            else {
                drain->monitors [kept++] = drain->monitors [i];
            }
        }
        drain->count = kept;
        if (ended) {
            break;
        }
    }
    for (size_t i = 0; i < drain->count; i++) {
        zmq_close (drain->monitors [i]);
    }
    free (drain);
    return NULL;
}

void
kc_track_destroy (kc_track_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    kc_track_t *self = *self_p;
    s_read_monitors (self);
    if (self->monitor_count) {
        s_drain_t *drain = calloc (1, sizeof *drain);
        assert (drain);
        memcpy (drain->monitors, self->monitors, self->monitor_count * sizeof (void *));
        drain->count = self->monitor_count;
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init (&attributes);
        pthread_attr_setdetachstate (&attributes, PTHREAD_CREATE_DETACHED);
        if (pthread_create (&thread, &attributes, s_drain, drain)) {
            //  No thread: better a reader that never reads than none
            zsys_error ("kc_track: cannot start the monitor drain; %zu monitors left unread",
                        drain->count);
            free (drain);
        }
        pthread_attr_destroy (&attributes);
    }
    for (int fd = 0; fd < self->fd_limit; fd++) {
        free (self->conns [fd]);
    }
    free (self);
    *self_p = NULL;
}

//  --- Self test -----------------------------------------------------------------

static bool
s_refuse_all (const uint8_t key [KC_KEY_BYTES], void *arg, char *label, size_t label_size)
{
    (void) key;
    (void) arg;
    snprintf (label, label_size, "test key: refused");
    return false;
}

void
kc_track_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_track: ");
    }
    kc_why_t why;
    char endpoint [KC_TRACK_ENDPOINT_MAX];
    //  A watched socket outlives its tracker: the drain thread keeps its
    //  monitor read, so the I/O thread accepts connections as before, and
    //  ends when the socket closes
    zsock_t *server = zsock_new (ZMQ_ROUTER);
    kc_track_t *track = kc_track_new (s_refuse_all, NULL);
    assert (kc_track_install (server, endpoint, &why) == 0);
    assert (kc_track_watch (track, endpoint, &why) == 0);
    int port = zsock_bind (server, "tcp://127.0.0.1:*");
    assert (port > 0);
    kc_track_stats_t stats;
    kc_track_stats (track, &stats);
    assert (stats.watched == 1 && stats.open == 0);
    kc_track_destroy (&track);
    assert (track == NULL);
    kc_track_destroy (&track);
    for (int i = 0; i < 20; i++) {          //  more events than one pipe would hold unread
        zsock_t *client = zsock_new (ZMQ_DEALER);
        assert (zsock_connect (client, "tcp://127.0.0.1:%d", port) == 0);
        zstr_send (client, "ping");
        zmsg_t *msg = zmsg_recv (server);
        assert (msg && zmsg_size (msg) == 2);
        zmsg_destroy (&msg);
        zsock_destroy (&client);
    }
    zsock_destroy (&server);

    //  Closed before its tracker: the monitor stops and is closed
    server = zsock_new (ZMQ_ROUTER);
    track = kc_track_new (s_refuse_all, NULL);
    assert (kc_track_install (server, endpoint, &why) == 0);
    assert (kc_track_watch (track, endpoint, &why) == 0);
    zsock_destroy (&server);
    for (int i = 0; i < 400; i++) {
        kc_track_update (track);
        kc_track_stats (track, &stats);
        if (stats.watched == 0) {
            break;
        }
        zclock_sleep (5);
    }
    assert (stats.watched == 0);
    assert (kc_track_sweep (track) == 0);
    kc_track_destroy (&track);
    if (verbose) {
        printf ("OK\n");
    }
}
