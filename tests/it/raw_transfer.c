/*  =========================================================================
    raw_transfer - the raw ZeroMQ peer of the agent's cold sync, for
    tests/bench/bench_sync.py: a ROUTER (CURVE server) streams BYTES bytes
    in MESSAGE-byte messages to a DEALER (CURVE client) in another process
    over tcp loopback, as fast as libzmq allows (ROUTER_MANDATORY, blocking
    at the high-water mark, so nothing is dropped), then an end marker.
    Each run is timed at the DEALER from its request to the end marker,
    after a warm-up round trip that completes the CURVE handshake. Both
    ends copy every message once, as the keyclone server does.

    Usage: raw_transfer BYTES [MESSAGE_BYTES (default 1048576)] [RUNS (3)]
    Prints one JSON object: every run's seconds, the median, and MB/s.
    =========================================================================
*/
#include "kc_all.h"

#include <sys/wait.h>
#include <time.h>

#define RUNS_MAX 16

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

typedef struct {
    long bytes, message_bytes, runs;
    char server_public [41], server_secret [41], client_public [41], client_secret [41];
} s_options_t;

//  The sending side; runs in the child until BYE. Tells the parent its port
//  through fd.
static int
s_server (const s_options_t *o, int fd)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert (router);
    zsock_set_curve_server (router, 1);
    zsock_set_curve_publickey (router, o->server_public);
    zsock_set_curve_secretkey (router, o->server_secret);
    zsock_set_router_mandatory (router, 1);
    zsock_set_linger (router, 1000);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    if (port < 0 || write (fd, &port, sizeof port) != sizeof port) {
        zsock_destroy (&router);
        return 1;
    }
    close (fd);
    uint8_t *data = malloc ((size_t) o->message_bytes);
    assert (data);
    memset (data, 0x5a, (size_t) o->message_bytes);
    int rc = 0;
    while (true) {
        zmsg_t *request = zmsg_recv (router);
        if (!request) {
            rc = 1;
            break;
        }
        zframe_t *identity = zmsg_pop (request);
        char *command = zmsg_popstr (request);
        zmsg_destroy (&request);
        bool go = command && streq (command, "GO"), bye = command && streq (command, "BYE");
        for (long sent = 0; go && sent < o->bytes; sent += o->message_bytes) {
            long size = o->bytes - sent < o->message_bytes ? o->bytes - sent : o->message_bytes;
            zframe_t *frame = zframe_new (data, (size_t) size);
            if (zframe_send (&identity, router, ZFRAME_MORE + ZFRAME_REUSE)
            ||  zframe_send (&frame, router, 0)) {
                zframe_destroy (&frame);
                rc = 1;
                break;
            }
        }
        zframe_send (&identity, router, ZFRAME_MORE + ZFRAME_REUSE);
        zstr_send (router, go ? "END" : "PONG");
        zframe_destroy (&identity);
        zstr_free (&command);
        if (bye || rc) {
            break;
        }
    }
    free (data);
    zsock_destroy (&router);
    return rc;
}

//  One timed run at the receiving side; returns seconds or -1.
static double
s_receive (zsock_t *dealer, long bytes)
{
    double start = s_now ();
    zstr_send (dealer, "GO");
    long received = 0;
    while (true) {
        zframe_t *frame = zframe_recv (dealer);
        if (!frame) {
            return -1;
        }
        size_t size = zframe_size (frame);
        bool end = size == 3 && memcmp (zframe_data (frame), "END", 3) == 0;
        received += end ? 0 : (long) size;
        zframe_destroy (&frame);
        if (end) {
            break;
        }
    }
    double seconds = s_now () - start;
    if (received != bytes) {
        fprintf (stderr, "raw_transfer: received %ld bytes of %ld\n", received, bytes);
        return -1;
    }
    return seconds;
}

static int
s_client (const s_options_t *o, int port, double *seconds)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert (dealer);
    zsock_set_curve_serverkey (dealer, o->server_public);
    zsock_set_curve_publickey (dealer, o->client_public);
    zsock_set_curve_secretkey (dealer, o->client_secret);
    zsock_set_linger (dealer, 0);
    zsock_set_rcvtimeo (dealer, 30000);
    int rc = 1;
    if (zsock_connect (dealer, "tcp://127.0.0.1:%d", port)) {
        goto cleanup;
    }
    zstr_send (dealer, "PING");
    char *pong = zstr_recv (dealer);
    bool up = pong && streq (pong, "PONG");
    zstr_free (&pong);
    if (!up) {
        fprintf (stderr, "raw_transfer: no answer from the sender\n");
        goto cleanup;
    }
    for (long run = 0; run < o->runs; run++) {
        seconds [run] = s_receive (dealer, o->bytes);
        if (seconds [run] < 0) {
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    zstr_send (dealer, "BYE");
    zsock_destroy (&dealer);
    return rc;
}

int
main (int argc, char *argv [])
{
    s_options_t o = { .message_bytes = 1024 * 1024, .runs = 3 };
    if (argc < 2 || argc > 4) {
        fprintf (stderr, "Usage: raw_transfer BYTES [MESSAGE_BYTES] [RUNS]\n");
        return 2;
    }
    o.bytes = atol (argv [1]);
    o.message_bytes = argc > 2 ? atol (argv [2]) : o.message_bytes;
    o.runs = argc > 3 ? atol (argv [3]) : o.runs;
    if (o.bytes < 1 || o.message_bytes < 1 || o.runs < 1 || o.runs > RUNS_MAX) {
        fprintf (stderr, "raw_transfer: BYTES >= 1, MESSAGE_BYTES >= 1, RUNS 1..%d\n", RUNS_MAX);
        return 2;
    }
    if (zmq_curve_keypair (o.server_public, o.server_secret)
    ||  zmq_curve_keypair (o.client_public, o.client_secret)) {
        fprintf (stderr, "raw_transfer: libzmq has no CURVE\n");
        return 1;
    }
    //  Fork before any ZeroMQ context exists in this process
    int fds [2];
    if (pipe (fds)) {
        return 1;
    }
    pid_t child = fork ();
    if (child == 0) {
        close (fds [0]);
        _exit (s_server (&o, fds [1]));
    }
    close (fds [1]);
    int port = -1;
    if (child < 0 || read (fds [0], &port, sizeof port) != sizeof port) {
        fprintf (stderr, "raw_transfer: the sender did not start\n");
        return 1;
    }
    close (fds [0]);
    double seconds [RUNS_MAX];
    int rc = s_client (&o, port, seconds);
    int status = 0;
    if (rc) {
        kill (child, SIGKILL);
    }
    waitpid (child, &status, 0);
    if (rc || !WIFEXITED (status) || WEXITSTATUS (status)) {
        return 1;
    }
    printf ("{\"bytes\": %ld, \"message_bytes\": %ld, \"runs\": [", o.bytes, o.message_bytes);
    for (long run = 0; run < o.runs; run++) {
        printf ("%s%.4f", run ? ", " : "", seconds [run]);
    }
    qsort (seconds, (size_t) o.runs, sizeof (double), s_compare);
    double median = seconds [o.runs / 2];
    printf ("], \"seconds\": %.4f, \"mb_per_s\": %.1f}\n", median, (double) o.bytes / median / 1e6);
    return 0;
}
