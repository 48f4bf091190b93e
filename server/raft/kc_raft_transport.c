/*  =========================================================================
    kc_raft_transport - libraft's transport over CurveZMQ. See the header.

    A bridge per connection:
        tcp   the encrypted TCP stream to the other member (libuv)
        link  kc_zmtp_t: greeting, CURVE handshake, MESSAGE frames
        pipe  our end of a socketpair; libraft holds the other end (a
              uv_pipe_t it owns and frees) and reads and writes Raft's own
              plaintext messages there
    Bytes from tcp go through the link into pipe; bytes from pipe go
    through the link into tcp. Either side ending ends both.
    =========================================================================
*/
#include "kc_raft_transport.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_HEARTBEAT_MS      1000        //  PING an idle member connection
#define S_HEARTBEAT_TTL_MS  5000        //  and ask it to drop us after 5 s of silence
#define S_WRITE_QUEUE_MAX   (8u << 20)  //  bytes queued to one side before we stop reading the other

typedef struct _s_bridge_t s_bridge_t;

typedef struct {
    struct raft_uv_transport *owner;
    uv_loop_t *loop;
    raft_id id;
    uint8_t public_key [KC_KEY_BYTES];
    uint8_t *secret_key;                //  sodium_malloc
    kc_raft_member_t members [KC_RAFT_MEMBERS_MAX];
    size_t count;
    uv_tcp_t listener;
    bool listening;                     //  the listener handle is open
    raft_uv_accept_cb accept_cb;
    s_bridge_t *bridges;                //  every bridge not yet freed
    bool closing;
    raft_uv_transport_close_cb close_cb;
    uint64_t refused;
} s_transport_t;

struct _s_bridge_t {
    s_bridge_t *next;
    s_transport_t *transport;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_connect_t connect;
    int handles;                        //  open libuv handles
    bool pipe_open;
    bool reading_pipe;
    kc_zmtp_t *link;
    kc_raft_member_t member;            //  the other member, once known (a copy:
    bool known;                         //  the member list may change meanwhile)
    struct raft_uv_connect *request;    //  outbound: libraft's, until answered
    bool closing;
};

//  --- Members ------------------------------------------------------------------

static const kc_raft_member_t *
s_member_by_key (const s_transport_t *self, const uint8_t key [KC_KEY_BYTES])
{
    for (size_t i = 0; i < self->count; i++) {
        if (sodium_memcmp (self->members [i].key, key, KC_KEY_BYTES) == 0) {
            return &self->members [i];
        }
    }
    return NULL;
}

static const kc_raft_member_t *
s_member_by_id (const s_transport_t *self, raft_id id)
{
    for (size_t i = 0; i < self->count; i++) {
        if (self->members [i].id == id) {
            return &self->members [i];
        }
    }
    return NULL;
}

//  "host:port" (an IPv6 host in brackets) into a socket address.
static int
s_address (const char *text, struct sockaddr_storage *address, kc_why_t *why)
{
    char host [KC_RAFT_ADDRESS_MAX + 1];
    const char *colon = strrchr (text, ':');
    if (!colon || colon == text || (size_t) (colon - text) > KC_RAFT_ADDRESS_MAX) {
        return kc_why (why, "raft address '%.64s' is not host:port", text);
    }
    const char *start = text, *end = colon;
    if (*start == '[' && end [-1] == ']') {
        start++;
        end--;
    }
    memcpy (host, start, (size_t) (end - start));
    host [end - start] = 0;
    char *rest;
    long port = strtol (colon + 1, &rest, 10);
    if (*rest || port < 1 || port > 65535) {
        return kc_why (why, "raft address '%.64s' has no port 1-65535", text);
    }
    memset (address, 0, sizeof *address);
    if (uv_ip4_addr (host, (int) port, (struct sockaddr_in *) address) != 0
    &&  uv_ip6_addr (host, (int) port, (struct sockaddr_in6 *) address) != 0) {
        return kc_why (why, "raft address '%.64s' is not an IP address and port", text);
    }
    return 0;
}

//  The codec's authorizer: members only; the identity's name is the id.
static int
s_authorize (const uint8_t client_key [KC_KEY_BYTES], const kc_meta_t *metadata, void *arg,
             kc_curve_identity_t *identity)
{
    (void) metadata;
    const kc_raft_member_t *member = s_member_by_key (arg, client_key);
    if (!member) {
        return KC_CURVE_DENY;
    }
    snprintf (identity->name, sizeof identity->name, "%llu", (unsigned long long) member->id);
    return KC_CURVE_ALLOW;
}

//  --- Bridges ------------------------------------------------------------------

static void s_bridge_close (s_bridge_t *self, const char *reason);

typedef struct {
    uv_write_t request;
    s_bridge_t *bridge;
    uint8_t data [];
} s_write_t;

static void s_alloc (uv_handle_t *handle, size_t suggested, uv_buf_t *buffer);
static void s_on_plain (uv_stream_t *stream, ssize_t size, const uv_buf_t *buffer);

//  Reads from libraft's side only while the TCP side keeps up.
static void
s_pipe_flow (s_bridge_t *self)
{
    if (self->closing || !self->pipe_open) {
        return;
    }
    bool room = uv_stream_get_write_queue_size ((uv_stream_t *) &self->tcp) < S_WRITE_QUEUE_MAX;
    if (room && !self->reading_pipe) {
        uv_read_start ((uv_stream_t *) &self->pipe, s_alloc, s_on_plain);
        self->reading_pipe = true;
    }
    else
    if (!room && self->reading_pipe) {
        uv_read_stop ((uv_stream_t *) &self->pipe);
        self->reading_pipe = false;
    }
}

static void
s_written (uv_write_t *request, int status)
{
    s_write_t *write = (s_write_t *) request;
    s_bridge_t *bridge = write->bridge;
    free (write);
    if (status < 0 && status != UV_ECANCELED) {
        s_bridge_close (bridge, uv_strerror (status));
    }
    else {
        s_pipe_flow (bridge);
    }
}

static int
s_write (s_bridge_t *self, uv_stream_t *stream, const uint8_t *data, size_t size)
{
    s_write_t *write = malloc (sizeof *write + size);
    if (!write) {
        return -1;
    }
    write->bridge = self;
    memcpy (write->data, data, size);
    uv_buf_t buffer = uv_buf_init ((char *) write->data, (unsigned) size);
    int rc = uv_write (&write->request, stream, &buffer, 1, s_written);
    if (rc) {
        free (write);
    }
    return rc;
}

static void
s_transport_maybe_closed (s_transport_t *self)
{
    if (self->closing && !self->bridges && !self->listening && self->close_cb) {
        raft_uv_transport_close_cb cb = self->close_cb;
        self->close_cb = NULL;
        cb (self->owner);
    }
}

static void
s_handle_closed (uv_handle_t *handle)
{
    s_bridge_t *self = handle->data;
    if (--self->handles > 0) {
        return;
    }
    s_transport_t *transport = self->transport;
    kc_zmtp_destroy (&self->link);
    s_bridge_t **link = &transport->bridges;
    while (*link && *link != self) {
        link = &(*link)->next;
    }
    if (*link) {
        *link = self->next;
    }
    free (self);
    s_transport_maybe_closed (transport);
}

static void
s_bridge_close (s_bridge_t *self, const char *reason)
{
    if (self->closing) {
        return;
    }
    self->closing = true;
    s_transport_t *transport = self->transport;
    if (reason && !transport->closing) {
        zsys_info ("raft transport: connection %s member %llu ended: %s", self->request ? "to" : "with",
                   self->known ? (unsigned long long) self->member.id : 0ULL, reason);
    }
    if (self->request) {
        struct raft_uv_connect *request = self->request;
        self->request = NULL;
        request->cb (request, NULL, transport->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
    }
    uv_close ((uv_handle_t *) &self->tcp, s_handle_closed);
    uv_close ((uv_handle_t *) &self->timer, s_handle_closed);
    if (self->pipe_open) {
        uv_close ((uv_handle_t *) &self->pipe, s_handle_closed);
    }
}

//  Writes what the link has for the other member; false once closed.
static bool
s_bridge_flush (s_bridge_t *self)
{
    size_t size;
    const uint8_t *data = kc_zmtp_output (self->link, &size);
    if (size && !self->closing) {
        if (s_write (self, (uv_stream_t *) &self->tcp, data, size)) {
            s_bridge_close (self, "cannot write to the member");
            return false;
        }
        kc_zmtp_written (self->link, size);
    }
    return !self->closing;
}

static void s_on_timer (uv_timer_t *timer);

//  Flushes, then sets the timer to the link's next deadline.
static void
s_bridge_settle (s_bridge_t *self)
{
    if (!s_bridge_flush (self)) {
        return;
    }
    int timeout = kc_zmtp_timeout (self->link);
    if (timeout >= 0) {
        uv_timer_start (&self->timer, s_on_timer, (uint64_t) timeout, 0);
    }
    else {
        uv_timer_stop (&self->timer);
    }
}

static void
s_on_timer (uv_timer_t *timer)
{
    s_bridge_t *self = timer->data;
    kc_why_t why;
    if (kc_zmtp_tick (self->link, &why)) {
        s_bridge_flush (self);
        s_bridge_close (self, why.text);
        return;
    }
    s_bridge_settle (self);
}

static void
s_alloc (uv_handle_t *handle, size_t suggested, uv_buf_t *buffer)
{
    (void) handle;
    buffer->base = malloc (suggested);
    buffer->len = buffer->base ? suggested : 0;
}

//  Plaintext from libraft: through the link to the other member.
static void
s_on_plain (uv_stream_t *stream, ssize_t size, const uv_buf_t *buffer)
{
    s_bridge_t *self = stream->data;
    kc_why_t why;
    if (size < 0) {
        s_bridge_close (self, size == UV_EOF ? NULL : uv_strerror ((int) size));
    }
    else
    if (size > 0 && !self->closing) {
        int rc = kc_zmtp_send (self->link, buffer->base, (size_t) size, false, &why);
        if (rc == 1) {
            //  The link's output is full: write it, then send again
            if (s_bridge_flush (self)) {
                rc = kc_zmtp_send (self->link, buffer->base, (size_t) size, false, &why);
            }
        }
        if (rc) {
            s_bridge_close (self, rc == 1 ? "the member does not keep up" : why.text);
        }
        else {
            s_bridge_settle (self);
            s_pipe_flow (self);
        }
    }
    free (buffer->base);
}

//  The link just connected: make the socketpair, give libraft its end.
static void
s_bridge_ready (s_bridge_t *self)
{
    s_transport_t *transport = self->transport;
    if (!self->known) {
        const kc_curve_identity_t *identity = kc_curve_identity (kc_zmtp_codec (self->link));
        const kc_raft_member_t *member = identity ? s_member_by_key (transport, identity->key) : NULL;
        if (member) {
            self->member = *member;
            self->known = true;
        }
        if (!self->known) {
            transport->refused++;
            s_bridge_close (self, "the peer is not a member");
            return;
        }
    }
    int pair [2];
    uv_pipe_t *theirs = raft_malloc (sizeof *theirs);
    if (!theirs || socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair)) {
        raft_free (theirs);
        s_bridge_close (self, "cannot make a socketpair");
        return;
    }
    uv_pipe_init (transport->loop, &self->pipe, 0);
    self->pipe.data = self;
    self->handles++;
    self->pipe_open = true;
    uv_pipe_init (transport->loop, theirs, 0);
    if (uv_pipe_open (&self->pipe, pair [0]) || uv_pipe_open (theirs, pair [1])) {
        raft_free (theirs);             //  not yet a libuv handle in use
        close (pair [1]);
        s_bridge_close (self, "cannot open the socketpair");
        return;
    }
    s_pipe_flow (self);
    if (self->request) {
        struct raft_uv_connect *request = self->request;
        self->request = NULL;
        request->cb (request, (uv_stream_t *) theirs, 0);
    }
    else {
        transport->accept_cb (transport->owner, self->member.id, self->member.address, (uv_stream_t *) theirs);
    }
}

//  Ciphertext from the other member: through the link to libraft.
static void
s_on_cipher (uv_stream_t *stream, ssize_t size, const uv_buf_t *buffer)
{
    s_bridge_t *self = stream->data;
    kc_why_t why;
    if (size < 0) {
        if (!kc_zmtp_connected (self->link)) {
            self->transport->refused += self->request == NULL;
        }
        s_bridge_close (self, size == UV_EOF ? "the member closed the connection" : uv_strerror ((int) size));
    }
    else
    if (size > 0 && !self->closing) {
        bool was_connected = kc_zmtp_connected (self->link);
        if (kc_zmtp_input (self->link, buffer->base, (size_t) size, &why)) {
            self->transport->refused += !was_connected && self->request == NULL;
            s_bridge_flush (self);      //  an ERROR for the peer, if any
            s_bridge_close (self, why.text);
        }
        else {
            if (!was_connected && kc_zmtp_connected (self->link)) {
                s_bridge_ready (self);
            }
            const uint8_t *data;
            size_t part;
            bool more;
            while (!self->closing && kc_zmtp_recv (self->link, &data, &part, &more)) {
                if (s_write (self, (uv_stream_t *) &self->pipe, data, part)) {
                    s_bridge_close (self, "cannot write to libraft");
                }
            }
            if (!self->closing) {
                s_bridge_settle (self);
            }
        }
    }
    free (buffer->base);
}

static s_bridge_t *
s_bridge_new (s_transport_t *transport, bool server, const kc_raft_member_t *member)
{
    s_bridge_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->transport = transport;
    if (member) {
        self->member = *member;
        self->known = true;
    }
    kc_curve_t *codec = server
        ? kc_curve_new_server (transport->public_key, transport->secret_key)
        : kc_curve_new_client (transport->public_key, transport->secret_key, member->key);
    if (server) {
        kc_curve_set_authorizer (codec, s_authorize, transport);
    }
    self->link = kc_zmtp_new (&codec, "PAIR", NULL);
    kc_zmtp_set_heartbeat (self->link, S_HEARTBEAT_MS, S_HEARTBEAT_TTL_MS, S_HEARTBEAT_TTL_MS);
    uv_tcp_init (transport->loop, &self->tcp);
    uv_timer_init (transport->loop, &self->timer);
    self->tcp.data = self->timer.data = self;
    self->handles = 2;
    uv_tcp_nodelay (&self->tcp, 1);
    self->next = transport->bridges;
    transport->bridges = self;
    return self;
}

//  --- The transport's operations ---------------------------------------------------

static int
s_init (struct raft_uv_transport *t, raft_id id, const char *address)
{
    s_transport_t *self = t->impl;
    self->id = id;
    (void) address;                     //  the member list has it
    return 0;
}

static void
s_on_connection (uv_stream_t *listener, int status)
{
    s_transport_t *self = listener->data;
    if (status < 0 || self->closing) {
        return;
    }
    s_bridge_t *bridge = s_bridge_new (self, true, NULL);
    if (!bridge) {
        return;
    }
    if (uv_accept (listener, (uv_stream_t *) &bridge->tcp)) {
        s_bridge_close (bridge, "accept failed");
        return;
    }
    uv_read_start ((uv_stream_t *) &bridge->tcp, s_alloc, s_on_cipher);
    s_bridge_settle (bridge);           //  our greeting
}

static int
s_listen (struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    s_transport_t *self = t->impl;
    const kc_raft_member_t *me = s_member_by_id (self, self->id);
    struct sockaddr_storage address;
    kc_why_t why;
    if (!me || s_address (me->address, &address, &why)) {
        snprintf (t->errmsg, sizeof t->errmsg, "%s", me ? why.text : "this member is not in the list");
        return RAFT_INVALID;
    }
    self->accept_cb = cb;
    uv_tcp_init (self->loop, &self->listener);
    self->listener.data = self;
    self->listening = true;
    int rc = uv_tcp_bind (&self->listener, (struct sockaddr *) &address, 0);
    if (rc == 0) {
        rc = uv_listen ((uv_stream_t *) &self->listener, 64, s_on_connection);
    }
    if (rc) {
        snprintf (t->errmsg, sizeof t->errmsg, "cannot listen on %.64s: %s", me->address, uv_strerror (rc));
        return RAFT_IOERR;
    }
    return 0;
}

static void
s_on_connect (uv_connect_t *connect, int status)
{
    s_bridge_t *self = connect->data;
    if (self->closing) {
        return;
    }
    if (status < 0) {
        s_bridge_close (self, uv_strerror (status));
        return;
    }
    uv_read_start ((uv_stream_t *) &self->tcp, s_alloc, s_on_cipher);
    s_bridge_settle (self);             //  our greeting
}

static int
s_connect (struct raft_uv_transport *t, struct raft_uv_connect *request, raft_id id, const char *address,
           raft_uv_connect_cb cb)
{
    s_transport_t *self = t->impl;
    (void) address;                     //  the member list says where, with the key to expect there
    const kc_raft_member_t *member = s_member_by_id (self, id);
    struct sockaddr_storage peer;
    kc_why_t why;
    if (!member || s_address (member->address, &peer, &why)) {
        snprintf (t->errmsg, sizeof t->errmsg, "member %llu: %s", (unsigned long long) id,
                  member ? why.text : "not in the list");
        return RAFT_NOCONNECTION;
    }
    s_bridge_t *bridge = s_bridge_new (self, false, member);
    if (!bridge) {
        return RAFT_NOMEM;
    }
    request->cb = cb;
    bridge->request = request;
    bridge->connect.data = bridge;
    int rc = uv_tcp_connect (&bridge->connect, &bridge->tcp, (struct sockaddr *) &peer, s_on_connect);
    if (rc) {
        bridge->request = NULL;         //  libraft hears the failure from the return code
        s_bridge_close (bridge, NULL);
        return RAFT_NOCONNECTION;
    }
    return 0;
}

static void
s_listener_closed (uv_handle_t *handle)
{
    s_transport_t *self = handle->data;
    self->listening = false;
    s_transport_maybe_closed (self);
}

static void
s_close (struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    s_transport_t *self = t->impl;
    self->closing = true;
    self->close_cb = cb;
    for (s_bridge_t *bridge = self->bridges; bridge; bridge = bridge->next) {
        s_bridge_close (bridge, NULL);
    }
    if (self->listening) {
        uv_close ((uv_handle_t *) &self->listener, s_listener_closed);
    }
    else {
        s_transport_maybe_closed (self);
    }
}

//  A member list a transport can use: 1 to KC_RAFT_MEMBERS_MAX members,
//  each address parsed. 0, or -1 with a reason.
static int
s_check_members (const kc_raft_member_t *members, size_t count, kc_why_t *why)
{
    if (count == 0 || count > KC_RAFT_MEMBERS_MAX) {
        return kc_why (why, "a cluster has 1 to %d members, not %zu", KC_RAFT_MEMBERS_MAX, count);
    }
    for (size_t i = 0; i < count; i++) {
        struct sockaddr_storage address;
        if (s_address (members [i].address, &address, why)) {
            return -1;
        }
    }
    return 0;
}

int
kc_raft_transport_init (struct raft_uv_transport *t, uv_loop_t *loop, const kc_cert_t *cert,
                        const kc_raft_member_t *members, size_t count, kc_why_t *why)
{
    assert (t && loop && cert && members);
    if (s_check_members (members, count, why)) {
        return -1;
    }
    s_transport_t *self = calloc (1, sizeof *self);
    uint8_t *secret = sodium_malloc (KC_KEY_BYTES);
    if (!self || !secret) {
        free (self);
        sodium_free (secret);
        return kc_why (why, "out of memory");
    }
    self->owner = t;
    self->loop = loop;
    memcpy (self->public_key, kc_cert_public_key (cert), KC_KEY_BYTES);
    memcpy (secret, kc_cert_secret_key (cert), KC_KEY_BYTES);
    self->secret_key = secret;
    memcpy (self->members, members, count * sizeof *members);
    self->count = count;
    t->impl = self;
    t->init = s_init;
    t->listen = s_listen;
    t->connect = s_connect;
    t->close = s_close;
    return 0;
}

void
kc_raft_transport_close (struct raft_uv_transport *t)
{
    s_transport_t *self = t ? t->impl : NULL;
    if (self) {
        sodium_free (self->secret_key);
        free (self);
        t->impl = NULL;
    }
}

int
kc_raft_transport_set_members (struct raft_uv_transport *t, const kc_raft_member_t *members, size_t count,
                               kc_why_t *why)
{
    s_transport_t *self = t->impl;
    if (s_check_members (members, count, why)) {
        return -1;
    }
    memcpy (self->members, members, count * sizeof *members);
    self->count = count;
    return 0;
}

uint64_t
kc_raft_transport_refused (const struct raft_uv_transport *t)
{
    const s_transport_t *self = t->impl;
    return self->refused;
}
