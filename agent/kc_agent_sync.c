/*  =========================================================================
    kc_agent_sync - a sync's BATCHES and END (docs/protocol.md section 4),
    as kc_follow hands them to the agent. A sync from the cache's seq
    applies each BATCHES in a transaction (kc_agent_apply); a sync from 0
    (an empty or rebuilt cache) verifies every entry from the pinned root
    as it arrives, indexes their records, and builds a new cache file at
    END, with the grants and root changes it met and the newest entries as
    the node's history.
    =========================================================================
*/
#include "kc_agent_internal.h"

#include <malloc.h>
#include <unistd.h>

//  A grant's state as the log built it up to an entry.
typedef struct {
    kc_grant_t *grant;                      //  as granted (its revocation keeps it)
    uint64_t seq, used;
    bool revoked;
} s_cold_grant_t;

void
agent_free_cold (agent_t *self)
{
    kc_keyindex_destroy (&self->cold_index);
    kc_arena_destroy (&self->cold_bytes);
    kc_root_destroy (&self->sync_start);
    for (size_t i = 0; i < self->cold_roots.count; i++) {
        kc_root_destroy (&self->cold_roots.roots [i]);
    }
    free (self->cold_roots.roots);
    free (self->cold_roots.seqs);
    memset (&self->cold_roots, 0, sizeof self->cold_roots);
    free (self->cold_history);
    self->cold_history = NULL;
    self->cold_count = 0;
    zhashx_destroy (&self->cold_grants);
}

//  A cold sync's entry (its bytes in the sync's arena) for the history.
static void
s_cold_history_add (agent_t *self, const kc_entry_t *entry)
{
    if (!self->cold_history) {
        self->cold_history = calloc (1, sizeof *self->cold_history);
        assert (self->cold_history);
    }
    agent_history_t *ring = self->cold_history;
    agent_history_entry_t *slot = &ring->entries [ring->next];
    slot->seq = entry->seq;
    slot->accepted = entry->accepted;
    slot->has_submitter = entry->submitter != NULL;
    if (entry->submitter) {
        memcpy (slot->submitter, entry->submitter, KC_KEY_BYTES);
    }
    slot->data = entry->data;
    slot->size = entry->size;
    ring->next = (ring->next + 1) % KC_CACHE_HISTORY_ENTRIES;
    if (ring->count < KC_CACHE_HISTORY_ENTRIES) {
        ring->count++;
    }
}

//  An entry of a sync from 0 taken: its bytes in the sync's arena (copied
//  there unless they are already), for the node's history, and the sync's
//  place moved past it.
static void
s_cold_took (agent_t *self, kc_entry_t *entry, bool in_arena)
{
    if (!in_arena) {
        entry->data = kc_arena_copy (self->cold_bytes, entry->data, entry->size);
    }
    if (entry->data) {
        s_cold_history_add (self, entry);
    }
    self->sync_seq = entry->seq;
    memcpy (self->sync_chain, entry->chain, KC_HASH_BYTES);
}

//  After a cold sync built the cache: its newest entries, as many as the
//  history keeps, become the node's history.
static int
s_cold_history_store (agent_t *self, kc_why_t *why)
{
    agent_history_t *ring = self->cold_history;
    if (!ring || ring->count == 0) {
        return 0;
    }
    size_t take = 0, bytes = 0;
    while (take < ring->count) {
        size_t index = (ring->next + KC_CACHE_HISTORY_ENTRIES - 1 - take) % KC_CACHE_HISTORY_ENTRIES;
        if (take && bytes + ring->entries [index].size > KC_CACHE_HISTORY_BYTES) {
            break;
        }
        bytes += ring->entries [index].size;
        take++;
    }
    if (kc_cache_begin (self->cache, why)) {
        return -1;
    }
    for (size_t i = take; i > 0; i--) {
        const agent_history_entry_t *entry
            = &ring->entries [(ring->next + KC_CACHE_HISTORY_ENTRIES - i) % KC_CACHE_HISTORY_ENTRIES];
        if (kc_cache_add_history (self->cache, entry->seq, entry->accepted,
                                  entry->has_submitter ? entry->submitter : NULL, entry->data,
                                  entry->size, why)) {
            kc_cache_rollback (self->cache);
            return -1;
        }
    }
    return kc_cache_commit (self->cache, why);
}

static void
s_cold_grant_destroy (void **item)
{
    s_cold_grant_t *self = *item;
    kc_grant_destroy (&self->grant);
    free (self);
    *item = NULL;
}

//  A grant or a registration by grant in a cold sync: checked against the
//  grants met so far, a registration's record indexed like a batch's.
static int
s_cold_grant_entry (agent_t *self, kc_entry_t *entry, const kc_root_t *root, kc_why_t *why)
{
    if (!self->cold_grants) {
        self->cold_grants = zhashx_new ();
        zhashx_set_destructor (self->cold_grants, s_cold_grant_destroy);
    }
    const uint8_t *key = agent_grant_key_of (entry);
    char hex [2 * KC_KEY_BYTES + 1] = "";
    if (key) {
        kc_hex (key, KC_KEY_BYTES, hex);
    }
    s_cold_grant_t *state = key ? zhashx_lookup (self->cold_grants, hex) : NULL;
    if (kc_grant_is_grant (entry->data, entry->size)) {
        kc_grant_t *grant = agent_verify_grant_entry (entry, self->sync_seq, self->sync_chain, root, state != NULL,
                                                      state && state->revoked, why);
        if (!grant) {
            return -1;
        }
        if (grant->status == KC_STATUS_ACTIVE) {
            state = calloc (1, sizeof *state);
            assert (state);
            *state = (s_cold_grant_t) { .grant = grant, .seq = entry->seq };
            zhashx_insert (self->cold_grants, hex, state);
        }
        else {
            state->revoked = true;
            state->seq = entry->seq;
            kc_grant_destroy (&grant);
        }
    }
    else {
        kc_batch_t *made = agent_verify_use_entry (self, true, entry, self->sync_seq, self->sync_chain,
                                                   state ? state->grant : NULL, state ? state->used : 0,
                                                   state && state->revoked, why);
        if (!made) {
            return -1;
        }
        //  The index keeps views of the record: its bytes go to the arena
        size_t size;
        const uint8_t *data = kc_batch_data (made, &size);
        uint8_t *kept = kc_arena_copy (self->cold_bytes, data, size);
        kc_batch_destroy (&made);
        kc_batch_t *batch = kept ? kc_batch_view (kept, size, why) : NULL;
        int rc = batch ? kc_keyindex_apply (self->cold_index, batch, entry->seq, why)
                       : kc_why (why, "out of memory holding the snapshot");
        kc_batch_destroy (&batch);
        if (rc) {
            return kc_why_prefix (why, "registration by grant %llu", (unsigned long long) entry->seq);
        }
        state->used++;
        state->seq = entry->seq;
        self->cold_count++;
    }
    s_cold_took (self, entry, false);
    return 0;
}

//  After a cold sync's cache is built: the grants it met, in one group.
static int
s_cold_grants_store (agent_t *self, kc_why_t *why)
{
    if (!self->cold_grants || zhashx_size (self->cold_grants) == 0) {
        return 0;
    }
    if (kc_cache_begin (self->cache, why)) {
        return -1;
    }
    for (s_cold_grant_t *state = zhashx_first (self->cold_grants); state; state = zhashx_next (self->cold_grants)) {
        if (kc_cache_put_grant (self->cache, state->grant, state->seq, state->used, state->revoked, why)) {
            kc_cache_rollback (self->cache);
            return -1;
        }
    }
    return kc_cache_commit (self->cache, why);
}

//  One entry of a sync from 0, verified from the pinned root through the
//  root changes met so far: kept in the sync's arena, its records indexed
//  (a batch or a registration by grant), or its root or grant noted, for
//  the new cache file END builds. 0, or -1 with a reason.
static int
s_cold_entry (agent_t *self, kc_entry_t *entry, kc_why_t *why)
{
    if (!self->cold_bytes) {
        self->cold_bytes = kc_arena_new ();
        self->cold_index = kc_keyindex_new ();
        self->sync_start = kc_root_dup (self->pinned);
    }
    //  The log from its start is verified from the pinned root, through
    //  every root change in it
    kc_cache_roots_t *roots = &self->cold_roots;
    const kc_root_t *root = roots->count ? roots->roots [roots->count - 1] : self->sync_start;
    if (kc_root_is_root (entry->data, entry->size)) {
        if (roots->count == roots->capacity) {
            size_t capacity = roots->capacity ? roots->capacity * 2 : 8;
            kc_root_t **grown = realloc (roots->roots, capacity * sizeof (kc_root_t *));
            uint64_t *seqs = grown ? realloc (roots->seqs, capacity * sizeof (uint64_t)) : NULL;
            if (grown) {
                roots->roots = grown;
            }
            if (!seqs) {
                return kc_why (why, "out of memory holding root changes");
            }
            roots->seqs = seqs;
            roots->capacity = capacity;
        }
        kc_root_t *next = agent_verify_root_entry (entry, self->sync_seq, self->sync_chain, root, why);
        if (!next) {
            return -1;
        }
        roots->seqs [roots->count] = entry->seq;
        roots->roots [roots->count++] = next;
        s_cold_took (self, entry, false);
        return 0;
    }
    if (kc_grant_is_grant (entry->data, entry->size) || kc_grant_is_use (entry->data, entry->size)) {
        return s_cold_grant_entry (self, entry, root, why);
    }
    if (kc_root_version (root) > 1 && self->sync_seq == 0) {
        return kc_why (why, "the pinned root is v%llu, but a sync from the start of the log "
                       "needs the genesis root (v1) to verify its first batches: pin the "
                       "genesis root (the root file 'keyclone init' wrote)",
                       (unsigned long long) kc_root_version (root));
    }
    entry->data = kc_arena_copy (self->cold_bytes, entry->data, entry->size);
    if (!entry->data) {
        return kc_why (why, "out of memory holding %zu bytes of the snapshot",
                       kc_arena_size (self->cold_bytes));
    }
    kc_batch_t *batch = agent_verify_entry (entry, self->sync_seq, self->sync_chain, true, root, why);
    if (!batch) {
        return -1;
    }
    //  Each record against those before it, as it arrives: what a sync
    //  holds before END is bounded by the genuine log, however often a
    //  hostile server replays a valid batch
    int rc = kc_keyindex_apply (self->cold_index, batch, entry->seq, why);
    kc_batch_destroy (&batch);
    if (rc) {
        return kc_why_prefix (why, "batch %llu", (unsigned long long) entry->seq);
    }
    self->cold_count++;
    s_cold_took (self, entry, true);
    return 0;
}

//  A BATCHES message of a sync. A cold sync keeps a copy of its batches
//  (libzmq's buffers go back to it for the next message) and indexes views
//  of their records; a sync from a cache applies them.
int
agent_sync_batches (agent_t *self, const kc_proto_msg_t *msg, kc_why_t *why)
{
    agent_group_t *group = self->group;
    if (!self->cold && kc_cache_begin (self->cache, why)) {
        return -1;
    }
    for (size_t i = 0; i < msg->entry_count; i++) {
        kc_entry_t entry = msg->entries [i];
        self->sync_records += kc_batch_peek_count (entry.data, entry.size);
        self->sync_batches++;
        if (self->cold && s_cold_entry (self, &entry, why)) {
            return -1;
        }
    }
    if (!self->cold) {
        if (agent_apply_entries (self, msg, group, why)) {
            kc_cache_rollback (self->cache);
            agent_group_abort (self, group);
            return -1;
        }
        if (agent_commit_group (self, group)) {
            return kc_why (why, "cannot commit to the cache");
        }
        self->sync_seq = kc_cache_seq (self->cache);
        memcpy (self->sync_chain, kc_cache_chain (self->cache), KC_HASH_BYTES);
    }
    return 0;
}

//  Whether a sync's END head is signed with the head key of the server
//  followed in root, or behind a mirror of any server of root. 0, or -1
//  with a reason.
static int
s_end_signer (agent_t *self, const kc_root_t *root, const kc_head_t *head, kc_why_t *why)
{
    if (kc_head_verify_signature (head, kc_root_directory (root), agent_member_in (self, root)->head_key, why) == 0
    ||  (self->mirror_count && kc_head_signer (head, root))) {
        return 0;
    }
    return -1;
}

//  The END of a sync, whose counts and (seq, chain) kc_follow checked
//  against the batches: its head's signature and time; a cold sync's new
//  cache file built. 0, 1 (not timely: the batches are kept, fresh at the
//  next head), -1 with a reason, -2 when the cache cannot be opened again.
int
agent_sync_end (agent_t *self, const kc_proto_msg_t *msg, kc_why_t *why)
{
    //  Signed under the root in force at the END's seq
    const kc_cache_roots_t *roots = &self->cold_roots;
    const kc_root_t *root = self->cold && roots->count ? roots->roots [roots->count - 1] : self->root;
    if (s_end_signer (self, root, &msg->head, why)) {
        return kc_why_prefix (why, "END head");
    }
    //  A head that is too old (or too new) for our clock says nothing about
    //  freshness; the batches it closes are still verified and chained, and
    //  are kept: lateness is "not fresh yet", never "start again"
    kc_why_t late;
    bool timely = kc_head_check_time (&msg->head, kc_now_ms (), (uint64_t) self->config.clock_skew_ms,
                                      &late) == 0;
    if (!timely) {
        agent_warn (self, "kc_agent: END of the sync: %s; batches kept, fresh at the next head", late.text);
    }
    if (self->cold && (self->cold_count || self->cold_roots.count
                       || (self->cold_grants && zhashx_size (self->cold_grants)))) {
        int64_t build_started = zclock_mono ();
        kc_cache_destroy (&self->cache);
        self->cache = kc_cache_create_from (self->config.cache_path, self->root, self->cold_index,
                                            self->sync_seq, self->sync_chain, &self->cold_roots,
                                            timely ? &msg->head : NULL, why);
        self->applied += self->cold_count;
        kc_why_t history_why;
        if (self->cache && s_cold_grants_store (self, why)) {
            //  Not usable without them: start again from an empty cache
            kc_cache_destroy (&self->cache);
            unlink (self->config.cache_path);
        }
        if (self->cache && s_cold_history_store (self, &history_why)) {
            agent_warn (self, "kc_agent: %s (the node's history starts later)", history_why.text);
        }
        if (self->cache && roots->count
        &&  kc_root_version (roots->roots [roots->count - 1]) != kc_root_version (self->root)) {
            kc_root_t *before = self->root;
            for (size_t i = 0; i < roots->count; i++) {
                agent_learn_server_key (roots->roots [i], self);
            }
            self->root = kc_root_dup (roots->roots [roots->count - 1]);
            agent_note_head_key (self, roots->count > 1 ? roots->roots [roots->count - 2] : before);
            kc_root_destroy (&before);
            agent_root_changed (self, roots->seqs [roots->count - 1]);
        }
        self->last_build_ms = zclock_mono () - build_started;
        agent_free_cold (self);
        //  The verified batches were most of the heap: give it back
        malloc_trim (0);
        if (!self->cache) {
            bool corrupt;
            kc_why_t ignored;
            self->cache = kc_cache_open (self->config.cache_path, self->root, &corrupt, &ignored);
            return self->cache ? -1 : -2;
        }
        agent_share_cache (self);
        agent_event (self, "reloaded", NULL, NULL, kc_cache_seq (self->cache));
    }
    return timely ? 0 : 1;
}
