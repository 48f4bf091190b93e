/*  =========================================================================
    bench_curve - kc_curve against its peers, measured in the same run on the
    same machine (reference/perf-baseline.md sections 1, 2a, 2b):

    0. The server's side of one handshake through the codec alone (no
       sockets: new, HELLO, INITIATE, destroy) against the libsodium calls
       it makes, timed back to back with the same sizes; target <= 1.2x.
    1. Full connections (connect + handshake + one 32 B round trip + close),
       K client threads in a forked client process, server in another:
       kc_curve over NULL DEALER/ROUTER vs libzmq's built-in CURVE REQ/REP.
       Server CPU per connection from wait4 rusage; target: server CPU rate
       >= 1.5x libzmq's (connections per server core).
    2. MESSAGE encode + decode, one core, 32 B / 1 KiB / 64 KiB, vs raw
       crypto_box_easy_afternm + crypto_box_open_easy_afternm of the same
       payload (the limit); target >= 0.9x.
    3. An encrypted DEALER pair in two processes over tcp loopback: kc_curve
       over NULL DEALERs vs libzmq CURVE DEALERs; target >= 1.0x. Beside
       them, unencrypted NULL DEALERs: the transport's own ceiling.

    Each figure is the best of ROUNDS runs, the configurations taking turns.
    Usage: bench_curve [quick]      (quick: shorter runs, for smoke tests)
    =========================================================================
*/
#include "kc_all.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define ROUNDS          2
#define CLIENTS         8               //  client threads, as perf-baseline 2a
#define SLOTS           64              //  concurrent handshakes the server tracks
#define TIMEOUT_MS      5000

static double s_seconds = 2.0;          //  per handshake run
static double s_scale = 1.0;            //  message counts
static uint8_t s_server_public [32], s_server_secret [32];
static uint8_t s_client_public [32], s_client_secret [32];
static volatile sig_atomic_t s_stop = 0;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double
s_cpu (const struct rusage *usage)
{
    return (double) usage->ru_utime.tv_sec + (double) usage->ru_utime.tv_usec / 1e6
         + (double) usage->ru_stime.tv_sec + (double) usage->ru_stime.tv_usec / 1e6;
}

static void
s_on_term (int signal_number)
{
    (void) signal_number;
    s_stop = 1;
}

static void
s_die (const char *what)
{
    fprintf (stderr, "bench_curve: %s: %s\n", what, zmq_strerror (zmq_errno ()));
    exit (1);
}

static int
s_allow (const uint8_t client_key [KC_KEY_BYTES], const kc_meta_t *metadata, void *arg,
         kc_curve_identity_t *identity)
{
    (void) client_key;
    (void) metadata;
    (void) arg;
    (void) identity;
    return KC_CURVE_ALLOW;
}

//  Sends size bytes as one frame, after an optional routing id.
static int
s_send (void *sock, const void *routing_id, size_t routing_size, const void *data, size_t size)
{
    if (routing_id && zmq_send (sock, routing_id, routing_size, ZMQ_SNDMORE) < 0) {
        return -1;
    }
    return zmq_send (sock, data, size, 0) < 0 ? -1 : 0;
}


//  --- 0. The server's side of a handshake, codec alone, vs its raw crypto ------

//  Runs a handshake in memory between two fresh codecs, each turning the
//  other's last command into its next; returns the seconds spent in the
//  server's steps (HELLO -> WELCOME, INITIATE -> READY), or -1 on failure.
static double
s_handshake (kc_curve_t *client, kc_curve_t *server)
{
    const uint8_t *output;
    size_t size;
    uint8_t command [KC_CURVE_COMMAND_MAX];
    double spent = 0;
    kc_curve_t *turn = server;
    int rc = kc_curve_handshake (client, NULL, 0, &output, &size, NULL);
    while (rc == 0 && output) {
        memcpy (command, output, size);
        double started = s_now ();
        rc = kc_curve_handshake (turn, command, size, &output, &size, NULL);
        if (turn == server) {
            spent += s_now () - started;
        }
        turn = turn == server ? client : server;
    }
    return rc || !kc_curve_connected (client) || !kc_curve_connected (server) ? -1 : spent;
}

//  One handshake in memory; returns the seconds spent in the server's calls
//  (new, HELLO -> WELCOME, INITIATE -> READY, destroy), or -1 on failure.
static double
s_codec_alone (void)
{
    kc_curve_t *client = kc_curve_new_client (s_client_public, s_client_secret, s_server_public);
    if (kc_curve_set_metadata (client, KC_CURVE_SOCKET_TYPE, "DEALER", 6, NULL)
    ||  kc_curve_set_metadata (client, KC_CURVE_IDENTITY, "", 0, NULL)) {
        return -1;
    }
    double started = s_now ();
    kc_curve_t *server = kc_curve_new_server (s_server_public, s_server_secret);
    kc_curve_set_authorizer (server, s_allow, NULL);
    int rc = kc_curve_set_metadata (server, KC_CURVE_SOCKET_TYPE, "ROUTER", 6, NULL);
    double spent = s_now () - started;
    double steps = rc ? -1 : s_handshake (client, server);
    started = s_now ();
    kc_curve_destroy (&server);
    spent += s_now () - started;
    kc_curve_destroy (&client);
    return steps < 0 ? -1 : spent + steps;
}

//  The libsodium calls the server makes in one handshake, with the same
//  sizes, back to back: HELLO (DH C'.s, open 64 B), WELCOME (key pair S',
//  cookie key and nonces, secretbox 64 B, box 128 B), INITIATE (open the
//  cookie, DH C'.s', open C + vouch + 35 B of metadata, DH C.s', open the
//  vouch), READY (box 22 B of metadata) and the two MESSAGE subkeys.
static double
s_raw_handshake (const uint8_t client_transient [32], const uint8_t *hello_box,
                 const uint8_t *cookie_box, const uint8_t *initiate_box, const uint8_t *vouch_box)
{
    uint8_t key [32], transient [32], transient_secret [32], cookie_key [32], nonce [24] = { 0 };
    uint8_t plain [256], box [256], subkey [32];
    double started = s_now ();
    int rc = crypto_box_beforenm (key, client_transient, s_server_secret);
    rc |= crypto_box_open_easy_afternm (plain, hello_box, 80, nonce, key);
    crypto_box_keypair (transient, transient_secret);
    randombytes_buf (cookie_key, 32);
    randombytes_buf (nonce, 16);
    crypto_secretbox_easy (box, plain, 64, nonce, cookie_key);
    randombytes_buf (nonce, 16);
    crypto_box_detached_afternm (box + 16, box, plain, 128, nonce, key);
    rc |= crypto_secretbox_open_easy (plain, cookie_box, 80, nonce, cookie_key);
    rc |= crypto_box_beforenm (key, client_transient, transient_secret);
    rc |= crypto_box_open_easy_afternm (plain, initiate_box, 128 + 35 + 16, nonce, key);
    rc |= crypto_box_beforenm (subkey, s_client_public, transient_secret);
    rc |= crypto_box_open_easy_afternm (plain, vouch_box, 80, nonce, subkey);
    crypto_box_detached_afternm (box + 16, box, plain, 22, nonce, key);
    crypto_core_hsalsa20 (subkey, nonce, key, NULL);
    crypto_core_hsalsa20 (subkey, nonce + 8, key, NULL);
    double spent = s_now () - started;
    //  The opens fail (the boxes are random): each still does all its work,
    //  MAC check included, as a real open does
    (void) rc;
    return spent;
}

static void
s_bench_handshake_cost (void)
{
    uint8_t client_transient [32], secret [32], boxes [4][256];
    crypto_box_keypair (client_transient, secret);
    randombytes_buf (boxes, sizeof boxes);
    int count = (int) (2000 * s_scale) + 50;
    double codec = 0, raw = 0;
    for (int round = 0; round < 5; round++) {
        double codec_run = 0, raw_run = 0;
        for (int i = 0; i < count; i++) {
            double c = s_codec_alone ();
            if (c < 0) {
                printf ("   the codec's handshake failed\n");
                return;
            }
            codec_run += c;
            raw_run += s_raw_handshake (client_transient, boxes [0], boxes [1], boxes [2], boxes [3]);
        }
        codec = round == 0 || codec_run < codec ? codec_run : codec;
        raw = round == 0 || raw_run < raw ? raw_run : raw;
    }
    double ratio = codec / raw;
    printf ("0. the server's side of a handshake, codec alone (no sockets), one core, best of 5 x %d, "
            "interleaved with its raw libsodium calls\n", count);
    printf ("   kc_curve server %6.1f us/handshake  raw libsodium sum %6.1f us  %.2fx (target <= 1.2x) %s\n",
            1e6 * codec / count, 1e6 * raw / count, ratio, ratio <= 1.2 ? "MET" : "NOT MET");
}

//  --- 1. Full connections: servers --------------------------------------------

typedef struct {
    uint8_t id [256];
    size_t id_size;
    kc_curve_t *codec;
} s_slot_t;

static s_slot_t *
s_slot (s_slot_t *slots, const uint8_t *id, size_t id_size)
{
    s_slot_t *free_slot = NULL;
    for (int i = 0; i < SLOTS; i++) {
        if (slots [i].codec && slots [i].id_size == id_size
        &&  memcmp (slots [i].id, id, id_size) == 0) {
            return &slots [i];
        }
        if (!slots [i].codec && !free_slot) {
            free_slot = &slots [i];
        }
    }
    if (free_slot) {
        memcpy (free_slot->id, id, id_size);
        free_slot->id_size = id_size;
        free_slot->codec = kc_curve_new_server (s_server_public, s_server_secret);
        kc_curve_set_authorizer (free_slot->codec, s_allow, NULL);
    }
    return free_slot;
}

//  One ROUTER message: a handshake step, or the request to echo.
static void
s_codec_serve (void *router, s_slot_t *slot, uint8_t *command, size_t size)
{
    kc_curve_t *codec = slot->codec;
    if (!kc_curve_connected (codec)) {
        const uint8_t *output;
        size_t output_size;
        int rc = kc_curve_handshake (codec, command, size, &output, &output_size, NULL);
        if (output) {
            s_send (router, slot->id, slot->id_size, output, output_size);
        }
        if (rc) {
            kc_curve_destroy (&slot->codec);
        }
        return;
    }
    uint8_t *payload, reply [64 + KC_CURVE_MESSAGE_OVERHEAD];
    size_t payload_size;
    int flags;
    if (kc_curve_decode (codec, command, size, &payload, &payload_size, &flags, NULL) == 0
    &&  payload_size <= 64
    &&  kc_curve_encode (codec, payload, payload_size, 0, reply, NULL) == 0) {
        s_send (router, slot->id, slot->id_size, reply,
                payload_size + KC_CURVE_MESSAGE_OVERHEAD);
    }
    kc_curve_destroy (&slot->codec);        //  one round trip per connection
}

static void
s_codec_server (void *ctx, int ready)
{
    void *router = zmq_socket (ctx, ZMQ_ROUTER);
    int zero = 0, port;
    zmq_setsockopt (router, ZMQ_LINGER, &zero, sizeof zero);
    char endpoint [64];
    size_t length = sizeof endpoint;
    if (zmq_bind (router, "tcp://127.0.0.1:*")
    ||  zmq_getsockopt (router, ZMQ_LAST_ENDPOINT, endpoint, &length)) {
        s_die ("bind");
    }
    port = atoi (strrchr (endpoint, ':') + 1);
    if (write (ready, &port, sizeof port) != sizeof port) {
        exit (1);
    }
    s_slot_t *slots = calloc (SLOTS, sizeof *slots);
    uint8_t id [256], command [1024];
    while (!s_stop) {
        zmq_pollitem_t item = { router, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 100) <= 0) {
            continue;
        }
        int id_size = zmq_recv (router, id, sizeof id, ZMQ_DONTWAIT);
        int size = zmq_recv (router, command, sizeof command, ZMQ_DONTWAIT);
        if (id_size <= 0 || size < 0 || size > (int) sizeof command) {
            continue;
        }
        s_slot_t *slot = s_slot (slots, id, (size_t) id_size);
        if (slot) {
            s_codec_serve (router, slot, command, (size_t) size);
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        kc_curve_destroy (&slots [i].codec);
    }
    free (slots);
    zmq_close (router);
}

static void
s_libzmq_server (void *ctx, int ready)
{
    void *rep = zmq_socket (ctx, ZMQ_REP);
    int one = 1, zero = 0, port;
    zmq_setsockopt (rep, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (rep, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt (rep, ZMQ_CURVE_SECRETKEY, s_server_secret, 32);
    char endpoint [64];
    size_t length = sizeof endpoint;
    if (zmq_bind (rep, "tcp://127.0.0.1:*")
    ||  zmq_getsockopt (rep, ZMQ_LAST_ENDPOINT, endpoint, &length)) {
        s_die ("bind");
    }
    port = atoi (strrchr (endpoint, ':') + 1);
    if (write (ready, &port, sizeof port) != sizeof port) {
        exit (1);
    }
    uint8_t buffer [256];
    while (!s_stop) {
        zmq_pollitem_t item = { rep, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 100) <= 0) {
            continue;
        }
        int size = zmq_recv (rep, buffer, sizeof buffer, ZMQ_DONTWAIT);
        if (size >= 0) {
            zmq_send (rep, buffer, (size_t) size, 0);
        }
    }
    zmq_close (rep);
}

//  --- 1. Full connections: clients ---------------------------------------------

typedef struct {
    void *ctx;
    bool codec;
    char endpoint [64];
    double deadline;
    long connections;
    long failures;
} s_client_t;

//  Receives one frame into buffer; returns its size or -1.
static int
s_recv (void *sock, uint8_t *buffer, size_t capacity)
{
    int size = zmq_recv (sock, buffer, capacity, 0);
    return size > (int) capacity ? -1 : size;
}

//  The client side of the handshake over a DEALER; 0 once connected.
static int
s_codec_handshake (void *sock, kc_curve_t *codec)
{
    const uint8_t *output;
    size_t size;
    uint8_t buffer [1024];
    if (kc_curve_handshake (codec, NULL, 0, &output, &size, NULL)
    ||  s_send (sock, NULL, 0, output, size)) {
        return -1;
    }
    while (!kc_curve_connected (codec)) {
        int got = s_recv (sock, buffer, sizeof buffer);
        if (got < 0 || kc_curve_handshake (codec, buffer, (size_t) got, &output, &size, NULL)) {
            return -1;
        }
        if (output && s_send (sock, NULL, 0, output, size)) {
            return -1;
        }
    }
    return 0;
}

static int
s_codec_connection (void *sock, kc_curve_t *codec)
{
    uint8_t buffer [1024];
    if (s_codec_handshake (sock, codec)) {
        return -1;
    }
    uint8_t request [32] = "ping", *payload;
    size_t payload_size;
    int flags;
    if (kc_curve_encode (codec, request, sizeof request, 0, buffer, NULL)
    ||  s_send (sock, NULL, 0, buffer, sizeof request + KC_CURVE_MESSAGE_OVERHEAD)) {
        return -1;
    }
    int got = s_recv (sock, buffer, sizeof buffer);
    if (got < 0 || kc_curve_decode (codec, buffer, (size_t) got, &payload, &payload_size,
                                    &flags, NULL)
    ||  payload_size != sizeof request) {
        return -1;
    }
    return 0;
}

static int
s_libzmq_connection (void *sock)
{
    uint8_t request [32] = "ping", reply [64];
    if (zmq_send (sock, request, sizeof request, 0) < 0) {
        return -1;
    }
    return zmq_recv (sock, reply, sizeof reply, 0) == (int) sizeof request ? 0 : -1;
}

static void *
s_client_thread (void *arg)
{
    s_client_t *self = arg;
    int zero = 0, timeout = TIMEOUT_MS;
    while (s_now () < self->deadline) {
        void *sock = zmq_socket (self->ctx, self->codec ? ZMQ_DEALER : ZMQ_REQ);
        zmq_setsockopt (sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt (sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        kc_curve_t *codec = NULL;
        if (self->codec) {
            codec = kc_curve_new_client (s_client_public, s_client_secret, s_server_public);
        }
        else {
            zmq_setsockopt (sock, ZMQ_CURVE_SERVERKEY, s_server_public, 32);
            zmq_setsockopt (sock, ZMQ_CURVE_PUBLICKEY, s_client_public, 32);
            zmq_setsockopt (sock, ZMQ_CURVE_SECRETKEY, s_client_secret, 32);
        }
        int rc = zmq_connect (sock, self->endpoint);
        if (rc == 0) {
            rc = codec ? s_codec_connection (sock, codec) : s_libzmq_connection (sock);
        }
        if (rc == 0) {
            self->connections++;
        }
        else {
            self->failures++;
        }
        kc_curve_destroy (&codec);
        zmq_close (sock);
    }
    return NULL;
}

static void
s_client_process (bool codec, int port, int result)
{
    void *ctx = zmq_ctx_new ();
    s_client_t clients [CLIENTS];
    pthread_t threads [CLIENTS];
    double deadline = s_now () + s_seconds;
    for (int i = 0; i < CLIENTS; i++) {
        clients [i] = (s_client_t) { .ctx = ctx, .codec = codec, .deadline = deadline };
        snprintf (clients [i].endpoint, sizeof clients [i].endpoint, "tcp://127.0.0.1:%d", port);
        pthread_create (&threads [i], NULL, s_client_thread, &clients [i]);
    }
    long totals [2] = { 0, 0 };
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join (threads [i], NULL);
        totals [0] += clients [i].connections;
        totals [1] += clients [i].failures;
    }
    zmq_ctx_term (ctx);
    if (write (result, totals, sizeof totals) != sizeof totals) {
        exit (1);
    }
}

typedef struct {
    double rate;                        //  connections per second
    double server_us;                   //  server CPU per connection
    double client_us;
    long failures;
} s_connections_t;

//  Forks a server and a client process; returns the figures of one run.
static s_connections_t
s_connections (bool codec)
{
    int ready [2], result [2];
    if (pipe (ready) || pipe (result)) {
        exit (1);
    }
    pid_t server = fork ();
    if (server == 0) {
        signal (SIGTERM, s_on_term);
        void *ctx = zmq_ctx_new ();
        if (codec) {
            s_codec_server (ctx, ready [1]);
        }
        else {
            s_libzmq_server (ctx, ready [1]);
        }
        zmq_ctx_term (ctx);
        _exit (0);
    }
    int port;
    if (read (ready [0], &port, sizeof port) != sizeof port) {
        exit (1);
    }
    double started = s_now ();
    pid_t client = fork ();
    if (client == 0) {
        s_client_process (codec, port, result [1]);
        _exit (0);
    }
    long totals [2];
    if (read (result [0], totals, sizeof totals) != sizeof totals) {
        exit (1);
    }
    double elapsed = s_now () - started;
    struct rusage client_usage, server_usage;
    int status;
    wait4 (client, &status, 0, &client_usage);
    kill (server, SIGTERM);
    wait4 (server, &status, 0, &server_usage);
    close (ready [0]);
    close (ready [1]);
    close (result [0]);
    close (result [1]);
    s_connections_t figures = { 0, 0, 0, totals [1] };
    if (totals [0] > 0) {
        figures.rate = (double) totals [0] / elapsed;
        figures.server_us = s_cpu (&server_usage) * 1e6 / (double) totals [0];
        figures.client_us = s_cpu (&client_usage) * 1e6 / (double) totals [0];
    }
    return figures;
}

//  --- 2. MESSAGE encode + decode on one core --------------------------------

static double
s_raw_rate (size_t size, double seconds)
{
    uint8_t key [32], nonce [24] = { 0 };
    randombytes_buf (key, sizeof key);
    uint8_t *plain = calloc (1, size), *box = malloc (size + 16), *opened = malloc (size);
    long count = 0;
    double started = s_now (), now = started;
    while (now - started < seconds) {
        for (int i = 0; i < 100; i++) {
            nonce [0]++;
            crypto_box_easy_afternm (box, plain, size, nonce, key);
            if (crypto_box_open_easy_afternm (opened, box, size + 16, nonce, key)) {
                exit (1);
            }
        }
        count += 100;
        now = s_now ();
    }
    free (plain);
    free (box);
    free (opened);
    return (double) count / (now - started);
}

//  A connected client/server pair, in this process.
static void
s_pair (kc_curve_t **client, kc_curve_t **server)
{
    *client = kc_curve_new_client (s_client_public, s_client_secret, s_server_public);
    *server = kc_curve_new_server (s_server_public, s_server_secret);
    kc_curve_set_authorizer (*server, s_allow, NULL);
    if (s_handshake (*client, *server) < 0) {
        exit (1);
    }
}

static double
s_codec_rate (size_t size, double seconds)
{
    kc_curve_t *client, *server;
    s_pair (&client, &server);
    uint8_t *plain = calloc (1, size), *command = malloc (size + KC_CURVE_MESSAGE_OVERHEAD);
    uint8_t *payload;
    size_t payload_size;
    int flags;
    long count = 0;
    double started = s_now (), now = started;
    while (now - started < seconds) {
        for (int i = 0; i < 100; i++) {
            if (kc_curve_encode (client, plain, size, 0, command, NULL)
            ||  kc_curve_decode (server, command, size + KC_CURVE_MESSAGE_OVERHEAD, &payload,
                                 &payload_size, &flags, NULL)) {
                exit (1);
            }
        }
        count += 100;
        now = s_now ();
    }
    free (plain);
    free (command);
    kc_curve_destroy (&client);
    kc_curve_destroy (&server);
    return (double) count / (now - started);
}

//  --- 3. Encrypted DEALER pair, two processes --------------------------------

typedef struct {
    double rate;                        //  messages per second at the receiver
    double receiver_us;                 //  receiver CPU per message
    long received;
} s_stream_t;

//  kc_curve over a NULL DEALER, libzmq's CURVE, or no encryption at all
//  (the transport's own ceiling, printed beside the two)
typedef enum { STREAM_CODEC, STREAM_CURVE, STREAM_PLAIN, STREAMS } s_stream_mode_t;

static void *
s_dealer (void *ctx, s_stream_mode_t mode, bool server)
{
    void *sock = zmq_socket (ctx, ZMQ_DEALER);
    int zero = 0, one = 1, timeout = TIMEOUT_MS;
    zmq_setsockopt (sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (mode == STREAM_CURVE && server) {
        zmq_setsockopt (sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt (sock, ZMQ_CURVE_SECRETKEY, s_server_secret, 32);
    }
    else
    if (mode == STREAM_CURVE) {
        zmq_setsockopt (sock, ZMQ_CURVE_SERVERKEY, s_server_public, 32);
        zmq_setsockopt (sock, ZMQ_CURVE_PUBLICKEY, s_client_public, 32);
        zmq_setsockopt (sock, ZMQ_CURVE_SECRETKEY, s_client_secret, 32);
    }
    return sock;
}

//  The receiving side: codec server (answers the handshake) or libzmq.
static void
s_stream_receiver (s_stream_mode_t mode, size_t size, long count, int ready, int result)
{
    bool codec = mode == STREAM_CODEC;
    void *ctx = zmq_ctx_new ();
    void *sock = s_dealer (ctx, mode, true);
    char endpoint [64];
    size_t length = sizeof endpoint;
    if (zmq_bind (sock, "tcp://127.0.0.1:*")
    ||  zmq_getsockopt (sock, ZMQ_LAST_ENDPOINT, endpoint, &length)) {
        s_die ("bind");
    }
    int port = atoi (strrchr (endpoint, ':') + 1);
    if (write (ready, &port, sizeof port) != sizeof port) {
        exit (1);
    }
    kc_curve_t *server = NULL;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    if (codec) {
        server = kc_curve_new_server (s_server_public, s_server_secret);
        kc_curve_set_authorizer (server, s_allow, NULL);
        while (!kc_curve_connected (server)) {
            const uint8_t *output;
            size_t output_size;
            if (zmq_msg_recv (&msg, sock, 0) < 0
            ||  kc_curve_handshake (server, zmq_msg_data (&msg), zmq_msg_size (&msg), &output,
                                    &output_size, NULL)
            ||  s_send (sock, NULL, 0, output, output_size)) {
                s_die ("codec handshake");
            }
        }
    }
    s_stream_t figures = { 0, 0, 0 };
    double started = 0;
    struct rusage before, after;
    for (long i = 0; i < count; i++) {
        if (zmq_msg_recv (&msg, sock, 0) < 0) {
            break;
        }
        if (server) {
            uint8_t *payload;
            size_t payload_size;
            int flags;
            if (kc_curve_decode (server, zmq_msg_data (&msg), zmq_msg_size (&msg), &payload,
                                 &payload_size, &flags, NULL) || payload_size != size) {
                s_die ("codec decode");
            }
        }
        else
        if (zmq_msg_size (&msg) != size) {
            s_die ("libzmq size");
        }
        if (i == 0) {
            started = s_now ();
            getrusage (RUSAGE_SELF, &before);
        }
        figures.received++;
    }
    double elapsed = s_now () - started;
    getrusage (RUSAGE_SELF, &after);
    if (figures.received > 1) {
        figures.rate = (double) (figures.received - 1) / elapsed;
        figures.receiver_us = (s_cpu (&after) - s_cpu (&before)) * 1e6
                            / (double) (figures.received - 1);
    }
    zmq_msg_close (&msg);
    kc_curve_destroy (&server);
    zmq_close (sock);
    zmq_ctx_term (ctx);
    if (write (result, &figures, sizeof figures) != sizeof figures) {
        exit (1);
    }
}

static void
s_stream_sender (s_stream_mode_t mode, size_t size, long count, int port)
{
    bool codec = mode == STREAM_CODEC;
    void *ctx = zmq_ctx_new ();
    void *sock = s_dealer (ctx, mode, false);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    if (zmq_connect (sock, endpoint)) {
        s_die ("connect");
    }
    kc_curve_t *client = NULL;
    if (codec) {
        client = kc_curve_new_client (s_client_public, s_client_secret, s_server_public);
        if (s_codec_handshake (sock, client)) {
            s_die ("codec handshake");
        }
    }
    uint8_t *payload = calloc (1, size);
    for (long i = 0; i < count; i++) {
        if (client) {
            zmq_msg_t msg;
            zmq_msg_init_size (&msg, size + KC_CURVE_MESSAGE_OVERHEAD);
            if (kc_curve_encode (client, payload, size, 0, zmq_msg_data (&msg), NULL)
            ||  zmq_msg_send (&msg, sock, 0) < 0) {
                s_die ("codec send");
            }
        }
        else
        if (zmq_send (sock, payload, size, 0) < 0) {
            s_die ("libzmq send");
        }
    }
    free (payload);
    kc_curve_destroy (&client);
    //  Let the receiver drain before the context goes
    int linger = TIMEOUT_MS;
    zmq_setsockopt (sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close (sock);
    zmq_ctx_term (ctx);
}

static s_stream_t
s_stream (s_stream_mode_t mode, size_t size, long count)
{
    int ready [2], result [2];
    if (pipe (ready) || pipe (result)) {
        exit (1);
    }
    pid_t receiver = fork ();
    if (receiver == 0) {
        s_stream_receiver (mode, size, count, ready [1], result [1]);
        _exit (0);
    }
    int port;
    if (read (ready [0], &port, sizeof port) != sizeof port) {
        exit (1);
    }
    pid_t sender = fork ();
    if (sender == 0) {
        s_stream_sender (mode, size, count, port);
        _exit (0);
    }
    s_stream_t figures = { 0, 0, 0 };
    if (read (result [0], &figures, sizeof figures) != sizeof figures) {
        exit (1);
    }
    int status;
    waitpid (receiver, &status, 0);
    waitpid (sender, &status, 0);
    close (ready [0]);
    close (ready [1]);
    close (result [0]);
    close (result [1]);
    return figures;
}

//  --- Report -------------------------------------------------------------

static const char *
s_verdict (double ratio, double target)
{
    return ratio >= target ? "MET" : "NOT MET";
}

static void
s_bench_connections (void)
{
    s_connections_t best [2] = { { 0, 0, 0, 0 }, { 0, 0, 0, 0 } };
    for (int round = 0; round < ROUNDS; round++) {
        for (int mode = 0; mode < 2; mode++) {
            s_connections_t run = s_connections (mode == 0);
            if (run.rate > 0 && (best [mode].rate == 0 || run.server_us < best [mode].server_us)) {
                best [mode] = run;
            }
        }
    }
    printf ("1. full connections (connect + handshake + 32 B round trip + close), %d client "
            "threads, server and client in separate processes, best of %d x %.1f s\n",
            CLIENTS, ROUNDS, s_seconds);
    const char *names [2] = { "kc_curve over NULL DEALER/ROUTER", "libzmq CURVE REQ/REP     " };
    for (int mode = 0; mode < 2; mode++) {
        printf ("   %s  %8.0f conns/s  server CPU %6.1f us/conn  client CPU %6.1f us/conn"
                "%s\n", names [mode], best [mode].rate, best [mode].server_us,
                best [mode].client_us, best [mode].failures ? "  (some failed)" : "");
    }
    if (best [0].server_us > 0 && best [1].server_us > 0) {
        double per_core = best [1].server_us / best [0].server_us;
        printf ("   handshakes per server core: kc_curve %.0f/s vs libzmq %.0f/s = %.2fx "
                "(target >= 1.5x) %s\n", 1e6 / best [0].server_us, 1e6 / best [1].server_us,
                per_core, s_verdict (per_core, 1.5));
        printf ("   connections per second on this box: %.2fx libzmq\n",
                best [0].rate / best [1].rate);
    }
}

static void
s_bench_codec (void)
{
    static const size_t sizes [3] = { 32, 1024, 65536 };
    printf ("2. MESSAGE encode + decode, one core, best of 3 x 0.3 s, vs raw "
            "crypto_box_easy_afternm + open_easy_afternm of the same payload\n");
    for (int i = 0; i < 3; i++) {
        double raw = 0, codec = 0, raw_plus = 0;
        for (int round = 0; round < 3; round++) {
            double r = s_raw_rate (sizes [i], 0.3 * s_scale);
            double c = s_codec_rate (sizes [i], 0.3 * s_scale);
            double p = s_raw_rate (sizes [i] + 1, 0.1 * s_scale);
            raw = r > raw ? r : raw;
            codec = c > codec ? c : codec;
            raw_plus = p > raw_plus ? p : raw_plus;
        }
        double ratio = codec / raw;
        printf ("   %5zu B  raw %9.0f/s (%6.2f us)  kc_curve %9.0f/s (%6.2f us, %7.1f MB/s)  "
                "%.2fx raw (target >= 0.9x) %s  [raw of %zu B (payload + flags byte): %.2fx]\n",
                sizes [i], raw, 1e6 / raw, codec, 1e6 / codec,
                codec * (double) sizes [i] / 1e6, ratio, s_verdict (ratio, 0.9),
                sizes [i] + 1, codec / raw_plus);
    }
}

static void
s_bench_streams (void)
{
    static const size_t sizes [3] = { 32, 1024, 65536 };
    static const long counts [3] = { 1000000, 300000, 20000 };
    printf ("3. encrypted DEALER pair, sender and receiver in separate processes, tcp "
            "loopback, best of %d\n", ROUNDS);
    for (int i = 0; i < 3; i++) {
        long count = (long) ((double) counts [i] * s_scale);
        s_stream_t best [STREAMS];
        memset (best, 0, sizeof best);
        static const char *names [STREAMS] = { "kc_curve", "libzmq", "plain" };
        for (int round = 0; round < ROUNDS; round++) {
            for (int mode = 0; mode < STREAMS; mode++) {
                s_stream_t run = s_stream ((s_stream_mode_t) mode, sizes [i], count);
                if (run.received != count) {
                    printf ("   %s lost messages: %ld of %ld\n", names [mode], run.received, count);
                }
                if (run.rate > best [mode].rate) {
                    best [mode] = run;
                }
            }
        }
        double ratio = best [1].rate > 0 ? best [0].rate / best [1].rate : 0;
        printf ("   %5zu B x %7ld  kc_curve/NULL DEALER %9.0f msg/s (recv CPU %5.2f us)  "
                "libzmq CURVE DEALER %9.0f msg/s (recv CPU %5.2f us)  %.2fx (target >= 1.0x) "
                "%s\n", sizes [i], count, best [0].rate, best [0].receiver_us, best [1].rate,
                best [1].receiver_us, ratio, s_verdict (ratio, 1.0));
        printf ("   %5s      %7s  beside them, no encryption: NULL DEALER %9.0f msg/s (the "
                "transport's ceiling; kc_curve %.2fx, libzmq CURVE %.2fx of it)\n", "", "",
                best [2].rate, best [2].rate > 0 ? best [0].rate / best [2].rate : 0,
                best [2].rate > 0 ? best [1].rate / best [2].rate : 0);
    }
}

int
main (int argc, char *argv [])
{
    if (sodium_init () < 0) {
        return 1;
    }
    if (argc > 1 && KC_STREQ (argv [1], "quick")) {
        s_seconds = 0.5;
        s_scale = 0.1;
    }
    setvbuf (stdout, NULL, _IOLBF, 0);
    crypto_box_keypair (s_server_public, s_server_secret);
    crypto_box_keypair (s_client_public, s_client_secret);
    double started = s_now ();
    printf ("kc_curve bench: %s, libzmq %d.%d.%d, libsodium %s, %ld cores\n",
            argc > 1 ? "quick" : "full", ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR,
            ZMQ_VERSION_PATCH, sodium_version_string (), sysconf (_SC_NPROCESSORS_ONLN));
    s_bench_handshake_cost ();
    s_bench_connections ();
    s_bench_codec ();
    s_bench_streams ();
    printf ("bench_curve: %.0f s\n", s_now () - started);
    return 0;
}
