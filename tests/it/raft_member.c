/*  =========================================================================
    raft_member - one libraft member over kc_raft_transport (CURVE between
    members), for tests/it/test_raft.py: the trial of the cluster's engine
    and transport before they carry keyclone's batches.

    Usage: raft_member ID DIR MEMBERS CERT
        MEMBERS  a file of lines "ID HOST:PORT Z85-PUBLIC-KEY", every member
        CERT     this member's secret certificate (keyclone keygen)
    On stdin, one command a line:
        apply TEXT      (on the leader) append TEXT; prints "applied INDEX"
                        once a majority has it and it is applied here, or
                        "apply failed: REASON"
        status          prints "status STATE leader ID applied INDEX refused N"
    On stdout, for every entry applied here in log order: "fsm N TEXT".
    SIGTERM closes it cleanly. The election timeout is 500 ms.
    =========================================================================
*/
#include "kc_all.h"
#include "kc_raft_transport.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES  1024

static struct raft s_raft;
static struct raft_io s_io;
static struct raft_fsm s_fsm;
static struct raft_uv_transport s_transport;
static uv_loop_t s_loop;
static uv_pipe_t s_stdin;
static uv_signal_t s_sigterm;
static char s_line [LINE_MAX_BYTES + 1];
static size_t s_line_size;
static uint64_t s_applied;              //  entries applied in this run
static bool s_closing;

//  --- The state machine: counts and prints entries; its snapshot is the count

static int
s_apply (struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void) fsm;
    *result = NULL;
    //  An entry is u64 length, the text, zeros to a multiple of 8 bytes
    const uint8_t *entry = buf->base;
    uint64_t size = buf->len >= 8 ? kc_get_u64 (entry) : UINT64_MAX;
    if (size > buf->len - 8 || buf->len % 8) {
        printf ("fsm-error malformed entry of %zu bytes\n", buf->len);
        fflush (stdout);
        return RAFT_MALFORMED;
    }
    s_applied++;
    char shown [LINE_MAX_BYTES * 4 + 1];
    kc_escape (entry + 8, (size_t) size, shown, sizeof shown, 0);
    printf ("fsm %llu %s\n", (unsigned long long) s_applied, shown);
    fflush (stdout);
    return 0;
}

static int
s_snapshot (struct raft_fsm *fsm, struct raft_buffer *bufs [], unsigned *n_bufs)
{
    (void) fsm;
    struct raft_buffer *buffer = raft_malloc (sizeof *buffer);
    uint8_t *count = raft_malloc (8);
    if (!buffer || !count) {
        raft_free (buffer);
        raft_free (count);
        return RAFT_NOMEM;
    }
    kc_put_u64 (count, s_applied);
    buffer->base = count;
    buffer->len = 8;
    *bufs = buffer;
    *n_bufs = 1;
    return 0;
}

static int
s_restore (struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void) fsm;
    if (buf->len != 8) {
        return RAFT_MALFORMED;
    }
    s_applied = kc_get_u64 (buf->base);
    raft_free (buf->base);
    printf ("restored %llu\n", (unsigned long long) s_applied);
    fflush (stdout);
    return 0;
}

//  --- Commands --------------------------------------------------------------------

static void
s_applied_cb (struct raft_apply *request, int status, void *result)
{
    (void) result;
    if (status) {
        printf ("apply failed: %s\n", raft_strerror (status));
    }
    else {
        printf ("applied %llu\n", (unsigned long long) raft_last_applied (&s_raft));
    }
    fflush (stdout);
    free (request);
}

static void
s_command (const char *line)
{
    if (strncmp (line, "apply ", 6) == 0) {
        size_t size = strlen (line + 6), padded = 8 + (size + 7) / 8 * 8;
        struct raft_apply *request = malloc (sizeof *request);
        struct raft_buffer buffer = { .base = raft_calloc (1, padded), .len = padded };
        if (!request || !buffer.base) {
            printf ("apply failed: out of memory\n");
            free (request);
            raft_free (buffer.base);
            return;
        }
        kc_put_u64 (buffer.base, size);
        memcpy ((uint8_t *) buffer.base + 8, line + 6, size);
        int rc = raft_apply (&s_raft, request, &buffer, 1, s_applied_cb);
        if (rc) {
            printf ("apply failed: %s\n", raft_strerror (rc));
            raft_free (buffer.base);
            free (request);
        }
    }
    else
    if (strcmp (line, "status") == 0) {
        static const char *states [] = { "unavailable", "follower", "candidate", "leader" };
        raft_id leader;
        const char *address;
        raft_leader (&s_raft, &leader, &address);
        int state = raft_state (&s_raft);
        printf ("status %s leader %llu applied %llu refused %llu\n",
                state >= 0 && state <= 3 ? states [state] : "?", (unsigned long long) leader,
                (unsigned long long) raft_last_applied (&s_raft),
                (unsigned long long) kc_raft_transport_refused (&s_transport));
    }
    else {
        printf ("unknown command\n");
    }
    fflush (stdout);
}

static void
s_alloc (uv_handle_t *handle, size_t suggested, uv_buf_t *buffer)
{
    (void) handle;
    buffer->base = malloc (suggested);
    buffer->len = buffer->base ? suggested : 0;
}

static void s_stop (void);

static void
s_on_stdin (uv_stream_t *stream, ssize_t size, const uv_buf_t *buffer)
{
    (void) stream;
    for (ssize_t i = 0; i < size; i++) {
        char c = buffer->base [i];
        if (c == '\n') {
            s_line [s_line_size] = 0;
            s_command (s_line);
            s_line_size = 0;
        }
        else
        if (s_line_size < LINE_MAX_BYTES) {
            s_line [s_line_size++] = c;
        }
    }
    free (buffer->base);
    if (size < 0) {
        s_stop ();                      //  stdin closed: the test is done with us
    }
}

//  --- Start and stop ------------------------------------------------------------------

static void
s_raft_closed (struct raft *raft)
{
    (void) raft;
    raft_uv_close (&s_io);
    uv_close ((uv_handle_t *) &s_stdin, NULL);
    uv_close ((uv_handle_t *) &s_sigterm, NULL);
}

static void
s_stop (void)
{
    if (!s_closing) {
        s_closing = true;
        raft_close (&s_raft, s_raft_closed);
    }
}

static void
s_on_sigterm (uv_signal_t *signal, int number)
{
    (void) signal;
    (void) number;
    s_stop ();
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
    if (argc != 5) {
        fprintf (stderr, "usage: raft_member ID DIR MEMBERS CERT\n");
        return 2;
    }
    raft_id id = strtoull (argv [1], NULL, 10);
    kc_raft_member_t members [KC_RAFT_MEMBERS_MAX];
    size_t count;
    kc_why_t why;
    kc_cert_t *cert = kc_cert_load_secret (argv [4], &why);
    if (s_members (argv [3], members, &count) || !cert) {
        fprintf (stderr, "raft_member: bad members file or certificate\n");
        return 2;
    }
    const char *address = NULL;
    for (size_t i = 0; i < count; i++) {
        if (members [i].id == id) {
            address = members [i].address;
        }
    }
    signal (SIGPIPE, SIG_IGN);          //  a member that went away is an error, not a signal
    uv_loop_init (&s_loop);
    if (!address || kc_raft_transport_init (&s_transport, &s_loop, cert, members, count, &why)) {
        fprintf (stderr, "raft_member: %s\n", address ? why.text : "this id is not a member");
        return 2;
    }
    kc_cert_destroy (&cert);
    s_fsm.version = 1;
    s_fsm.apply = s_apply;
    s_fsm.snapshot = s_snapshot;
    s_fsm.restore = s_restore;
    int rc = raft_uv_init (&s_io, &s_loop, argv [2], &s_transport);
    if (rc == 0) {
        rc = raft_init (&s_raft, &s_io, &s_fsm, id, address);
    }
    if (rc) {
        fprintf (stderr, "raft_member: %s\n", raft_strerror (rc));
        return 1;
    }
    struct raft_configuration configuration;
    raft_configuration_init (&configuration);
    for (size_t i = 0; i < count; i++) {
        raft_configuration_add (&configuration, members [i].id, members [i].address, RAFT_VOTER);
    }
    rc = raft_bootstrap (&s_raft, &configuration);
    raft_configuration_close (&configuration);
    if (rc && rc != RAFT_CANTBOOTSTRAP) {
        fprintf (stderr, "raft_member: bootstrap: %s\n", raft_errmsg (&s_raft));
        return 1;
    }
    raft_set_election_timeout (&s_raft, 500);
    raft_set_heartbeat_timeout (&s_raft, 50);
    rc = raft_start (&s_raft);
    if (rc) {
        fprintf (stderr, "raft_member: start: %s\n", raft_errmsg (&s_raft));
        return 1;
    }
    uv_pipe_init (&s_loop, &s_stdin, 0);
    uv_pipe_open (&s_stdin, 0);
    uv_read_start ((uv_stream_t *) &s_stdin, s_alloc, s_on_stdin);
    uv_signal_init (&s_loop, &s_sigterm);
    uv_signal_start (&s_sigterm, s_on_sigterm, SIGTERM);
    printf ("started %llu at %s\n", (unsigned long long) id, address);
    fflush (stdout);
    uv_run (&s_loop, UV_RUN_DEFAULT);
    kc_raft_transport_close (&s_transport);
    uv_loop_close (&s_loop);
    printf ("stopped\n");
    return 0;
}
