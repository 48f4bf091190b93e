/*  =========================================================================
    bench_handshake - full CURVE connections per second (connect, handshake,
    one 32-byte request and reply, close) against a libzmq REP server in
    another process, with: no ZAP handler, a raw allow-all ZAP handler, and
    keyclone's kc_auth answering from an agent cache. 8 client threads, 3 s
    per run, modes interleaved in a rotating order (each closed connection
    leaves a loopback socket in TIME_WAIT, and the mode run last would meet
    the most), median of 3 runs; server CPU from rusage. Before each run it
    waits (up to a minute) for TIME_WAIT sockets to drop below a quarter of
    the ephemeral port range, and a run that connects nobody fails the bench.
    Target: keyclone >= 0.95x the allow-all rate.
    =========================================================================
*/
#include "kc_all.h"

#include <pthread.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 8
#define SECONDS 3
#define RUNS 3

typedef enum { MODE_NONE, MODE_ALLOW_ALL, MODE_KEYCLONE, MODES } s_mode_t;
static const char *s_mode_names [MODES] = { "no ZAP handler", "allow-all ZAP", "keyclone kc_auth" };

static uint8_t s_server_public [32], s_server_secret [32];
static uint8_t s_client_public [32], s_client_secret [32];
static char s_cache [256];
static int s_port;                          //  the server's, from zsock_bind (ephemeral)

static void
s_allow_all (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_t *zap = zsock_new_rep ("inproc://zeromq.zap.01");
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, zap, NULL);
    while (zpoller_wait (poller, -1) == zap) {
        zmsg_t *request = zmsg_recv (zap);
        zframe_t *version = zmsg_pop (request), *id = zmsg_pop (request);
        zmsg_t *reply = zmsg_new ();
        zmsg_addstr (reply, "1.0");
        zmsg_append (reply, &id);
        zmsg_addstr (reply, "200");
        zmsg_addstr (reply, "OK");
        zmsg_addstr (reply, "anyone");
        zmsg_addmem (reply, NULL, 0);
        zmsg_send (&reply, zap);
        zframe_destroy (&version);
        zmsg_destroy (&request);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&zap);
}

//  The server process: binds an ephemeral port (the kernel's choice, so
//  nothing that ran before can hold it), tells the parent which through
//  port_fd (-1: it could not bind), then echoes until SIGTERM.
static void
s_server (s_mode_t mode, int port_fd)
{
    zactor_t *handler = NULL;
    zsock_t *rep = zsock_new (ZMQ_REP);
    zsock_set_curve_server (rep, 1);
    zsock_set_curve_publickey_bin (rep, s_server_public);
    zsock_set_curve_secretkey_bin (rep, s_server_secret);
    kc_why_t why;
    if (mode == MODE_ALLOW_ALL) {
        handler = zactor_new (s_allow_all, NULL);
        zsock_set_zap_domain (rep, "bench");
        zsock_set_zap_enforce_domain (rep, 1);
    }
    else
    if (mode == MODE_KEYCLONE) {
        kc_auth_config_t config;
        kc_auth_config_defaults (&config);
        config.cache_path = s_cache;
        handler = kc_auth_new (&config, &why);
        if (!handler || kc_auth_protect (handler, rep, "bench", &why)) {
            fprintf (stderr, "bench_handshake: %s\n", why.text);
            exit (1);
        }
    }
    int port = zsock_bind (rep, "tcp://127.0.0.1:*");
    if (port < 0) {
        fprintf (stderr, "bench_handshake: cannot bind tcp://127.0.0.1:*: %s\n", zmq_strerror (zmq_errno ()));
    }
    if (write (port_fd, &port, sizeof port) != sizeof port || port < 0) {
        zsock_destroy (&rep);
        zactor_destroy (&handler);
        exit (1);
    }
    close (port_fd);
    zpoller_t *poller = zpoller_new (rep, NULL);
    while (!zsys_interrupted) {
        if (zpoller_wait (poller, 100)) {
            zmsg_t *msg = zmsg_recv (rep);
            zmsg_send (&msg, rep);
        }
    }
    zpoller_destroy (&poller);
    zsock_destroy (&rep);
    zactor_destroy (&handler);
    exit (0);
}

static volatile int s_stop;
static long s_done [THREADS];

static void *
s_client_thread (void *arg)
{
    long index = (long) arg, count = 0;
    while (!s_stop) {
        zsock_t *req = zsock_new (ZMQ_REQ);
        zsock_set_linger (req, 0);
        zsock_set_curve_publickey_bin (req, s_client_public);
        zsock_set_curve_secretkey_bin (req, s_client_secret);
        zsock_set_curve_serverkey_bin (req, s_server_public);
        zsock_set_rcvtimeo (req, 5000);
        zsock_connect (req, "tcp://127.0.0.1:%d", s_port);
        zstr_send (req, "0123456789abcdef0123456789abcdef");
        char *reply = zstr_recv (req);
        count += reply != NULL;
        zstr_free (&reply);
        zsock_destroy (&req);
    }
    s_done [index] = count;
    return NULL;
}

//  One run: returns connections/s; server CPU microseconds per connection.
//  Sockets in TIME_WAIT on IPv4 (each holds an ephemeral port)
static long
s_time_wait (void)
{
    FILE *file = fopen ("/proc/net/tcp", "r");
    if (!file) {
        return 0;
    }
    char line [512];
    long count = 0;
    while (fgets (line, sizeof line, file)) {
        char state [8];
        if (sscanf (line, "%*s %*s %*s %7s", state) == 1 && strcmp (state, "06") == 0) {
            count++;
        }
    }
    fclose (file);
    return count;
}

static void
s_wait_for_ports (void)
{
    long low = 32768, high = 60999;
    FILE *file = fopen ("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (file) {
        if (fscanf (file, "%ld %ld", &low, &high) != 2) {
            low = 32768, high = 60999;
        }
        fclose (file);
    }
    long limit = (high - low) / 4, waiting = s_time_wait ();
    for (int second = 0; waiting > limit && second < 60; second++) {
        if (second == 0) {
            printf ("    (%ld sockets in TIME_WAIT: waiting for fewer than %ld)\n", waiting, limit);
            fflush (stdout);
        }
        sleep (1);
        waiting = s_time_wait ();
    }
}

static double
s_run (s_mode_t mode, double *server_us)
{
    s_wait_for_ports ();
    int pipe_fd [2];
    if (pipe (pipe_fd)) {
        exit (1);
    }
    int port_pipe [2];
    if (pipe (port_pipe)) {
        exit (1);
    }
    fflush (stdout);
    pid_t server = fork ();
    if (server == 0) {
        close (port_pipe [0]);
        s_server (mode, port_pipe [1]);
    }
    close (port_pipe [1]);
    //  The clients connect once the server is bound, to the port it got
    if (read (port_pipe [0], &s_port, sizeof s_port) != sizeof s_port || s_port <= 0) {
        fprintf (stderr, "bench_handshake: the server could not bind a port\n");
        exit (1);
    }
    close (port_pipe [0]);
    pid_t client = fork ();
    if (client == 0) {
        close (pipe_fd [0]);
        zsys_init ();                   //  once, before the threads race to do it
        //  Report the count through the pipe (exit codes are too small)
        pthread_t threads [THREADS];
        for (long i = 0; i < THREADS; i++) {
            pthread_create (&threads [i], NULL, s_client_thread, (void *) i);
        }
        sleep (SECONDS);
        s_stop = 1;
        long total = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join (threads [i], NULL);
            total += s_done [i];
        }
        if (write (pipe_fd [1], &total, sizeof total) != sizeof total) {
            exit (1);
        }
        exit (0);
    }
    close (pipe_fd [1]);
    long total = 0;
    if (read (pipe_fd [0], &total, sizeof total) != sizeof total) {
        total = 0;
    }
    close (pipe_fd [0]);
    waitpid (client, NULL, 0);
    kill (server, SIGTERM);
    struct rusage usage;
    int status;
    wait4 (server, &status, 0, &usage);
    double cpu = (double) (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6
               + (double) (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
    *server_us = total ? cpu / (double) total : 0;
    return (double) total / SECONDS;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  An agent cache holding the client's key as trusted.
static void
s_build_cache (void)
{
    kc_why_t why;
    kc_signer_t *signer = kc_signer_new ("op", "keyclone-operator");
    kc_operator_t op;
    memcpy (op.key, kc_signer_public_key (signer), 32);
    snprintf (op.name, sizeof op.name, "op");
    kc_root_spec_t spec = {
        .version = 1, .created = 1, .expires = 4000000000ULL, .operators = &op,
        .operator_count = 1, .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1,
        .head_key = s_server_public, .server_key = s_server_public,
        .endpoints = { "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3" }
    };
    kc_root_t *root = kc_root_new (&spec, &why);
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), 1);
    kc_record_spec_t record = { .key = s_client_public, .version = 1, .status = KC_STATUS_ACTIVE,
                                .name = "bench-client" };
    if (kc_batch_builder_add (builder, &record, &why)) {
        exit (1);
    }
    kc_batch_t *batch = kc_batch_builder_finish (builder, &signer, 1, &why);
    uint8_t chain [32];
    kc_chain_genesis (kc_root_directory (root), chain);
    kc_chain_next (chain, 1, batch, chain);
    kc_cache_t *cache = kc_cache_create (s_cache, root, &batch, 1, chain, NULL, &why);
    if (!cache) {
        fprintf (stderr, "bench_handshake: %s\n", why.text);
        exit (1);
    }
    kc_cache_destroy (&cache);
    kc_batch_destroy (&batch);
    kc_batch_builder_destroy (&builder);
    kc_root_destroy (&root);
    kc_signer_destroy (&signer);
}

int
main (void)
{
    if (sodium_init () < 0) {
        return 1;
    }
    crypto_box_keypair (s_server_public, s_server_secret);
    crypto_box_keypair (s_client_public, s_client_secret);
    char dir [] = "/tmp/bench_handshake.XXXXXX";
    if (!mkdtemp (dir)) {
        return 1;
    }
    snprintf (s_cache, sizeof s_cache, "%s/agent.db", dir);
    s_build_cache ();
    double rates [MODES][RUNS], cpu [MODES][RUNS];
    printf ("CURVE connections/s (connect + handshake + 32 B round trip + close), %d client "
            "threads, %d s runs, median of %d\n", THREADS, SECONDS, RUNS);
    for (int run = 0; run < RUNS; run++) {
        for (int step = 0; step < MODES; step++) {
            int mode = (run + step) % MODES;
            rates [mode][run] = s_run ((s_mode_t) mode, &cpu [mode][run]);
            printf ("    run %d %-18s %7.0f connections/s, server %4.0f us/connection\n", run + 1,
                    s_mode_names [mode], rates [mode][run], cpu [mode][run]);
            if (rates [mode][run] == 0) {
                printf ("bench_handshake: no connection succeeded (%ld sockets in TIME_WAIT)\n",
                        s_time_wait ());
                return 1;
            }
        }
    }
    double median [MODES], median_cpu [MODES];
    for (int mode = 0; mode < MODES; mode++) {
        qsort (rates [mode], RUNS, sizeof (double), s_compare);
        qsort (cpu [mode], RUNS, sizeof (double), s_compare);
        median [mode] = rates [mode][RUNS / 2];
        median_cpu [mode] = cpu [mode][RUNS / 2];
        printf ("  %-18s %7.0f connections/s  [%.0f-%.0f]   server CPU %4.0f us/connection\n",
                s_mode_names [mode], median [mode], rates [mode][0], rates [mode][RUNS - 1],
                median_cpu [mode]);
    }
    double ratio = median [MODE_KEYCLONE] / median [MODE_ALLOW_ALL];
    printf ("  => keyclone %.2fx allow-all (target >= 0.95x: %s), %.2fx no handler\n", ratio,
            ratio >= 0.95 ? "met" : "MISSED", median [MODE_KEYCLONE] / median [MODE_NONE]);
    char command [300];
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    return system (command) ? 1 : 0;
}
