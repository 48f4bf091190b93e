/*  =========================================================================
    curve_interop - proves kc_curve's bytes are right: its command bodies,
    wrapped in ZMTP 3.0 framing (reference/curvezmq.md section 4) over a
    plain TCP socket, handshake and exchange messages with stock libzmq 4.3
    CURVE sockets, in both roles.

    Usage:
        curve_interop check
            Runs every scenario against libzmq sockets in this process:
            codec client vs ROUTER and REP (zauth with a cert directory), a
            client whose key zauth refuses (ERROR "400"), codec server vs
            DEALER and REQ, a DEALER the authorizer denies (libzmq reports
            HANDSHAKE_FAILED_AUTH 400), a DEALER with the wrong server key.
            Exit 0 when all pass.
        curve_interop serve PORT CLIENT_KEY
            A codec CURVE server on 127.0.0.1:PORT for other peers (pyzmq):
            prints "SERVER <z85 key>", then serves connections one at a
            time until killed; allows only CLIENT_KEY (Z85) and echoes every
            message with "echo:" before each non-empty part.

    The ZMTP layer here is test code: greeting, command frames, message
    frames, nothing else (no heartbeats: we advertise ZMTP 3.0); greeting
    and frames go through kc_zmtp.
    =========================================================================
*/
#include "kc_all.h"

#include <arpa/inet.h>
#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT_MS      5000
#define FRAME_MAX       (1 << 20)       //  largest frame we accept
#define ZMTP_MORE       KC_ZMTP_MORE
#define ZMTP_COMMAND    KC_ZMTP_COMMAND

static int s_failures = 0;

#define CHECK(cond, ...) do { \
    if (!(cond)) { \
        printf ("FAIL %s:%d: ", __FILE__, __LINE__); \
        printf (__VA_ARGS__); \
        printf ("\n"); \
        s_failures++; \
        goto cleanup; \
    } \
} while (0)

//  --- ZMTP 3.0 over a TCP socket ---------------------------------------------

static int
s_write_all (int fd, const void *data, size_t size)
{
    const uint8_t *p = data;
    while (size) {
        ssize_t n = send (fd, p, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        size -= (size_t) n;
    }
    return 0;
}

//  Reads exactly size bytes, waiting at most TIMEOUT_MS for each chunk.
static int
s_read_all (int fd, void *data, size_t size)
{
    uint8_t *p = data;
    while (size) {
        struct pollfd item = { .fd = fd, .events = POLLIN };
        if (poll (&item, 1, TIMEOUT_MS) <= 0) {
            return -1;
        }
        ssize_t n = recv (fd, p, size, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        size -= (size_t) n;
    }
    return 0;
}

//  Sends our whole 64-byte greeting first (libzmq sends 10 bytes and waits
//  for ours: blocking before sending 11 would deadlock), then checks the
//  peer's (kc_zmtp: signature, ZMTP 3.x, mechanism CURVE; the as-server byte
//  is reported, not judged).
static int
s_greet (int fd, bool as_server)
{
    uint8_t greeting [KC_ZMTP_GREETING_BYTES], peer [KC_ZMTP_GREETING_BYTES];
    kc_zmtp_greeting (greeting, "CURVE", as_server, 0);
    if (s_write_all (fd, greeting, sizeof greeting) || s_read_all (fd, peer, sizeof peer)) {
        return -1;
    }
    kc_why_t why;
    if (kc_zmtp_greeting_check (peer, sizeof peer, "CURVE", NULL, NULL, &why)) {
        printf ("  greeting: %s\n", why.text);
        return -1;
    }
    return 0;
}

static int
s_send_frame (int fd, uint8_t flags, const uint8_t *data, size_t size)
{
    uint8_t header [KC_ZMTP_HEADER_MAX];
    size_t header_size = kc_zmtp_frame_header (header, flags, size);
    if (s_write_all (fd, header, header_size)) {
        return -1;
    }
    return s_write_all (fd, data, size);
}

//  Receives one frame into a malloc'd buffer; NULL on error or EOF. The
//  header is read a byte at a time into kc_zmtp_frame_decode until it
//  knows the frame's length, then the body in one read.
static uint8_t *
s_recv_frame (int fd, uint8_t *flags, size_t *size)
{
    uint8_t header [KC_ZMTP_HEADER_MAX];
    size_t have = 0, consumed, needed = 0;
    kc_zmtp_frame_t frame;
    kc_why_t why;
    int rc = 1;
    while (rc == 1 && needed == 0 && have < sizeof header) {
        if (s_read_all (fd, header + have, 1)) {
            return NULL;
        }
        rc = kc_zmtp_frame_decode (header, ++have, FRAME_MAX, &frame, &consumed, &needed, &why);
    }
    if (rc == -1) {
        printf ("  frame: %s\n", why.text);
        return NULL;
    }
    size_t body = rc == 0 ? 0 : needed - have;
    uint8_t *data = malloc (have + body);
    assert (data);
    memcpy (data, header, have);
    if (s_read_all (fd, data + have, body)
    ||  kc_zmtp_frame_decode (data, have + body, FRAME_MAX, &frame, &consumed, &needed, &why)) {
        free (data);
        return NULL;
    }
    *flags = (uint8_t) frame.flags;
    *size = frame.size;
    memmove (data, frame.body, frame.size);
    return data;
}

//  Runs the handshake over ZMTP command frames, either role. Sends an
//  ERROR the codec made before giving up. Returns 0 once connected.
static int
s_handshake (int fd, kc_curve_t *codec, bool as_server, kc_why_t *why)
{
    if (s_greet (fd, as_server)) {
        return kc_why (why, "ZMTP greeting failed");
    }
    const uint8_t *output;
    size_t output_size;
    if (!as_server) {
        if (kc_curve_handshake (codec, NULL, 0, &output, &output_size, why)
        ||  s_send_frame (fd, ZMTP_COMMAND, output, output_size)) {
            return -1;
        }
    }
    while (!kc_curve_connected (codec)) {
        uint8_t flags;
        size_t size;
        uint8_t *command = s_recv_frame (fd, &flags, &size);
        if (!command) {
            return kc_why (why, "connection closed during the handshake");
        }
        int rc = kc_curve_handshake (codec, command, size, &output, &output_size, why);
        free (command);
        if (output && s_send_frame (fd, ZMTP_COMMAND, output, output_size)) {
            return kc_why (why, "cannot send a handshake command");
        }
        if (rc) {
            return -1;
        }
    }
    return 0;
}

//  Sends a multipart message: one MESSAGE per part, each in its own frame
//  with outer flags 0x00/0x02; parts are chained by the inner MORE flag.
static int
s_send_message (int fd, kc_curve_t *codec, const char *const *parts, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        size_t size = strlen (parts [i]);
        uint8_t *command = malloc (size + KC_CURVE_MESSAGE_OVERHEAD);
        assert (command);
        int flags = i + 1 < count ? KC_CURVE_MORE : 0;
        int rc = kc_curve_encode (codec, parts [i], size, flags, command, NULL);
        if (rc == 0) {
            rc = s_send_frame (fd, 0, command, size + KC_CURVE_MESSAGE_OVERHEAD);
        }
        free (command);
        if (rc) {
            return -1;
        }
    }
    return 0;
}

//  Receives one multipart message as a zmsg of plaintext parts, or NULL.
static zmsg_t *
s_recv_message (int fd, kc_curve_t *codec, kc_why_t *why)
{
    zmsg_t *msg = zmsg_new ();
    int flags = KC_CURVE_MORE;
    while (flags & KC_CURVE_MORE) {
        uint8_t outer;
        size_t size;
        uint8_t *command = s_recv_frame (fd, &outer, &size);
        if (!command || (outer & (ZMTP_COMMAND | ZMTP_MORE))) {
            kc_why (why, command ? "unexpected outer frame flags" : "connection closed");
            free (command);
            zmsg_destroy (&msg);
            return NULL;
        }
        uint8_t *payload;
        size_t payload_size;
        if (kc_curve_decode (codec, command, size, &payload, &payload_size, &flags, why)) {
            free (command);
            zmsg_destroy (&msg);
            return NULL;
        }
        zmsg_addmem (msg, payload, payload_size);
        free (command);
    }
    return msg;
}

//  True if msg has exactly these parts.
static bool
s_parts_are (zmsg_t *msg, const char *const *parts, size_t count)
{
    if (!msg || zmsg_size (msg) != count) {
        return false;
    }
    zframe_t *frame = zmsg_first (msg);
    for (size_t i = 0; i < count; i++, frame = zmsg_next (msg)) {
        if (!zframe_streq (frame, parts [i])) {
            return false;
        }
    }
    return true;
}

static int
s_tcp_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (fd < 0 || connect (fd, (struct sockaddr *) &address, sizeof address)) {
        if (fd >= 0) {
            close (fd);
        }
        return -1;
    }
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

//  Listens on 127.0.0.1:port (0 = ephemeral); *port gets the port.
static int
s_tcp_listen (int *port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) *port) };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || bind (fd, (struct sockaddr *) &address, sizeof address) || listen (fd, 8)
    ||  getsockname (fd, (struct sockaddr *) &address, &length)) {
        if (fd >= 0) {
            close (fd);
        }
        return -1;
    }
    *port = ntohs (address.sin_port);
    return fd;
}

static int
s_tcp_accept (int listener)
{
    struct pollfd item = { .fd = listener, .events = POLLIN };
    if (poll (&item, 1, TIMEOUT_MS) <= 0) {
        return -1;
    }
    int fd = accept (listener, NULL, NULL);
    int one = 1;
    if (fd >= 0) {
        setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

//  --- Codec client vs libzmq servers ---------------------------------------

typedef struct {
    uint8_t public_key [32], secret_key [32];
    char public_txt [41];
} s_keys_t;

static void
s_keys_new (s_keys_t *keys)
{
    crypto_box_keypair (keys->public_key, keys->secret_key);
    zmq_z85_encode (keys->public_txt, keys->public_key, 32);
}

//  A libzmq CURVE server socket of this type on an ephemeral port.
static zsock_t *
s_libzmq_server (int type, const s_keys_t *server, int *port)
{
    zsock_t *sock = zsock_new (type);
    assert (sock);
    zsock_set_curve_server (sock, 1);
    zsock_set_curve_secretkey_bin (sock, server->secret_key);
    zsock_set_zap_domain (sock, "keyclone-test");
    zsock_set_rcvtimeo (sock, TIMEOUT_MS);
    zsock_set_sndtimeo (sock, TIMEOUT_MS);
    zsock_set_linger (sock, 0);
    *port = zsock_bind (sock, "tcp://127.0.0.1:*");
    assert (*port > 0);
    return sock;
}

//  Codec client (DEALER) vs libzmq ROUTER: handshake, zauth sees our key,
//  single and multipart messages both ways.
static void
s_client_vs_router (const s_keys_t *server, const s_keys_t *client)
{
    int port;
    zsock_t *router = s_libzmq_server (ZMQ_ROUTER, server, &port);
    kc_curve_t *codec = kc_curve_new_client (client->public_key, client->secret_key,
                                             server->public_key);
    zmsg_t *msg = NULL;
    kc_why_t why;
    int fd = s_tcp_connect (port);
    CHECK (fd >= 0, "cannot connect to the ROUTER");
    CHECK (kc_curve_set_metadata (codec, KC_CURVE_SOCKET_TYPE, "DEALER", 6, &why) == 0, "meta");
    CHECK (kc_curve_set_metadata (codec, KC_CURVE_IDENTITY, "", 0, &why) == 0, "meta");
    CHECK (s_handshake (fd, codec, false, &why) == 0, "handshake with ROUTER: %s", why.text);
    const uint8_t *type = kc_meta_get (kc_curve_peer_metadata (codec), KC_CURVE_SOCKET_TYPE, NULL);
    CHECK (type && KC_STREQ ((const char *) type, "ROUTER"), "READY Socket-Type");
    printf ("ok   codec client <-> libzmq ROUTER: handshake, READY Socket-Type=ROUTER\n");

    const char *hello [] = { "Hello" };
    CHECK (s_send_message (fd, codec, hello, 1) == 0, "send");
    msg = zmsg_recv (router);
    CHECK (msg && zmsg_size (msg) == 2, "ROUTER got no message");
    zframe_t *body = zmsg_last (msg);
    CHECK (zframe_streq (body, "Hello"), "ROUTER got the wrong body");
    const char *user = zframe_meta (body, "User-Id");
    CHECK (user && KC_STREQ (user, client->public_txt), "zauth User-Id is not our key");
    zframe_reset (body, "World", 5);
    CHECK (zmsg_send (&msg, router) == 0, "ROUTER send");
    msg = s_recv_message (fd, codec, &why);
    const char *world [] = { "World" };
    CHECK (s_parts_are (msg, world, 1), "codec got the wrong reply: %s", why.text);
    zmsg_destroy (&msg);
    printf ("ok   codec client <-> libzmq ROUTER: 'Hello'/'World', zauth User-Id = our key\n");

    const char *three [] = { "a", "", "ccc" };
    CHECK (s_send_message (fd, codec, three, 3) == 0, "send");
    msg = zmsg_recv (router);
    CHECK (msg && zmsg_size (msg) == 4, "ROUTER got %zu parts", msg ? zmsg_size (msg) : 0);
    zframe_t *identity = zmsg_pop (msg);
    CHECK (s_parts_are (msg, three, 3), "ROUTER got the wrong parts");
    zmsg_destroy (&msg);
    msg = zmsg_new ();
    zmsg_append (msg, &identity);
    zmsg_addstr (msg, "x");
    zmsg_addstr (msg, "yy");
    CHECK (zmsg_send (&msg, router) == 0, "ROUTER send");
    msg = s_recv_message (fd, codec, &why);
    const char *two [] = { "x", "yy" };
    CHECK (s_parts_are (msg, two, 2), "codec got the wrong parts: %s", why.text);
    printf ("ok   codec client <-> libzmq ROUTER: multipart both ways (3 and 2 parts)\n");
cleanup:
    zmsg_destroy (&msg);
    if (fd >= 0) {
        close (fd);
    }
    kc_curve_destroy (&codec);
    zsock_destroy (&router);
}

//  Codec client (REQ) vs libzmq REP: the empty delimiter travels as a part.
static void
s_client_vs_rep (const s_keys_t *server, const s_keys_t *client)
{
    int port;
    zsock_t *rep = s_libzmq_server (ZMQ_REP, server, &port);
    kc_curve_t *codec = kc_curve_new_client (client->public_key, client->secret_key,
                                             server->public_key);
    zmsg_t *msg = NULL;
    kc_why_t why;
    int fd = s_tcp_connect (port);
    CHECK (fd >= 0, "cannot connect to the REP");
    CHECK (kc_curve_set_metadata (codec, KC_CURVE_SOCKET_TYPE, "REQ", 3, &why) == 0, "meta");
    CHECK (kc_curve_set_metadata (codec, KC_CURVE_IDENTITY, "", 0, &why) == 0, "meta");
    CHECK (s_handshake (fd, codec, false, &why) == 0, "handshake with REP: %s", why.text);
    for (int round = 0; round < 2; round++) {
        const char *request [] = { "", "Hello", "again" };
        size_t parts = round ? 3 : 2;
        CHECK (s_send_message (fd, codec, request, parts) == 0, "send");
        msg = zmsg_recv (rep);
        CHECK (s_parts_are (msg, request + 1, parts - 1), "REP got the wrong request");
        zmsg_destroy (&msg);
        msg = zmsg_new ();
        zmsg_addstr (msg, "World");
        if (round) {
            zmsg_addstr (msg, "too");
        }
        CHECK (zmsg_send (&msg, rep) == 0, "REP send");
        msg = s_recv_message (fd, codec, &why);
        const char *reply [] = { "", "World", "too" };
        CHECK (s_parts_are (msg, reply, parts), "codec got the wrong reply: %s", why.text);
        zmsg_destroy (&msg);
    }
    printf ("ok   codec client <-> libzmq REP: handshake, request/reply single and multipart\n");
cleanup:
    zmsg_destroy (&msg);
    if (fd >= 0) {
        close (fd);
    }
    kc_curve_destroy (&codec);
    zsock_destroy (&rep);
}

//  A key zauth does not know: libzmq answers INITIATE with ERROR "400".
static void
s_client_refused (const s_keys_t *server)
{
    s_keys_t stranger;
    s_keys_new (&stranger);
    int port;
    zsock_t *router = s_libzmq_server (ZMQ_ROUTER, server, &port);
    kc_curve_t *codec = kc_curve_new_client (stranger.public_key, stranger.secret_key,
                                             server->public_key);
    kc_why_t why;
    kc_why_clear (&why);
    int fd = s_tcp_connect (port);
    CHECK (fd >= 0, "cannot connect to the ROUTER");
    CHECK (kc_curve_set_metadata (codec, KC_CURVE_SOCKET_TYPE, "DEALER", 6, &why) == 0, "meta");
    CHECK (s_handshake (fd, codec, false, &why) == -1, "an unknown key got in");
    CHECK (strstr (why.text, "server sent ERROR '400'"), "client reason: '%s'", why.text);
    CHECK (kc_curve_failed (codec), "codec not failed");
    printf ("ok   codec client with an unknown key: libzmq+zauth sent ERROR, codec: %s\n",
            why.text);
cleanup:
    if (fd >= 0) {
        close (fd);
    }
    kc_curve_destroy (&codec);
    zsock_destroy (&router);
}

//  --- Codec server vs libzmq clients ---------------------------------------

typedef struct {
    const uint8_t *allowed;             //  the one client key let in
} s_allow_t;

static int
s_authorize (const uint8_t client_key [KC_KEY_BYTES], const kc_meta_t *metadata, void *arg,
             kc_curve_identity_t *identity)
{
    (void) metadata;
    const s_allow_t *allow = arg;
    if (allow->allowed && memcmp (client_key, allow->allowed, 32) == 0) {
        snprintf (identity->name, sizeof identity->name, "interop-client");
        return KC_CURVE_ALLOW;
    }
    return KC_CURVE_DENY;
}

static zsock_t *
s_libzmq_client (int type, const s_keys_t *client, const uint8_t *server_key, int port,
                 zsock_t **monitor, int id)
{
    zsock_t *sock = zsock_new (type);
    assert (sock);
    zsock_set_curve_serverkey_bin (sock, server_key);
    zsock_set_curve_publickey_bin (sock, client->public_key);
    zsock_set_curve_secretkey_bin (sock, client->secret_key);
    zsock_set_rcvtimeo (sock, TIMEOUT_MS);
    zsock_set_sndtimeo (sock, TIMEOUT_MS);
    zsock_set_linger (sock, 0);
    if (monitor) {
        char endpoint [64];
        snprintf (endpoint, sizeof endpoint, "inproc://curve-monitor-%d", id);
        int rc = zmq_socket_monitor (zsock_resolve (sock), endpoint,
                                     ZMQ_EVENT_HANDSHAKE_SUCCEEDED
                                     | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                                     | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL);
        assert (rc == 0);
        *monitor = zsock_new_pair (endpoint);
        assert (*monitor);
        zsock_set_rcvtimeo (*monitor, TIMEOUT_MS);
    }
    int rc = zsock_connect (sock, "tcp://127.0.0.1:%d", port);
    assert (rc == 0);
    return sock;
}

//  Waits for the next monitor event; returns it (0 on timeout), value in *value.
static int
s_monitor_event (zsock_t *monitor, uint32_t *value)
{
    zmsg_t *msg = zmsg_recv (monitor);
    if (!msg) {
        return 0;
    }
    zframe_t *frame = zmsg_first (msg);
    int event = 0;
    if (zframe_size (frame) == 6) {
        const uint8_t *data = zframe_data (frame);
        uint16_t number;
        memcpy (&number, data, 2);
        memcpy (value, data + 2, 4);
        event = number;
    }
    zmsg_destroy (&msg);
    return event;
}

//  Codec server (ROUTER or REP role) vs a libzmq DEALER or REQ client.
static void
s_server_vs (int type, const s_keys_t *server, const s_keys_t *client)
{
    bool req = type == ZMQ_REQ;
    const char *name = req ? "REQ" : "DEALER";
    int port = 0;
    int listener = s_tcp_listen (&port);
    assert (listener >= 0);
    zsock_t *sock = s_libzmq_client (type, client, server->public_key, port, NULL, 0);
    kc_curve_t *codec = kc_curve_new_server (server->public_key, server->secret_key);
    s_allow_t allow = { client->public_key };
    kc_curve_set_authorizer (codec, s_authorize, &allow);
    zmsg_t *msg = NULL;
    kc_why_t why;
    int fd = s_tcp_accept (listener);
    CHECK (fd >= 0, "the libzmq %s did not connect", name);
    CHECK (kc_curve_set_metadata (codec, KC_CURVE_SOCKET_TYPE, req ? "REP" : "ROUTER",
                                  req ? 3 : 6, &why) == 0, "meta");
    CHECK (s_handshake (fd, codec, true, &why) == 0, "handshake with %s: %s", name, why.text);
    const kc_curve_identity_t *identity = kc_curve_identity (codec);
    CHECK (identity && memcmp (identity->key, client->public_key, 32) == 0, "identity key");
    CHECK (KC_STREQ (identity->name, "interop-client"), "identity name");
    const uint8_t *type_value = kc_meta_get (kc_curve_peer_metadata (codec),
                                             KC_CURVE_SOCKET_TYPE, NULL);
    CHECK (type_value && KC_STREQ ((const char *) type_value, name), "INITIATE Socket-Type");
    printf ("ok   codec server <-> libzmq %s: handshake, client authorised as '%s', "
            "INITIATE Socket-Type=%s\n", name, identity->name, name);

    for (int round = 0; round < 2; round++) {
        msg = zmsg_new ();
        zmsg_addstr (msg, "Hello");
        if (round) {
            zmsg_addstr (msg, "");
            zmsg_addstr (msg, "third");
        }
        CHECK (zmsg_send (&msg, sock) == 0, "%s send", name);
        msg = s_recv_message (fd, codec, &why);
        const char *request [] = { "", "Hello", "", "third" };
        size_t parts = round ? 3 : 1;
        CHECK (s_parts_are (msg, req ? request : request + 1, parts + req),
               "codec got the wrong request (%s)", why.text);
        zmsg_destroy (&msg);
        const char *reply [] = { "", "World", "again" };
        CHECK (s_send_message (fd, codec, req ? reply : reply + 1, (round ? 2 : 1) + req) == 0,
               "send");
        msg = zmsg_recv (sock);
        CHECK (s_parts_are (msg, reply + 1, round ? 2 : 1), "%s got the wrong reply", name);
        zmsg_destroy (&msg);
    }
    printf ("ok   codec server <-> libzmq %s: single and multipart messages both ways\n", name);
cleanup:
    zmsg_destroy (&msg);
    if (fd >= 0) {
        close (fd);
    }
    close (listener);
    kc_curve_destroy (&codec);
    zsock_destroy (&sock);
}

//  The authorizer denies the client: ERROR "400", and libzmq's monitor
//  reports HANDSHAKE_FAILED_AUTH with status 400.
static void
s_server_denies (const s_keys_t *server)
{
    s_keys_t stranger;
    s_keys_new (&stranger);
    int port = 0;
    int listener = s_tcp_listen (&port);
    assert (listener >= 0);
    zsock_t *monitor = NULL;
    zsock_t *sock = s_libzmq_client (ZMQ_DEALER, &stranger, server->public_key, port,
                                     &monitor, 1);
    kc_curve_t *codec = kc_curve_new_server (server->public_key, server->secret_key);
    s_allow_t allow = { NULL };
    kc_curve_set_authorizer (codec, s_authorize, &allow);
    kc_why_t why;
    kc_why_clear (&why);
    int fd = s_tcp_accept (listener);
    CHECK (fd >= 0, "the libzmq DEALER did not connect");
    CHECK (kc_curve_set_metadata (codec, KC_CURVE_SOCKET_TYPE, "ROUTER", 6, &why) == 0, "meta");
    CHECK (s_handshake (fd, codec, true, &why) == -1, "a denied client got in");
    CHECK (strstr (why.text, "not authorised (400)"), "server reason: '%s'", why.text);
    uint32_t value = 0;
    int event = s_monitor_event (monitor, &value);
    CHECK (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value == 400,
           "libzmq reported event 0x%x value %u, not HANDSHAKE_FAILED_AUTH 400", event, value);
    printf ("ok   codec server denies a libzmq DEALER: ERROR sent, libzmq reports "
            "HANDSHAKE_FAILED_AUTH %u\n", value);
cleanup:
    if (fd >= 0) {
        close (fd);
    }
    close (listener);
    kc_curve_destroy (&codec);
    zsock_destroy (&sock);
    zsock_destroy (&monitor);
}

//  A libzmq client that has the wrong server key: its HELLO never opens.
static void
s_server_wrong_key (const s_keys_t *server, const s_keys_t *client)
{
    s_keys_t other;
    s_keys_new (&other);
    int port = 0;
    int listener = s_tcp_listen (&port);
    assert (listener >= 0);
    zsock_t *sock = s_libzmq_client (ZMQ_DEALER, client, other.public_key, port, NULL, 0);
    kc_curve_t *codec = kc_curve_new_server (server->public_key, server->secret_key);
    s_allow_t allow = { client->public_key };
    kc_curve_set_authorizer (codec, s_authorize, &allow);
    kc_why_t why;
    kc_why_clear (&why);
    int fd = s_tcp_accept (listener);
    CHECK (fd >= 0, "the libzmq DEALER did not connect");
    CHECK (s_handshake (fd, codec, true, &why) == -1, "a HELLO for another key got in");
    CHECK (strstr (why.text, "signature box does not open"), "server reason: '%s'", why.text);
    printf ("ok   codec server refuses a libzmq DEALER with the wrong server key: %s\n",
            why.text);
cleanup:
    if (fd >= 0) {
        close (fd);
    }
    close (listener);
    kc_curve_destroy (&codec);
    zsock_destroy (&sock);
}

static int
s_check (void)
{
    s_keys_t server, client;
    s_keys_new (&server);
    s_keys_new (&client);
    //  zauth, allowing the client's certificate from a directory
    char certs [] = "/tmp/kc-curve-interop-XXXXXX";
    assert (mkdtemp (certs));
    char path [256];
    snprintf (path, sizeof path, "%s/client", certs);
    zcert_t *cert = zcert_new_from (client.public_key, client.secret_key);
    int rc = zcert_save_public (cert, path);
    assert (rc == 0);
    zcert_destroy (&cert);
    zactor_t *auth = zactor_new (zauth, NULL);
    assert (auth);
    zstr_sendx (auth, "CURVE", certs, NULL);
    zsock_wait (auth);

    s_client_vs_router (&server, &client);
    s_client_vs_rep (&server, &client);
    s_client_refused (&server);
    s_server_vs (ZMQ_DEALER, &server, &client);
    s_server_vs (ZMQ_REQ, &server, &client);
    s_server_denies (&server);
    s_server_wrong_key (&server, &client);

    zactor_destroy (&auth);
    unlink (path);
    rmdir (certs);
    if (s_failures) {
        printf ("curve_interop: %d scenario(s) failed\n", s_failures);
        return 1;
    }
    printf ("curve_interop: all scenarios passed\n");
    return 0;
}

//  --- serve: a codec server for other peers --------------------------------

//  Serves one connection: handshake, then echo until the peer closes.
static void
s_serve_one (int fd, const s_keys_t *server, const uint8_t *allowed)
{
    kc_curve_t *codec = kc_curve_new_server (server->public_key, server->secret_key);
    s_allow_t allow = { allowed };
    kc_curve_set_authorizer (codec, s_authorize, &allow);
    kc_why_t why;
    kc_why_clear (&why);
    int rc = kc_curve_set_metadata (codec, KC_CURVE_SOCKET_TYPE, "ROUTER", 6, &why);
    assert (rc == 0);
    if (s_handshake (fd, codec, true, &why)) {
        printf ("S: refused: %s\n", why.text);
        kc_curve_destroy (&codec);
        return;
    }
    const kc_curve_identity_t *identity = kc_curve_identity (codec);
    const uint8_t *type = kc_meta_get (kc_curve_peer_metadata (codec), KC_CURVE_SOCKET_TYPE, NULL);
    char fingerprint [KC_FINGERPRINT_CHARS + 1];
    printf ("S: authorised %s as '%s', Socket-Type=%s\n",
            kc_fingerprint (identity->key, fingerprint), identity->name,
            type ? (const char *) type : "?");
    fflush (stdout);
    int messages = 0;
    zmsg_t *msg;
    while ((msg = s_recv_message (fd, codec, &why))) {
        size_t count = zmsg_size (msg);
        char **parts = calloc (count, sizeof *parts);
        zframe_t *frame = zmsg_first (msg);
        for (size_t i = 0; i < count; i++, frame = zmsg_next (msg)) {
            char *text = zframe_strdup (frame);
            parts [i] = zframe_size (frame) ? zsys_sprintf ("echo:%s", text) : strdup ("");
            free (text);
        }
        rc = s_send_message (fd, codec, (const char *const *) parts, count);
        for (size_t i = 0; i < count; i++) {
            free (parts [i]);
        }
        free (parts);
        zmsg_destroy (&msg);
        if (rc) {
            break;
        }
        messages++;
    }
    printf ("S: connection closed after %d messages\n", messages);
    kc_curve_destroy (&codec);
}


//  --- A libzmq peer with heartbeats, for docs/curvezmq.md's endpoint ---------

//  Heartbeats on a libzmq socket (100 ms PINGs, 300 ms to answer, 1 s TTL),
//  read back: a setter that did nothing would make the test prove nothing.
static int
s_heartbeats_on (zsock_t *sock)
{
    zsock_set_heartbeat_ivl (sock, 100);
    zsock_set_heartbeat_timeout (sock, 300);
    zsock_set_heartbeat_ttl (sock, 1000);
    if (zsock_heartbeat_ivl (sock) != 100 || zsock_heartbeat_timeout (sock) != 300
    ||  zsock_heartbeat_ttl (sock) != 1000) {
        printf ("FAIL heartbeat options did not take\n");
        return -1;
    }
    return 0;
}

//  Prints every monitor event that has arrived (HANDSHAKE_SUCCEEDED,
//  DISCONNECTED, ...); returns how many were disconnections.
static int
s_events (zactor_t *monitor, int wait_ms)
{
    int disconnected = 0;
    zpoller_t *poller = zpoller_new (monitor, NULL);
    while (zpoller_wait (poller, wait_ms) == monitor) {
        zmsg_t *msg = zmsg_recv (monitor);
        char *event = zmsg_popstr (msg);
        printf ("event %s\n", event);
        disconnected += KC_STREQ (event, "DISCONNECTED");
        zstr_free (&event);
        zmsg_destroy (&msg);
        wait_ms = 0;
    }
    zpoller_destroy (&poller);
    return disconnected;
}

//  curve_interop peer ROUTER PORT: binds 127.0.0.1:PORT as a CURVE server,
//  prints "key Z85", echoes two messages with "echo:" in front. curve_interop
//  peer DEALER PORT: prints "key Z85" (its own), reads the server's key from
//  stdin, connects, sends "hello", is quiet for a second, sends "bye". Both
//  heartbeat and exit 0 when both exchanges worked with no disconnection.
static int
s_peer (const char *type, int port)
{
    bool router = KC_STREQ (type, "ROUTER");
    s_keys_t mine;
    s_keys_new (&mine);
    zsock_t *sock = zsock_new (router ? ZMQ_ROUTER : ZMQ_DEALER);
    zactor_t *monitor = zactor_new (zmonitor, sock);
    zstr_sendx (monitor, "LISTEN", "HANDSHAKE_SUCCEEDED", "DISCONNECTED", "HANDSHAKE_FAILED_NO_DETAIL",
                "HANDSHAKE_FAILED_PROTOCOL", "HANDSHAKE_FAILED_AUTH", NULL);
    zstr_send (monitor, "START");
    zsock_wait (monitor);
    int rc = 1, received = 0, disconnected = -1;
    if (s_heartbeats_on (sock)) {
        goto done;
    }
    zsock_set_rcvtimeo (sock, TIMEOUT_MS);
    zsock_set_linger (sock, 0);
    zsock_set_curve_secretkey_bin (sock, mine.secret_key);
    zsock_set_curve_publickey_bin (sock, mine.public_key);
    printf ("key %s\n", mine.public_txt);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    if (router) {
        zsock_set_curve_server (sock, 1);
        if (zsock_bind (sock, "%s", endpoint) != port) {
            printf ("FAIL cannot bind %s\n", endpoint);
            goto done;
        }
    }
    else {
        char line [128];
        uint8_t server [32];
        if (!fgets (line, sizeof line, stdin) || !zmq_z85_decode (server, strtok (line, "\n"))) {
            printf ("FAIL no server key on stdin\n");
            goto done;
        }
        zsock_set_curve_serverkey_bin (sock, server);
        if (zsock_connect (sock, "%s", endpoint)) {
            printf ("FAIL cannot connect to %s\n", endpoint);
            goto done;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (!router) {
            if (i == 1) {
                zclock_sleep (1000);        //  only heartbeats flow
            }
            zstr_send (sock, i ? "bye" : "hello");
        }
        zmsg_t *msg = zmsg_recv (sock);
        if (!msg) {
            printf ("FAIL nothing received\n");
            goto done;
        }
        char *body = zframe_strdup (zmsg_last (msg));
        printf ("%s got %s\n", type, body);
        if (i == 1) {
            //  Before the last reply the endpoint has no reason to close:
            //  a disconnection so far is a failure (an unanswered PING)
            disconnected = s_events (monitor, 0);
        }
        if (router) {
            zframe_t *last = zmsg_last (msg);
            char reply [64];
            snprintf (reply, sizeof reply, "echo:%s", body);
            zframe_reset (last, reply, strlen (reply));
            zmsg_send (&msg, sock);
        }
        zstr_free (&body);
        zmsg_destroy (&msg);
        received++;
    }
    rc = received == 2 && disconnected == 0 ? 0 : 1;
done:
    zactor_destroy (&monitor);
    zsock_destroy (&sock);
    printf ("%s\n", rc ? "FAIL" : "ok");
    return rc;
}

static int
s_serve (int port, const char *client_txt)
{
    uint8_t allowed [32];
    kc_why_t why;
    if (kc_z85_key (client_txt, allowed, &why)) {
        fprintf (stderr, "curve_interop: bad client key: %s\n", why.text);
        return 2;
    }
    s_keys_t server;
    s_keys_new (&server);
    int listener = s_tcp_listen (&port);
    if (listener < 0) {
        fprintf (stderr, "curve_interop: cannot listen on port %d\n", port);
        return 1;
    }
    printf ("SERVER %s\n", server.public_txt);
    fflush (stdout);
    while (true) {
        int fd = accept (listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        s_serve_one (fd, &server, allowed);
        fflush (stdout);
        close (fd);
    }
    close (listener);
    return 0;
}

int
main (int argc, char *argv [])
{
    if (sodium_init () < 0) {
        return 1;
    }
    setvbuf (stdout, NULL, _IOLBF, 0);
    if (argc == 2 && KC_STREQ (argv [1], "check")) {
        return s_check ();
    }
    if (argc == 4 && KC_STREQ (argv [1], "serve")) {
        return s_serve (atoi (argv [2]), argv [3]);
    }
    if (argc == 4 && KC_STREQ (argv [1], "peer") && (KC_STREQ (argv [2], "ROUTER") || KC_STREQ (argv [2], "DEALER"))) {
        return s_peer (argv [2], atoi (argv [3]));
    }
    fprintf (stderr, "usage: curve_interop check | serve PORT CLIENT_KEY | peer ROUTER|DEALER PORT\n");
    return 2;
}
