/*  =========================================================================
    kc_keep - decides a log entry against a store.
    =========================================================================
*/
#include "kc_keep.h"

#include <sodium.h>
#include <string.h>

int
kc_keep_decode (kc_keep_entry_t *entry, kc_why_t *why)
{
    if (kc_root_is_root (entry->data, entry->size)) {
        entry->root = kc_root_decode (entry->data, entry->size, why);
        entry->digest = entry->root ? kc_root_digest (entry->root) : NULL;
    }
    else
    if (kc_grant_is_grant (entry->data, entry->size)) {
        entry->grant = kc_grant_decode (entry->data, entry->size, why);
        entry->digest = entry->grant ? entry->grant->digest : NULL;
    }
    else
    if (kc_grant_is_use (entry->data, entry->size)) {
        entry->use = kc_grant_use_decode (entry->data, entry->size, why);
        entry->digest = entry->use ? entry->use->digest : NULL;
    }
    else {
        entry->batch = kc_batch_decode (entry->data, entry->size, why);
        entry->digest = entry->batch ? kc_batch_digest (entry->batch) : NULL;
    }
    return entry->digest ? 0 : -1;
}

int
kc_keep_append (kc_store_t *store, kc_keep_entry_t *entry, const kc_root_t **root, uint64_t now,
                kc_why_t *why)
{
    if (entry->root) {
        if (kc_root_verify_successor (*root, entry->root, now, why)
        ||  kc_store_append_root (store, entry->root, &entry->seq, entry->chain, why)) {
            return -1;
        }
        *root = entry->root;
        return 0;
    }
    if (entry->grant) {
        return kc_grant_verify (entry->grant, *root, why) == 0
            && kc_store_check_grant (store, entry->grant, why) == 0
            && kc_store_append_grant (store, entry->grant, &entry->seq, entry->chain, why) == 0 ? 0 : -1;
    }
    if (entry->use) {
        return kc_store_check_use (store, entry->use, now, why) == 0
            && kc_store_append_use (store, entry->use, &entry->seq, entry->chain, why) == 0 ? 0 : -1;
    }
    if (!entry->batch) {
        return kc_why (why, "nothing decoded to append");
    }
    if (kc_batch_verify (entry->batch, *root, now, why)
    ||  kc_store_check (store, entry->batch, now, why)
    ||  kc_store_append (store, entry->batch, &entry->seq, entry->chain, why)) {
        return -1;
    }
    for (size_t r = 0; r < kc_batch_count (entry->batch); r++) {
        entry->revokes |= kc_batch_record (entry->batch, r)->status == KC_STATUS_REVOKED;
    }
    return 0;
}

int
kc_keep_open (const char *root_path, const char *store_path, kc_store_t **store, kc_root_t **root, kc_why_t *why)
{
    kc_root_t *pinned = kc_root_load (root_path, why);
    if (!pinned || kc_root_verify (pinned, kc_root_created (pinned), why)) {
        kc_root_destroy (&pinned);
        return -1;
    }
    *store = kc_store_open (store_path, pinned, why);
    *root = *store ? kc_store_current_root (*store, pinned, why) : NULL;
    kc_root_destroy (&pinned);
    if (!*root) {
        kc_store_destroy (store);
        return -1;
    }
    return 0;
}

void
kc_keep_entry_reset (kc_keep_entry_t *entry)
{
    kc_batch_destroy (&entry->batch);
    kc_root_destroy (&entry->root);
    kc_grant_destroy (&entry->grant);
    kc_grant_use_destroy (&entry->use);
    entry->digest = NULL;
    entry->seq = 0;
    entry->revokes = false;
}

int
kc_keep_follow (kc_store_t *store, const kc_proto_msg_t *msg, kc_root_t **root, bool *revoked, kc_why_t *why)
{
    kc_keep_entry_t entries [KC_PROTO_BATCHES_MAX];
    size_t count = 0;
    const kc_root_t *in_force = *root;
    *revoked = false;
    if (kc_store_begin (store, why)) {
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < msg->entry_count && rc == 0; i++) {
        const kc_entry_t *in = &msg->entries [i];
        if (in->seq <= kc_store_seq (store)) {
            continue;                       //  already held
        }
        kc_keep_entry_t *entry = &entries [count++];
        memset (entry, 0, sizeof *entry);
        entry->data = in->data;
        entry->size = in->size;
        kc_store_set_time (store, in->accepted);
        kc_store_set_submitter (store, in->submitter);
        //  As of when the upstream accepted it: the log is replayed as written
        uint64_t now = in->accepted ? in->accepted / 1000 : kc_now ();
        if (in->seq != kc_store_seq (store) + 1) {
            rc = kc_why (why, "entry %llu does not follow %llu", (unsigned long long) in->seq,
                         (unsigned long long) kc_store_seq (store));
        }
        else
        if (kc_keep_decode (entry, why) || kc_keep_append (store, entry, &in_force, now, why)) {
            rc = kc_why_prefix (why, "entry %llu", (unsigned long long) in->seq);
        }
        else
        if (sodium_memcmp (entry->chain, in->chain, KC_HASH_BYTES)) {
            rc = kc_why (why, "entry %llu: chain hash does not match its predecessor (broken chain)",
                         (unsigned long long) in->seq);
        }
        *revoked |= entry->revokes;
    }
    kc_store_set_time (store, 0);
    kc_store_set_submitter (store, NULL);
    if (rc || count == 0) {
        kc_store_rollback (store);
    }
    else
    if (kc_store_commit (store, why)) {
        rc = -1;
    }
    if (rc == 0 && in_force != *root) {
        kc_root_t *next = kc_root_dup (in_force);
        kc_root_destroy (root);
        *root = next;
    }
    for (size_t i = 0; i < count; i++) {
        kc_keep_entry_reset (&entries [i]);
    }
    return rc ? -1 : (int) count;
}
