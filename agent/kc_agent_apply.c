/*  =========================================================================
    kc_agent_apply - the log's entries checked and written to the agent's
    cache (docs/protocol.md section 7, docs/records.md section 8): each
    entry follows its predecessor's seq and chain and verifies under the
    root in force (batches, grants, registrations by grant, root changes);
    those of one UPDATE or BATCHES go into the cache in one transaction (a
    group), whose events follow its commit.
    =========================================================================
*/
#include "kc_agent_internal.h"

#include <errno.h>
#include <unistd.h>
#include <sodium.h>

//  The checks every log entry gets around its own: it follows prev_seq, and
//  its chain hash (computed by the caller) is the one it came with. 0, or
//  -1 with a reason naming the entry ("batch 7", "root change 8").
static int
s_check_seq (const kc_entry_t *entry, uint64_t prev_seq, const char *what, kc_why_t *why)
{
    if (entry->seq != prev_seq + 1) {
        return kc_why (why, "%s %llu does not follow %llu", what, (unsigned long long) entry->seq,
                       (unsigned long long) prev_seq);
    }
    return 0;
}

static int
s_check_chain (const kc_entry_t *entry, const uint8_t chain [static KC_HASH_BYTES], const char *what,
               kc_why_t *why)
{
    if (sodium_memcmp (chain, entry->chain, KC_HASH_BYTES)) {
        return kc_why (why, "%s %llu: chain hash does not match its predecessor (broken chain)", what,
                       (unsigned long long) entry->seq);
    }
    return 0;
}

//  Verifies one batch entry following (prev_seq, prev_chain) with root, the
//  root in force at its seq (operator signatures and thresholds; its expiry
//  is a matter of freshness, judged on heads, not of the log: a batch
//  accepted while a since-renewed root was in force stays valid). A view (no
//  copy) when the caller keeps the message alive longer than the batch's
//  records are used. Returns the decoded batch, or NULL with a reason.
kc_batch_t *
agent_verify_entry (const kc_entry_t *entry, uint64_t prev_seq,
                    const uint8_t prev_chain [static KC_HASH_BYTES], bool view, const kc_root_t *root,
                    kc_why_t *why)
{
    if (s_check_seq (entry, prev_seq, "batch", why)) {
        return NULL;
    }
    kc_batch_t *batch = view ? kc_batch_view (entry->data, entry->size, why)
                             : kc_batch_decode (entry->data, entry->size, why);
    if (!batch || kc_batch_verify (batch, root, 0, why)) {
        kc_why_prefix (why, "batch %llu", (unsigned long long) entry->seq);
        kc_batch_destroy (&batch);
        return NULL;
    }
    uint8_t chain [KC_HASH_BYTES];
    kc_chain_next (prev_chain, entry->seq, batch, chain);
    if (s_check_chain (entry, chain, "batch", why)) {
        kc_batch_destroy (&batch);
    }
    return batch;
}

//  The grant key an entry names (a grant or a use: the same offset), or
//  NULL when it is too short to hold one (its decoder says why).
const uint8_t *
agent_grant_key_of (const kc_entry_t *entry)
{
    return entry->size >= 4 + 1 + KC_HASH_BYTES + KC_KEY_BYTES ? entry->data + 4 + 1 + KC_HASH_BYTES : NULL;
}

//  A grant entry following (prev_seq, prev_chain): signed by operators of
//  root, granting a key never granted, or revoking a grant not revoked
//  (known, revoked: the state of its key). The grant, or NULL with a reason.
kc_grant_t *
agent_verify_grant_entry (const kc_entry_t *entry, uint64_t prev_seq, const uint8_t prev_chain [static KC_HASH_BYTES],
                          const kc_root_t *root, bool known, bool revoked, kc_why_t *why)
{
    if (s_check_seq (entry, prev_seq, "grant", why)) {
        return NULL;
    }
    kc_grant_t *grant = kc_grant_decode (entry->data, entry->size, why);
    if (!grant || kc_grant_verify (grant, root, why)) {
        kc_why_prefix (why, "grant %llu", (unsigned long long) entry->seq);
        kc_grant_destroy (&grant);
        return NULL;
    }
    char fp [KC_FINGERPRINT_CHARS + 1];
    kc_fingerprint (grant->grant_key, fp);
    if (grant->status == KC_STATUS_ACTIVE ? known : (!known || revoked)) {
        kc_why (why, "grant %llu: grant key %s %s", (unsigned long long) entry->seq, fp,
                grant->status == KC_STATUS_ACTIVE ? "was granted before" : "is unknown or already revoked");
        kc_grant_destroy (&grant);
        return NULL;
    }
    uint8_t chain [KC_HASH_BYTES];
    kc_chain_next_signed (prev_chain, entry->seq, grant->digest, grant->data + grant->body_size,
                          grant->size - grant->body_size, chain);
    if (s_check_chain (entry, chain, "grant", why)) {
        kc_grant_destroy (&grant);
    }
    return grant;
}

//  The stored status and name of key: from the cold sync's index, or the
//  cache (inside the open group: earlier entries of the group count).
static int
s_stored_key (agent_t *self, bool cold, const uint8_t key [static KC_KEY_BYTES], uint8_t *status,
              char name [static KC_RECORD_NAME_MAX + 1], kc_why_t *why)
{
    *status = 0;
    name [0] = 0;
    if (cold) {
        const kc_keyindex_entry_t *entry = kc_keyindex_find (self->cold_index, key);
        if (entry) {
            *status = entry->status;
            snprintf (name, KC_RECORD_NAME_MAX + 1, "%.*s", entry->encoded [KC_RECORD_AT_NAME_SIZE],
                      (const char *) entry->encoded + KC_RECORD_AT_NAME);
        }
        return 0;
    }
    kc_cache_entry_t entry;
    if (kc_cache_lookup (self->cache, key, &entry, why)) {
        return -1;
    }
    *status = entry.status;
    snprintf (name, KC_RECORD_NAME_MAX + 1, "%s", entry.name);
    return 0;
}

//  A registration (or a rotation) under a grant following (prev_seq,
//  prev_chain), checked against the grant's state (grant, used, revoked;
//  grant NULL: unknown) and, for a rotation, the stored state of the key it
//  replaces. Its records as a batch, or NULL with a reason.
kc_batch_t *
agent_verify_use_entry (agent_t *self, bool cold, const kc_entry_t *entry, uint64_t prev_seq,
                        const uint8_t prev_chain [static KC_HASH_BYTES], const kc_grant_t *grant, uint64_t used,
                        bool revoked, kc_why_t *why)
{
    if (s_check_seq (entry, prev_seq, "registration by grant", why)) {
        return NULL;
    }
    char fp [KC_FINGERPRINT_CHARS + 1];
    kc_grant_use_t *use = kc_grant_use_decode (entry->data, entry->size, why);
    if (use && grant && revoked) {
        kc_why (why, "grant %s was revoked", kc_fingerprint (use->grant_key, fp));
        kc_grant_use_destroy (&use);
    }
    uint8_t status = 0;
    char name [KC_RECORD_NAME_MAX + 1] = "";
    if (!use || kc_grant_use_check (use, grant, used, why)
    ||  (use->rotation && (s_stored_key (self, cold, use->replaced.key, &status, name, why)
                           || kc_grant_use_check_replaced (use, status, name, why)))) {
        kc_why_prefix (why, "registration by grant %llu", (unsigned long long) entry->seq);
        kc_grant_use_destroy (&use);
        return NULL;
    }
    uint8_t chain [KC_HASH_BYTES];
    kc_chain_next_signed (prev_chain, entry->seq, use->digest, use->data + use->body_size,
                          use->size - use->body_size, chain);
    kc_batch_t *batch = s_check_chain (entry, chain, "registration by grant", why) ? NULL : kc_grant_use_batch (use);
    kc_grant_use_destroy (&use);
    return batch;
}

//  A root change entry of the log: the successor of current (as of its own
//  creation time: the log is followed as it was written), chained. Returns
//  the new root, or NULL with a reason.
kc_root_t *
agent_verify_root_entry (const kc_entry_t *entry, uint64_t prev_seq,
                         const uint8_t prev_chain [static KC_HASH_BYTES], const kc_root_t *current,
                         kc_why_t *why)
{
    if (s_check_seq (entry, prev_seq, "root change", why)) {
        return NULL;
    }
    kc_root_t *next = kc_root_decode (entry->data, entry->size, why);
    if (!next || kc_root_verify_successor (current, next, kc_root_created (next), why)) {
        kc_why_prefix (why, "root change %llu", (unsigned long long) entry->seq);
        kc_root_destroy (&next);
        return NULL;
    }
    uint8_t chain [KC_HASH_BYTES];
    kc_chain_next_root (prev_chain, entry->seq, next, chain);
    if (s_check_chain (entry, chain, "root change", why)) {
        kc_root_destroy (&next);
    }
    return next;
}

//  --- Applying ---------------------------------------------------------------

//  Gives the cache files (database, -wal, -shm) the configured group, so
//  applications in that group can read the cache (mode 0640, KC_DB_FILE_MODE).
void
agent_share_cache (agent_t *self)
{
    if (self->config.group < 0) {
        return;
    }
    const char *suffixes [] = { "", "-wal", "-shm" };
    for (size_t i = 0; i < 3; i++) {
        char path [4200];
        snprintf (path, sizeof path, "%s%s", self->config.cache_path, suffixes [i]);
        if (chown (path, (uid_t) -1, (gid_t) self->config.group) && errno != ENOENT) {
            zsys_warning ("kc_agent: cannot give '%s' group %ld: %s", path, self->config.group,
                          strerror (errno));
        }
    }
}

//  A root (followed to, or pinned) names the server's CURVE key: the newest
//  goes first in the keys the agent connects with. The others stay: after a
//  server key rotation the server serves the old key for an overlap, and an
//  agent that finds the new one refused tries the one before it
//  (docs/protocol.md 2.3).
void
agent_learn_server_key (const kc_root_t *root, void *arg)
{
    agent_t *self = arg;
    if (self->mirror_count) {
        return;                             //  the mirror's key comes from --mirror
    }
    const uint8_t *key = agent_member_in (self, root)->server_key;
    if (self->key_count && memcmp (self->server_keys [0], key, KC_KEY_BYTES) == 0) {
        return;
    }
    size_t count = 0;
    uint8_t keys [AGENT_SERVER_KEYS][KC_KEY_BYTES];
    memcpy (keys [count++], key, KC_KEY_BYTES);
    for (size_t i = 0; i < self->key_count && count < AGENT_SERVER_KEYS; i++) {
        if (memcmp (self->server_keys [i], key, KC_KEY_BYTES)) {
            memcpy (keys [count++], self->server_keys [i], KC_KEY_BYTES);
        }
    }
    memcpy (self->server_keys, keys, sizeof keys);
    self->key_count = count;
    //  The socket's key keeps its place in the list
    self->key_index = 0;
    for (size_t i = 0; i < count; i++) {
        if (memcmp (self->server_keys [i], self->key_in_use, KC_KEY_BYTES) == 0) {
            self->key_index = i;
        }
    }
}

//  After a root change: if it rotated the head key, remembers the previous
//  one, so the server's overlap heads (signed with it, for agents that have
//  not applied the change yet) are dropped without a warning.
void
agent_note_head_key (agent_t *self, const kc_root_t *before)
{
    if (memcmp (agent_member_in (self, before)->head_key, agent_member (self)->head_key, KC_KEY_BYTES)) {
        memcpy (self->previous_head_key, agent_member_in (self, before)->head_key, KC_KEY_BYTES);
        self->has_previous_head_key = true;
    }
}

//  The root in force's head keys, for applications that check their
//  peers' heads in the handshake (kc_lookup_check_head).
void
agent_store_head_keys (agent_t *self)
{
    kc_why_t why;
    if (kc_cache_set_head_keys (self->cache, self->root, &why)) {
        zsys_error ("kc_agent: %s", why.text);
    }
}

//  Says that a root change is in force (logged once, and an event).
void
agent_root_changed (agent_t *self, uint64_t seq)
{
    char when [32];
    zsys_info ("kc_agent: root v%llu in force from seq %llu: %zu operator%s, thresholds "
               "register %d, revoke %d, root %d; expires %s",
               (unsigned long long) kc_root_version (self->root), (unsigned long long) seq,
               kc_root_operator_count (self->root), kc_root_operator_count (self->root) == 1 ? "" : "s",
               kc_root_threshold_register (self->root), kc_root_threshold_revoke (self->root),
               kc_root_threshold_root (self->root), kc_time_format (kc_root_expires (self->root), when));
    self->root_warned = 0;
    agent_store_head_keys (self);
    kc_witness_view_set_root (self->witnesses, self->root);
    agent_witness_connect (self);
    agent_event (self, "root", NULL, NULL, seq);
}

//  A grant entry inside the open group: verified against the cache's
//  grants, stored. 0 or -1 with a reason.
static int
s_apply_grant (agent_t *self, const kc_entry_t *entry, kc_why_t *why)
{
    const uint8_t *key = agent_grant_key_of (entry);
    kc_grant_t *stored = NULL, *grant = NULL;
    uint64_t used = 0;
    bool revoked = false;
    int known = key ? kc_cache_grant (self->cache, key, &stored, &used, &revoked, why) : 0;
    if (known >= 0) {
        grant = agent_verify_grant_entry (entry, kc_cache_seq (self->cache), kc_cache_chain (self->cache), self->root,
                                          known == 1, revoked, why);
    }
    int rc = grant && grant->status == KC_STATUS_ACTIVE
           ? kc_cache_put_grant (self->cache, grant, entry->seq, 0, false, why)
           : grant ? kc_cache_put_grant (self->cache, stored, entry->seq, used, true, why) : -1;
    if (rc == 0) {
        rc = kc_cache_advance (self->cache, entry->seq, entry->chain, why);
    }
    kc_grant_destroy (&grant);
    kc_grant_destroy (&stored);
    return rc;
}

//  A registration under a grant inside the open group: verified against the
//  cache's grants. Its record as a batch (applied by the caller like any),
//  or NULL with a reason; the grant's use is counted.
static kc_batch_t *
s_apply_use (agent_t *self, const kc_entry_t *entry, kc_why_t *why)
{
    const uint8_t *key = agent_grant_key_of (entry);
    kc_grant_t *grant = NULL;
    uint64_t used = 0;
    bool revoked = false;
    kc_batch_t *batch = NULL;
    if (!key || kc_cache_grant (self->cache, key, &grant, &used, &revoked, why) >= 0) {
        batch = agent_verify_use_entry (self, false, entry, kc_cache_seq (self->cache), kc_cache_chain (self->cache),
                                        grant, used, revoked, why);
    }
    if (batch && kc_cache_put_grant (self->cache, grant, entry->seq, used + 1, revoked, why)) {
        kc_batch_destroy (&batch);
    }
    kc_grant_destroy (&grant);
    return batch;
}

//  Emits one event per record of a committed batch.
static void
s_batch_events (agent_t *self, const kc_batch_t *batch, uint64_t seq, bool *known)
{
    for (size_t i = 0; i < kc_batch_count (batch); i++) {
        const kc_record_t *record = kc_batch_record (batch, i);
        char name [KC_RECORD_NAME_MAX + 1];
        const char *event = record->status == KC_STATUS_REVOKED ? "revoked"
                          : known [i] ? "updated" : "registered";
        agent_event (self, event, record->key, kc_record_name (record, name), seq);
    }
}

void
agent_group_clear (agent_group_t *group)
{
    for (size_t i = 0; i < group->count; i++) {
        kc_batch_destroy (&group->batches [i]);
        free (group->known [i]);
    }
    group->count = 0;
}

//  A group rolled back: the root in force goes back to what it was.
void
agent_group_abort (agent_t *self, agent_group_t *group)
{
    if (group->before) {
        kc_root_destroy (&self->root);
        self->root = group->before;
        group->before = NULL;
    }
    agent_group_clear (group);
}

//  A root change entry inside the open group: verified with the root in
//  force, stored, and in force for the entries after it.
static int
s_apply_root_entry (agent_t *self, const kc_entry_t *entry, agent_group_t *group, kc_why_t *why)
{
    kc_root_t *next = agent_verify_root_entry (entry, kc_cache_seq (self->cache),
                                               kc_cache_chain (self->cache), self->root, why);
    if (!next) {
        return -1;
    }
    if (kc_cache_apply_root (self->cache, entry->seq, entry->chain, next, why)) {
        kc_root_destroy (&next);
        return -1;
    }
    if (group->before) {
        kc_root_destroy (&self->root);      //  an earlier change of the same group
    }
    else {
        group->before = self->root;
    }
    self->root = next;
    group->root_seq = entry->seq;
    agent_learn_server_key (next, self);
    return 0;
}

//  Applies verified entries to the cache inside the open group. Returns 0,
//  or -1 with a reason (the caller rolls back).
int
agent_apply_entries (agent_t *self, const kc_proto_msg_t *msg, agent_group_t *group, kc_why_t *why)
{
    for (size_t i = 0; i < msg->entry_count; i++) {
        const kc_entry_t *entry = &msg->entries [i];
        uint64_t seq = kc_cache_seq (self->cache);
        if (entry->seq <= seq) {
            continue;                       //  already have it
        }
        if (group->count == sizeof group->batches / sizeof group->batches [0]) {
            return kc_why (why, "too many batches in one group");
        }
        if (kc_root_is_root (entry->data, entry->size) || kc_grant_is_grant (entry->data, entry->size)) {
            if ((kc_grant_is_grant (entry->data, entry->size) ? s_apply_grant (self, entry, why)
                                                                : s_apply_root_entry (self, entry, group, why))
            ||  kc_cache_add_history (self->cache, entry->seq, entry->accepted, entry->submitter,
                                      entry->data, entry->size, why)) {
                return -1;
            }
            continue;
        }
        kc_batch_t *batch = kc_grant_is_use (entry->data, entry->size)
                          ? s_apply_use (self, entry, why)
                          : agent_verify_entry (entry, seq, kc_cache_chain (self->cache), false, self->root, why);
        if (!batch) {
            return -1;
        }
        bool *known = calloc (kc_batch_count (batch), sizeof (bool));
        assert (known);
        for (size_t r = 0; r < kc_batch_count (batch); r++) {
            kc_cache_entry_t stored;
            if (kc_cache_lookup (self->cache, kc_batch_record (batch, r)->key, &stored, why)) {
                free (known);
                kc_batch_destroy (&batch);
                return -1;
            }
            known [r] = stored.status != 0;
        }
        group->batches [group->count] = batch;
        group->known [group->count] = known;
        group->seqs [group->count] = entry->seq;
        group->count++;
        if (kc_cache_check (self->cache, batch, why)
        ||  kc_cache_apply (self->cache, entry->seq, entry->chain, batch, why)
        ||  kc_cache_add_history (self->cache, entry->seq, entry->accepted, entry->submitter,
                                  entry->data, entry->size, why)) {
            return kc_why_prefix (why, "batch %llu", (unsigned long long) entry->seq);
        }
    }
    return 0;
}

//  Commits the open group and emits its events. 0, or -1 (logged; rolled
//  back: the caller rebuilds the cache when kc_cache_damaged says so).
int
agent_commit_group (agent_t *self, agent_group_t *group)
{
    kc_why_t why;
    if (kc_cache_commit (self->cache, &why)) {
        zsys_error ("kc_agent: %s", why.text);
        agent_group_abort (self, group);
        return -1;                          //  the caller rebuilds a damaged cache
    }
    for (size_t i = 0; i < group->count; i++) {
        s_batch_events (self, group->batches [i], group->seqs [i], group->known [i]);
    }
    if (group->before) {
        agent_note_head_key (self, group->before);
        kc_root_destroy (&group->before);
        agent_root_changed (self, group->root_seq);
    }
    agent_witness_extend (self);
    //  Acknowledged with the next head (at most HEAD_AFTER_MS later on the
    //  server), not per commit: an ACK is a wake-up and a message for the
    //  agent and the server, twenty of them per registration on a fleet
    self->applied += group->count;
    agent_group_clear (group);
    return 0;
}
