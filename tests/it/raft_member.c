/*  =========================================================================
    raft_member - one cluster member's engine (kc_raft: libraft on its own
    thread, CURVE between members), driven from a zloop the way the server
    will drive it, for tests/it/test_raft.py.

    Usage: raft_member ID DIR MEMBERS CERT [ELECTION_MS]
        MEMBERS  a file of lines "ID HOST:PORT Z85-PUBLIC-KEY", every member
        CERT     this member's secret certificate (keyclone keygen)
        ELECTION_MS  the election timeout (default 500; heartbeat a tenth)
    On stdin, one command a line:
        apply TEXT      propose TEXT; prints "applied INDEX" once a majority
                        has it and it is applied here, or "apply failed:
                        REASON (leader ID ADDRESS)"
        apply-hex HEX   the same with the bytes HEX encodes (test_cluster's
                        rogue member proposes forged keyclone entries)
        status          prints "status STATE leader ID applied INDEX refused N"
    On stdout, for every entry applied here in log order: "fsm N TEXT".
    It stops cleanly when stdin ends (or on SIGTERM). Election timeout
    500 ms, heartbeat 50 ms.
    =========================================================================
*/
#include "kc_all.h"
#include "kc_raft.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES  65536

static kc_raft_t *s_engine;
static char s_line [LINE_MAX_BYTES + 1];       //  (static: too big for the stack)
static size_t s_line_size;
static uint64_t s_applied;              //  entries applied in this run
static uint64_t s_tag;

static void
s_command (const char *line)
{
    if (strncmp (line, "apply-hex ", 10) == 0) {
        size_t size = strlen (line + 10) / 2;
        uint8_t *bytes = malloc (size + 1);
        kc_why_t why;
        if (!bytes || kc_unhex (line + 10, bytes, size)) {
            printf ("apply failed: not hex\n");
        }
        else
        if (kc_raft_apply (s_engine, ++s_tag, bytes, size, &why)) {
            printf ("apply failed: %s\n", why.text);
        }
        free (bytes);
    }
    else
    if (strncmp (line, "apply ", 6) == 0) {
        kc_why_t why;
        if (kc_raft_apply (s_engine, ++s_tag, line + 6, strlen (line + 6), &why)) {
            printf ("apply failed: %s\n", why.text);
        }
    }
    else
    if (strcmp (line, "status") == 0) {
        kc_raft_ask_status (s_engine);
    }
    else {
        printf ("unknown command\n");
    }
    fflush (stdout);
}

static int
s_on_stdin (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) arg;
    char buffer [4096];
    ssize_t size = read (item->fd, buffer, sizeof buffer);
    if (size <= 0) {
        return -1;                      //  the test is done with us
    }
    for (ssize_t i = 0; i < size; i++) {
        if (buffer [i] == '\n') {
            s_line [s_line_size] = 0;
            s_command (s_line);
            s_line_size = 0;
        }
        else
        if (s_line_size < LINE_MAX_BYTES) {
            s_line [s_line_size++] = buffer [i];
        }
    }
    return 0;
}

static int
s_on_event (zloop_t *loop, zsock_t *socket, void *arg)
{
    (void) loop;
    (void) arg;
    zmsg_t *msg = zmsg_recv (socket);
    char *kind = zmsg_popstr (msg);
    if (kind && KC_STREQ (kind, "ENTRY")) {
        zframe_t *index = zmsg_pop (msg), *data = zmsg_pop (msg);
        char shown [LINE_MAX_BYTES * 4 + 1];
        kc_escape (zframe_data (data), zframe_size (data), shown, sizeof shown, 0);
        printf ("fsm %llu %s\n", (unsigned long long) ++s_applied, shown);
        kc_raft_applied (s_engine, kc_get_u64 (zframe_data (index)), true);
        zframe_destroy (&index);
        zframe_destroy (&data);
    }
    else
    if (kind && KC_STREQ (kind, "DONE")) {
        zframe_t *tag = zmsg_pop (msg), *status = zmsg_pop (msg), *index = zmsg_pop (msg), *leader = zmsg_pop (msg);
        char *address = zmsg_popstr (msg), *reason = zmsg_popstr (msg);
        int32_t code;
        memcpy (&code, zframe_data (status), sizeof code);
        if (code == 0) {
            printf ("applied %llu\n", (unsigned long long) kc_get_u64 (zframe_data (index)));
        }
        else {
            printf ("apply failed: %s (leader %llu %s)\n", reason, (unsigned long long) kc_get_u64 (zframe_data (leader)),
                    address);
        }
        zframe_destroy (&tag);
        zframe_destroy (&status);
        zframe_destroy (&index);
        zframe_destroy (&leader);
        zstr_free (&address);
        zstr_free (&reason);
    }
    else
    if (kind && KC_STREQ (kind, "STATUS")) {
        char *state = zmsg_popstr (msg);
        zframe_t *leader = zmsg_pop (msg);
        char *address = zmsg_popstr (msg);
        zframe_t *term = zmsg_pop (msg), *last = zmsg_pop (msg), *applied = zmsg_pop (msg), *refused = zmsg_pop (msg);
        printf ("status %s leader %llu applied %llu refused %llu term %llu\n", state,
                (unsigned long long) kc_get_u64 (zframe_data (leader)),
                (unsigned long long) kc_get_u64 (zframe_data (applied)),
                (unsigned long long) kc_get_u64 (zframe_data (refused)),
                (unsigned long long) kc_get_u64 (zframe_data (term)));
        zstr_free (&state);
        zstr_free (&address);
        zframe_destroy (&leader);
        zframe_destroy (&term);
        zframe_destroy (&last);
        zframe_destroy (&applied);
        zframe_destroy (&refused);
    }
    fflush (stdout);
    zstr_free (&kind);
    zmsg_destroy (&msg);
    return 0;
}

static int
s_members (const char *path, kc_raft_member_t *members, size_t *count)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        return -1;
    }
    char z85 [64];
    unsigned long long id;
    kc_why_t why;
    *count = 0;
    while (*count < KC_RAFT_MEMBERS_MAX
    &&     fscanf (file, "%llu %255s %63s", &id, members [*count].address, z85) == 3) {
        members [*count].id = id;
        if (kc_z85_key (z85, members [*count].key, &why)) {
            fclose (file);
            return -1;
        }
        (*count)++;
    }
    fclose (file);
    return *count ? 0 : -1;
}

int
main (int argc, char *argv [])
{
    if (argc != 5 && argc != 6) {
        fprintf (stderr, "usage: raft_member ID DIR MEMBERS CERT [ELECTION_MS]\n");
        return 2;
    }
    unsigned election = argc == 6 ? (unsigned) strtoul (argv [5], NULL, 10) : 500;
    signal (SIGPIPE, SIG_IGN);          //  a member that went away is an error, not a signal
    kc_raft_member_t members [KC_RAFT_MEMBERS_MAX];
    kc_raft_config_t config = { .id = strtoull (argv [1], NULL, 10), .dir = argv [2], .members = members,
                                .election_ms = election, .heartbeat_ms = election / 10 };
    kc_why_t why;
    kc_cert_t *cert = kc_cert_load_secret (argv [4], &why);
    if (s_members (argv [3], members, &config.count) || !cert) {
        fprintf (stderr, "raft_member: bad members file or certificate\n");
        return 2;
    }
    config.cert = cert;
    s_engine = kc_raft_new (&config, &why);
    kc_cert_destroy (&cert);
    if (!s_engine) {
        fprintf (stderr, "raft_member: %s\n", why.text);
        return 1;
    }
    printf ("started %s\n", argv [1]);
    fflush (stdout);
    zloop_t *loop = zloop_new ();
    zmq_pollitem_t input = { NULL, 0, ZMQ_POLLIN, 0 };
    zloop_poller (loop, &input, s_on_stdin, NULL);
    zloop_reader (loop, kc_raft_events (s_engine), s_on_event, NULL);
    zloop_start (loop);
    zloop_destroy (&loop);
    kc_raft_destroy (&s_engine);
    printf ("stopped\n");
    return 0;
}
