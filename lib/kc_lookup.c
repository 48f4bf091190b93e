/*  =========================================================================
    kc_lookup - in-memory index of the agent's cache, following its changes.

    Entries live in one array; an open-addressing table of entry numbers
    indexes them by key (the first 8 key bytes, mixed, pick the slot) and a
    second one by name, each name slot heading a chain of its entries.
    Names and tags live in a text arena.
    =========================================================================
*/
#include "kc_lookup.h"
#include "kc_bucket.h"
#include "kc_cache.h"
#include "kc_db.h"
#include "kc_head.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    uint8_t key [KC_KEY_BYTES];
    uint64_t version, not_before, not_after, seq;
    uint32_t text;                          //  arena: name NUL tags NUL
    uint32_t next_name;                     //  next entry of the name's chain + 1
    uint8_t status;
} s_entry_t;

typedef struct {
    uint32_t text;                          //  arena offset of the name
    uint32_t head;                          //  first entry + 1, 0 when empty
} s_name_t;

_Static_assert (KC_LOOKUP_HEAD_BYTES == KC_HEAD_BYTES, "the public header's head size");

struct _kc_lookup_t;
static void s_maybe_refresh (struct _kc_lookup_t *self);

struct _kc_lookup_t {
    char *path;
    sqlite3 *db;
    sqlite3_stmt *state, *bucket, *changes, *buckets, *version;
    dev_t dev;
    ino_t ino;
    int64_t data_version;
    uint64_t seq, changes_from, head_time;
    int64_t head_seen;                      //  monotonic ms when head_time last moved
    uint8_t head [KC_HEAD_BYTES];           //  the agent's last stored head, if has_head
    bool has_head;
    uint8_t head_keys [KC_ROOT_SERVERS_MAX * KC_KEY_BYTES];    //  of the root in force's
    size_t head_key_count;                  //  servers, as the agent stored them
    uint64_t conflicts;                     //  peers' heads found in conflict with ours
    bool fail_closed;                       //  kc_auth_curve_authorizer denies them
    char *agent;                            //  the agent's local endpoint: PROOF goes there
    int refresh_ms;
    int64_t refreshed;                      //  monotonic ms of the last check
    s_entry_t *entries;
    size_t count, capacity;
    uint32_t *slots;                        //  entry + 1, 0 empty
    size_t slot_mask;
    s_name_t *names;
    size_t name_count, name_mask;
    char *text;
    size_t text_size, text_capacity;
};

static void *
s_alloc (void *memory, size_t size)
{
    memory = realloc (memory, size ? size : 1);
    if (!memory) {
        fprintf (stderr, "kc_lookup: out of memory\n");
        abort ();
    }
    return memory;
}

const char *
kc_verdict_name (kc_verdict_t verdict)
{
    static const char *names [] = { "unknown", "trusted", "revoked", "expired", "not-yet-valid" };
    return verdict <= KC_VERDICT_NOT_YET_VALID ? names [verdict] : "unknown";
}

kc_verdict_t
kc_verdict_at (uint8_t status, uint64_t not_before, uint64_t not_after, uint64_t now)
{
    if (status == KC_STATUS_REVOKED) {
        return KC_VERDICT_REVOKED;
    }
    if (status != KC_STATUS_ACTIVE) {
        return KC_VERDICT_UNKNOWN;
    }
    if (not_after && now >= not_after) {
        return KC_VERDICT_EXPIRED;
    }
    return now < not_before ? KC_VERDICT_NOT_YET_VALID : KC_VERDICT_TRUSTED;
}

//  --- Index -----------------------------------------------------------------

static size_t
s_key_hash (const uint8_t *key)
{
    uint64_t h;
    memcpy (&h, key, 8);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (size_t) h;
}

static const char *
s_name_of (const kc_lookup_t *self, const s_entry_t *entry)
{
    return self->text + entry->text;
}

static uint32_t
s_text_add (kc_lookup_t *self, const char *name, size_t name_size, const char *tags)
{
    size_t tags_size = strlen (tags);
    size_t need = name_size + 1 + tags_size + 1;
    if (self->text_size + need > self->text_capacity) {
        while (self->text_size + need > self->text_capacity) {
            self->text_capacity = self->text_capacity ? self->text_capacity * 2 : 4096;
        }
        self->text = s_alloc (self->text, self->text_capacity);
    }
    uint32_t at = (uint32_t) self->text_size;
    memcpy (self->text + at, name, name_size);
    self->text [at + name_size] = 0;
    memcpy (self->text + at + name_size + 1, tags, tags_size + 1);
    self->text_size += need;
    return at;
}

//  The slot of a key: where it is, or where it would go.
static size_t
s_key_slot (const kc_lookup_t *self, const uint8_t *key)
{
    size_t slot = s_key_hash (key) & self->slot_mask;
    while (self->slots [slot]
       &&  memcmp (self->entries [self->slots [slot] - 1].key, key, KC_KEY_BYTES)) {
        slot = (slot + 1) & self->slot_mask;
    }
    return slot;
}

static size_t
s_name_slot (const kc_lookup_t *self, const char *name, size_t size)
{
    size_t slot = kc_bucket_of_name (name, size) * 0x9E3779B1u & self->name_mask;
    while (self->names [slot].text) {
        const char *other = self->text + self->names [slot].text;
        if (strlen (other) == size && memcmp (other, name, size) == 0) {
            break;
        }
        slot = (slot + 1) & self->name_mask;
    }
    return slot;
}

static void
s_rehash (kc_lookup_t *self)
{
    size_t slots = 1024;
    while (slots < self->count * 2 + 2) {
        slots *= 2;
    }
    free (self->slots);
    self->slots = calloc (slots, sizeof (uint32_t));
    assert (self->slots);
    self->slot_mask = slots - 1;
    for (size_t i = 0; i < self->count; i++) {
        self->slots [s_key_slot (self, self->entries [i].key)] = (uint32_t) i + 1;
    }
}

static void s_link_name (kc_lookup_t *self, uint32_t index);

static void
s_rehash_names (kc_lookup_t *self)
{
    size_t slots = 1024;
    while (slots < self->name_count * 2 + 2) {
        slots *= 2;
    }
    free (self->names);
    self->names = calloc (slots, sizeof (s_name_t));
    assert (self->names);
    self->name_mask = slots - 1;
    self->name_count = 0;
    for (size_t i = 0; i < self->count; i++) {
        self->entries [i].next_name = 0;
    }
    for (size_t i = 0; i < self->count; i++) {
        s_link_name (self, (uint32_t) i);
    }
}

static void
s_link_name (kc_lookup_t *self, uint32_t index)
{
    s_entry_t *entry = &self->entries [index];
    const char *name = s_name_of (self, entry);
    size_t size = strlen (name);
    if (size == 0) {
        return;
    }
    if ((self->name_count + 1) * 2 > self->name_mask + 1) {
        self->name_count++;                 //  counted before the rehash relinks
        s_rehash_names (self);
        return;
    }
    size_t slot = s_name_slot (self, name, size);
    if (!self->names [slot].text) {
        self->names [slot].text = entry->text;
        self->name_count++;
    }
    entry->next_name = self->names [slot].head;
    self->names [slot].head = index + 1;
}

static void
s_unlink_name (kc_lookup_t *self, uint32_t index)
{
    s_entry_t *entry = &self->entries [index];
    const char *name = s_name_of (self, entry);
    size_t size = strlen (name);
    if (size == 0) {
        return;
    }
    size_t slot = s_name_slot (self, name, size);
    uint32_t *link = &self->names [slot].head;
    while (*link && *link != index + 1) {
        link = &self->entries [*link - 1].next_name;
    }
    if (*link) {
        *link = entry->next_name;
    }
    entry->next_name = 0;
}

//  Sets (adds or replaces) the entry for a record.
static void
s_put (kc_lookup_t *self, uint64_t seq, const kc_record_t *record)
{
    char name [KC_RECORD_NAME_MAX + 1], tags [KC_RECORD_TAGS_TEXT_MAX];
    kc_record_name (record, name);
    kc_record_tags (record, ',', tags, sizeof tags);
    size_t slot = s_key_slot (self, record->key);
    uint32_t index;
    if (self->slots [slot]) {
        index = self->slots [slot] - 1;
        s_unlink_name (self, index);
    }
    else {
        if (self->count == self->capacity) {
            self->capacity = self->capacity ? self->capacity * 2 : 1024;
            self->entries = s_alloc (self->entries, self->capacity * sizeof (s_entry_t));
        }
        index = (uint32_t) self->count++;
        memcpy (self->entries [index].key, record->key, KC_KEY_BYTES);
        self->slots [slot] = index + 1;
        if (self->count * 2 > self->slot_mask + 1) {
            s_rehash (self);
        }
    }
    s_entry_t *entry = &self->entries [index];
    entry->version = record->version;
    entry->not_before = record->not_before;
    entry->not_after = record->not_after;
    entry->seq = seq;
    entry->status = record->status;
    entry->next_name = 0;
    entry->text = s_text_add (self, record->name, record->name_size, tags);
    s_link_name (self, index);
}

static void
s_clear (kc_lookup_t *self)
{
    self->count = 0;
    self->text_size = 1;                    //  offset 0 means "no name slot"
    if (!self->text) {
        self->text_capacity = 4096;
        self->text = s_alloc (NULL, self->text_capacity);
    }
    self->text [0] = 0;
    self->name_count = 0;
    s_rehash (self);
    s_rehash_names (self);
}

//  --- Reading the cache ----------------------------------------------------

static void
s_close (kc_lookup_t *self)
{
    sqlite3_finalize (self->state);
    sqlite3_finalize (self->bucket);
    sqlite3_finalize (self->changes);
    sqlite3_finalize (self->buckets);
    sqlite3_finalize (self->version);
    self->state = self->bucket = self->changes = self->buckets = self->version = NULL;
    kc_db_close (&self->db);
}

static int
s_open (kc_lookup_t *self, kc_why_t *why)
{
    struct stat st;
    if (stat (self->path, &st)) {
        return kc_why (why, "no cache at '%s' (is keyclone-agent running there?)", self->path);
    }
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    self->db = kc_db_open (self->path, &kc_schema_agent, KC_DB_READONLY, "NORMAL", why);
    if (!self->db) {
        return -1;
    }
    self->state = kc_db_prepare (self->db, "SELECT seq, changes_from, head, head_keys FROM state", why);
    self->bucket = self->state ? kc_db_prepare (self->db, "SELECT data FROM key_buckets WHERE bucket = ?", why) : NULL;
    self->changes = self->bucket ? kc_db_prepare (self->db, "SELECT seq, key FROM changes WHERE seq > ? ORDER BY seq", why) : NULL;
    self->buckets = self->changes ? kc_db_prepare (self->db, "SELECT bucket, data FROM key_buckets", why) : NULL;
    self->version = self->buckets ? kc_db_prepare (self->db, "PRAGMA data_version", why) : NULL;
    if (!self->version) {
        s_close (self);
        return -1;
    }
    return 0;
}

static int64_t
s_data_version (kc_lookup_t *self)
{
    int64_t version = -1;
    if (sqlite3_step (self->version) == SQLITE_ROW) {
        version = sqlite3_column_int64 (self->version, 0);
    }
    sqlite3_reset (self->version);
    return version;
}

//  Reads the state row; notes when the head moved.
static int
s_read_state (kc_lookup_t *self, uint64_t *seq, uint64_t *changes_from, kc_why_t *why)
{
    int rc = sqlite3_step (self->state);
    if (rc != SQLITE_ROW) {
        sqlite3_reset (self->state);
        return kc_why (why, "cannot read the cache state: %s", sqlite3_errmsg (self->db));
    }
    *seq = (uint64_t) sqlite3_column_int64 (self->state, 0);
    *changes_from = (uint64_t) sqlite3_column_int64 (self->state, 1);
    kc_head_t head;
    kc_why_t ignored;
    size_t keys_size = (size_t) sqlite3_column_bytes (self->state, 3);
    if (keys_size && keys_size <= sizeof self->head_keys && keys_size % KC_KEY_BYTES == 0) {
        memcpy (self->head_keys, sqlite3_column_blob (self->state, 3), keys_size);
        self->head_key_count = keys_size / KC_KEY_BYTES;
    }
    //  The head as the cache holds it now (none after a rebuild)
    self->has_head = sqlite3_column_bytes (self->state, 2) == KC_HEAD_BYTES
                  && kc_head_decode (sqlite3_column_blob (self->state, 2), KC_HEAD_BYTES, &head, &ignored) == 0;
    if (self->has_head) {
        memcpy (self->head, sqlite3_column_blob (self->state, 2), KC_HEAD_BYTES);
    }
    if (self->has_head && head.time != self->head_time) {
        int64_t now = kc_mono_ms ();
        if (self->head_time == 0) {
            //  First sight: date it by the server's clock against ours
            int64_t age = (int64_t) kc_now_ms () - (int64_t) head.time;
            self->head_seen = now - (age > 0 ? age : 0);
        }
        else {
            self->head_seen = now;
        }
        self->head_time = head.time;
    }
    sqlite3_reset (self->state);
    return 0;
}

static int
s_load_all (kc_lookup_t *self, kc_why_t *why)
{
    s_clear (self);
    int rc;
    while ((rc = sqlite3_step (self->buckets)) == SQLITE_ROW) {
        const uint8_t *data = sqlite3_column_blob (self->buckets, 1);
        size_t size = (size_t) sqlite3_column_bytes (self->buckets, 1), offset = 0;
        kc_bucket_entry_t entry;
        int next;
        while ((next = kc_bucket_next (data, size, &offset, &entry, why)) == 1) {
            s_put (self, entry.seq, &entry.record);
        }
        if (next < 0) {
            sqlite3_reset (self->buckets);
            return kc_why_prefix (why, "damaged cache bucket %d", sqlite3_column_int (self->buckets, 0));
        }
    }
    sqlite3_reset (self->buckets);
    return rc == SQLITE_DONE ? 0 : kc_why (why, "cannot read the cache: %s", sqlite3_errmsg (self->db));
}

//  Re-reads one key from its bucket.
static int
s_reload_key (kc_lookup_t *self, const uint8_t *key, kc_why_t *why)
{
    sqlite3_bind_int (self->bucket, 1, (int) kc_bucket_of_key (key));
    int rc = sqlite3_step (self->bucket);
    if (rc == SQLITE_ROW) {
        kc_bucket_entry_t entry;
        int found = kc_bucket_find (sqlite3_column_blob (self->bucket, 0),
                                    (size_t) sqlite3_column_bytes (self->bucket, 0), key, &entry, why);
        if (found == 1) {
            s_put (self, entry.seq, &entry.record);
        }
        rc = found < 0 ? SQLITE_CORRUPT : SQLITE_DONE;
    }
    sqlite3_reset (self->bucket);
    return rc == SQLITE_DONE ? 0 : kc_why (why, "cannot read a cache bucket");
}

//  Everything, in one read transaction so state and buckets agree.
static int
s_reload (kc_lookup_t *self, kc_why_t *why)
{
    if (kc_db_exec (self->db, "BEGIN", why)) {
        return -1;
    }
    uint64_t seq, changes_from;
    int rc = s_read_state (self, &seq, &changes_from, why);
    if (rc == 0) {
        rc = s_load_all (self, why);
    }
    sqlite3_exec (self->db, "COMMIT", NULL, NULL, NULL);
    if (rc == 0) {
        self->seq = seq;
        self->changes_from = changes_from;
        self->data_version = s_data_version (self);
    }
    return rc;
}

//  Just the keys changed since our seq.
static int
s_apply_changes (kc_lookup_t *self, kc_why_t *why)
{
    if (kc_db_exec (self->db, "BEGIN", why)) {
        return -1;
    }
    uint64_t seq, changes_from;
    int rc = s_read_state (self, &seq, &changes_from, why);
    if (rc == 0 && seq != self->seq) {
        if (self->seq < changes_from || seq < self->seq) {
            rc = s_load_all (self, why);    //  the feed no longer reaches back far enough
        }
        else {
            sqlite3_bind_int64 (self->changes, 1, (sqlite3_int64) self->seq);
            int step;
            while (rc == 0 && (step = sqlite3_step (self->changes)) == SQLITE_ROW) {
                rc = s_reload_key (self, sqlite3_column_blob (self->changes, 1), why);
            }
            sqlite3_reset (self->changes);
        }
    }
    sqlite3_exec (self->db, "COMMIT", NULL, NULL, NULL);
    if (rc == 0) {
        bool changed = seq != self->seq;
        self->seq = seq;
        self->changes_from = changes_from;
        return changed ? 1 : 0;
    }
    return rc;
}

kc_lookup_t *
kc_lookup_new (const char *cache_path, kc_why_t *why)
{
    kc_lookup_t *self = calloc (1, sizeof *self);
    assert (self);
    self->path = strdup (cache_path);
    self->refresh_ms = KC_LOOKUP_REFRESH_MS;
    if (s_open (self, why) || s_reload (self, why)) {
        kc_lookup_destroy (&self);
        return NULL;
    }
    self->refreshed = kc_mono_ms ();
    return self;
}

void
kc_lookup_destroy (kc_lookup_t **self_p)
{
    if (self_p && *self_p) {
        kc_lookup_t *self = *self_p;
        s_close (self);
        free (self->agent);
        free (self->entries);
        free (self->slots);
        free (self->names);
        free (self->text);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

void
kc_lookup_set_refresh (kc_lookup_t *self, int interval_ms)
{
    self->refresh_ms = interval_ms < 0 ? 0 : interval_ms;
}

int
kc_lookup_refresh (kc_lookup_t *self, kc_why_t *why)
{
    self->refreshed = kc_mono_ms ();
    struct stat st;
    if (stat (self->path, &st) == 0 && (st.st_ino != self->ino || st.st_dev != self->dev)) {
        //  The agent built a new cache file: start over on it
        s_close (self);
        if (s_open (self, why) || s_reload (self, why)) {
            return -1;
        }
        return 1;
    }
    if (!self->db) {
        return s_open (self, why) || s_reload (self, why) ? -1 : 1;
    }
    int64_t version = s_data_version (self);
    if (version == self->data_version) {
        return 0;
    }
    self->data_version = version;
    return s_apply_changes (self, why);
}

static void
s_maybe_refresh (kc_lookup_t *self)
{
    if (kc_mono_ms () - self->refreshed >= self->refresh_ms) {
        kc_why_t why;
        if (kc_lookup_refresh (self, &why) < 0) {
            //  Keep answering from the index we have
            self->refreshed = kc_mono_ms ();
        }
    }
}

static void
s_fill (const kc_lookup_t *self, const s_entry_t *entry, kc_verdict_t verdict,
        kc_lookup_entry_t *out)
{
    memcpy (out->key, entry->key, KC_KEY_BYTES);
    out->verdict = verdict;
    out->status = entry->status;
    out->version = entry->version;
    out->not_before = entry->not_before;
    out->not_after = entry->not_after;
    out->seq = entry->seq;
    const char *name = s_name_of (self, entry);
    size_t size = strlen (name);
    memcpy (out->name, name, size + 1);
    snprintf (out->tags, sizeof out->tags, "%s", name + size + 1);
}

kc_verdict_t
kc_lookup_key (kc_lookup_t *self, const uint8_t key [static KC_KEY_BYTES], kc_lookup_entry_t *entry)
{
    s_maybe_refresh (self);
    uint32_t index = self->slots [s_key_slot (self, key)];
    if (!index) {
        if (entry) {
            memset (entry, 0, sizeof *entry);
            memcpy (entry->key, key, KC_KEY_BYTES);
        }
        return KC_VERDICT_UNKNOWN;
    }
    const s_entry_t *found = &self->entries [index - 1];
    kc_verdict_t verdict = kc_verdict_at (found->status, found->not_before, found->not_after, kc_now ());
    if (entry) {
        s_fill (self, found, verdict, entry);
    }
    return verdict;
}

int
kc_lookup_name (kc_lookup_t *self, const char *name, bool all, kc_lookup_fn *fn, void *arg)
{
    s_maybe_refresh (self);
    size_t size = strlen (name);
    if (size == 0) {
        return 0;
    }
    int given = 0;
    uint64_t now = kc_now ();
    for (uint32_t index = self->names [s_name_slot (self, name, size)].head; index;
         index = self->entries [index - 1].next_name) {
        const s_entry_t *found = &self->entries [index - 1];
        kc_verdict_t verdict = kc_verdict_at (found->status, found->not_before, found->not_after, now);
        if (all || verdict == KC_VERDICT_TRUSTED) {
            kc_lookup_entry_t entry;
            s_fill (self, found, verdict, &entry);
            given++;
            if (fn (&entry, arg)) {
                break;
            }
        }
    }
    return given;
}

int
kc_lookup_head (kc_lookup_t *self, uint8_t head [static KC_HEAD_BYTES])
{
    s_maybe_refresh (self);
    if (!self->has_head) {
        return -1;
    }
    memcpy (head, self->head, KC_HEAD_BYTES);
    return 0;
}

int
kc_lookup_check_head (kc_lookup_t *self, const uint8_t *peer, size_t size,
                      uint8_t proof [static 2 * KC_HEAD_BYTES], kc_why_t *why)
{
    kc_head_t theirs, ours;
    kc_why_t ignored;
    s_maybe_refresh (self);
    if (kc_head_decode (peer, size, &theirs, why)) {
        return kc_why_prefix (why, "the peer's head");
    }
    if (!self->has_head || kc_head_decode (self->head, KC_HEAD_BYTES, &ours, &ignored)) {
        return 0;                           //  nothing of ours to compare with yet
    }
    if (memcmp (theirs.directory, ours.directory, KC_HASH_BYTES)) {
        return kc_why (why, "the peer's head is for another directory");
    }
    //  A peer ahead or behind is normal (agents move at their own pace);
    //  only two chains for one seq tell that the server showed two logs
    if (theirs.seq != ours.seq || memcmp (theirs.chain, ours.chain, KC_HASH_BYTES) == 0) {
        return 0;
    }
    for (size_t i = 0; i < self->head_key_count; i++) {
        if (kc_head_verify_signature (&theirs, ours.directory, self->head_keys + i * KC_KEY_BYTES,
                                      &ignored) == 0) {
            memcpy (proof, self->head, KC_HEAD_BYTES);
            memcpy (proof + KC_HEAD_BYTES, peer, KC_HEAD_BYTES);
            self->conflicts++;
            char ours_hex [17], theirs_hex [17];
            kc_why (why, "the peer's head names another chain at seq %llu (%s... against our %s...), signed by "
                    "a server of our root: the server showed two logs (equivocation)",
                    (unsigned long long) ours.seq, kc_hex (theirs.chain, 8, theirs_hex),
                    kc_hex (ours.chain, 8, ours_hex));
            return 1;
        }
    }
    return kc_why (why, "the peer's head for seq %llu names another chain but is not signed by a server of "
                   "our root (forged by the peer)", (unsigned long long) theirs.seq);
}

uint64_t
kc_lookup_conflicts (const kc_lookup_t *self)
{
    return self->conflicts;
}

void
kc_lookup_set_fail_closed (kc_lookup_t *self, bool fail_closed)
{
    self->fail_closed = fail_closed;
}

bool
kc_lookup_fail_closed (const kc_lookup_t *self)
{
    return self->fail_closed;
}

void
kc_lookup_set_agent (kc_lookup_t *self, const char *endpoint)
{
    free (self->agent);
    self->agent = endpoint ? strdup (endpoint) : NULL;
}

int
kc_lookup_report (kc_lookup_t *self, const uint8_t proof [static 2 * KC_HEAD_BYTES], kc_why_t *why)
{
    if (!self->agent) {
        return kc_why (why, "no agent endpoint set (kc_lookup_set_agent)");
    }
    zsock_t *agent = zsock_new (ZMQ_DEALER);
    assert (agent);
    zsock_set_linger (agent, 0);
    zsock_set_sndtimeo (agent, 1000);
    zsock_set_rcvtimeo (agent, 2000);
    int rc = -1;
    if (zsock_connect (agent, "%s", self->agent)) {
        kc_why (why, "invalid agent endpoint");
    }
    else
    if (zsock_send (agent, "sb", "PROOF", proof, (size_t) 2 * KC_HEAD_BYTES)) {
        kc_why (why, "the agent at %s does not answer", self->agent);
    }
    else {
        zmsg_t *reply = zmsg_recv (agent);
        char *status = reply ? zmsg_popstr (reply) : NULL;
        if (!status) {
            kc_why (why, "the agent at %s does not answer", self->agent);
        }
        else
        if (strcmp (status, "OK")) {
            char *reason = zmsg_popstr (reply);
            kc_why (why, "the agent refused the proof: %s", reason ? reason : "?");
            zstr_free (&reason);
        }
        else {
            rc = 0;
        }
        zstr_free (&status);
        zmsg_destroy (&reply);
    }
    zsock_destroy (&agent);
    return rc;
}

int64_t
kc_lookup_head_age (kc_lookup_t *self)
{
    s_maybe_refresh (self);
    return self->head_time ? kc_mono_ms () - self->head_seen : INT64_MAX;
}

uint64_t
kc_lookup_seq (const kc_lookup_t *self)
{
    return self->seq;
}

size_t
kc_lookup_size (const kc_lookup_t *self)
{
    return self->count;
}

//  --- Selftest ----------------------------------------------------------------

static kc_batch_t *
s_test_batch (const kc_root_t *root, kc_signer_t *signer, uint8_t first, int count,
              uint64_t version, kc_status_t status, const char *name, uint64_t not_after)
{
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), 1);
    kc_why_t why;
    const char *tags [] = { "role=db" };
    for (int i = 0; i < count; i++) {
        uint8_t key [32];
        memset (key, first + i, 32);
        kc_record_spec_t spec = { .key = key, .version = version, .status = status, .name = name,
                                  .tags = tags, .tag_count = status == KC_STATUS_ACTIVE ? 1 : 0,
                                  .not_after = status == KC_STATUS_ACTIVE ? not_after : 0 };
        assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    }
    kc_batch_t *batch = kc_batch_builder_finish (builder, &signer, 1, &why);
    kc_batch_builder_destroy (&builder);
    return batch;
}

static void
s_test_apply (kc_cache_t *cache, uint8_t chain [32], uint64_t seq, kc_batch_t *batch)
{
    kc_why_t why;
    kc_chain_next (chain, seq, batch, chain);
    assert (kc_cache_begin (cache, &why) == 0);
    assert (kc_cache_apply (cache, seq, chain, batch, &why) == 0);
    assert (kc_cache_commit (cache, &why) == 0);
}

static int
s_test_count (const kc_lookup_entry_t *entry, void *arg)
{
    assert (entry->verdict == KC_VERDICT_TRUSTED || entry->status);
    (*(int *) arg)++;
    return 0;
}

void
kc_lookup_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_lookup: ");
    }
    char dir [] = "/tmp/kc_lookup_test.XXXXXX";
    assert (mkdtemp (dir));
    char path [256];
    snprintf (path, sizeof path, "%s/agent.db", dir);
    kc_why_t why;
    uint8_t seed [32] = { 6 }, fill [32];
    memset (fill, 0x66, 32);
    kc_signer_t *signer = kc_signer_new_from_seed (seed, "op", "keyclone-operator");
    kc_operator_t op;
    memcpy (op.key, kc_signer_public_key (signer), 32);
    snprintf (op.name, sizeof op.name, "op");
    kc_root_spec_t spec = {
        .version = 1, .created = 1, .expires = 4000000000ULL, .operators = &op,
        .operator_count = 1, .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1,
        .head_key = fill, .server_key = fill,
        .endpoints = { "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3" }
    };
    kc_root_t *root = kc_root_new (&spec, &why);
    assert (kc_lookup_new (path, &why) == NULL && strstr (why.text, "no cache"));

    //  A cache with 3000 keys named web, one expired
    bool corrupt;
    kc_cache_t *cache = kc_cache_open (path, root, &corrupt, &why);
    uint8_t chain [32];
    kc_chain_genesis (kc_root_directory (root), chain);
    kc_batch_t *batches [6];
    batches [0] = s_test_batch (root, signer, 1, 200, 5, KC_STATUS_ACTIVE, "web", 0);
    batches [1] = s_test_batch (root, signer, 250, 1, 5, KC_STATUS_ACTIVE, "old", 1000);
    s_test_apply (cache, chain, 1, batches [0]);
    s_test_apply (cache, chain, 2, batches [1]);
    kc_lookup_t *lookup = kc_lookup_new (path, &why);
    assert (lookup && kc_lookup_size (lookup) == 201 && kc_lookup_seq (lookup) == 2);
    kc_lookup_set_refresh (lookup, 0);
    uint8_t key [32];
    kc_lookup_entry_t entry;
    memset (key, 7, 32);
    assert (kc_lookup_key (lookup, key, &entry) == KC_VERDICT_TRUSTED);
    assert (KC_STREQ (entry.name, "web") && KC_STREQ (entry.tags, "role=db") && entry.seq == 1);
    memset (key, 250, 32);
    assert (kc_lookup_key (lookup, key, NULL) == KC_VERDICT_EXPIRED);
    memset (key, 251, 32);
    assert (kc_lookup_key (lookup, key, &entry) == KC_VERDICT_UNKNOWN && entry.status == 0);
    int count = 0;
    assert (kc_lookup_name (lookup, "web", false, s_test_count, &count) == 200 && count == 200);
    assert (kc_lookup_name (lookup, "old", false, s_test_count, &count) == 0);
    assert (kc_lookup_name (lookup, "old", true, s_test_count, &count) == 1);
    assert (kc_lookup_head_age (lookup) == INT64_MAX);

    //  The agent revokes one key and renames another: the handle follows
    batches [2] = s_test_batch (root, signer, 7, 1, 6, KC_STATUS_REVOKED, NULL, 0);
    batches [3] = s_test_batch (root, signer, 8, 1, 6, KC_STATUS_ACTIVE, "db", 0);
    s_test_apply (cache, chain, 3, batches [2]);
    s_test_apply (cache, chain, 4, batches [3]);
    kc_head_t head = { .seq = 4, .time = kc_now_ms (), .valid_until = kc_now_ms () + 5000 };
    assert (kc_cache_set_head (cache, &head, &why) == 0);
    memset (key, 7, 32);
    assert (kc_lookup_key (lookup, key, NULL) == KC_VERDICT_REVOKED);
    assert (kc_lookup_seq (lookup) == 4 && kc_lookup_size (lookup) == 201);
    count = 0;
    assert (kc_lookup_name (lookup, "web", false, s_test_count, &count) == 198);
    assert (kc_lookup_name (lookup, "db", false, s_test_count, &count) == 1);
    assert (kc_lookup_head_age (lookup) < 2000);
    //  Nothing new: refresh reports no change
    assert (kc_lookup_refresh (lookup, &why) == 0);

    //  A peer's head against ours (docs/protocol.md 9.4): the agent stored
    //  the head keys of the root in force and a head signed with one
    uint8_t head_seed [32] = { 9 }, forger_seed [32] = { 10 };
    kc_signer_t *head_signer = kc_signer_new_from_seed (head_seed, "head", "keyclone-head");
    kc_signer_t *forger = kc_signer_new_from_seed (forger_seed, "forger", "keyclone-head");
    kc_root_spec_t keyed = spec;
    keyed.head_key = kc_signer_public_key (head_signer);
    kc_root_t *keyed_root = kc_root_new (&keyed, &why);
    assert (keyed_root && kc_cache_set_head_keys (cache, keyed_root, &why) == 0);
    assert (kc_cache_set_head_keys (cache, keyed_root, &why) == 0);     //  unchanged: no write
    kc_head_t ours = head;
    memcpy (ours.directory, kc_root_directory (root), 32);
    memcpy (ours.chain, chain, 32);
    kc_head_sign (&ours, head_signer);
    assert (kc_cache_set_head (cache, &ours, &why) == 0);
    uint8_t mine [KC_HEAD_BYTES], theirs [KC_HEAD_BYTES], proof [2 * KC_HEAD_BYTES];
    assert (kc_lookup_head (lookup, mine) == 0);
    kc_head_t other = ours;
    assert (kc_lookup_check_head (lookup, mine, KC_HEAD_BYTES, proof, &why) == 0);     //  the same
    other.chain [0] ^= 1;
    kc_head_sign (&other, head_signer);
    kc_head_encode (&other, theirs);
    assert (kc_lookup_check_head (lookup, theirs, KC_HEAD_BYTES, proof, &why) == 1 && strstr (why.text, "equivocation"));
    assert (memcmp (proof, mine, KC_HEAD_BYTES) == 0 && memcmp (proof + KC_HEAD_BYTES, theirs, KC_HEAD_BYTES) == 0);
    assert (kc_lookup_conflicts (lookup) == 1);
    assert (kc_lookup_report (lookup, proof, &why) == -1 && strstr (why.text, "no agent"));
    kc_head_sign (&other, forger);          //  the peer's own forgery: no proof
    kc_head_encode (&other, theirs);
    assert (kc_lookup_check_head (lookup, theirs, KC_HEAD_BYTES, proof, &why) == -1 && strstr (why.text, "not signed"));
    other.seq = 5;                          //  ahead of us: nothing to compare
    kc_head_sign (&other, head_signer);
    kc_head_encode (&other, theirs);
    assert (kc_lookup_check_head (lookup, theirs, KC_HEAD_BYTES, proof, &why) == 0);
    other.seq = 4;
    other.directory [0] ^= 1;
    kc_head_encode (&other, theirs);
    assert (kc_lookup_check_head (lookup, theirs, KC_HEAD_BYTES, proof, &why) == -1 && strstr (why.text, "another directory"));
    assert (kc_lookup_check_head (lookup, theirs, 100, proof, &why) == -1);
    assert (kc_lookup_conflicts (lookup) == 1);
    kc_lookup_set_fail_closed (lookup, true);
    assert (kc_lookup_fail_closed (lookup));
    kc_lookup_set_agent (lookup, "ipc:///nonexistent/agent.ipc");
    kc_root_destroy (&keyed_root);
    kc_signer_destroy (&head_signer);
    kc_signer_destroy (&forger);

    //  Many new names force the name table to grow
    batches [4] = s_test_batch (root, signer, 100, 1, 1, KC_STATUS_ACTIVE, "x", 0);
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), 1);
    for (int i = 0; i < 3000; i++) {
        uint8_t k [32] = { 0 };
        k [0] = 0xee;
        kc_put_u32 (k + 1, (uint32_t) i);
        char name [32];
        snprintf (name, sizeof name, "node-%d", i);
        kc_record_spec_t r = { .key = k, .version = 1, .status = KC_STATUS_ACTIVE, .name = name };
        assert (kc_batch_builder_add (builder, &r, &why) == 0);
    }
    batches [5] = kc_batch_builder_finish (builder, &signer, 1, &why);
    kc_batch_builder_destroy (&builder);
    s_test_apply (cache, chain, 5, batches [5]);
    assert (kc_lookup_refresh (lookup, &why) == 1 && kc_lookup_size (lookup) == 3201);
    for (int i = 0; i < 3000; i += 97) {
        char name [32];
        snprintf (name, sizeof name, "node-%d", i);
        count = 0;
        assert (kc_lookup_name (lookup, name, false, s_test_count, &count) == 1);
    }

    //  The agent rebuilds the cache as a new file: the handle reloads it
    kc_cache_destroy (&cache);
    cache = kc_cache_create (path, root, batches, 1, chain, NULL, &why);
    assert (cache);
    assert (kc_lookup_refresh (lookup, &why) == 1);
    assert (kc_lookup_size (lookup) == 200 && kc_lookup_seq (lookup) == 1);
    memset (key, 7, 32);
    assert (kc_lookup_key (lookup, key, NULL) == KC_VERDICT_TRUSTED);

    kc_lookup_destroy (&lookup);
    kc_lookup_destroy (&lookup);
    kc_cache_destroy (&cache);
    for (int i = 0; i < 6; i++) {
        kc_batch_destroy (&batches [i]);
    }
    kc_root_destroy (&root);
    kc_signer_destroy (&signer);
    char command [300];
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    assert (system (command) == 0);
    if (verbose) {
        printf ("OK\n");
    }
}
