/*  =========================================================================
    kc_agent_service - the agent's local endpoints (docs/agent.md):
    a ROUTER answering LOOKUP, NAME and STATUS with one JSON frame (and
    ROOTS and LOG as the server does, for the node's history), and a PUB
    event stream (registered, updated, revoked, stale, fresh, reloaded);
    and the agent's state (syncing, fresh, stale), which it reports. What
    only the engine or the witness module can do it reaches through
    self->ops.
    =========================================================================
*/
#include "kc_agent_internal.h"

#include <errno.h>
#include <sys/stat.h>

#define AGENT_LOG_BYTES     (4 * 1024 * 1024)   //  history entries in one LOG reply

//  Logs a warning about what the server sent: each kind (the line's first
//  words) a few times per period, then one summary (kc_ratelog), so a
//  misbehaving server cannot flood the log nor hide one warning behind
//  another.
void
agent_warn (agent_t *self, const char *format, ...)
{
    char line [KC_WHY_BYTES + 80], kind [49];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    snprintf (kind, sizeof kind, "%.48s", line);
    kc_ratelog (self->log, KC_LOG_WARNING, kind, "server", "%s", line);
}

const char *
agent_state_name (agent_state_t state)
{
    return state == AGENT_FRESH ? "fresh" : state == AGENT_STALE ? "stale" : "syncing";
}

void
agent_set_state (agent_t *self, agent_state_t state, const char *why)
{
    if (self->state == state) {
        return;
    }
    agent_state_t before = self->state;
    self->state = state;
    if (state == AGENT_STALE) {
        zsys_warning ("kc_agent: stale: %s (policy %s)", why,
                      self->config.fail_closed ? "fail-closed: new peers are denied"
                                               : "serve: lookups keep answering from the cache");
    }
    else {
        zsys_info ("kc_agent: %s at seq %llu%s", agent_state_name (state),
                   (unsigned long long) kc_cache_seq (self->cache),
                   before == AGENT_STALE ? " (was stale)" : "");
    }
    if (state != AGENT_SYNCING) {
        agent_event (self, agent_state_name (state), NULL, NULL, kc_cache_seq (self->cache));
    }
}

//  Binds an endpoint; an ipc socket gets the configured mode and group
//  (created under a umask that keeps it private until then).
static int
s_bind (agent_t *self, zsock_t *socket, const char *endpoint)
{
    mode_t saved = umask (0177);
    int rc = zsock_bind (socket, "%s", endpoint);
    umask (saved);
    if (rc < 0) {
        zsys_error ("kc_agent: cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    if (strncmp (endpoint, "ipc://", 6) || endpoint [6] == '@') {
        return 0;                           //  not a file
    }
    const char *path = endpoint + 6;
    if (chmod (path, (mode_t) self->config.socket_mode)
    ||  (self->config.group >= 0 && chown (path, (uid_t) -1, (gid_t) self->config.group))) {
        zsys_error ("kc_agent: cannot set the mode or group of '%s': %s", path, strerror (errno));
        return -1;
    }
    return 0;
}

int
agent_service_bind (agent_t *self)
{
    self->local = zsock_new (ZMQ_ROUTER);
    self->events = zsock_new (ZMQ_PUB);
    assert (self->local && self->events);
    zsock_set_linger (self->local, 0);
    zsock_set_linger (self->events, 0);
    zsock_set_maxmsgsize (self->local, 4096);
    zsock_set_router_mandatory (self->local, 1);
    zsock_set_sndtimeo (self->local, 0);
    zsock_set_sndhwm (self->events, 100000);
    if (s_bind (self, self->local, self->config.local_endpoint)
    ||  s_bind (self, self->events, self->config.events_endpoint)) {
        return -1;
    }
    return 0;
}

void
agent_event (agent_t *self, const char *event, const uint8_t *key, const char *name, uint64_t seq)
{
    char *json = NULL, z85 [KC_Z85_KEY_CHARS + 1], fp [KC_FINGERPRINT_CHARS + 1];
    size_t size = 0;
    FILE *out = open_memstream (&json, &size);
    fprintf (out, "{");
    kc_json_field_str (out, true, "event", event);
    if (key) {
        kc_json_field_str (out, false, "key", kc_z85_encode (key, KC_KEY_BYTES, z85));
        kc_json_field_str (out, false, "fingerprint", kc_fingerprint (key, fp));
        kc_json_field_str (out, false, "name", name ? name : "");
    }
    else
    if (name) {
        kc_json_field_str (out, false, "name", name);   //  equivocation: the server
    }
    kc_json_field_u64 (out, false, "seq", seq);
    fprintf (out, "}");
    fclose (out);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, event);
    zmsg_addmem (msg, json, size);
    zmsg_send (&msg, self->events);
    free (json);
}

//  "head": a fresh head was accepted (readers follow freshness by it; the
//  cache file gets a head only when the sequence moves on or every minute).
void
agent_head_event (agent_t *self, const kc_head_t *head)
{
    char json [160];
    snprintf (json, sizeof json, "{\"event\": \"head\", \"seq\": %llu, \"time\": %llu}",
              (unsigned long long) head->seq, (unsigned long long) head->time);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "head");
    zmsg_addstr (msg, json);
    zmsg_send (&msg, self->events);
}

//  The verdict for a key: trusted, revoked, expired, not-yet-valid,
//  unknown, or stale (fail-closed policy while not fresh).
static const char *
s_verdict (agent_t *self, const kc_cache_entry_t *entry)
{
    uint64_t now = kc_now ();
    const char *verdict = entry->status == 0 ? "unknown"
                        : entry->status == KC_STATUS_REVOKED ? "revoked"
                        : entry->not_after && now >= entry->not_after ? "expired"
                        : now < entry->not_before ? "not-yet-valid" : "trusted";
    if (KC_STREQ (verdict, "trusted") && self->config.fail_closed && self->state != AGENT_FRESH) {
        verdict = "stale";
    }
    return verdict;
}

static void
s_entry_json (agent_t *self, FILE *out, const kc_cache_entry_t *entry)
{
    char z85 [KC_Z85_KEY_CHARS + 1], fp [KC_FINGERPRINT_CHARS + 1];
    fprintf (out, "{");
    kc_json_field_str (out, true, "key", kc_z85_encode (entry->key, KC_KEY_BYTES, z85));
    kc_json_field_str (out, false, "fingerprint", kc_fingerprint (entry->key, fp));
    kc_json_field_str (out, false, "status", s_verdict (self, entry));
    kc_json_field_str (out, false, "name", entry->name);
    fprintf (out, ", \"tags\": [");
    const char *p = entry->tags;
    for (bool first = true; *p; first = false) {
        size_t length = strcspn (p, ",");
        fprintf (out, "%s", first ? "" : ", ");
        kc_json_string (out, p, length);
        p += length + (p [length] == ',');
    }
    fprintf (out, "]");
    kc_json_field_u64 (out, false, "version", entry->version);
    kc_json_field_u64 (out, false, "not_before", entry->not_before);
    kc_json_field_u64 (out, false, "not_after", entry->not_after);
    kc_json_field_u64 (out, false, "seq", entry->seq);
    if (entry->status == KC_STATUS_REVOKED) {
        kc_json_field_str (out, false, "reason", entry->reason);
    }
    kc_json_field_str (out, false, "agent", agent_state_name (self->state));
    fprintf (out, "}");
}

static void
s_entry_text (agent_t *self, FILE *out, const kc_cache_entry_t *entry)
{
    char z85 [KC_Z85_KEY_CHARS + 1], when [KC_TIME_WHEN_BYTES];
    fprintf (out, "%-13s %s  %-20s", s_verdict (self, entry),
             kc_z85_encode (entry->key, KC_KEY_BYTES, z85), *entry->name ? entry->name : "-");
    if (entry->status) {
        fprintf (out, " seq %llu", (unsigned long long) entry->seq);
    }
    if (entry->status == KC_STATUS_ACTIVE) {
        fprintf (out, " expires %s", kc_time_when (entry->not_after, kc_now (), when));
        if (*entry->tags) {
            fprintf (out, " tags %s", entry->tags);
        }
    }
    if (entry->status == KC_STATUS_REVOKED && *entry->reason) {
        fprintf (out, " reason \"%s\"", entry->reason);
    }
    fprintf (out, "\n");
}

typedef struct {
    agent_t *agent;
    FILE *out, *human;
    int count;
} s_names_t;

static int
s_name_entry (const kc_cache_entry_t *entry, void *arg)
{
    s_names_t *names = arg;
    fprintf (names->out, "%s", names->count++ ? ", " : "");
    s_entry_json (names->agent, names->out, entry);
    s_entry_text (names->agent, names->human, entry);
    return 0;
}

//  A fingerprint search lists at most PREFIX_MATCHES_MAX keys (it counts
//  them all).
#define PREFIX_MATCHES_MAX  16

static int
s_prefix_entry (const kc_cache_entry_t *entry, void *arg)
{
    s_names_t *names = arg;
    s_name_entry (entry, arg);
    return names->count >= PREFIX_MATCHES_MAX ? -1 : 0;
}

//  PREFIX's argument: 8 to 64 hex digits, into bytes (the last half byte
//  padded with 0). 0, or -1 with a reason.
static int
s_hex_prefix (const uint8_t *text, size_t size, uint8_t prefix [static KC_KEY_BYTES], kc_why_t *why)
{
    if (size < 8 || kc_unhex_prefix ((const char *) text, size, prefix, KC_KEY_BYTES)) {
        return kc_why (why, "PREFIX needs 8 to 64 hex digits");
    }
    return 0;
}

static void
s_status_text (agent_t *self, FILE *out)
{
    char hex [65];
    int64_t now = zclock_mono ();
    fprintf (out, "agent: %s (policy %s)%s\n", agent_state_name (self->state),
             self->config.fail_closed ? "fail-closed" : "serve", kc_follow_syncing (self->follow) ? ", syncing" : "");
    fprintf (out, "  seq %llu, chain %.16s...\n", (unsigned long long) kc_cache_seq (self->cache),
             kc_hex (kc_cache_chain (self->cache), 32, hex));
    fprintf (out, "  keys %llu (%llu revoked), cache %s\n",
             (unsigned long long) kc_cache_key_count (self->cache),
             (unsigned long long) kc_cache_revoked_count (self->cache), self->config.cache_path);
    fprintf (out, "  keyclone-agent %s\n", kc_version ());
    if (self->has_head && self->last_fresh) {
        fprintf (out, "  last matching head: seq %llu, %.1f s ago\n",
                 (unsigned long long) self->head.seq, (double) (now - self->last_fresh) / 1000.0);
    }
    else {
        fprintf (out, "  no matching head yet\n");
    }
    fprintf (out, "  server %s (updates %s)\n", self->connect [0], self->connect [1]);
    if (kc_follow_syncing (self->follow)) {
        char progress [200];
        fprintf (out, "  syncing for %.0f s: %s\n", (double) (now - self->sync_started) / 1000.0,
                 kc_sync_progress (progress, sizeof progress, self->sync_batches, self->sync_records,
                                   now - self->sync_started, self->sync_from + self->sync_batches,
                                   self->server_seq_hint));
    }
    if (self->behind) {
        fprintf (out, "  the server's log ends at seq %llu, behind this cache: it lost entries this cache keeps; "
                 "'keyclone recover' gives them back\n", (unsigned long long) self->server_behind);
    }
    if (self->refused_retry) {
        fprintf (out, "  the server refused this node's key: connecting again in %lld s (or when asked: "
                 "keyclone enrol, keyclone rotate)\n",
                 (long long) (self->refused_retry > now ? (self->refused_retry - now + 999) / 1000 : 0));
    }
    if (self->has_head) {
        fprintf (out, "  server clock %+.3f s from this node's (accepted up to %.0f s)\n",
                 (double) self->clock_offset_ms / 1000.0, (double) self->config.clock_skew_ms / 1000.0);
    }
    char when [32];
    uint64_t expires = kc_root_expires (self->root), now_s = kc_now ();
    fprintf (out, "  root v%llu expires %s (%s%llu days)%s\n",
             (unsigned long long) kc_root_version (self->root), kc_time_format (expires, when),
             expires > now_s ? "in " : "", (unsigned long long) (expires > now_s ? (expires - now_s) / 86400
                                                                 : (now_s - expires) / 86400),
             expires <= now_s ? " ago: EXPIRED, renew it"
             : expires - now_s < 30 * 86400 ? ": renew it soon" : "");
    fprintf (out, "  applied %llu batches, rejected %llu, %llu syncs, %llu cache rebuilds\n",
             (unsigned long long) self->applied, (unsigned long long) self->rejected,
             (unsigned long long) self->resyncs, (unsigned long long) self->rebuilds);
    self->ops.status_text (self, out);
}

static void
s_status_json (agent_t *self, FILE *out)
{
    char hex [65];
    int64_t now = zclock_mono ();
    fprintf (out, "{");
    kc_json_field_str (out, true, "role", "agent");
    kc_json_field_str (out, false, "version", kc_version ());
    kc_json_field_str (out, false, "state", agent_state_name (self->state));
    kc_json_field_str (out, false, "policy", self->config.fail_closed ? "fail-closed" : "serve");
    kc_json_field_str (out, false, "directory", kc_hex (kc_root_directory (self->root), 32, hex));
    kc_json_field_u64 (out, false, "seq", kc_cache_seq (self->cache));
    kc_json_field_str (out, false, "chain", kc_hex (kc_cache_chain (self->cache), 32, hex));
    kc_json_field_u64 (out, false, "keys", kc_cache_key_count (self->cache));
    kc_json_field_u64 (out, false, "revoked", kc_cache_revoked_count (self->cache));
    if (self->has_head) {
        kc_json_field_u64 (out, false, "head_seq", self->head.seq);
        kc_json_field_u64 (out, false, "head_time", self->head.time);
    }
    kc_json_field_u64 (out, false, "head_age_ms",
                       self->last_fresh ? (uint64_t) (now - self->last_fresh) : 0);
    fprintf (out, ", \"clock_offset_ms\": %lld", (long long) self->clock_offset_ms);
    kc_json_field_u64 (out, false, "clock_skew_allowed_ms", (uint64_t) self->config.clock_skew_ms);
    kc_json_field_u64 (out, false, "root_version", kc_root_version (self->root));
    kc_json_field_u64 (out, false, "root_expires", kc_root_expires (self->root));
    int64_t left = (int64_t) kc_root_expires (self->root) - (int64_t) kc_now ();
    fprintf (out, ", \"root_days_left\": %lld", (long long) (left >= 0 ? left / 86400 : -1 - (-left) / 86400));
    kc_json_field_str (out, false, "server", self->connect [0]);
    kc_json_field_str (out, false, "updates", self->connect [1]);
    //  The root's server followed: a cluster's member, which the agent
    //  leaves for the next when it gives no fresh head (docs/cluster.md 5)
    kc_json_field_str (out, false, "member", *self->member ? self->member
                                                           : kc_root_server (self->root, 0)->name);
    kc_json_field_u64 (out, false, "member_moves", self->member_moves);
    kc_json_field_u64 (out, false, "cold_syncs", self->cold_syncs);
    if (self->behind) {
        kc_json_field_u64 (out, false, "server_behind", self->server_behind);
    }
    kc_json_field_u64 (out, false, "refused_retry_ms", (uint64_t) (self->refused_retry > now
                                                                   ? self->refused_retry - now : 0));
    kc_json_field_str (out, false, "cache", self->config.cache_path);
    kc_json_field_u64 (out, false, "applied", self->applied);
    kc_json_field_u64 (out, false, "rejected", self->rejected);
    kc_json_field_u64 (out, false, "syncs", self->resyncs);
    kc_json_field_u64 (out, false, "rebuilds", self->rebuilds);
    kc_json_field_u64 (out, false, "last_sync_from", self->last_sync_from);
    kc_json_field_u64 (out, false, "last_sync_batches", self->last_sync_batches);
    kc_json_field_u64 (out, false, "last_sync_records", self->last_sync_records);
    kc_json_field_u64 (out, false, "last_sync_ms", (uint64_t) self->last_sync_ms);
    kc_json_field_u64 (out, false, "last_sync_build_ms", (uint64_t) self->last_build_ms);
    fprintf (out, ", \"caught_up_ms\": %lld", (long long) self->caught_up_ms);
    if (kc_follow_syncing (self->follow)) {
        kc_json_field_u64 (out, false, "sync_batches", self->sync_batches);
        kc_json_field_u64 (out, false, "sync_records", self->sync_records);
        kc_json_field_u64 (out, false, "sync_ms", (uint64_t) (now - self->sync_started));
        kc_json_field_u64 (out, false, "sync_target", self->server_seq_hint);
    }
    self->ops.status_json (self, out);
    fprintf (out, ", \"syncing\": %s}", kc_follow_syncing (self->follow) ? "true" : "false");
}

//  METRICS: the Prometheus text exposition (docs/agent.md).
static void
s_metrics (agent_t *self, FILE *out)
{
    kc_metrics_t m = { .out = out };
    char labels [200], hex [65];
    int64_t now = zclock_mono ();
    snprintf (labels, sizeof labels, "version=\"%s\",directory=\"%.16s\"", kc_version (),
              kc_hex (kc_root_directory (self->root), 32, hex));
    kc_metric (&m, "keyclone_agent_info", "gauge", "The agent's version and directory.", labels, 1);
    for (int state = AGENT_SYNCING; state <= AGENT_STALE; state++) {
        snprintf (labels, sizeof labels, "state=\"%s\"", agent_state_name ((agent_state_t) state));
        kc_metric (&m, "keyclone_agent_state", "gauge", "1 for the agent's state (syncing, fresh, stale).",
                   labels, self->state == (agent_state_t) state);
    }
    kc_metric (&m, "keyclone_agent_seq", "gauge", "The cache's sequence number.", "", (double) kc_cache_seq (self->cache));
    kc_metric (&m, "keyclone_agent_keys", "gauge", "Keys in the cache.", "", (double) kc_cache_key_count (self->cache));
    kc_metric (&m, "keyclone_agent_revoked_keys", "gauge", "Revoked keys in the cache.", "",
               (double) kc_cache_revoked_count (self->cache));
    kc_metric (&m, "keyclone_agent_head_seq", "gauge", "Sequence of the last matching head.", "",
               self->has_head ? (double) self->head.seq : 0);
    kc_metric (&m, "keyclone_agent_head_age_seconds", "gauge", "Seconds since the last matching head (-1: none).", "",
               self->last_fresh ? (double) (now - self->last_fresh) / 1000.0 : -1);
    kc_metric (&m, "keyclone_agent_clock_offset_seconds", "gauge", "The server's clock minus this node's.", "",
               (double) self->clock_offset_ms / 1000.0);
    kc_metric (&m, "keyclone_agent_root_expiry_timestamp_seconds", "gauge", "When the root in force expires.", "",
               (double) kc_root_expires (self->root));
    kc_metric (&m, "keyclone_agent_applied_total", "counter", "Log entries verified and applied.", "",
               (double) self->applied);
    for (int r = 0; r < KC_REASONS; r++) {
        snprintf (labels, sizeof labels, "reason=\"%s\"", kc_reason_name ((kc_reason_t) r));
        kc_metric (&m, "keyclone_agent_rejected_total", "counter",
                   "What the server sent that failed verification, by class of reason.", labels,
                   (double) self->rejected_by [r]);
    }
    kc_metric (&m, "keyclone_agent_zap_total", "counter",
               "ZAP requests the agent answered for applications (its local ZAP service).",
               "result=\"allowed\"", (double) self->zap_allowed);
    kc_metric (&m, "keyclone_agent_zap_total", "counter",
               "ZAP requests the agent answered for applications (its local ZAP service).",
               "result=\"denied\"", (double) self->zap_denied);
    kc_metric (&m, "keyclone_agent_syncs_total", "counter", "Syncs started.", "", (double) self->resyncs);
    kc_metric (&m, "keyclone_agent_cache_rebuilds_total", "counter", "Cache rebuilds.", "", (double) self->rebuilds);
    kc_metric (&m, "keyclone_agent_last_sync_seconds", "gauge", "Duration of the last sync.", "",
               (double) self->last_sync_ms / 1000.0);
}

//  Answers one request; returns the JSON reply and its text rendering, or
//  NULL with a reason (and *fatal set when the agent cannot go on).
static char *
s_answer (agent_t *self, zmsg_t *request, char **text, bool *fatal, kc_why_t *why)
{
    char *json = NULL;
    size_t size = 0, text_size = 0;
    *text = NULL;
    zframe_t *command = zmsg_first (request), *argument = zmsg_next (request);
    if (!command || zmsg_size (request) > 2) {
        kc_why (why, "expected LOOKUP KEY, NAME NAME, STATUS, METRICS or RECONNECT");
        return NULL;
    }
    FILE *out = open_memstream (&json, &size), *human = open_memstream (text, &text_size);
    int rc = 0;
    if (zframe_streq (command, "STATUS") && !argument) {
        s_status_json (self, out);
        s_status_text (self, human);
    }
    else
    if (zframe_streq (command, "PROOF") && argument) {
        //  Two heads an application found in conflict (a peer's, in the
        //  CurveZMQ handshake's metadata, and ours): checked here
        kc_head_t a, b;
        if (zframe_size (argument) != 2 * KC_HEAD_BYTES
        ||  kc_head_decode (zframe_data (argument), KC_HEAD_BYTES, &a, why)
        ||  kc_head_decode (zframe_data (argument) + KC_HEAD_BYTES, KC_HEAD_BYTES, &b, why)
        ||  self->ops.take_proof (self, &a, &b, "reported by an application", why)) {
            rc = kc_why_prefix (why, "PROOF");
        }
        else {
            fprintf (out, "{");
            kc_json_field_str (out, true, "refusing", self->refused_server);
            kc_json_field_u64 (out, false, "seq", a.seq);
            fprintf (out, "}");
            fprintf (human, "server %s equivocated at seq %llu: refusing it\n", self->refused_server,
                     (unsigned long long) a.seq);
        }
    }
    else
    if (zframe_streq (command, "METRICS") && !argument) {
        s_metrics (self, human);
        fprintf (out, "{\"format\": \"prometheus text 0.0.4\"}");
    }
    else
    if (zframe_streq (command, "RECONNECT") && !argument) {
        const char *action;
        int64_t in_ms;
        char fp [KC_FINGERPRINT_CHARS + 1];
        if (self->ops.reconnect (self, &action, &in_ms)) {
            *fatal = true;
            rc = kc_why (why, "cannot make the sockets to the server again");
        }
        else {
            kc_fingerprint (kc_cert_public_key (self->cert), fp);
            fprintf (out, "{");
            kc_json_field_str (out, true, "reconnect", action);
            kc_json_field_u64 (out, false, "in_ms", (uint64_t) in_ms);
            kc_json_field_str (out, false, "key", fp);
            kc_json_field_str (out, false, "agent", agent_state_name (self->state));
            fprintf (out, "}");
            if (KC_STREQ (action, "now")) {
                fprintf (human, "connecting to the server again now with key %s\n", fp);
            }
            else
            if (KC_STREQ (action, "later")) {
                fprintf (human, "connecting to the server again in %lld ms with key %s\n", (long long) in_ms, fp);
            }
            else {
                fprintf (human, "connected with key %s (%s): nothing to do\n", fp, agent_state_name (self->state));
            }
        }
    }
    else
    if (zframe_streq (command, "LOOKUP") && argument) {
        uint8_t key [KC_KEY_BYTES];
        char z85 [KC_Z85_KEY_CHARS + 1];
        kc_cache_entry_t entry;
        if (zframe_size (argument) == KC_KEY_BYTES) {
            memcpy (key, zframe_data (argument), KC_KEY_BYTES);
        }
        else
        if (zframe_size (argument) == KC_Z85_KEY_CHARS) {
            memcpy (z85, zframe_data (argument), KC_Z85_KEY_CHARS);
            z85 [KC_Z85_KEY_CHARS] = 0;
            rc = kc_z85_key (z85, key, why);
        }
        else {
            rc = kc_why (why, "LOOKUP needs a 32-byte key or its 40-character Z85 text");
        }
        if (rc == 0 && (rc = kc_cache_lookup (self->cache, key, &entry, why)) == 0) {
            s_entry_json (self, out, &entry);
            s_entry_text (self, human, &entry);
        }
    }
    else
    if (zframe_streq (command, "NAME") && argument && zframe_size (argument) <= KC_RECORD_NAME_MAX) {
        char name [KC_RECORD_NAME_MAX + 1];
        memcpy (name, zframe_data (argument), zframe_size (argument));
        name [zframe_size (argument)] = 0;
        fprintf (out, "{");
        kc_json_field_str (out, true, "name", name);
        fprintf (out, ", \"keys\": [");
        s_names_t names = { self, out, human, 0 };
        rc = kc_cache_by_name (self->cache, name, s_name_entry, &names, why) < 0 ? -1 : 0;
        if (rc == 0 && names.count == 0) {
            fprintf (human, "unknown       no key named '%s'\n", name);
        }
        fprintf (out, "]");
        kc_json_field_str (out, false, "agent", agent_state_name (self->state));
        fprintf (out, "}");
    }
    else
    if (zframe_streq (command, "PREFIX") && argument) {
        uint8_t prefix [KC_KEY_BYTES] = { 0 };
        char hex [2 * KC_KEY_BYTES + 1];
        size_t nibbles = zframe_size (argument);
        rc = s_hex_prefix (zframe_data (argument), nibbles, prefix, why);
        if (rc == 0) {
            memcpy (hex, zframe_data (argument), nibbles);
            hex [nibbles] = 0;
            fprintf (out, "{");
            kc_json_field_str (out, true, "prefix", hex);
            fprintf (out, ", \"keys\": [");
            s_names_t names = { self, out, human, 0 };
            int count = kc_cache_prefix (self->cache, prefix, nibbles, s_prefix_entry, &names, why);
            rc = count < 0 ? -1 : 0;
            if (rc == 0 && count == 0) {
                fprintf (human, "unknown       no key has the fingerprint '%s'\n", hex);
            }
            fprintf (out, "]");
            kc_json_field_u64 (out, false, "count", (uint64_t) (count > 0 ? count : 0));
            kc_json_field_str (out, false, "agent", agent_state_name (self->state));
            fprintf (out, "}");
        }
    }
    else {
        rc = kc_why (why, "expected LOOKUP KEY, NAME NAME, PREFIX HEX, STATUS, METRICS or RECONNECT");
    }
    fclose (out);
    fclose (human);
    if (rc) {
        free (json);
        free (*text);
        *text = NULL;
        return NULL;
    }
    return json;
}

//  Answers a ZAP request (the frames after "ZAP") with a ZAP reply, as the
//  in-process handler kc_auth would.
static zmsg_t *
s_zap (agent_t *self, zmsg_t *request)
{
    kc_zap_request_t parsed;
    kc_zap_reply_t reply;
    kc_why_t why;
    if (kc_zap_parse (request, &parsed, &reply, &why) == 0) {
        kc_cache_entry_t cached;
        kc_lookup_entry_t entry;
        memset (&entry, 0, sizeof entry);
        if (kc_cache_lookup (self->cache, parsed.key, &cached, &why)) {
            memset (&reply, 0, sizeof reply);
            reply.status = 500;
            snprintf (reply.text, sizeof reply.text, "keyclone agent cache error");
        }
        else {
            memcpy (entry.key, parsed.key, KC_KEY_BYTES);
            entry.status = cached.status;
            entry.verdict = kc_verdict_at (cached.status, cached.not_before, cached.not_after, kc_now ());
            snprintf (entry.name, sizeof entry.name, "%s", cached.name);
            snprintf (entry.tags, sizeof entry.tags, "%s", cached.tags);
            bool stale = self->config.fail_closed && self->state != AGENT_FRESH;
            const char *required = self->config.zap_policies
                                 ? zhashx_lookup (self->config.zap_policies, parsed.domain) : NULL;
            kc_zap_decide (&parsed, &entry, stale, required, &reply);
        }
    }
    self->zap_allowed += reply.status == 200;
    self->zap_denied += reply.status != 200;
    if (reply.status != 200) {
        kc_ratelog (self->log, KC_LOG_WARNING, "zap denied", "local", "kc_agent: ZAP denied: %s",
                    reply.text);
    }
    return kc_zap_reply (parsed.request_id, parsed.request_id_size, &reply);
}


//  ROOTS and LOG, answered as the server answers them on its submission
//  channel (docs/protocol.md 6.1): the root changes this node accepted, and
//  its audit history (docs/agent.md 5), so `keyclone log --agent` reads a
//  node's history with the server's code.
static zmsg_t *
s_history (agent_t *self, zmsg_t *request)
{
    kc_proto_msg_t decoded;
    kc_why_t why;
    if (kc_proto_decode (request, KC_CHANNEL_SUBMIT_SERVER, &decoded, &why)) {
        return kc_proto_error ("malformed request: %s", why.text);
    }
    zmsg_t *reply;
    int rc;
    if (decoded.type == KC_MSG_ROOTS) {
        reply = kc_proto_roots_reply ();
        rc = kc_cache_roots (self->cache, kc_proto_add_root_fn, reply, &why);
    }
    else {
        reply = kc_proto_log_reply ();
        rc = kc_cache_history (self->cache, decoded.seq, decoded.credit, AGENT_LOG_BYTES, kc_proto_add_log_fn,
                               reply, &why);
    }
    kc_proto_msg_reset (&decoded);
    if (rc < 0) {
        zmsg_destroy (&reply);
        reply = kc_proto_error ("%s", why.text);
    }
    return reply;
}

int
agent_on_local (zloop_t *loop, zsock_t *socket, void *arg)
{
    (void) loop;
    agent_t *self = arg;
    bool fatal = false;
    for (int n = 0; n < 64 && !fatal && (zsock_events (socket) & ZMQ_POLLIN); n++) {
        zmsg_t *request = zmsg_recv (socket);
        if (!request) {
            break;
        }
        zframe_t *identity = zmsg_pop (request);
        //  REQ clients put an empty delimiter first
        bool delimiter = zmsg_first (request) && zframe_size (zmsg_first (request)) == 0;
        if (delimiter) {
            zframe_t *empty = zmsg_pop (request);
            zframe_destroy (&empty);
        }
        kc_why_t why;
        char *text = NULL, *json = NULL;
        zmsg_t *reply;
        if (zmsg_first (request) && zframe_streq (zmsg_first (request), "ZAP")) {
            zframe_t *command = zmsg_pop (request);
            zframe_destroy (&command);
            reply = s_zap (self, request);
        }
        else
        if (zmsg_first (request) && (zframe_streq (zmsg_first (request), "ROOTS")
                                 ||  zframe_streq (zmsg_first (request), "LOG"))) {
            reply = s_history (self, request);
        }
        else {
            json = s_answer (self, request, &text, &fatal, &why);
            reply = zmsg_new ();
            zmsg_addstr (reply, json ? "OK" : "ERROR");
            zmsg_addstr (reply, json ? json : why.text);
            if (json) {
                zmsg_addstr (reply, text);
            }
        }
        free (text);
        if (delimiter) {
            zmsg_pushmem (reply, NULL, 0);
        }
        zmsg_prepend (reply, &identity);
        if (zmsg_send (&reply, socket)) {
            zmsg_destroy (&reply);
        }
        free (json);
        zframe_destroy (&identity);
        zmsg_destroy (&request);
    }
    return fatal ? -1 : 0;
}
