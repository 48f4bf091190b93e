/*  =========================================================================
    kc_agent - the per-node sync engine: kc_follow's consumer (whom it
    follows: kc_agent_connect), heads (freshness, rollback and equivocation
    checks), the staleness timer, ACKs, cache integrity checks and
    rebuilds, SIGHUP, and start-up. One zloop thread; the cache is written
    only in it (kc_agent_sync, kc_agent_apply).
    =========================================================================
*/
#include "kc_agent_internal.h"

#include <unistd.h>
#include <signal.h>
#include <sodium.h>

#define BUFFER_BYTES_MAX    (256 * 1024 * 1024) //  updates held during a sync
#define PROGRESS_EVERY_MS   5000            //  a long sync's progress line, this often
#define LOG_PERIOD_MS       10000           //  warnings: per kind and period,
#define LOG_PER_KIND        2               //  then one summary line
#define ACK_EVERY_MS        1000            //  ACKs at most this often (each wakes the server)
#define HEAD_WRITE_EVERY_MS 60000           //  a head with no new seq goes to disk this often,
#define HEAD_WRITE_MOVED_MS 1000            //  one with a new seq at most this often
#define HEAD_REVERIFY_MS    250             //  a repeated head is verified again after this
#define CLOCK_WARN_MS       5000            //  say so when the server's clock is this far
#define ROOT_WARN_DAYS      30              //  warn this long before the root expires
#define DAY_MS              (86400 * 1000)

static void s_want_ack (agent_t *self);
static void s_rebuild (agent_t *self, const char *why);
static void s_arm_stale (agent_t *self);

//  The server whose head key signed head: the one followed; behind a mirror
//  (which relays its upstream's heads), any server of the root in force,
//  the last one that did first. NULL if none.
static const kc_root_server_t *
s_head_signer (agent_t *self, const kc_head_t *head)
{
    kc_why_t why;
    const kc_root_server_t *member = agent_member (self);
    if (!self->mirror_count) {
        return kc_head_verify_signature (head, kc_root_directory (self->root), member->head_key, &why) ? NULL
                                                                                                          : member;
    }
    size_t count = kc_root_server_count (self->root);
    for (size_t n = 0; n < count; n++) {
        size_t i = (self->head_signer + n) % count;
        if (kc_head_verify_signature (head, kc_root_directory (self->root), kc_root_server (self->root, i)->head_key,
                                      &why) == 0) {
            self->head_signer = i;
            return kc_root_server (self->root, i);
        }
    }
    return NULL;
}

void
kc_agent_config_defaults (kc_agent_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->stale_after_ms = 5000;
    config->check_interval_ms = 60000;
    config->credit = 8;
    config->clock_skew_ms = 300000;
    config->socket_mode = 0660;
    config->group = -1;
}

static void s_commit_open (agent_t *self);

//  The copy kc_follow follows: the cache, or during a cold sync the batches
//  verified so far (the new cache file is built at END).
static uint64_t
s_copy_seq (void *arg)
{
    agent_t *self = arg;
    return self->cold && kc_follow_syncing (self->follow) ? self->sync_seq : kc_cache_seq (self->cache);
}

static const uint8_t *
s_copy_chain (void *arg)
{
    agent_t *self = arg;
    return self->cold && kc_follow_syncing (self->follow) ? self->sync_chain : kc_cache_chain (self->cache);
}

//  A sync is about to start (kc_follow): what was applied is committed, and
//  a sync from seq 0 builds a new cache file.
static void
s_on_syncing (void *arg)
{
    agent_t *self = arg;
    s_commit_open (self);
    agent_free_cold (self);
    self->last_build_ms = 0;
    self->sync_from = self->sync_seq = kc_cache_seq (self->cache);
    self->cold = self->sync_from == 0;
    self->cold_syncs += self->cold;
    memcpy (self->sync_chain, kc_cache_chain (self->cache), KC_HASH_BYTES);
    self->sync_batches = self->sync_records = 0;
    self->sync_started = self->sync_progressed = zclock_mono ();
    self->resyncs++;
}

//  The server sent something that fails verification (kc_follow logged it
//  and backs off): the cache is kept, and the agent is stale.
static void
s_on_fault (void *arg, const char *what, const kc_why_t *why)
{
    (void) what;
    agent_t *self = arg;
    s_commit_open (self);
    self->rejected++;
    self->rejected_by [kc_reason_class (why->text)]++;
    agent_free_cold (self);
    agent_set_state (self, AGENT_STALE, "the server sent data that failed verification");
}


//  --- Heads ------------------------------------------------------------------

//  True (and stale, logged) when the root in force has expired: nothing it
//  signs can be trusted as fresh any more. From ROOT_WARN_DAYS before,
//  warns once a day.
static bool
s_root_expired (agent_t *self, uint64_t now)
{
    uint64_t expires = kc_root_expires (self->root);
    char when [32], text [160];
    if (now >= expires) {
        snprintf (text, sizeof text, "the root in force, v%llu, expired at %s; renew it",
                  (unsigned long long) kc_root_version (self->root), kc_time_format (expires, when));
        if (self->state != AGENT_STALE) {
            agent_set_state (self, AGENT_STALE, text);
        }
        return true;
    }
    int64_t mono = zclock_mono ();
    if (expires - now < (uint64_t) ROOT_WARN_DAYS * 86400
    &&  (self->root_warned == 0 || mono - self->root_warned >= DAY_MS)) {
        self->root_warned = mono;
        zsys_warning ("kc_agent: the root in force, v%llu, expires at %s, in %llu days: renew it "
                      "before then or every agent goes stale", (unsigned long long) kc_root_version (self->root),
                      kc_time_format (expires, when), (unsigned long long) ((expires - now) / 86400));
    }
    return false;
}

//  Notes how far the server's clock is from ours (from a head whose
//  signature verified, as it arrives), and says so once when it is far.
static void
s_measure_clock (agent_t *self, const kc_head_t *head, uint64_t now)
{
    self->clock_offset_ms = (int64_t) head->time - (int64_t) now;
    int64_t distance = llabs (self->clock_offset_ms);
    bool far = distance > CLOCK_WARN_MS;
    if (far && !self->clock_warned) {
        zsys_warning ("kc_agent: this node's clock is %.1f s %s the server's (heads are accepted "
                      "up to %.0f s off); check NTP", (double) distance / 1000.0,
                      self->clock_offset_ms > 0 ? "behind" : "ahead of",
                      (double) self->config.clock_skew_ms / 1000.0);
    }
    self->clock_warned = far;
}

//  A head from the update channel or from the END of a sync. A head older
//  than one already accepted is never fresh news. It is a replay when it is
//  older than one that came before it on the update channel (a FIFO from
//  the server); older only than a sync's END head, it merely crossed it (the
//  END is signed after the heads published during the sync, on another
//  socket) and is dropped without a word.
static void
s_on_head (agent_t *self, const kc_head_t *head, const uint8_t *const *cosigs, size_t cosig_count,
           bool from_end)
{
    kc_why_t why;
    //  Cosignatures name what witnesses saw; each is checked on its own,
    //  whatever becomes of the head it came with
    agent_take_cosigs (self, cosigs, cosig_count);
    //  Do once what repeats: while a head was verified less than
    //  HEAD_REVERIFY_MS ago, a head that names exactly the (seq, chain) the
    //  cache already holds (from batches verified one by one) tells nothing
    //  new: it would only move freshness by a few ms. Skip its signature
    //  check, which costs as much as a batch's; it changes no state. Any
    //  other head, one with another chain above all, is verified.
    int64_t mono = zclock_mono ();
    if (!from_end && self->state == AGENT_FRESH
    &&  mono - self->last_fresh < HEAD_REVERIFY_MS && mono - self->last_fresh < self->config.stale_after_ms / 4
    &&  head->seq == kc_cache_seq (self->cache) && head->time >= self->last_head_time
    &&  memcmp (head->chain, kc_cache_chain (self->cache), KC_HASH_BYTES) == 0
    &&  memcmp (head->directory, kc_root_directory (self->root), KC_HASH_BYTES) == 0
    &&  agent_witness_left (self) > 0) {
        agent_cosign (self, head);
        return;
    }
    const kc_root_server_t *signer = s_head_signer (self, head);
    if (!signer) {
        if (kc_head_verify_signature (head, kc_root_directory (self->root), agent_member (self)->head_key,
                                      &why) == 0) {
            kc_why (&why, "head signature does not verify with a head key of the root");
        }
        kc_why_t ignored;
        if (!(self->has_previous_head_key
        &&    kc_head_verify_signature (head, kc_root_directory (self->root), self->previous_head_key,
                                        &ignored) == 0)) {
            agent_warn (self, "kc_agent: rejected head: %s", why.text);
        }
        return;                             //  an overlap head of a rotation: not for us
    }
    if (agent_refused (self, signer->head_key)) {
        agent_warn (self, "kc_agent: refusing server %s: it equivocated (a proof is kept beside the cache)",
                    self->refused_server);
        agent_set_state (self, AGENT_STALE, "the server equivocated: refused");
        if (agent_can_move (self) && !self->halfway) {
            self->halfway = true;
            agent_next_member (self, "it equivocated");
        }
        return;
    }
    uint64_t now = kc_now_ms ();
    s_measure_clock (self, head, now);
    //  A head from beyond the allowed skew is refused and not remembered, so
    //  a server whose clock jumped ahead and back does not leave us stale
    if (kc_head_check_time (head, now, (uint64_t) self->config.clock_skew_ms, &why)) {
        agent_warn (self, "kc_agent: rejected head: %s", why.text);
        return;
    }
    if (s_root_expired (self, now / 1000)) {
        return;
    }
    if (!from_end && head->time < self->last_channel_time) {
        agent_warn (self, "kc_agent: rejected head: %s", "older than one already accepted (replayed?)");
        return;
    }
    if (!from_end) {
        self->last_channel_time = head->time;
    }
    if (head->time < self->last_head_time) {
        return;
    }
    self->last_head_time = head->time;
    uint64_t seq = kc_cache_seq (self->cache);
    if (head->seq > self->server_seq_hint) {
        self->server_seq_hint = head->seq;  //  for the sync's progress
    }
    if (head->seq > seq) {
        return;                             //  kc_follow syncs (missed updates)
    }
    if (head->seq < seq && agent_can_move (self)) {
        //  A cluster member that has not applied what another one sent us
        //  yet: not fresh here; another member is tried if it lasts
        //  (s_on_stale, s_on_second)
        if (!self->behind || self->server_behind != head->seq) {
            zsys_info ("kc_agent: server %s is at seq %llu, behind this cache (seq %llu)",
                       agent_member (self)->name, (unsigned long long) head->seq, (unsigned long long) seq);
        }
        self->behind = true;
        self->server_behind = head->seq;
        return;
    }
    if (head->seq < seq) {
        //  Never rolled back (a revocation may be among what the server
        //  lost): said, acknowledged so the server can say it too, and kept
        //  for 'keyclone recover' to give back
        if (!self->behind || self->server_behind != head->seq) {
            agent_warn (self, "kc_agent: the server's log ends at seq %llu, behind this cache (seq %llu): the server "
                        "lost entries (its store restored from an older backup?); keeping the cache; 'keyclone "
                        "recover' on this node gives the server back what it lost", (unsigned long long) head->seq,
                        (unsigned long long) seq);
        }
        self->behind = true;
        self->server_behind = head->seq;
        agent_set_state (self, AGENT_STALE, "server head behind the cache");
        s_want_ack (self);
        return;
    }
    self->behind = false;
    if (sodium_memcmp (head->chain, kc_cache_chain (self->cache), KC_HASH_BYTES)) {
        //  With a head of our own for this seq (the one that made us fresh
        //  here) the two are a proof: kept, and the server refused
        if (self->has_head && self->head.seq == head->seq
        &&  agent_take_proof (self, &self->head, head, "on the update channel", &why) == 0) {
            agent_set_state (self, AGENT_STALE, "the server equivocated: refused");
            return;
        }
        agent_set_state (self, AGENT_STALE, "server equivocated");
        if (!kc_follow_syncing (self->follow) && !kc_follow_backing_off (self->follow)) {
            kc_why (&why, "its head names another history for seq %llu (equivocation); resyncing",
                    (unsigned long long) head->seq);
            kc_follow_fault (self->follow, "a head", &why);
        }
        return;
    }
    self->head = *head;
    self->has_head = true;
    self->refused_backoff = 0;              //  admitted: a later refusal starts over
    self->last_fresh = zclock_mono ();
    s_want_ack (self);
    s_arm_stale (self);
    agent_cosign (self, head);
    //  With witnesses, a server's head is not enough: the threshold of
    //  them must have cosigned what this copy holds within stale-after
    if (agent_witness_left (self) == 0) {
        char text [200];
        agent_witness_shortfall (self, text, sizeof text);
        self->witness_short = true;
        if (self->state != AGENT_STALE) {
            agent_set_state (self, AGENT_STALE, text);
        }
        return;
    }
    self->witness_short = false;
    //  The head goes to the cache file (for readers that start later) when
    //  the sequence has moved on, at most once a second (under a stream of
    //  updates heads come every few ms: each write is a transaction), and
    //  at most once a minute otherwise: an idle node does not write to its
    //  disk every second. Readers follow freshness through the "head" event.
    mono = zclock_mono ();
    int64_t since = mono - self->head_written;
    if ((head->seq != self->head_written_seq && since >= HEAD_WRITE_MOVED_MS)
    ||  since >= HEAD_WRITE_EVERY_MS) {
        if (kc_cache_set_head (self->cache, head, &why)) {
            zsys_error ("kc_agent: %s", why.text);
        }
        self->head_written = mono;
        self->head_written_seq = head->seq;
    }
    agent_head_event (self, head);
    agent_set_state (self, AGENT_FRESH, NULL);
}

//  --- Updates ----------------------------------------------------------------

//  Commits the transaction the update channel's entries opened: at a head,
//  at the end of a wake-up's messages, before a sync.
static void
s_commit_open (agent_t *self)
{
    if (self->group && self->group->open) {
        self->group->open = false;
        if (agent_commit_group (self, self->group) == 0) {
            agent_take_next_key (self);
        }
        else
        if (kc_cache_damaged (self->cache)) {
            s_rebuild (self, "a commit to it failed");
        }
    }
}

//  The entries of an UPDATE after the cache's seq (kc_follow saw no gap),
//  applied in the transaction open for this wake-up's messages. 0, or -1
//  with a reason (the transaction rolled back: those messages come again
//  with the sync after the back-off).
static int
s_apply_update (agent_t *self, const kc_proto_msg_t *msg, kc_why_t *why)
{
    agent_group_t *group = self->group;
    if (!group->open) {
        if (kc_cache_begin (self->cache, why)) {
            return -1;
        }
        group->open = true;
    }
    if (agent_apply_entries (self, msg, group, why)) {
        kc_cache_rollback (self->cache);
        agent_group_abort (self, group);
        group->open = false;
        if (kc_cache_damaged (self->cache)) {
            s_rebuild (self, why->text);    //  and a sync from 0: not the server's fault
            return 0;
        }
        return -1;
    }
    return 0;
}

static void
s_on_flush (void *arg)
{
    s_commit_open (arg);
}

//  --- Snapshot ------------------------------------------------------------------

static void
s_finish_sync (agent_t *self, const kc_proto_msg_t *end)
{
    int64_t now = zclock_mono ();
    self->last_sync_from = self->sync_from;
    self->last_sync_batches = self->sync_batches;
    self->last_sync_records = self->sync_records;
    self->last_sync_ms = now - self->sync_started;
    if (self->caught_up_ms < 0) {
        self->caught_up_ms = now - self->started;
    }
    zsys_info ("kc_agent: synced seq %llu -> %llu: %llu batches, %llu records in %lld ms%s; %llu keys",
               (unsigned long long) self->sync_from, (unsigned long long) kc_cache_seq (self->cache),
               (unsigned long long) self->sync_batches, (unsigned long long) self->sync_records,
               (long long) self->last_sync_ms, self->cold ? " (a new cache file)" : "",
               (unsigned long long) kc_cache_key_count (self->cache));
    agent_witness_extend (self);
    if (end) {
        s_on_head (self, &end->head, end->cosigs, end->cosig_count, true);
    }
    agent_take_next_key (self);
    s_want_ack (self);                      //  kc_follow applies what came meanwhile next
}

//  Entries from kc_follow: a sync's BATCHES, or an UPDATE.
static int
s_entries (void *arg, const kc_proto_msg_t *msg, kc_why_t *why)
{
    agent_t *self = arg;
    if (!kc_follow_syncing (self->follow)) {
        return s_apply_update (self, msg, why);
    }
    self->sync_progressed = zclock_mono ();
    if (agent_sync_batches (self, msg, why) == 0) {
        return 0;
    }
    if (self->cache && kc_cache_damaged (self->cache)) {
        s_rebuild (self, why->text);        //  a sync from 0 instead
    }
    return -1;
}

//  A head from kc_follow: on the update channel (the open transaction is
//  committed first: the head may name it), or the END of a sync.
static void
s_head (void *arg, const kc_proto_msg_t *msg, bool from_end)
{
    agent_t *self = arg;
    if (!from_end) {
        s_commit_open (self);
        if (self->cache) {
            s_on_head (self, &msg->head, msg->cosigs, msg->cosig_count, false);
        }
        return;
    }
    kc_why_t why;
    int rc = agent_sync_end (self, msg, &why);
    if (rc >= 0) {
        s_finish_sync (self, rc == 0 ? msg : NULL);
        return;
    }
    kc_follow_fault (self->follow, "a snapshot", &why);
    if (rc == -2) {
        zsys_error ("kc_agent: cannot reopen the cache; stopping");
        zsys_interrupted = 1;
    }
}

//  --- Rebuild, integrity checks, timers ------------------------------------

static void
s_move_aside (const char *path)
{
    char aside [4200], side [4200];
    snprintf (aside, sizeof aside, "%s.damaged-%llu", path, (unsigned long long) kc_now ());
    if (rename (path, aside) == 0) {
        zsys_warning ("kc_agent: damaged cache kept as '%s'", aside);
    }
    snprintf (side, sizeof side, "%s-wal", path);
    unlink (side);
    snprintf (side, sizeof side, "%s-shm", path);
    unlink (side);
}

static void
s_rebuild (agent_t *self, const char *why)
{
    zsys_error ("kc_agent: cache damaged (%s); rebuilding it from the server", why);
    agent_witness_keep_floor (self);
    kc_cache_destroy (&self->cache);
    s_move_aside (self->config.cache_path);
    bool corrupt;
    kc_why_t reason;
    self->cache = kc_cache_open (self->config.cache_path, self->root, &corrupt, &reason);
    if (!self->cache) {
        zsys_error ("kc_agent: cannot create a new cache: %s", reason.text);
        zsys_interrupted = 1;
        return;
    }
    agent_share_cache (self);
    agent_store_head_keys (self);
    self->rebuilds++;
    self->has_head = false;
    self->state = AGENT_SYNCING;
    agent_event (self, "reloaded", NULL, NULL, 0);
    kc_follow_sync (self->follow, "cache rebuilt");
}

static int
s_on_checker (zloop_t *loop, zsock_t *socket, void *arg)
{
    agent_t *self = arg;
    char *verdict = NULL, *generation = NULL, *reason = NULL;
    //  Read only while a check runs: every socket zloop watches costs each
    //  of its wake-ups two system calls in libzmq
    self->checking = false;
    zloop_reader_end (loop, socket);
    if (zstr_recvx (socket, &verdict, &generation, &reason, NULL) == 3
    &&  KC_STREQ (verdict, "DAMAGED") && atoll (generation) == (long long) self->rebuilds) {
        s_rebuild (self, reason);
    }
    zstr_free (&verdict);
    zstr_free (&generation);
    zstr_free (&reason);
    return 0;
}

static void
s_checker_actor (zsock_t *pipe, void *args)
{
    char *path = strdup ((const char *) args);
    zsock_signal (pipe, 0);
    while (!zsys_interrupted) {
        char *command = NULL, *generation = NULL;
        if (zstr_recvx (pipe, &command, &generation, NULL) < 1 || KC_STREQ (command, "$TERM")) {
            zstr_free (&command);
            zstr_free (&generation);
            break;
        }
        kc_why_t why;
        kc_why_clear (&why);
        int rc = kc_cache_check_file (path, &why);
        zstr_sendx (pipe, rc ? "DAMAGED" : "OK", generation ? generation : "0", why.text, NULL);
        zstr_free (&command);
        zstr_free (&generation);
    }
    free (path);
}

static int
s_on_check_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    agent_t *self = arg;
    if (self->checking) {
        return 0;                       //  the last one is still running
    }
    char generation [32];
    snprintf (generation, sizeof generation, "%llu", (unsigned long long) self->rebuilds);
    zstr_sendx (self->checker, "CHECK", generation, NULL);
    self->checking = true;
    zloop_reader (self->loop, zactor_sock (self->checker), s_on_checker, self);
    return 0;
}

//  Once a second, for what has no event of its own: the root's expiry, log
//  summaries, a sync that stopped making progress, the cache's checkpoint
//  once writes have stopped. An idle agent wakes for this and for what
//  arrives, nothing else.

static volatile sig_atomic_t s_reload_wanted;

void
kc_agent_reload_wanted (void)
{
    s_reload_wanted = 1;
}


static bool
s_same_policies (zhashx_t *a, zhashx_t *b)
{
    if ((a ? zhashx_size (a) : 0) != (b ? zhashx_size (b) : 0)) {
        return false;
    }
    for (const char *tags = a ? zhashx_first (a) : NULL; tags; tags = zhashx_next (a)) {
        const char *other = zhashx_lookup (b, zhashx_cursor (a));
        if (!other || !KC_STREQ (tags, other)) {
            return false;
        }
    }
    return true;
}

//  SIGHUP: the configuration built again; what can change while running
//  changes (stale-after, policy, clock-skew), and the rest is named as
//  needing a restart. A log file (--log) is opened again first.
static void
s_reload (agent_t *self)
{
    kc_agent_config_t fresh;
    kc_log_reopen_logged ("kc_agent");
    if (!self->config.reload || self->config.reload (self->config.reload_arg, &fresh)) {
        zsys_warning ("kc_agent: SIGHUP: the configuration could not be read again; running as before");
        return;
    }
    char changed [1024] = "", restart [512] = "";
    size_t n = 0, r = 0;
    if (fresh.stale_after_ms != self->config.stale_after_ms) {
        n += (size_t) snprintf (changed + n, sizeof changed - n, "%sstale-after %d -> %d ms", n ? ", " : "",
                                self->config.stale_after_ms, fresh.stale_after_ms);
        self->config.stale_after_ms = fresh.stale_after_ms;
        if (self->state == AGENT_FRESH) {
            s_arm_stale (self);
        }
    }
    if (fresh.fail_closed != self->config.fail_closed) {
        n += (size_t) snprintf (changed + n, sizeof changed - n, "%spolicy %s -> %s", n ? ", " : "",
                                self->config.fail_closed ? "fail-closed" : "serve",
                                fresh.fail_closed ? "fail-closed" : "serve");
        self->config.fail_closed = fresh.fail_closed;
    }
    if (fresh.clock_skew_ms != self->config.clock_skew_ms) {
        n += (size_t) snprintf (changed + n, sizeof changed - n, "%sclock-skew %d -> %d ms", n ? ", " : "",
                                self->config.clock_skew_ms, fresh.clock_skew_ms);
        self->config.clock_skew_ms = fresh.clock_skew_ms;
    }
    struct { bool differs; const char *name; } later [] = {
        { !kc_same_text (fresh.root_path, self->config.root_path), "root" },
        { !kc_same_text (fresh.key_path, self->config.key_path), "key" },
        { !kc_same_text (fresh.cache_path, self->config.cache_path), "cache" },
        { !kc_same_text (fresh.local_endpoint, self->config.local_endpoint), "local" },
        { !kc_same_text (fresh.events_endpoint, self->config.events_endpoint), "events" },
        { !kc_same_text (fresh.connect [0], self->config.connect [0])
          || !kc_same_text (fresh.connect [1], self->config.connect [1]), "server endpoints" },
        { fresh.check_interval_ms != self->config.check_interval_ms, "check-interval" },
        { fresh.group != self->config.group || fresh.socket_mode != self->config.socket_mode,
          "group and socket-mode" },
        { !s_same_policies (fresh.zap_policies, self->config.zap_policies), "zap policies" }
    };
    for (size_t i = 0; i < sizeof later / sizeof later [0]; i++) {
        if (later [i].differs) {
            r += (size_t) snprintf (restart + r, sizeof restart - r, "%s%s", r ? ", " : "", later [i].name);
        }
    }
    zhashx_destroy (&fresh.zap_policies);
    zsys_info ("kc_agent: SIGHUP: configuration read again: %s%s", n ? "applied " : "nothing that applies "
               "while running changed", changed);
    if (r) {
        zsys_warning ("kc_agent: SIGHUP: %s changed in the configuration; restart the agent to apply",
                      restart);
    }
}

//  A long sync (a first one, most often) says how it goes every
//  PROGRESS_EVERY_MS: batches and records so far, the rate, and how long is
//  left when a head has named the server's sequence.
static void
s_sync_progress (agent_t *self, int64_t now)
{
    int64_t running = now - self->sync_started;
    if (!kc_follow_syncing (self->follow) || running < PROGRESS_EVERY_MS
    ||  now - self->progress_logged < PROGRESS_EVERY_MS) {
        return;
    }
    self->progress_logged = now;
    char progress [200];
    zsys_info ("kc_agent: syncing for %.0f s: %s", (double) running / 1000.0,
               kc_sync_progress (progress, sizeof progress, self->sync_batches, self->sync_records, running,
                                 self->sync_from + self->sync_batches, self->server_seq_hint));
}

static int
s_on_second (zloop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    agent_t *self = arg;
    int64_t now = zclock_mono ();
    s_root_expired (self, kc_now ());
    kc_ratelog_flush (self->log);
    if (self->state == AGENT_SYNCING && !self->has_head && now - self->sync_started > self->config.stale_after_ms
    &&  kc_cache_seq (self->cache) > 0) {
        agent_set_state (self, AGENT_STALE, "cannot reach the server");
    }
    //  In a cluster, a member that gives no fresh head, or no progress in
    //  a sync, for half the staleness window is left for the next one
    int64_t quiet = self->config.stale_after_ms / 2;
    bool syncing = kc_follow_syncing (self->follow);
    if (agent_can_move (self) && self->state != AGENT_FRESH && !self->refused_retry && now - self->connected_at > quiet
    &&  (!syncing || now - self->sync_progressed > quiet)) {
        return agent_next_member (self, syncing ? "its sync made no progress" : "no fresh head from it");
    }
    s_sync_progress (self, now);
    kc_why_t why;
    if (self->cache && kc_cache_checkpoint (self->cache, &why) < 0) {
        agent_warn (self, "kc_agent: %s", why.text);
    }
    //  Handshake failures are logged within a second: the monitor is read
    //  here, not watched by zloop (each watched socket costs every wake-up
    //  two system calls in libzmq)
    if (s_reload_wanted) {
        s_reload_wanted = 0;
        s_reload (self);
    }
    self->key_failed = false;
    for (int which = 0; which < 2; which++) {
        zsock_t *monitor = kc_follow_monitor (self->follow, which);
        for (int n = 0; monitor && n < 100 && (zsock_events (monitor) & ZMQ_POLLIN); n++) {
            agent_read_monitor (loop, monitor, self);
        }
    }
    if (self->key_failed && self->key_count > 1) {
        return agent_next_server_key (self);
    }
    //  A refusal ends libzmq's connection for good; the key may be admitted
    //  later (an enrolment approved, a registration): connect again, less
    //  and less often, each agent at its own time (or when asked: RECONNECT)
    if (self->refused_retry && now >= self->refused_retry) {
        self->refused_retry = 0;
        return agent_reconnect (self, "connecting again after the server refused this node's key");
    }
    bool changed;
    if (self->asked_at && now >= self->asked_at) {
        self->asked_at = 0;
        if (agent_reconnect_needed (self, &changed)) {
            return agent_reconnect_as_asked (self, changed);
        }
    }
    return 0;
}

static int
s_on_stale (zloop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    agent_t *self = arg;
    self->stale_timer = -1;
    //  The witnesses' cosignatures ran out before the server's heads did
    if (self->state == AGENT_FRESH && agent_witness_left (self) == 0) {
        char text [200];
        agent_witness_shortfall (self, text, sizeof text);
        self->witness_short = true;
        agent_set_state (self, AGENT_STALE, text);
        return 0;
    }
    int window = agent_can_move (self) && !self->halfway ? self->config.stale_after_ms / 2
                                                          : self->config.stale_after_ms;
    int64_t left = self->last_fresh + window - zclock_mono ();
    if (self->state == AGENT_FRESH && left > 0) {
        //  Woken for the witnesses, who cosigned again since: wait on
        self->stale_timer = zloop_timer (loop, (size_t) (left < agent_witness_left (self) ? left
                                         : agent_witness_left (self)) + 1, 1, s_on_stale, self);
        return 0;
    }
    if (self->state == AGENT_FRESH && agent_can_move (self) && !self->halfway) {
        //  Half the window without a head from this member: the next one
        //  has the other half to make the node fresh again
        int half = self->config.stale_after_ms / 2;
        self->halfway = true;
        self->stale_timer = zloop_timer (loop, (size_t) (self->config.stale_after_ms - half) + 1, 1,
                                         s_on_stale, self);
        char text [80];
        snprintf (text, sizeof text, "no valid head from it for %d ms", half);
        return agent_next_member (self, text);
    }
    if (self->state == AGENT_FRESH) {
        char text [80];
        snprintf (text, sizeof text, "no valid head for %d ms", self->config.stale_after_ms);
        agent_set_state (self, AGENT_STALE, text);
    }
    return 0;
}

//  After a fresh head: stale unless another one comes within stale-after
//  (in a cluster, another member is tried halfway).
static void
s_arm_stale (agent_t *self)
{
    if (self->stale_timer != -1) {
        zloop_timer_end (self->loop, self->stale_timer);
    }
    self->halfway = false;
    int64_t wait = agent_can_move (self) ? self->config.stale_after_ms / 2 : self->config.stale_after_ms;
    int64_t witnessed = agent_witness_left (self);
    if (witnessed > 0 && witnessed < wait) {
        wait = witnessed;                   //  the witnesses' vouching ends first
    }
    self->stale_timer = zloop_timer (self->loop, (size_t) wait + 1, 1, s_on_stale, self);
}

static int
s_on_ack (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    agent_t *self = arg;
    self->ack_timer = -1;
    if (self->ack_pending && !kc_follow_syncing (self->follow)) {
        zmsg_t *ack = kc_proto_ack (kc_cache_seq (self->cache), kc_cache_chain (self->cache));
        kc_follow_send (self->follow, &ack);
        self->ack_pending = false;
        self->last_ack = zclock_mono ();
    }
    return 0;
}

//  Acknowledges (seq, chain) soon: at once after a quiet spell, at most
//  every ACK_EVERY_MS while heads keep coming; after a sync ends when one
//  runs.
static void
s_want_ack (agent_t *self)
{
    self->ack_pending = true;
    if (self->ack_timer == -1) {
        int64_t wait = self->last_ack + ACK_EVERY_MS - zclock_mono ();
        self->ack_timer = zloop_timer (self->loop, (size_t) (wait > 1 ? wait : 1), 1, s_on_ack, self);
    }
}

//  --- Start-up ------------------------------------------------------------------

static int
s_open_cache (agent_t *self)
{
    bool corrupt;
    kc_why_t why;
    self->cache = kc_cache_open (self->config.cache_path, self->root, &corrupt, &why);
    if (!self->cache && corrupt) {
        zsys_error ("kc_agent: %s; rebuilding the cache from the server", why.text);
        s_move_aside (self->config.cache_path);
        self->cache = kc_cache_open (self->config.cache_path, self->root, &corrupt, &why);
        self->rebuilds++;
    }
    if (!self->cache) {
        zsys_error ("kc_agent: %s", why.text);
        return -1;
    }
    agent_share_cache (self);
    kc_root_t *current = kc_cache_current_root (self->cache, self->pinned, agent_learn_server_key, self,
                                                &why);
    if (!current) {
        //  The cache's root changes do not follow from the pinned root (a
        //  damaged or altered file, or another pin): it is not trusted and
        //  is rebuilt from the server, from the pinned root
        zsys_error ("kc_agent: %s; rebuilding the cache from the server", why.text);
        kc_cache_destroy (&self->cache);
        s_move_aside (self->config.cache_path);
        self->rebuilds++;
        self->cache = kc_cache_open (self->config.cache_path, self->pinned, &corrupt, &why);
        if (!self->cache) {
            zsys_error ("kc_agent: %s", why.text);
            return -1;
        }
        agent_share_cache (self);
        current = kc_root_dup (self->pinned);
        self->key_count = 0;
        agent_learn_server_key (current, self);
    }
    kc_root_destroy (&self->root);
    self->root = current;
    agent_learn_followed_key (self);
    if (kc_root_version (current) > kc_root_version (self->pinned)) {
        zsys_info ("kc_agent: root v%llu in force (pinned v%llu, followed through the log)",
                   (unsigned long long) kc_root_version (current),
                   (unsigned long long) kc_root_version (self->pinned));
    }
    kc_head_t head;
    if (kc_cache_head (self->cache, &head) == 0) {
        self->head = head;
        self->has_head = true;
    }
    agent_witness_extend (self);
    agent_store_head_keys (self);
    return 0;
}

static int
s_start (agent_t *self)
{
    kc_why_t why;
    self->ops = (agent_ops_t) { .reconnect = agent_reconnect_asked, .take_proof = agent_take_proof,
                                .status_json = agent_witness_json, .status_text = agent_witness_text };
    //  The pinned root is checked as of its own creation: it may have
    //  expired since and been renewed by root changes in the log (which the
    //  cache holds). The root in force's expiry is judged on every head.
    self->pinned = kc_root_load (self->config.root_path, &why);
    if (!self->pinned || kc_root_verify (self->pinned, kc_root_created (self->pinned), &why)) {
        zsys_error ("kc_agent: %s", why.text);
        return -1;
    }
    self->root = kc_root_dup (self->pinned);
    self->cert = kc_cert_load_secret (self->config.key_path, &why);
    if (!self->cert) {
        zsys_error ("kc_agent: %s", why.text);
        return -1;
    }
    //  --mirror: mirrors followed instead of the root's servers
    if (agent_parse_mirrors (self)) {
        return -1;
    }
    //  An endpoint given that is a member's of the root: follow that member
    //  (its keys), held there (the pinned root's endpoints)
    for (size_t i = 0; self->config.connect [0] && i < kc_root_server_count (self->root); i++) {
        if (KC_STREQ (kc_root_server (self->root, i)->endpoints [0], self->config.connect [0])) {
            snprintf (self->member, sizeof self->member, "%s", kc_root_server (self->root, i)->name);
        }
    }
    self->witnesses = kc_witness_view_new ();
    if (s_open_cache (self) || agent_service_bind (self)) {
        return -1;
    }
    agent_load_proof (self);
    for (int i = 0; i < 2; i++) {
        snprintf (self->connect_text [i], sizeof self->connect_text [i], "%s",
                  self->config.connect [i] ? self->config.connect [i]
                                           : agent_member (self)->endpoints [i]);
        self->connect [i] = self->connect_text [i];
    }
    if (self->mirror_count) {
        agent_use_mirror (self);
    }
    kc_follow_config_t following = {
        .name = "kc_agent", .public_key = kc_cert_public_key (self->cert),
        .secret_key = kc_cert_secret_key (self->cert), .directory = kc_root_directory (self->pinned),
        .credit = (uint32_t) self->config.credit, .seq = s_copy_seq, .chain = s_copy_chain,
        .entries = s_entries, .head = s_head, .syncing = s_on_syncing, .fault = s_on_fault,
        .flush = s_on_flush, .arg = self, .log = self->log, .buffer_bytes = BUFFER_BYTES_MAX, .monitor = true
    };
    self->follow = kc_follow_new (&following, self->loop);
    self->group = calloc (1, sizeof *self->group);
    assert (self->group);
    if (agent_witness_start (self)) {
        return -1;
    }
    self->checker = zactor_new (s_checker_actor, (void *) self->config.cache_path);
    return 0;
}

int
kc_agent_run (const kc_agent_config_t *config)
{
    agent_t self = { .config = *config, .state = AGENT_SYNCING, .caught_up_ms = -1,
                     .started = zclock_mono (), .stale_timer = -1,
                     .ack_timer = -1, .swap_timer = -1, .old_key_timer = -1 };
    self.log = kc_ratelog_new ("kc_agent", LOG_PERIOD_MS, LOG_PER_KIND, LOG_PER_KIND);
    self.loop = zloop_new ();
    int rc = 1;
    if (s_start (&self) == 0) {
        zloop_reader (self.loop, self.local, agent_on_local, &self);
        zloop_timer (self.loop, 1000, 0, s_on_second, &self);
        if (config->check_interval_ms > 0) {
            zloop_timer (self.loop, 1000, 1, s_on_check_timer, &self);
            zloop_timer (self.loop, (size_t) config->check_interval_ms, 0, s_on_check_timer, &self);
        }
        char hex [65];
        zsys_info ("kc_agent: directory %.16s..., cache at seq %llu with %llu keys; server %s; "
                   "service %s", kc_hex (kc_root_directory (self.root), 32, hex),
                   (unsigned long long) kc_cache_seq (self.cache),
                   (unsigned long long) kc_cache_key_count (self.cache), self.connect [0],
                   config->local_endpoint);
        agent_arm_old_key (&self);
        if (config->enrol_name) {
            self.enroller = agent_enrol_new (&self);
            zloop_reader (self.loop, zactor_sock (self.enroller), agent_on_enrolled, &self);
        }
        if (agent_connect_server (&self, NULL) == 0) {
            zloop_start (self.loop);        //  (a sync from the cache's seq runs)
        }
        zsys_info ("kc_agent: shutting down at seq %llu", (unsigned long long)
                   (self.cache ? kc_cache_seq (self.cache) : 0));
        rc = 0;
    }
    s_commit_open (&self);
    kc_follow_destroy (&self.follow);
    zloop_destroy (&self.loop);
    zactor_destroy (&self.enroller);
    zactor_destroy (&self.checker);
    zsock_destroy (&self.local);
    zsock_destroy (&self.events);
    agent_witness_stop (&self);
    kc_witness_view_destroy (&self.witnesses);
    agent_free_cold (&self);
    if (self.group) {
        agent_group_clear (self.group);
        free (self.group);
    }
    kc_cache_destroy (&self.cache);
    kc_cert_destroy (&self.cert);
    kc_root_destroy (&self.root);
    kc_root_destroy (&self.pinned);
    kc_ratelog_destroy (&self.log);
    return rc;
}
