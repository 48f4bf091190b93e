/*  =========================================================================
    kc_agent_connect - whom the agent follows and how it gets through: the
    root's server, one of a cluster's members or one of --mirror's mirrors
    (moving between them at random), with the server keys the roots name
    (tried in turn through a server key rotation); connecting again when
    the server refused this node's key (libzmq never does), when asked
    (RECONNECT) or when an enrolment is approved; and the node's own key
    through a rotation ('keyclone rotate': the new key put in place once
    registered, the old one removed after its overlap).
    =========================================================================
*/
#include "kc_agent_internal.h"

#include <sodium.h>

#define REFUSED_BACKOFF_MIN_MS  2000        //  our key refused: connect again after this,
#define REFUSED_BACKOFF_MAX_MS  60000       //  doubling to this (an enrolment may admit it)

//  Follows mirror self->mirror: its endpoints and its key, the only one.
void
agent_use_mirror (agent_t *self)
{
    const kc_follow_upstream_t *mirror = &self->mirrors [self->mirror];
    snprintf (self->connect_text [0], sizeof self->connect_text [0], "%s", mirror->snapshot);
    snprintf (self->connect_text [1], sizeof self->connect_text [1], "%s", mirror->updates);
    memcpy (self->server_keys [0], mirror->server_key, KC_KEY_BYTES);
    self->key_count = 1;
    self->key_index = 0;
    snprintf (self->member, sizeof self->member, "%s", mirror->name);
}

//  --mirror "tcp://HOST:PORT=KEY,...": snapshot PORT, updates PORT+1, the
//  mirror's CURVE key. 0, or -1 having said why.
int
agent_parse_mirrors (agent_t *self)
{
    char list [4096];
    snprintf (list, sizeof list, "%s", self->config.mirrors ? self->config.mirrors : "");
    char *state = NULL;
    for (char *item = strtok_r (list, ",", &state); item; item = strtok_r (NULL, ",", &state)) {
        kc_follow_upstream_t *mirror = &self->mirrors [self->mirror_count];
        kc_why_t why;
        if (self->mirror_count == AGENT_MIRRORS_MAX || strncmp (item, "tcp://", 6)
        ||  kc_follow_parse_upstream (item, self->root, mirror, &why)) {
            zsys_error ("kc_agent: --mirror '%.100s' is not tcp://HOST:PORT=KEY (at most %d)", item, AGENT_MIRRORS_MAX);
            return -1;
        }
        self->mirror_count++;
    }
    if (self->mirror_count) {
        //  The agents of a site spread over its mirrors
        self->mirror = randombytes_uniform ((uint32_t) self->mirror_count);
    }
    return 0;
}

//  Whether the agent may move between members: the root names several
//  servers and no endpoint was configured.
bool
agent_can_move (const agent_t *self)
{
    if (self->mirror_count) {
        return self->mirror_count > 1;
    }
    return kc_root_server_count (self->root) > 1 && !self->config.connect [0] && !self->config.connect [1];
}

int
agent_read_monitor (zloop_t *loop, zsock_t *socket, void *arg)
{
    (void) loop;
    agent_t *self = arg;
    char *event = NULL, *value = NULL, *endpoint = NULL;
    zstr_recvx (socket, &event, &value, &endpoint, NULL);
    //  Name the cause libzmq reports, not a guess: a refusal is the server
    //  saying no to this node's key; a protocol failure is most often the
    //  wrong server key; anything else is a connection that did not finish
    //  its handshake (a timeout, a lost link, a busy server)
    const char *where = endpoint ? endpoint : "the server";
    if (event && KC_STREQ (event, "HANDSHAKE_FAILED_AUTH")) {
        self->refused_backoff = self->refused_backoff ? self->refused_backoff * 2 : REFUSED_BACKOFF_MIN_MS;
        if (self->refused_backoff > REFUSED_BACKOFF_MAX_MS) {
            self->refused_backoff = REFUSED_BACKOFF_MAX_MS;
        }
        self->refused_retry = zclock_mono () + self->refused_backoff / 2
                            + (int64_t) randombytes_uniform ((uint32_t) self->refused_backoff);
        agent_warn (self, "kc_agent: cannot authenticate with %s: the server refused this node's key "
                    "(not registered, revoked or expired?); trying again in %lld s", where,
                    (long long) (self->refused_retry - zclock_mono () + 999) / 1000);
    }
    else
    if (event && strncmp (event, "HANDSHAKE_FAILED", 16) == 0 && self->key_count > 1) {
        self->key_failed = true;            //  another key is tried (kc_agent.c's s_on_second)
    }
    else
    if (event && KC_STREQ (event, "HANDSHAKE_FAILED_PROTOCOL")) {
        agent_warn (self, "kc_agent: cannot authenticate with %s: CURVE handshake failed (protocol "
                    "error: is the root's server key this server's?)", where);
    }
    else
    if (event && strncmp (event, "HANDSHAKE_FAILED", 16) == 0) {
        //  libzmq cannot tell a wrong server key (the server closes at
        //  once) from a slow or lost link here: say what happened, and both
        int error = value ? atoi (value) : 0;
        agent_warn (self, "kc_agent: handshake with %s did not complete (%s); retrying. If this goes "
                    "on while the server is up and idle, check that the root's server key is its key",
                    where, error ? strerror (error) : "connection closed");
    }
    zstr_free (&event);
    zstr_free (&value);
    zstr_free (&endpoint);
    return 0;
}

//  --- The node's key through a rotation (docs/operator.md section 4) -----------

static int
s_on_old_key (zloop_t *loop, int timer_id, void *arg);

//  A one-shot timer at the end of the old key's overlap (KEY.old.until),
//  if an old pair waits for one.
void
agent_arm_old_key (agent_t *self)
{
    if (self->old_key_timer != -1) {
        zloop_timer_end (self->loop, self->old_key_timer);
        self->old_key_timer = -1;
    }
    uint64_t until, now = kc_now ();
    if (kc_nodekey_old_until (self->config.key_path, &until)) {
        size_t delay = until > now ? (size_t) (until - now) * 1000 : 1;
        self->old_key_timer = zloop_timer (self->loop, delay, 1, s_on_old_key, self);
    }
}

//  The old key's overlap is over: its files go (KEY.old, KEY.old_secret).
static int
s_on_old_key (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    agent_t *self = arg;
    self->old_key_timer = -1;
    kc_why_t why;
    uint64_t until;
    char base [4200] = "";
    kc_nodekey_base (self->config.key_path, base, sizeof base);
    int removed = kc_nodekey_forget_old (self->config.key_path, kc_now (), &until, &why);
    if (removed < 0) {
        zsys_error ("kc_agent: %s", why.text);
    }
    else
    if (removed) {
        zsys_info ("kc_agent: the old key's overlap is over: removed %s.old and its secret", base);
    }
    else {
        agent_arm_old_key (self);               //  not yet (a clock step), or a new overlap
    }
    return 0;
}

static int
s_on_swapped (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    agent_t *self = arg;
    self->swap_timer = -1;
    self->refused_retry = 0;
    return agent_reconnect (self, "connecting with this node's new key");
}

//  'keyclone rotate' left a new key pair beside the node's (KEY.next): as
//  soon as the cache holds it registered and in force (an approval, a
//  grant, an operator's rotation), it becomes the node's key, so no one
//  has to come back to the node before the old key expires. The old pair
//  is kept until the old key's not-after as the cache holds it (the batch
//  that registered the new key set it), then removed; the agent connects
//  with the new key at once. Called after every commit and sync: one stat,
//  and KEY.next read only when it changed.
void
agent_take_next_key (agent_t *self)
{
    uint8_t next [KC_KEY_BYTES];
    kc_why_t why;
    int found = kc_nodekey_next_seen (self->config.key_path, &self->next_seen, next, &why);
    if (found < 0) {
        agent_warn (self, "kc_agent: %s", why.text);
    }
    kc_cache_entry_t entry, old = { 0 };
    uint64_t now = kc_now ();
    if (found <= 0 || kc_cache_lookup (self->cache, next, &entry, &why)) {
        return;
    }
    if (entry.status != KC_STATUS_ACTIVE || entry.not_before > now || (entry.not_after && entry.not_after <= now)) {
        return;                             //  not admitted (yet)
    }
    char base [4200];
    if (!kc_nodekey_base (self->config.key_path, base, sizeof base)) {
        return;                             //  the swap says why (path too long)
    }
    kc_cert_t *current = kc_cert_load_public (base, &why);
    if (current && kc_cache_lookup (self->cache, kc_cert_public_key (current), &old, &why)) {
        old.status = 0;
    }
    //  The old key ends at its not-after; one revoked or unknown ends now;
    //  one with no end keeps its files (say so)
    uint64_t until = old.status == KC_STATUS_ACTIVE ? old.not_after : now;
    char from [KC_FINGERPRINT_CHARS + 1] = "?", to [KC_FINGERPRINT_CHARS + 1], when [32];
    if (current) {
        kc_fingerprint (kc_cert_public_key (current), from);
    }
    kc_cert_destroy (&current);
    kc_fingerprint (next, to);
    int rc = kc_nodekey_swap (self->config.key_path, next, until, &why);
    if (rc < 0) {
        agent_warn (self, "kc_agent: cannot put this node's new key %s in place: %s", to, why.text);
        return;
    }
    if (rc == 1) {
        return;                             //  swapped by 'keyclone rotate' meanwhile
    }
    if (until) {
        zsys_info ("kc_agent: this node's new key %s is registered (seq %llu): put it in place in %s; the old "
                   "key %s is kept as %s.old until %s", to, (unsigned long long) entry.seq, base, from, base,
                   kc_time_format (until, when));
    }
    else {
        zsys_warning ("kc_agent: this node's new key %s is registered (seq %llu): put it in place in %s; the "
                      "old key %s has no end, so %s.old is kept: revoke it when nothing uses it", to,
                      (unsigned long long) entry.seq, base, from, base);
    }
    agent_arm_old_key (self);
    if (self->swap_timer == -1) {
        self->swap_timer = zloop_timer (self->loop, 1, 1, s_on_swapped, self);
    }
}

//  The enrolment asked with --enrol is answered: admitted, connect with the
//  key at once (the server refused it until now, and its next retry may be
//  a minute away); rejected, say why (the agent keeps serving its cache and
//  is refused until the key is registered some other way).
int
agent_on_enrolled (zloop_t *loop, zsock_t *socket, void *arg)
{
    agent_t *self = arg;
    char *event = NULL, *detail = NULL;
    zstr_recvx (socket, &event, &detail, NULL);
    zloop_reader_end (loop, socket);
    int rc = 0;
    if (event && KC_STREQ (event, "REGISTERED")) {
        zsys_info ("kc_agent: the enrolment of %s is approved (seq %s): connecting with this node's key",
                   self->config.enrol_name, detail ? detail : "?");
        if (!kc_follow_admitted (self->follow) || self->refused_retry) {
            self->refused_retry = 0;
            rc = agent_reconnect (self, "connecting again: this node's key was admitted");
        }
    }
    else
    if (event && KC_STREQ (event, "REJECTED")) {
        char reason [KC_RECORD_REASON_MAX * 4 + 1];
        kc_escape (detail ? detail : "", detail ? strlen (detail) : 0, reason, sizeof reason, 0);
        zsys_error ("kc_agent: the enrolment of %s was rejected: %s (the server refuses this node's key until "
                    "it is registered)", self->config.enrol_name, reason);
    }
    zstr_free (&event);
    zstr_free (&detail);
    zactor_destroy (&self->enroller);
    return rc;
}

//  ROOT.followed (beside the pinned root: `keyclone` writes it there when
//  it follows the root changes, or an operator copies the root in force
//  there) names a newer server key to try first. Not trusted for anything
//  else: the agent follows root changes from the pinned root, in the log.
//  This is how a node that was offline through a whole server key rotation
//  overlap finds the server again (docs/protocol.md 2.3).
void
agent_learn_followed_key (agent_t *self)
{
    char path [4200];
    kc_why_t why;
    snprintf (path, sizeof path, "%s.followed", self->config.root_path);
    kc_root_t *followed = kc_file_exists (path) ? kc_root_load (path, &why) : NULL;
    if (followed && memcmp (kc_root_directory (followed), kc_root_directory (self->root), KC_HASH_BYTES) == 0
    &&  kc_root_version (followed) > kc_root_version (self->root)) {
        agent_learn_server_key (followed, self);
    }
    kc_root_destroy (&followed);
}

//  Follows the server (or mirror) of connect_text with the server key in
//  use, from the cache's sequence (kc_follow also watches the snapshot
//  and update sockets' handshakes: agent_read_monitor). why is logged.
int
agent_connect_server (agent_t *self, const char *why)
{
    kc_follow_upstream_t upstream = { 0 };
    snprintf (upstream.name, sizeof upstream.name, "%s", *self->member ? self->member : agent_member (self)->name);
    snprintf (upstream.snapshot, sizeof upstream.snapshot, "%s", self->connect [0]);
    snprintf (upstream.updates, sizeof upstream.updates, "%s", self->connect [1]);
    memcpy (self->key_in_use, self->server_keys [self->key_index], KC_KEY_BYTES);
    memcpy (upstream.server_key, self->key_in_use, KC_KEY_BYTES);
    self->connected_at = zclock_mono ();
    self->asked_at = 0;                     //  connecting: what RECONNECT asked for
    if (why) {
        zsys_info ("kc_agent: %s; syncing from seq %llu", why, (unsigned long long) kc_cache_seq (self->cache));
    }
    kc_why_t reason;
    kc_follow_set_keys (self->follow, kc_cert_public_key (self->cert), kc_cert_secret_key (self->cert));
    if (kc_follow_connect (self->follow, &upstream, &reason)) {
        zsys_error ("kc_agent: %s", reason.text);
        return -1;
    }
    return 0;
}

//  New sockets to the server (with the node's key as its file holds it
//  now, and the server key in use) and a sync from the cache.
int
agent_reconnect (agent_t *self, const char *why)
{
    //  The node's key file may hold a new key ('keyclone rotate' swapped it
    //  in): connect with what it holds now
    kc_why_t reason;
    kc_cert_t *cert = kc_cert_load_secret (self->config.key_path, &reason);
    if (cert && memcmp (kc_cert_public_key (cert), kc_cert_public_key (self->cert), KC_KEY_BYTES)) {
        char from [KC_FINGERPRINT_CHARS + 1], to [KC_FINGERPRINT_CHARS + 1];
        zsys_info ("kc_agent: this node's key changed in %s (%s -> %s, a rotation): connecting with the new one",
                   self->config.key_path, kc_fingerprint (kc_cert_public_key (self->cert), from),
                   kc_fingerprint (kc_cert_public_key (cert), to));
        kc_cert_destroy (&self->cert);
        self->cert = cert;
        cert = NULL;
        agent_arm_old_key (self);               //  swapped by 'keyclone rotate'
    }
    else
    if (!cert) {
        agent_warn (self, "kc_agent: %s; connecting with the key loaded before", reason.text);
    }
    kc_cert_destroy (&cert);
    return agent_connect_server (self, why);
}

//  Whether connecting again would change anything: the node's key file
//  holds another key than the one in use, or the server refused this key
//  (or has not let it in yet: a refusal is known only when the monitor is
//  read once a second, in kc_agent.c).
bool
agent_reconnect_needed (agent_t *self, bool *changed)
{
    kc_why_t why;
    kc_cert_t *cert = kc_cert_load_secret (self->config.key_path, &why);
    *changed = cert && memcmp (kc_cert_public_key (cert), kc_cert_public_key (self->cert), KC_KEY_BYTES);
    kc_cert_destroy (&cert);
    return *changed || self->refused_retry || !kc_follow_admitted (self->follow);
}

int
agent_reconnect_as_asked (agent_t *self, bool changed)
{
    self->refused_retry = 0;
    return agent_reconnect (self, changed ? "connecting with this node's new key, as asked"
                                      : "connecting again, as asked (this node's key may be admitted now)");
}

//  RECONNECT from the local service ('keyclone enrol', 'keyclone rotate'):
//  the node's key may have just been admitted, or replaced in its file.
//  Connects again at once when that would change anything, at most once per
//  REFUSED_BACKOFF_MIN_MS so no local client can make the agent hammer the
//  server: a request sooner than that is carried out then (kc_agent.c's s_on_second), if
//  it is still needed. Sets *action ("now", "later" in *in_ms, or "none");
//  -1 when the sockets cannot be made again.
int
agent_reconnect_asked (agent_t *self, const char **action, int64_t *in_ms)
{
    bool changed;
    *in_ms = 0;
    *action = "none";
    if (!agent_reconnect_needed (self, &changed)) {
        return 0;
    }
    int64_t now = zclock_mono (), allowed = self->connected_at + REFUSED_BACKOFF_MIN_MS;
    if (now < allowed) {
        self->asked_at = allowed;
        *in_ms = allowed - now;
        *action = "later";
        return 0;
    }
    *action = "now";
    return agent_reconnect_as_asked (self, changed);
}

//  Follows another server of the root (a cluster's member) from the
//  cache's sequence: the log is the same on every member, so nothing is
//  fetched twice and nothing is applied twice.
int
agent_next_member (agent_t *self, const char *why)
{
    if (self->mirror_count) {
        //  Another mirror, at random, as among a cluster's members
        size_t from = self->mirror;
        self->mirror = (from + 1 + randombytes_uniform ((uint32_t) self->mirror_count - 1)) % self->mirror_count;
        agent_use_mirror (self);
        char text [KC_WHY_BYTES];
        snprintf (text, sizeof text, "moving from mirror %s to %s (%s)", self->mirrors [from].name,
                  self->mirrors [self->mirror].name, why);
        self->behind = false;
        self->member_moves++;
        return agent_reconnect (self, text);
    }
    size_t count = kc_root_server_count (self->root), at = 0;
    const kc_root_server_t *current = agent_member (self);
    for (size_t i = 0; i < count; i++) {
        at = kc_root_server (self->root, i) == current ? i : at;
    }
    //  Any other member, at random: the agents of a member that died spread
    //  over the others instead of all moving to the same one
    const kc_root_server_t *next = kc_root_server (self->root, (at + 1 + randombytes_uniform ((uint32_t) count - 1))
                                                               % count);
    char text [KC_WHY_BYTES];
    snprintf (text, sizeof text, "moving from server %s to %s (%s)", current->name, next->name, why);
    snprintf (self->member, sizeof self->member, "%s", next->name);
    for (int i = 0; i < 2; i++) {
        snprintf (self->connect_text [i], sizeof self->connect_text [i], "%s", next->endpoints [i]);
    }
    self->key_count = 0;
    agent_learn_server_key (self->root, self);
    self->key_index = 0;
    self->behind = false;
    self->member_moves++;
    return agent_reconnect (self, text);
}

int
agent_next_server_key (agent_t *self)
{
    char from [KC_FINGERPRINT_CHARS + 1], to [KC_FINGERPRINT_CHARS + 1];
    kc_fingerprint (self->key_in_use, from);
    //  The newest key between each older one (0, 1, 0, 2, ...): after a
    //  switch the newest is the one, during an overlap the one before it
    self->key_index = self->key_index ? 0 : 1 + self->key_probes++ % (self->key_count - 1);
    zsys_info ("kc_agent: the server did not complete a handshake with server key %s; trying %s, "
               "another key the roots followed name for it (a server key rotation)", from,
               kc_fingerprint (self->server_keys [self->key_index], to));
    return agent_reconnect (self, "connected with another server key");
}
