/*  =========================================================================
    kc_simagent - thousands of simulated agents in one process, for fan-out
    benchmarks: how fast one server (or a set of mirrors) carries a change
    to a fleet, on one machine that could not run a keyclone-agent and an
    sqlite cache per node.

    Each simulated agent has a CURVE key pair of its own and real
    connections, and follows the log as docs/protocol.md sections 4, 5 and
    7.1 say, keeping only its (seq, chain), its root in force and the times
    of its newest heads (about 200 bytes, beside libzmq's per connection):
      - a SUB on its upstream's update channel (UPDATE and HEAD), kept;
      - a SYNC from its seq (0 at first) over a DEALER to the snapshot
        channel, with credit: every entry checked (seq order; a batch
        decoded and verified against the root in force at its seq, a root
        change as that root's successor; the chain hash), then END (its
        counts, and its head signed by the root's head key and naming
        exactly the (seq, chain) reached); then the DEALER is CLOSED, so an
        agent at rest holds one connection and a server within a 20,000
        descriptor limit can hold ten thousand agents;
      - each UPDATE verified the same way by each agent for itself: no
        check is shared between agents, a fleet costs N times one agent;
      - every HEAD's signature checked by each agent (a head naming the
        (seq, chain) it holds within 250 ms of the last one that did is
        not checked again, as keyclone-agent does); a gap in the updates,
        or a HEAD ahead of its seq, resyncs from its seq over a fresh
        DEALER; a HEAD at its seq naming another chain is counted as an
        equivocation (and resyncs after a back-off), one behind it as a
        rollback, one older than the last as a replay; a sync with no
        progress for 10 s sends SYNC again on the same DEALER.
    Not simulated: the cache (so no check of records against stored state,
    section 7.2: a server that replays an old batch under a new seq, with
    the chain made to match, is not caught), grants in the log (an agent
    that meets one counts it as unsupported and stops: it cannot verify it
    without the grants before it), ACKs (they need the DEALER open), server
    key rotation (each upstream's key is fixed).

    Usage: kc_simagent --root ROOT --agents N [--upstream SNAP,UPD[,KEY]]...
                       [--server-key KEY] [--first I] [--rate SYNCS_PER_S]
                       [--syncs MAX] [--credit C] [--hwm MESSAGES] [--skew MS]
                       [--progress MS] [--hold] [--keys-out FILE]
                       [--name-prefix NAME]
      ROOT          the genesis root (the agents sync from 0)
      --upstream    snapshot endpoint, update endpoint, and the Z85 CURVE
                    key of the server there (else --server-key, else the
                    root's server with that snapshot endpoint, else the
                    root's first); repeat for mirrors: agent i follows
                    upstream (I + i) mod count. Default: every server of
                    the root, with its endpoints and key (or --server-key).
      --first       the index of the first agent (default 0): several
                    processes share one numbering, and the upstreams
      --rate        syncs started per second (default 200): new agents
                    are connected at this pace, so a server is not hit by
                    every handshake at once; resyncs take the same tokens
      --syncs       DEALERs open at once, at most (default 16): what paces
                    the agents when the server is slower than --rate (a
                    CURVE handshake costs it milliseconds), so a storm of
                    connections never overflows its listen queue
      --credit      credit a SYNC grants (default 8, as the agent's): with
                    --syncs, bounds what syncs hold (about 1 MiB a message)
      --hwm         messages each SUB queues (default 100: libzmq bounds
                    them by count, not size, so this bounds an agent's
                    memory; what a burst drops beyond it, a resync fetches)
      --hold        connect only after "start" (after the bench registered
                    the keys --keys-out wrote, for a server with read =
                    members)
      --keys-out    one line per agent, NAME=KEY,tag=role=sim (what
                    'keyclone register --from' reads); names are
                    NAME_PREFIX-INDEX (default prefix "sim")
    The descriptor limit is raised to its hard limit; an agent needs two
    (its SUB: a mailbox and a TCP connection) and a sync two more. A count
    the limit cannot hold is refused at start: run several processes.

    Control: one command a line on standard input; its end quits (so feed
    it from a pipe: < /dev/null quits at once).
      start                         connect (with --hold)
      watch seq S T0_MS [TIMEOUT_MS]
      watch key KEY T0_MS [TIMEOUT_MS]
                                    reports, when every agent has applied
                                    seq S (or a batch holding a record for
                                    the Z85 key KEY), or at the timeout
                                    (default 60000), when each did, and
                                    the latencies from T0_MS (realtime ms
                                    since the epoch, decimals allowed); an
                                    agent already at S counts as reaching
                                    it when the command is read
      status                        one status line
      quit                          stops (as do SIGINT and SIGTERM)
    Output: JSON lines on standard output (logs go to standard error):
      {"event":"started", ...}      at start
      {"event":"progress", ...}     every --progress ms (default 1000)
                                    until every agent is ready
      {"event":"ready","count":N,...}  every agent synced and has had a
                                    head on its update channel (elapsed_ms;
                                    synced_ms: when the last one synced)
      {"event":"applied","agent":I,"at_ms":T,"latency_ms":L}
                                    one per agent that reached a watch
      {"event":"watch", ...}        after them: reached, timeout, p50_ms,
                                    p99_ms, max_ms, and the counts
      {"event":"status", ...}       the counts: synced, live, syncs,
                                    resyncs, faults, equivocations, ...
      {"event":"summary", ...}      the same at the end
      {"event":"error", ...}        a command it did not understand
    Exit status 0; 1 if it cannot start; 2 on a usage error.
    =========================================================================
*/
#include "kc_all.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define UPSTREAMS_MAX       16              //  --upstream triples
#define ROOTS_MAX           64              //  roots a run follows: pinned + root changes
#define SYNC_TIMEOUT_MS     10000           //  a sync with no progress this long: SYNC again
#define BACKOFF_MIN_MS      1000            //  a resync after a fault waits this long,
#define BACKOFF_MAX_MS      30000           //  doubling up to this
#define TICK_MS             100             //  housekeeping: deadlines, progress, watch
#define HELD_MESSAGES_MAX   16              //  update-channel messages held during a sync,
#define HELD_BYTES_MAX      (256 * 1024)    //  and their bytes, per agent; then dropped
#define WATCH_TIMEOUT_MS    60000           //  a watch's default timeout
#define HEAD_REVERIFY_MS    250             //  a repeated head is verified again after this
#define LINE_BYTES          512             //  one control line
#define LOG_PER_KIND        5               //  warnings logged per kind; then only counted
#define FDS_PER_AGENT       2               //  its SUB: a mailbox and a TCP connection
#define FDS_PER_SYNC        2               //  a DEALER: the same
#define FDS_SPARE           64              //  stdio, libzmq's threads and the loop's own

//  What each agent counts, summed over the process.
typedef enum {
    K_FAULT,                                //  a sync or an update failed verification
    K_UNSUPPORTED,                          //  a grant in the log: the agent stops
    K_TIMEOUT,                              //  a sync made no progress for SYNC_TIMEOUT_MS
    K_GAP,                                  //  an UPDATE past seq + 1
    K_MISSED,                               //  a HEAD past seq
    K_EQUIVOCATION,                         //  a HEAD at seq with another chain
    K_ROLLBACK,                             //  a HEAD behind seq
    K_BAD_HEAD,                             //  a head whose signature or time fails
    K_REPLAY,                               //  a HEAD older than one before it
    K_MALFORMED,                            //  a message the decoder refused
    K_DROPPED,                              //  updates held during a sync, dropped at the bound
    K_SOCKET,                               //  a socket could not be made
    K_KINDS
} s_kind_t;

static const char *s_kind_names [K_KINDS] = {
    "faults", "unsupported", "timeouts", "gaps", "missed", "equivocations", "rollbacks",
    "bad_heads", "replays", "malformed", "dropped", "socket_errors"
};

typedef enum {
    S_IDLE,                                 //  not connected yet
    S_QUEUED,                               //  wants a sync: waits for a token and a slot
    S_SYNCING,                              //  a DEALER open, a sync running
    S_FOLLOWING,                            //  only its SUB
    S_WAITING,                              //  after a fault: queued again at deadline
    S_STOPPED                               //  met an entry it cannot verify
} s_state_t;

typedef struct {
    const char *root_path, *server_key, *keys_out, *name_prefix;
    const char *upstreams [UPSTREAMS_MAX];
    size_t upstream_count;
    long agents, first, rate, syncs, credit, hwm, skew_ms, progress_ms;
    bool hold;
} s_options_t;

typedef struct {
    char snapshot [KC_ROOT_ENDPOINT_MAX + 1];
    char updates [KC_ROOT_ENDPOINT_MAX + 1];
    uint8_t server_key [KC_KEY_BYTES];
} s_upstream_t;

typedef struct _sim_t sim_t;

//  One simulated agent. Its keys are in sim (public_keys, secret_keys).
typedef struct {
    sim_t *sim;
    zsock_t *updates;                       //  SUB, from its first sync to the end
    zsock_t *snapshot;                      //  DEALER while a sync runs; s_flush closes it
    zlistx_t *held;                         //  update-channel messages held during a sync
    size_t held_bytes;
    uint64_t seq;                           //  the last entry verified and applied
    uint8_t chain [KC_HASH_BYTES];          //  chain(seq)
    uint64_t head_time;                     //  newest head accepted (server ms)
    uint64_t channel_time;                  //  newest head accepted on the update channel
    uint64_t sync_seq, sync_batches, sync_records;
    uint8_t sync_chain [KC_HASH_BYTES];     //  chain(sync_seq), the sync's progress
    int64_t deadline;                       //  mono ms: a sync's next progress, a retry
    int64_t fresh_at;                       //  mono ms: the last head that matched its state
    int64_t reached_us;                     //  realtime us it met the watch; 0 not yet
    uint32_t index;                         //  --first + its place
    uint32_t backoff_ms;
    uint8_t state;                          //  s_state_t
    uint8_t root, sync_root;                //  in sim->roots: in force at seq, at sync_seq
    uint8_t upstream;
    bool synced;                            //  a sync has ended well
    bool live;                              //  a head came on its update channel
    bool sync_has_key, held_dropped;
} s_agent_t;

typedef struct {
    bool active, by_key;
    uint64_t seq;
    uint8_t key [KC_KEY_BYTES];
    double t0_ms;                           //  what latencies count from (realtime ms)
    int64_t deadline;                       //  mono ms
    size_t reached;
} s_watch_t;

struct _sim_t {
    s_options_t options;
    kc_root_t *roots [ROOTS_MAX];           //  the pinned root, then root changes met
    const uint8_t *head_keys [ROOTS_MAX][UPSTREAMS_MAX];   //  each upstream's, in each root
    size_t root_count;
    const uint8_t *directory;
    s_upstream_t upstreams [UPSTREAMS_MAX];
    size_t upstream_count;
    s_agent_t *agents;
    size_t count;
    uint8_t *public_keys;                   //  count x 32
    uint8_t *secret_keys;                   //  count x 32, in sodium_malloc memory
    zloop_t *loop;
    bool started, ready_said, flush_armed;
    size_t next_start;                      //  agents from here on never connected
    size_t dealers;                         //  DEALERs open
    double tokens;                          //  syncs that may start now
    int64_t tokens_at, started_at, progress_at;
    int64_t synced_at;                      //  mono ms: every agent had synced
    size_t synced, live;
    uint64_t syncs, resyncs, heads, applied;
    uint64_t counts [K_KINDS];
    uint64_t logged [K_KINDS];
    s_watch_t watch;
    bool had_watch;                         //  the last watch's figures, for the summary
    double last_p50, last_p99, last_max;
    size_t last_reached;
    char line [LINE_BYTES];                 //  the control line being read
    size_t line_size;
    bool line_too_long;
};

static void s_flush (sim_t *sim);
static void s_update_message (sim_t *sim, s_agent_t *a, zmsg_t *msg);

//  --- Small pieces ---------------------------------------------------------------

static int64_t
s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

static long
s_rss_kib (void)
{
    FILE *file = fopen ("/proc/self/status", "r");
    char row [256];
    long kib = 0;
    while (file && fgets (row, sizeof row, file)) {
        if (strncmp (row, "VmRSS:", 6) == 0) {
            kib = atol (row + 6);
        }
    }
    if (file) {
        fclose (file);
    }
    return kib;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  The value at fraction of sorted values (as the bench scripts compute it).
static double
s_percentile (const double *sorted, size_t count, double fraction)
{
    if (!count) {
        return 0;
    }
    size_t at = (size_t) (fraction * (double) (count - 1) + 0.5);
    return sorted [at < count ? at : count - 1];
}

//  Counts one event of kind for agent a; logs the first few of each kind
//  (ten thousand agents meeting one fault would be ten thousand lines).
static void
s_count (sim_t *sim, const s_agent_t *a, s_kind_t kind, const char *text)
{
    sim->counts [kind]++;
    if (sim->logged [kind] < LOG_PER_KIND) {
        bool last = ++sim->logged [kind] == LOG_PER_KIND;
        zsys_warning ("kc_simagent: agent %u: %s: %s%s", a->index, s_kind_names [kind], text,
                      last ? " (more of these are counted, not logged)" : "");
    }
}

//  --- Roots and heads ---------------------------------------------------------------

//  Keeps root (taken) among the roots the run follows, or the copy already
//  kept; returns its index, or -1 when there is no room.
static int
s_root_keep (sim_t *sim, kc_root_t **root_p)
{
    for (size_t i = 0; i < sim->root_count; i++) {
        if (memcmp (kc_root_digest (sim->roots [i]), kc_root_digest (*root_p), KC_HASH_BYTES) == 0) {
            kc_root_destroy (root_p);
            return (int) i;
        }
    }
    if (sim->root_count == ROOTS_MAX) {
        kc_root_destroy (root_p);
        return -1;
    }
    kc_root_t *root = *root_p;
    *root_p = NULL;
    //  Each upstream's head key: its server's in this root (by CURVE key),
    //  or the first server's
    for (size_t u = 0; u < sim->upstream_count; u++) {
        sim->head_keys [sim->root_count][u] = kc_root_server (root, 0)->head_key;
        for (size_t i = 0; i < kc_root_server_count (root); i++) {
            const kc_root_server_t *server = kc_root_server (root, i);
            if (memcmp (server->server_key, sim->upstreams [u].server_key, KC_KEY_BYTES) == 0) {
                sim->head_keys [sim->root_count][u] = server->head_key;
            }
        }
    }
    sim->roots [sim->root_count] = root;
    return (int) sim->root_count++;
}

//  Whether head is signed for this directory by a server of root (index):
//  the upstream's own server first, then the others (a mirror may pass on
//  the heads of the server it follows). 0 when it is; 1 when only a server
//  of the root before it signed it (a head key rotation's overlap: meant
//  for agents that have not applied it, dropped without a word); -1 with
//  a reason.
static int
s_head_signed (sim_t *sim, size_t root, size_t upstream, const kc_head_t *head, kc_why_t *why)
{
    const uint8_t *own = sim->head_keys [root][upstream];
    if (kc_head_verify_signature (head, sim->directory, own, why) == 0) {
        return 0;
    }
    kc_why_t ignored;
    for (size_t back = 0; back <= 1 && back <= root; back++) {
        const kc_root_t *signer = sim->roots [root - back];
        for (size_t i = 0; i < kc_root_server_count (signer); i++) {
            const uint8_t *key = kc_root_server (signer, i)->head_key;
            if (key != own && kc_head_verify_signature (head, sim->directory, key, &ignored) == 0) {
                return back ? 1 : 0;
            }
        }
    }
    return -1;
}

//  --- Log entries --------------------------------------------------------------------

//  Checks one log entry following (prev_seq, prev_chain) under the root in
//  force *root (an index into sim->roots): its seq; a batch verified
//  against that root (signatures and thresholds; its expiry is a matter of
//  freshness, not of the log), or a root change as its successor (then the
//  root in force, *root updated); and the chain hash it came with. Adds
//  its records to *records, and sets *holds_key when a key watch is on and
//  the batch holds that key. Returns 0; -1 with a reason; -2 with a reason
//  for an entry this tool cannot verify (a grant).
static int
s_check_entry (sim_t *sim, const kc_entry_t *entry, uint64_t prev_seq,
               const uint8_t prev_chain [static KC_HASH_BYTES], uint8_t *root, uint64_t *records,
               bool *holds_key, kc_why_t *why)
{
    if (entry->seq != prev_seq + 1) {
        return kc_why (why, "entry %llu does not follow %llu", (unsigned long long) entry->seq,
                       (unsigned long long) prev_seq);
    }
    uint8_t chain [KC_HASH_BYTES];
    if (kc_root_is_root (entry->data, entry->size)) {
        kc_root_t *next = kc_root_decode (entry->data, entry->size, why);
        if (!next || kc_root_verify_successor (sim->roots [*root], next, kc_root_created (next), why)) {
            kc_root_destroy (&next);
            return kc_why_prefix (why, "root change %llu", (unsigned long long) entry->seq);
        }
        kc_chain_next_root (prev_chain, entry->seq, next, chain);
        if (sodium_memcmp (chain, entry->chain, KC_HASH_BYTES)) {
            kc_root_destroy (&next);
            return kc_why (why, "root change %llu: broken chain", (unsigned long long) entry->seq);
        }
        int index = s_root_keep (sim, &next);
        if (index < 0) {
            return kc_why (why, "root change %llu: more than %d roots", (unsigned long long) entry->seq,
                           ROOTS_MAX);
        }
        *root = (uint8_t) index;
        return 0;
    }
    if (kc_grant_is_grant (entry->data, entry->size) || kc_grant_is_use (entry->data, entry->size)) {
        kc_why (why, "entry %llu is a grant or a grant use, which kc_simagent does not verify",
                (unsigned long long) entry->seq);
        return -2;
    }
    //  A view: the message outlives the batch
    kc_batch_t *batch = kc_batch_view (entry->data, entry->size, why);
    if (!batch || kc_batch_verify (batch, sim->roots [*root], 0, why)) {
        kc_batch_destroy (&batch);
        return kc_why_prefix (why, "batch %llu", (unsigned long long) entry->seq);
    }
    kc_chain_next (prev_chain, entry->seq, batch, chain);
    int rc = 0;
    if (sodium_memcmp (chain, entry->chain, KC_HASH_BYTES)) {
        rc = kc_why (why, "batch %llu: broken chain", (unsigned long long) entry->seq);
    }
    *records += kc_batch_count (batch);
    for (size_t i = 0; rc == 0 && sim->watch.active && sim->watch.by_key && i < kc_batch_count (batch); i++) {
        if (memcmp (kc_batch_record (batch, i)->key, sim->watch.key, KC_KEY_BYTES) == 0) {
            *holds_key = true;
        }
    }
    kc_batch_destroy (&batch);
    return rc;
}

//  --- The watch ------------------------------------------------------------------------

//  Prints when each agent reached the watch, and the latencies' spread.
static void
s_watch_report (sim_t *sim, bool timed_out)
{
    s_watch_t *watch = &sim->watch;
    double *latencies = malloc ((watch->reached + 1) * sizeof (double));
    assert (latencies);
    size_t count = 0;
    for (size_t i = 0; i < sim->count; i++) {
        const s_agent_t *a = &sim->agents [i];
        if (a->reached_us) {
            double at_ms = (double) a->reached_us / 1000.0;
            latencies [count++] = at_ms - watch->t0_ms;
            printf ("{\"event\":\"applied\",\"agent\":%u,\"at_ms\":%.3f,\"latency_ms\":%.3f}\n",
                    a->index, at_ms, at_ms - watch->t0_ms);
        }
    }
    qsort (latencies, count, sizeof (double), s_compare);
    sim->had_watch = true;
    sim->last_reached = count;
    sim->last_p50 = s_percentile (latencies, count, 0.5);
    sim->last_p99 = s_percentile (latencies, count, 0.99);
    sim->last_max = count ? latencies [count - 1] : 0;
    char what [KC_Z85_KEY_CHARS + 40];
    if (watch->by_key) {
        char z85 [KC_Z85_KEY_CHARS + 1];
        snprintf (what, sizeof what, "\"key\":\"%s\"", kc_z85_encode (watch->key, KC_KEY_BYTES, z85));
    }
    else {
        snprintf (what, sizeof what, "\"seq\":%llu", (unsigned long long) watch->seq);
    }
    printf ("{\"event\":\"watch\",%s,\"reached\":%zu,\"agents\":%zu,\"timeout\":%s,\"min_ms\":%.3f,"
            "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"faults\":%llu,\"resyncs\":%llu,"
            "\"equivocations\":%llu}\n", what, count, sim->count, timed_out ? "true" : "false",
            count ? latencies [0] : 0, sim->last_p50, sim->last_p99, sim->last_max,
            (unsigned long long) sim->counts [K_FAULT], (unsigned long long) sim->resyncs,
            (unsigned long long) sim->counts [K_EQUIVOCATION]);
    fflush (stdout);
    free (latencies);
    watch->active = false;
}

//  After agent a advanced (an update applied, a sync ended): whether it has
//  reached the watch now. holds_key: what it applied held the watched key.
static void
s_reached (sim_t *sim, s_agent_t *a, bool holds_key)
{
    s_watch_t *watch = &sim->watch;
    if (!watch->active || a->reached_us || (watch->by_key ? !holds_key : a->seq < watch->seq)) {
        return;
    }
    a->reached_us = s_now_us ();
    if (++watch->reached == sim->count) {
        s_watch_report (sim, false);
    }
}

static void
s_watch_start (sim_t *sim, bool by_key, uint64_t seq, const uint8_t *key, double t0_ms, long timeout_ms)
{
    if (sim->watch.active) {
        s_watch_report (sim, true);         //  the one before ends here
    }
    s_watch_t *watch = &sim->watch;
    *watch = (s_watch_t) { .active = true, .by_key = by_key, .seq = seq, .t0_ms = t0_ms,
                           .deadline = zclock_mono () + timeout_ms };
    if (key) {
        memcpy (watch->key, key, KC_KEY_BYTES);
    }
    int64_t now = s_now_us ();
    for (size_t i = 0; i < sim->count; i++) {
        s_agent_t *a = &sim->agents [i];
        a->reached_us = !by_key && a->synced && a->seq >= seq ? now : 0;
        watch->reached += a->reached_us != 0;
    }
    if (watch->reached == sim->count) {
        s_watch_report (sim, false);
    }
}

//  --- Sockets -------------------------------------------------------------------------
//
//  The loop polls each socket's ZMQ_FD, not the socket: zmq_poll over
//  thousands of sockets makes two system calls per socket at every wake-up
//  (ZMQ_EVENTS on each), where their descriptors cost one poll. That
//  descriptor only says that libzmq has news for the socket, and libzmq
//  takes the news in whenever the socket is used (any send or receive), so
//  a reader must receive until nothing is left, after a send too, before
//  it waits again: every path below that uses a socket ends with a receive
//  that found nothing (s_on_snapshot, s_on_updates).

//  A CURVE client socket for agent a: its key pair, its upstream's server
//  key (all read back, kc_sockopt.h), never blocking, connected to
//  endpoint and polled by its descriptor. NULL if libzmq cannot make one.
static zsock_t *
s_socket (sim_t *sim, s_agent_t *a, int type, const char *endpoint, zloop_fn *handler)
{
    zsock_t *socket = zsock_new (type);
    if (!socket) {
        s_count (sim, a, K_SOCKET, zmq_strerror (zmq_errno ()));
        return NULL;
    }
    size_t slot = (size_t) (a - sim->agents);
    kc_why_t why;
    zsock_set_linger (socket, 0);
    zsock_set_rcvtimeo (socket, 0);
    zsock_set_sndtimeo (socket, 0);
    if (type == ZMQ_SUB) {
        zsock_set_rcvhwm (socket, (int) sim->options.hwm);
        zsock_set_subscribe (socket, "UPDATE");
        zsock_set_subscribe (socket, "HEAD");
    }
    zmq_pollitem_t item = { NULL, 0, ZMQ_POLLIN, 0 };
    if (kc_sockopt_curve_client (socket, sim->public_keys + slot * KC_KEY_BYTES,
                                 sim->secret_keys + slot * KC_KEY_BYTES,
                                 sim->upstreams [a->upstream].server_key, &why)
    ||  kc_sockopt_maxmsgsize (socket, KC_PROTO_MESSAGE_MAX, &why)
    ||  (zsock_connect (socket, "%s", endpoint) && kc_why (&why, "cannot connect to '%s'", endpoint))
    ||  ((item.fd = zsock_fd (socket)) < 0 && kc_why (&why, "no descriptor"))
    ||  (zloop_poller (sim->loop, &item, handler, a) && kc_why (&why, "cannot poll"))) {
        s_count (sim, a, K_SOCKET, why.text);
        zsock_destroy (&socket);
    }
    return socket;
}

static void
s_socket_close (sim_t *sim, zsock_t **socket_p)
{
    if (*socket_p && sim->loop) {
        zmq_pollitem_t item = { NULL, zsock_fd (*socket_p), ZMQ_POLLIN, 0 };
        zloop_poller_end (sim->loop, &item);
    }
    zsock_destroy (socket_p);
}

//  Sockets are made and closed only in s_flush, a timer: zloop stops
//  serving the sockets that are ready when a handler adds or removes one,
//  and polls everything again, which would cost a pass over thousands of
//  descriptors per sync that ends.
static int
s_on_flush (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    sim_t *sim = arg;
    sim->flush_armed = false;
    s_flush (sim);
    return 0;
}

static void
s_arm_flush (sim_t *sim, int64_t delay_ms)
{
    if (!sim->flush_armed) {
        sim->flush_armed = zloop_timer (sim->loop, (size_t) (delay_ms < 1 ? 1 : delay_ms), 1, s_on_flush,
                                        sim) >= 0;
    }
}

//  --- Agents' state --------------------------------------------------------------------

static void
s_held_free (s_agent_t *a)
{
    zmsg_t *msg;
    while (a->held && (msg = (zmsg_t *) zlistx_detach (a->held, NULL))) {
        zmsg_destroy (&msg);
    }
    zlistx_destroy (&a->held);
    a->held_bytes = 0;
}

static void
s_retry_later (s_agent_t *a)
{
    a->state = S_WAITING;
    a->deadline = zclock_mono () + a->backoff_ms;
    a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
}

//  What the upstream sent fails verification: the agent keeps its (seq,
//  chain), drops the sync (s_flush closes its DEALER) and what it held,
//  and syncs again after a back-off; an entry it cannot verify stops it.
static void
s_fault (sim_t *sim, s_agent_t *a, s_kind_t kind, const kc_why_t *why)
{
    s_count (sim, a, kind, why->text);
    s_held_free (a);
    if (kind == K_UNSUPPORTED) {
        a->state = S_STOPPED;
    }
    else {
        s_retry_later (a);
    }
    s_arm_flush (sim, 1);
}

static void
s_want_sync (sim_t *sim, s_agent_t *a)
{
    if (a->state == S_FOLLOWING) {
        a->state = S_QUEUED;
        s_arm_flush (sim, 1);
    }
}

static void
s_check_ready (sim_t *sim)
{
    if (!sim->ready_said && sim->synced == sim->count && sim->live == sim->count) {
        sim->ready_said = true;
        printf ("{\"event\":\"ready\",\"count\":%zu,\"first\":%ld,\"elapsed_ms\":%lld,\"synced_ms\":%lld,"
                "\"syncs\":%llu,\"rss_kib\":%ld}\n", sim->count, sim->options.first,
                (long long) (zclock_mono () - sim->started_at), (long long) (sim->synced_at - sim->started_at),
                (unsigned long long) sim->syncs, s_rss_kib ());
        fflush (stdout);
    }
}

//  --- Update channel ---------------------------------------------------------------------

//  A head from the update channel (docs/protocol.md 2.2, 5 rule 4).
static void
s_on_head (sim_t *sim, s_agent_t *a, const kc_head_t *head)
{
    //  As keyclone-agent does: a head naming exactly the (seq, chain) the
    //  agent holds, no older than the last, within HEAD_REVERIFY_MS of the
    //  last one that matched, tells nothing new and is not verified again
    int64_t mono = zclock_mono ();
    if (a->state == S_FOLLOWING && mono - a->fresh_at < HEAD_REVERIFY_MS && head->seq == a->seq
    &&  head->time >= a->head_time && memcmp (head->chain, a->chain, KC_HASH_BYTES) == 0
    &&  memcmp (head->directory, sim->directory, KC_HASH_BYTES) == 0) {
        sim->heads++;
        return;
    }
    kc_why_t why;
    int rc = s_head_signed (sim, a->root, a->upstream, head, &why);
    if (rc < 0) {
        s_count (sim, a, K_BAD_HEAD, why.text);
    }
    if (rc) {
        return;
    }
    if (kc_head_check_time (head, kc_now_ms (), (uint64_t) sim->options.skew_ms, &why)) {
        s_count (sim, a, K_BAD_HEAD, why.text);
        return;
    }
    if (head->time < a->channel_time) {
        s_count (sim, a, K_REPLAY, "a head older than one before it on the update channel");
        return;
    }
    a->channel_time = head->time;
    sim->heads++;
    if (!a->live) {
        a->live = true;
        sim->live++;
        s_check_ready (sim);
    }
    if (head->time < a->head_time || a->state != S_FOLLOWING) {
        return;                             //  it crossed a sync's END; or a sync is due
    }
    a->head_time = head->time;
    char text [120];
    if (head->seq > a->seq) {
        snprintf (text, sizeof text, "head at seq %llu, agent at %llu: resync",
                  (unsigned long long) head->seq, (unsigned long long) a->seq);
        s_count (sim, a, K_MISSED, text);
        s_want_sync (sim, a);
    }
    else
    if (head->seq < a->seq) {
        snprintf (text, sizeof text, "head at seq %llu, agent at %llu: kept",
                  (unsigned long long) head->seq, (unsigned long long) a->seq);
        s_count (sim, a, K_ROLLBACK, text);
    }
    else
    if (sodium_memcmp (head->chain, a->chain, KC_HASH_BYTES)) {
        snprintf (text, sizeof text, "head at seq %llu names another chain: resync after a back-off",
                  (unsigned long long) head->seq);
        s_count (sim, a, K_EQUIVOCATION, text);
        s_retry_later (a);
        s_arm_flush (sim, 1);
    }
    else {
        a->backoff_ms = BACKOFF_MIN_MS;     //  in step with the server
        a->fresh_at = mono;
    }
}

//  An UPDATE (docs/protocol.md 5 rule 3): duplicates ignored, a gap
//  resyncs, the rest checked entry by entry and applied all or nothing.
static void
s_on_update (sim_t *sim, s_agent_t *a, const kc_proto_msg_t *msg)
{
    const kc_entry_t *entries = msg->entries;
    if (!msg->entry_count || entries [msg->entry_count - 1].seq <= a->seq) {
        return;
    }
    if (entries [0].seq > a->seq + 1) {
        char text [120];
        snprintf (text, sizeof text, "update at seq %llu, agent at %llu: resync",
                  (unsigned long long) entries [0].seq, (unsigned long long) a->seq);
        s_count (sim, a, K_GAP, text);
        s_want_sync (sim, a);
        return;
    }
    uint64_t seq = a->seq, records = 0;
    uint8_t chain [KC_HASH_BYTES];
    memcpy (chain, a->chain, KC_HASH_BYTES);
    uint8_t root = a->root;
    bool holds_key = false;
    for (size_t i = 0; i < msg->entry_count; i++) {
        if (entries [i].seq <= seq) {
            continue;
        }
        kc_why_t why;
        int rc = s_check_entry (sim, &entries [i], seq, chain, &root, &records, &holds_key, &why);
        if (rc) {
            s_fault (sim, a, rc == -2 ? K_UNSUPPORTED : K_FAULT, &why);
            return;
        }
        seq = entries [i].seq;
        memcpy (chain, entries [i].chain, KC_HASH_BYTES);
    }
    sim->applied += seq - a->seq;
    a->seq = seq;
    memcpy (a->chain, chain, KC_HASH_BYTES);
    a->root = root;
    s_reached (sim, a, holds_key);
}

static void
s_update_message (sim_t *sim, s_agent_t *a, zmsg_t *msg)
{
    kc_proto_msg_t decoded;
    kc_why_t why;
    if (kc_proto_decode (msg, KC_CHANNEL_UPDATES, &decoded, &why)) {
        s_count (sim, a, K_MALFORMED, why.text);
        return;
    }
    if (decoded.type == KC_MSG_HEAD) {
        s_on_head (sim, a, &decoded.head);
    }
    else
    if (decoded.type == KC_MSG_UPDATE) {
        s_on_update (sim, a, &decoded);
    }
    kc_proto_msg_reset (&decoded);
}

//  Holds a message that came during a sync, to apply after it; past the
//  bound, drops them all and relies on the next head (5 rule 5).
static void
s_hold (sim_t *sim, s_agent_t *a, zmsg_t **msg_p)
{
    size_t size = zmsg_content_size (*msg_p);
    if (a->held_dropped) {
        return;
    }
    if ((a->held && zlistx_size (a->held) >= HELD_MESSAGES_MAX) || a->held_bytes + size > HELD_BYTES_MAX) {
        s_held_free (a);
        a->held_dropped = true;
        s_count (sim, a, K_DROPPED, "too many updates during a sync: dropped, the next head tells");
        return;
    }
    if (!a->held) {
        a->held = zlistx_new ();
        assert (a->held);
    }
    zlistx_add_end (a->held, *msg_p);
    a->held_bytes += size;
    *msg_p = NULL;
}

static int
s_on_updates (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    s_agent_t *a = arg;
    zmsg_t *msg;
    while (a->updates && (msg = zmsg_recv (a->updates))) {
        if (a->state == S_SYNCING) {
            s_hold (a->sim, a, &msg);
        }
        else
        if (a->state == S_FOLLOWING || a->state == S_QUEUED) {
            s_update_message (a->sim, a, msg);
        }
        zmsg_destroy (&msg);
    }
    return 0;
}

//  --- Snapshot channel -------------------------------------------------------------------

//  A BATCHES message: every entry checked as it comes (4.2 rule 5), then a
//  credit back (rule 3).
static int
s_on_batches (sim_t *sim, s_agent_t *a, const kc_proto_msg_t *msg, kc_why_t *why)
{
    for (size_t i = 0; i < msg->entry_count; i++) {
        const kc_entry_t *entry = &msg->entries [i];
        int rc = s_check_entry (sim, entry, a->sync_seq, a->sync_chain, &a->sync_root, &a->sync_records,
                                &a->sync_has_key, why);
        if (rc) {
            return rc;
        }
        a->sync_seq = entry->seq;
        memcpy (a->sync_chain, entry->chain, KC_HASH_BYTES);
        a->sync_batches++;
    }
    a->deadline = zclock_mono () + SYNC_TIMEOUT_MS;
    zmsg_t *credit = kc_proto_credit (1);
    if (zmsg_send (&credit, a->snapshot)) {
        zmsg_destroy (&credit);             //  the sync's timeout sends SYNC again
    }
    return 0;
}

//  END: the counts, and a head of the root in force at its seq naming
//  exactly what the agent verified; then the sync is the agent's state. A
//  head too old or too new for this clock still closes the sync (its
//  batches are verified and chained) but gives no head time.
static int
s_on_end (sim_t *sim, s_agent_t *a, const kc_proto_msg_t *msg, kc_why_t *why)
{
    if (msg->batches != a->sync_batches || msg->records != a->sync_records) {
        return kc_why (why, "END counts %llu batches and %llu records, received %llu and %llu",
                       (unsigned long long) msg->batches, (unsigned long long) msg->records,
                       (unsigned long long) a->sync_batches, (unsigned long long) a->sync_records);
    }
    if (s_head_signed (sim, a->sync_root, a->upstream, &msg->head, why)) {
        return kc_why_prefix (why, "END head");
    }
    if (msg->head.seq != a->sync_seq || sodium_memcmp (msg->head.chain, a->sync_chain, KC_HASH_BYTES)) {
        return kc_why (why, "END head (seq %llu) does not match the batches received (seq %llu)",
                       (unsigned long long) msg->head.seq, (unsigned long long) a->sync_seq);
    }
    kc_why_t late;
    if (kc_head_check_time (&msg->head, kc_now_ms (), (uint64_t) sim->options.skew_ms, &late)) {
        s_count (sim, a, K_BAD_HEAD, late.text);
    }
    else
    if (msg->head.time > a->head_time) {
        a->head_time = msg->head.time;
    }
    a->seq = a->sync_seq;
    memcpy (a->chain, a->sync_chain, KC_HASH_BYTES);
    a->root = a->sync_root;
    a->state = S_FOLLOWING;
    a->backoff_ms = BACKOFF_MIN_MS;
    s_arm_flush (sim, 1);                   //  closes the DEALER
    if (!a->synced) {
        a->synced = true;
        if (++sim->synced == sim->count) {
            sim->synced_at = zclock_mono ();
        }
        s_check_ready (sim);
    }
    s_reached (sim, a, a->sync_has_key);
    //  What came on the update channel meanwhile, in order
    zlistx_t *held = a->held;
    a->held = NULL;
    a->held_bytes = 0;
    zmsg_t *next;
    while (held && (next = (zmsg_t *) zlistx_detach (held, NULL))) {
        if (a->state == S_FOLLOWING || a->state == S_QUEUED) {
            s_update_message (sim, a, next);
        }
        zmsg_destroy (&next);
    }
    zlistx_destroy (&held);
    return 0;
}

static void
s_snapshot_message (sim_t *sim, s_agent_t *a, zmsg_t *msg)
{
    kc_proto_msg_t decoded;
    kc_why_t why;
    if (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_AGENT, &decoded, &why)) {
        s_fault (sim, a, K_FAULT, &why);
        return;
    }
    int rc = 0;
    if (decoded.type == KC_MSG_ERROR) {
        rc = kc_why (&why, "the server refused the sync: %.*s", (int) decoded.text_size, decoded.text);
    }
    else
    if (decoded.type == KC_MSG_BATCHES) {
        rc = s_on_batches (sim, a, &decoded, &why);
    }
    else
    if (decoded.type == KC_MSG_END) {
        rc = s_on_end (sim, a, &decoded, &why);
    }
    if (rc) {
        s_fault (sim, a, rc == -2 ? K_UNSUPPORTED : K_FAULT, &why);
    }
    kc_proto_msg_reset (&decoded);
}

static int
s_on_snapshot (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    s_agent_t *a = arg;
    zmsg_t *msg;
    while (a->snapshot && (msg = zmsg_recv (a->snapshot))) {
        if (a->state == S_SYNCING) {
            s_snapshot_message (a->sim, a, msg);
        }
        zmsg_destroy (&msg);                //  after the sync ended: a stray, dropped
    }
    return 0;
}

//  Sends SYNC from the agent's seq on its DEALER, at the start of a sync
//  and again when one stalls (as keyclone-agent does: the server takes a
//  new SYNC in place of the one before, and a connection libzmq is still
//  making is kept rather than made again: under a storm of handshakes, a
//  new one would only wait behind the others).
static void
s_sync_send (sim_t *sim, s_agent_t *a)
{
    a->sync_seq = a->seq;
    memcpy (a->sync_chain, a->chain, KC_HASH_BYTES);
    a->sync_root = a->root;
    a->sync_batches = a->sync_records = 0;
    a->sync_has_key = false;
    a->deadline = zclock_mono () + SYNC_TIMEOUT_MS;
    zmsg_t *msg = kc_proto_sync (sim->directory, a->seq, (uint32_t) sim->options.credit);
    if (zmsg_send (&msg, a->snapshot)) {
        zmsg_destroy (&msg);                //  the sync's timeout sends it again
    }
    s_on_snapshot (sim->loop, NULL, a);
}

//  Starts a sync from the agent's seq: its SUB first (at its first sync),
//  so nothing published after the sync's END is missed, then a DEALER.
static void
s_sync_start (sim_t *sim, s_agent_t *a)
{
    sim->tokens -= 1;
    const s_upstream_t *upstream = &sim->upstreams [a->upstream];
    if (!a->updates) {
        a->updates = s_socket (sim, a, ZMQ_SUB, upstream->updates, s_on_updates);
        s_on_updates (sim->loop, NULL, a);
    }
    a->snapshot = a->updates ? s_socket (sim, a, ZMQ_DEALER, upstream->snapshot, s_on_snapshot) : NULL;
    if (!a->snapshot) {
        s_retry_later (a);
        return;
    }
    sim->dealers++;
    sim->syncs++;
    sim->resyncs += a->synced;
    a->held_dropped = false;
    a->state = S_SYNCING;
    s_sync_send (sim, a);
}

//  Closes the DEALERs of syncs that ended, times out stalled ones, and
//  starts the syncs due (resyncs first, then agents never connected) as
//  far as the rate's tokens and the --syncs slots allow.
static void
s_flush (sim_t *sim)
{
    int64_t now = zclock_mono ();
    double burst = sim->options.rate / 20.0 > 1 ? sim->options.rate / 20.0 : 1;
    sim->tokens += (double) (now - sim->tokens_at) * (double) sim->options.rate / 1000.0;
    sim->tokens = sim->tokens > burst ? burst : sim->tokens;
    sim->tokens_at = now;
    size_t slots = (size_t) sim->options.syncs;
    bool more = false;
    for (size_t i = 0; i < sim->count; i++) {
        s_agent_t *a = &sim->agents [i];
        if (a->state == S_SYNCING && now >= a->deadline) {
            char text [120];
            snprintf (text, sizeof text, "sync from seq %llu made no progress for %d ms: SYNC sent again",
                      (unsigned long long) a->seq, SYNC_TIMEOUT_MS);
            s_count (sim, a, K_TIMEOUT, text);
            s_sync_send (sim, a);
        }
        if (a->snapshot && a->state != S_SYNCING) {
            s_socket_close (sim, &a->snapshot);
            sim->dealers--;
        }
        if (a->state == S_WAITING && now >= a->deadline) {
            a->state = S_QUEUED;
        }
        if (a->state == S_QUEUED && sim->dealers < slots && sim->tokens >= 1) {
            s_sync_start (sim, a);
        }
        more |= a->state == S_QUEUED;
    }
    while (sim->started && sim->next_start < sim->count && sim->dealers < slots && sim->tokens >= 1) {
        s_sync_start (sim, &sim->agents [sim->next_start++]);
    }
    more |= sim->started && sim->next_start < sim->count;
    //  A sync that ends frees a slot and arms a flush itself; tokens come
    //  back with time
    if (more && sim->dealers < slots) {
        s_arm_flush (sim, (int64_t) ((1 - sim->tokens) * 1000.0 / (double) sim->options.rate) + 1);
    }
}

//  --- Control and reports ------------------------------------------------------------------

static void
s_status (sim_t *sim, const char *event)
{
    size_t states [S_STOPPED + 1] = { 0 };
    uint64_t seq_min = UINT64_MAX, seq_max = 0;
    for (size_t i = 0; i < sim->count; i++) {
        const s_agent_t *a = &sim->agents [i];
        states [a->state]++;
        seq_min = a->seq < seq_min ? a->seq : seq_min;
        seq_max = a->seq > seq_max ? a->seq : seq_max;
    }
    printf ("{\"event\":\"%s\",\"agents\":%zu,\"first\":%ld,\"connected\":%zu,\"synced\":%zu,\"live\":%zu,"
            "\"syncing\":%zu,\"queued\":%zu,\"waiting\":%zu,\"stopped\":%zu,\"seq_min\":%llu,\"seq_max\":%llu,"
            "\"syncs\":%llu,\"resyncs\":%llu,\"heads\":%llu,\"applied\":%llu", event, sim->count,
            sim->options.first, sim->next_start, sim->synced, sim->live, states [S_SYNCING], states [S_QUEUED],
            states [S_WAITING], states [S_STOPPED], (unsigned long long) (sim->count ? seq_min : 0),
            (unsigned long long) seq_max, (unsigned long long) sim->syncs, (unsigned long long) sim->resyncs,
            (unsigned long long) sim->heads, (unsigned long long) sim->applied);
    for (int kind = 0; kind < K_KINDS; kind++) {
        printf (",\"%s\":%llu", s_kind_names [kind], (unsigned long long) sim->counts [kind]);
    }
    if (sim->had_watch) {
        printf (",\"watch_reached\":%zu,\"watch_p50_ms\":%.3f,\"watch_p99_ms\":%.3f,\"watch_max_ms\":%.3f",
                sim->last_reached, sim->last_p50, sim->last_p99, sim->last_max);
    }
    printf (",\"rss_kib\":%ld,\"elapsed_ms\":%lld}\n", s_rss_kib (),
            (long long) (sim->started ? zclock_mono () - sim->started_at : 0));
    fflush (stdout);
}

static void
s_control_error (const char *line, const char *why)
{
    //  Printable, and nothing that would end a JSON string
    char text [LINE_BYTES * 4];
    kc_escape (line, strlen (line), text, sizeof text, 0);
    for (char *c = text; *c; c++) {
        *c = *c == '"' || *c == '\\' ? '?' : *c;
    }
    zsys_error ("kc_simagent: '%s': %s", text, why);
    printf ("{\"event\":\"error\",\"command\":\"%s\",\"reason\":\"%s\"}\n", text, why);
    fflush (stdout);
}

static void
s_start (sim_t *sim)
{
    if (!sim->started) {
        sim->started = true;
        sim->started_at = sim->tokens_at = sim->progress_at = zclock_mono ();
        s_flush (sim);
    }
}

//  One control line. Returns -1 to stop.
static int
s_command (sim_t *sim, char *line)
{
    char *words [6] = { NULL }, *save = NULL;
    size_t count = 0;
    for (char *word = strtok_r (line, " \t\r", &save); word && count < 6;
         word = strtok_r (NULL, " \t\r", &save)) {
        words [count++] = word;
    }
    if (!count) {
        return 0;
    }
    if (KC_STREQ (words [0], "quit")) {
        return -1;
    }
    if (KC_STREQ (words [0], "status")) {
        s_status (sim, "status");
    }
    else
    if (KC_STREQ (words [0], "start")) {
        s_start (sim);
    }
    else
    if (KC_STREQ (words [0], "watch") && (count == 4 || count == 5)) {
        bool by_key = KC_STREQ (words [1], "key");
        uint8_t key [KC_KEY_BYTES];
        char *end = NULL, *t0_end = NULL, *timeout_end = NULL;
        unsigned long long seq = by_key ? 0 : strtoull (words [2], &end, 10);
        double t0 = strtod (words [3], &t0_end);
        long timeout = count == 5 ? strtol (words [4], &timeout_end, 10) : WATCH_TIMEOUT_MS;
        kc_why_t why;
        if ((by_key ? kc_z85_key (words [2], key, &why) != 0 : !KC_STREQ (words [1], "seq") || *end)
        ||  *t0_end || t0 <= 0 || (timeout_end && *timeout_end) || timeout < 1) {
            s_control_error (words [0], "usage: watch seq S T0_MS [TIMEOUT_MS], "
                             "or watch key KEY T0_MS [TIMEOUT_MS]");
        }
        else {
            s_watch_start (sim, by_key, seq, by_key ? key : NULL, t0, timeout);
        }
    }
    else {
        s_control_error (words [0], "unknown command (start, watch, status, quit)");
    }
    return 0;
}

//  Standard input: commands, a line each; its end stops the loop.
static int
s_on_control (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    sim_t *sim = arg;
    char buffer [4096];
    ssize_t size = read (item->fd, buffer, sizeof buffer);
    if (size < 0 && (errno == EINTR || errno == EAGAIN)) {
        return 0;
    }
    if (size <= 0) {
        return -1;
    }
    for (ssize_t i = 0; i < size; i++) {
        if (buffer [i] == '\n') {
            sim->line [sim->line_size] = 0;
            int rc = sim->line_too_long ? (s_control_error ("(a line)", "too long"), 0)
                                        : s_command (sim, sim->line);
            sim->line_size = 0;
            sim->line_too_long = false;
            if (rc) {
                return -1;
            }
        }
        else
        if (sim->line_size < LINE_BYTES - 1) {
            sim->line [sim->line_size++] = buffer [i];
        }
        else {
            sim->line_too_long = true;
        }
    }
    return 0;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    sim_t *sim = arg;
    s_flush (sim);
    int64_t now = zclock_mono ();
    if (sim->watch.active && now >= sim->watch.deadline) {
        s_watch_report (sim, true);
    }
    if (sim->started && !sim->ready_said && now >= sim->progress_at) {
        s_status (sim, "progress");
        sim->progress_at = now + sim->options.progress_ms;
    }
    return 0;
}

//  --- Start-up -------------------------------------------------------------------------------

static int
s_options (int argc, char *argv [], s_options_t *o)
{
    static const struct option longs [] = {
        { "root", required_argument, NULL, 'r' }, { "agents", required_argument, NULL, 'n' },
        { "upstream", required_argument, NULL, 'u' }, { "server-key", required_argument, NULL, 'k' },
        { "first", required_argument, NULL, 'f' }, { "rate", required_argument, NULL, 'x' },
        { "syncs", required_argument, NULL, 's' }, { "credit", required_argument, NULL, 'c' },
        { "skew", required_argument, NULL, 'w' }, { "progress", required_argument, NULL, 'p' },
        { "hold", no_argument, NULL, 'h' }, { "keys-out", required_argument, NULL, 'o' },
        { "name-prefix", required_argument, NULL, 'N' }, { "hwm", required_argument, NULL, 'H' },
        { NULL, 0, NULL, 0 }
    };
    *o = (s_options_t) { .rate = 200, .syncs = 16, .credit = 8, .hwm = 100, .skew_ms = 300000,
                         .progress_ms = 1000, .name_prefix = "sim" };
    int c;
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'r': o->root_path = optarg; break;
            case 'n': o->agents = atol (optarg); break;
            case 'k': o->server_key = optarg; break;
            case 'f': o->first = atol (optarg); break;
            case 'x': o->rate = atol (optarg); break;
            case 's': o->syncs = atol (optarg); break;
            case 'c': o->credit = atol (optarg); break;
            case 'w': o->skew_ms = atol (optarg); break;
            case 'p': o->progress_ms = atol (optarg); break;
            case 'h': o->hold = true; break;
            case 'o': o->keys_out = optarg; break;
            case 'N': o->name_prefix = optarg; break;
            case 'H': o->hwm = atol (optarg); break;
            case 'u':
                if (o->upstream_count == UPSTREAMS_MAX) {
                    return -1;
                }
                o->upstreams [o->upstream_count++] = optarg;
                break;
            default: return -1;
        }
    }
    if (!o->root_path || o->agents < 1 || o->agents > UINT32_MAX / 2 || o->first < 0 || o->rate < 1
    ||  o->syncs < 1 || o->credit < 1 || o->credit > KC_PROTO_CREDIT_MAX || o->hwm < 1 || o->hwm > INT_MAX
    ||  o->skew_ms < 0
    ||  o->progress_ms < 1 || optind != argc) {
        fprintf (stderr, "usage: kc_simagent --root ROOT --agents N [--upstream SNAP,UPD[,KEY]]...\n"
                 "           [--server-key KEY] [--first I] [--rate SYNCS_PER_S] [--syncs MAX]\n"
                 "           [--credit 1..%d] [--hwm MESSAGES] [--skew MS] [--progress MS] [--hold]\n"
                 "           [--keys-out FILE] [--name-prefix NAME]\n"
                 "(the commands it reads and the lines it prints: see its source's header)\n",
                 KC_PROTO_CREDIT_MAX);
        return -1;
    }
    return 0;
}

//  One "SNAPSHOT,UPDATES[,KEY]" into up: the key given, else --server-key,
//  else the key of the root's server with that snapshot endpoint, else the
//  first server's.
static int
s_upstream_parse (const kc_root_t *root, const char *server_key, const char *text, s_upstream_t *up)
{
    const char *first = strchr (text, ','), *second = first ? strchr (first + 1, ',') : NULL;
    size_t snapshot = first ? (size_t) (first - text) : 0;
    size_t updates = first ? (second ? (size_t) (second - first - 1) : strlen (first + 1)) : 0;
    if (!snapshot || !updates || snapshot > KC_ROOT_ENDPOINT_MAX || updates > KC_ROOT_ENDPOINT_MAX) {
        fprintf (stderr, "kc_simagent: --upstream '%s': SNAPSHOT,UPDATES[,KEY] expected\n", text);
        return -1;
    }
    memcpy (up->snapshot, text, snapshot);
    memcpy (up->updates, first + 1, updates);
    const char *key = second ? second + 1 : server_key;
    memcpy (up->server_key, kc_root_server (root, 0)->server_key, KC_KEY_BYTES);
    for (size_t i = 0; !key && i < kc_root_server_count (root); i++) {
        if (KC_STREQ (kc_root_server (root, i)->endpoints [KC_ENDPOINT_SNAPSHOT], up->snapshot)) {
            memcpy (up->server_key, kc_root_server (root, i)->server_key, KC_KEY_BYTES);
        }
    }
    kc_why_t why;
    if (key && kc_z85_key (key, up->server_key, &why)) {
        fprintf (stderr, "kc_simagent: server key of '%s': %s\n", text, why.text);
        return -1;
    }
    return 0;
}

//  The pinned root, the upstreams and the roots' head keys.
static int
s_setup_log (sim_t *sim)
{
    kc_why_t why;
    kc_root_t *root = kc_root_load (sim->options.root_path, &why);
    if (!root || kc_root_verify (root, kc_root_created (root), &why)) {
        fprintf (stderr, "kc_simagent: root '%s': %s\n", sim->options.root_path, why.text);
        kc_root_destroy (&root);
        return -1;
    }
    if (kc_root_version (root) != 1) {
        fprintf (stderr, "kc_simagent: root '%s' is v%llu: a sync from the start of the log needs the "
                 "genesis root (v1)\n", sim->options.root_path, (unsigned long long) kc_root_version (root));
        kc_root_destroy (&root);
        return -1;
    }
    for (size_t i = 0; i < sim->options.upstream_count; i++) {
        if (s_upstream_parse (root, sim->options.server_key, sim->options.upstreams [i],
                              &sim->upstreams [sim->upstream_count++])) {
            kc_root_destroy (&root);
            return -1;
        }
    }
    if (!sim->upstream_count) {
        size_t servers = kc_root_server_count (root);
        sim->upstream_count = servers < UPSTREAMS_MAX ? servers : UPSTREAMS_MAX;
        for (size_t i = 0; i < sim->upstream_count; i++) {
            const kc_root_server_t *server = kc_root_server (root, i);
            s_upstream_t *up = &sim->upstreams [i];
            snprintf (up->snapshot, sizeof up->snapshot, "%s", server->endpoints [KC_ENDPOINT_SNAPSHOT]);
            snprintf (up->updates, sizeof up->updates, "%s", server->endpoints [KC_ENDPOINT_UPDATES]);
            memcpy (up->server_key, server->server_key, KC_KEY_BYTES);
            if (sim->options.server_key && kc_z85_key (sim->options.server_key, up->server_key, &why)) {
                fprintf (stderr, "kc_simagent: --server-key: %s\n", why.text);
                kc_root_destroy (&root);
                return -1;
            }
        }
    }
    if (s_root_keep (sim, &root) != 0) {
        return -1;                          //  cannot happen: the first root kept
    }
    sim->directory = kc_root_directory (sim->roots [0]);
    return 0;
}

//  The descriptors: the soft limit raised to the hard one, and enough of
//  them for every agent, or a refusal that says what to do.
static int
s_setup_descriptors (sim_t *sim)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit (RLIMIT_NOFILE, &limit)) {
            zsys_warning ("kc_simagent: cannot raise the descriptor limit: %s", strerror (errno));
        }
    }
    if (getrlimit (RLIMIT_NOFILE, &limit)) {
        limit.rlim_cur = 1024;
    }
    size_t needed = sim->count * FDS_PER_AGENT + (size_t) sim->options.syncs * FDS_PER_SYNC + FDS_SPARE;
    if (limit.rlim_cur != RLIM_INFINITY && needed > limit.rlim_cur) {
        fprintf (stderr, "kc_simagent: %zu agents and %ld syncs at once need about %zu file descriptors; "
                 "the limit is %llu (hard): run them in several processes (--first)\n", sim->count,
                 sim->options.syncs, needed, (unsigned long long) limit.rlim_cur);
        return -1;
    }
    //  Before the first socket: libzmq's default is 1,024 sockets
    zsys_set_max_sockets (0);
    if (zsys_socket_limit () < sim->count + (size_t) sim->options.syncs + 8) {
        fprintf (stderr, "kc_simagent: libzmq allows %zu sockets, %zu agents need %zu\n",
                 zsys_socket_limit (), sim->count, sim->count + (size_t) sim->options.syncs + 8);
        return -1;
    }
    return 0;
}

//  Every agent's key pair (secrets in one sodium_malloc block: ten
//  thousand guarded allocations would be forty thousand mappings), and
//  the --keys-out file.
static int
s_setup_agents (sim_t *sim)
{
    sim->agents = calloc (sim->count, sizeof (s_agent_t));
    sim->public_keys = malloc (sim->count * KC_KEY_BYTES);
    sim->secret_keys = sodium_malloc (sim->count * KC_KEY_BYTES);
    assert (sim->agents && sim->public_keys && sim->secret_keys);
    FILE *keys = sim->options.keys_out ? fopen (sim->options.keys_out, "w") : NULL;
    if (sim->options.keys_out && !keys) {
        fprintf (stderr, "kc_simagent: cannot write '%s': %s\n", sim->options.keys_out, strerror (errno));
        return -1;
    }
    for (size_t i = 0; i < sim->count; i++) {
        s_agent_t *a = &sim->agents [i];
        a->sim = sim;
        a->index = (uint32_t) ((size_t) sim->options.first + i);
        a->upstream = (uint8_t) (a->index % sim->upstream_count);
        a->backoff_ms = BACKOFF_MIN_MS;
        kc_chain_genesis (sim->directory, a->chain);
        crypto_box_keypair (sim->public_keys + i * KC_KEY_BYTES, sim->secret_keys + i * KC_KEY_BYTES);
        if (keys) {
            char z85 [KC_Z85_KEY_CHARS + 1];
            fprintf (keys, "%s-%u=%s,tag=role=sim\n", sim->options.name_prefix, a->index,
                     kc_z85_encode (sim->public_keys + i * KC_KEY_BYTES, KC_KEY_BYTES, z85));
        }
    }
    if (keys && fclose (keys)) {
        fprintf (stderr, "kc_simagent: cannot write '%s': %s\n", sim->options.keys_out, strerror (errno));
        return -1;
    }
    return 0;
}

static void
s_destroy (sim_t *sim)
{
    //  The loop first: closing sockets then need not leave it, one by one
    zloop_destroy (&sim->loop);
    for (size_t i = 0; sim->agents && i < sim->count; i++) {
        s_agent_t *a = &sim->agents [i];
        s_socket_close (sim, &a->updates);
        s_socket_close (sim, &a->snapshot);
        s_held_free (a);
    }
    for (size_t i = 0; i < sim->root_count; i++) {
        kc_root_destroy (&sim->roots [i]);
    }
    if (sim->secret_keys) {
        sodium_memzero (sim->secret_keys, sim->count * KC_KEY_BYTES);
        sodium_free (sim->secret_keys);
    }
    free (sim->public_keys);
    free (sim->agents);
}

int
main (int argc, char *argv [])
{
    sim_t sim;
    memset (&sim, 0, sizeof sim);
    if (s_options (argc, argv, &sim.options)) {
        return 2;
    }
    if (sodium_init () < 0) {
        fprintf (stderr, "kc_simagent: libsodium cannot start\n");
        return 1;
    }
    //  stdout carries the JSON lines; czmq logs there by default
    zsys_set_logstream (stderr);
    sim.count = (size_t) sim.options.agents;
    int rc = 1;
    if (s_setup_log (&sim) || s_setup_descriptors (&sim) || s_setup_agents (&sim)) {
        goto cleanup;
    }
    sim.loop = zloop_new ();
    assert (sim.loop);
    zmq_pollitem_t control = { NULL, STDIN_FILENO, ZMQ_POLLIN, 0 };
    if (zloop_poller (sim.loop, &control, s_on_control, &sim)
    ||  zloop_timer (sim.loop, TICK_MS, 0, s_on_tick, &sim) < 0) {
        fprintf (stderr, "kc_simagent: cannot set up the loop\n");
        goto cleanup;
    }
    zloop_poller_set_tolerant (sim.loop, &control);
    printf ("{\"event\":\"started\",\"agents\":%zu,\"first\":%ld,\"upstreams\":%zu,\"pid\":%d,"
            "\"hold\":%s}\n", sim.count, sim.options.first, sim.upstream_count, (int) getpid (),
            sim.options.hold ? "true" : "false");
    fflush (stdout);
    if (!sim.options.hold) {
        s_start (&sim);
    }
    zloop_start (sim.loop);
    if (sim.watch.active) {
        s_watch_report (&sim, true);
    }
    s_status (&sim, "summary");
    rc = 0;
cleanup:
    s_destroy (&sim);
    return rc;
}
