/*  =========================================================================
    kc_cache - the agent's verified cache: bucketed sqlite (WAL).

    Within a group of applies, touched buckets are loaded once into memory,
    changed there, and written back at commit, so a batch of 10,000 records
    costs at most one read and one write per touched bucket.
    =========================================================================
*/
#include "kc_cache.h"
#include "kc_bucket.h"
#include "kc_db.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum {
    S_GET_KEYS, S_PUT_KEYS, S_GET_NAMES, S_PUT_NAMES, S_CHANGE, S_STATE, S_HEAD,
    S_CHANGES, S_PRUNE, S_PUT_ROOT, S_ROOTS, S_PUT_HISTORY, S_HISTORY, S_HISTORY_OLDEST,
    S_PRUNE_HISTORY, S_GRANT, S_PUT_GRANT, S_STATEMENTS
} s_statement_t;

static const char *s_sql [S_STATEMENTS] = {
    "SELECT data FROM key_buckets WHERE bucket = ?",
    "INSERT OR REPLACE INTO key_buckets (bucket, data) VALUES (?, ?)",
    "SELECT data FROM name_buckets WHERE bucket = ?",
    "INSERT OR REPLACE INTO name_buckets (bucket, data) VALUES (?, ?)",
    "INSERT OR IGNORE INTO changes (seq, key) VALUES (?, ?)",
    "UPDATE state SET seq = ?, chain = ?, keys = ?, revoked = ?, changes_from = ? WHERE id = 1",
    "UPDATE state SET head = ? WHERE id = 1",
    "SELECT seq, key FROM changes WHERE seq > ? ORDER BY seq, key",
    "DELETE FROM changes WHERE seq <= ?",
    "INSERT INTO roots (seq, version, data) VALUES (?, ?, ?)",
    "SELECT seq, data FROM roots ORDER BY seq",
    "INSERT OR REPLACE INTO history (seq, accepted, submitter, data) VALUES (?, ?, ?, ?)",
    "SELECT seq, accepted, submitter, data FROM history WHERE seq > ? ORDER BY seq LIMIT ?",
    "SELECT seq, length (data) FROM history ORDER BY seq LIMIT 256",
    "DELETE FROM history WHERE seq <= ?",
    KC_DB_GRANT_SELECT,
    KC_DB_GRANT_UPSERT
};

//  A bucket loaded for a group.
typedef struct {
    uint8_t *data;
    size_t size;
    bool dirty;
} s_blob_t;

typedef struct {
    s_blob_t *slots [KC_BUCKETS];
    uint32_t *touched;                      //  bucket numbers loaded, in order
    size_t touched_count;
} s_buckets_t;

struct _kc_cache_t {
    sqlite3 *db;
    sqlite3_stmt *statements [S_STATEMENTS];
    uint8_t directory [KC_HASH_BYTES];
    uint64_t seq, keys, revoked, changes_from;
    uint8_t chain [KC_HASH_BYTES];
    bool has_head;
    kc_head_t head;
    uint8_t head_keys [KC_ROOT_SERVERS_MAX * KC_KEY_BYTES];    //  as stored
    size_t head_keys_size;
    bool in_group;
    uint64_t saved_seq, saved_keys, saved_revoked;
    uint64_t history_count, history_bytes;  //  what the history table holds
    uint64_t saved_history_count, saved_history_bytes;
    uint8_t saved_chain [KC_HASH_BYTES];
    s_buckets_t key_buckets, name_buckets;
    s_blob_t scratch;                       //  a bucket read outside a group
    bool damaged;                           //  hit SQLITE_CORRUPT / NOTADB
    int wal_frames;                         //  WAL pages not yet checkpointed
    int64_t last_write;                     //  kc_mono_ms of the last commit
};

static sqlite3_stmt *
s_stmt (kc_cache_t *self, s_statement_t which)
{
    sqlite3_stmt *stmt = self->statements [which];
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return stmt;
}

static int
s_fail (kc_cache_t *self, kc_why_t *why, const char *action)
{
    int code = sqlite3_extended_errcode (self->db) & 0xff;
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) {
        self->damaged = true;
    }
    return kc_why (why, "cache: cannot %s: %s", action, sqlite3_errmsg (self->db));
}

//  --- Buckets in memory ------------------------------------------------------

static void
s_blob_set (s_blob_t *blob, const void *data, size_t size)
{
    free (blob->data);
    blob->data = size ? malloc (size) : NULL;
    assert (!size || blob->data);
    if (size) {
        memcpy (blob->data, data, size);
    }
    blob->size = size;
}

//  Reads bucket number b of a table into blob.
static int
s_read_bucket (kc_cache_t *self, s_statement_t which, uint32_t b, s_blob_t *blob, kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, which);
    sqlite3_bind_int (stmt, 1, (int) b);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        s_blob_set (blob, sqlite3_column_blob (stmt, 0), (size_t) sqlite3_column_bytes (stmt, 0));
        rc = SQLITE_DONE;
    }
    else {
        s_blob_set (blob, NULL, 0);
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : s_fail (self, why, "read a bucket");
}

//  The bucket b: the group's copy (loading it once) or a scratch read.
static s_blob_t *
s_bucket (kc_cache_t *self, s_buckets_t *set, s_statement_t which, uint32_t b, kc_why_t *why)
{
    if (!self->in_group) {
        return s_read_bucket (self, which, b, &self->scratch, why) ? NULL : &self->scratch;
    }
    if (!set->slots [b]) {
        s_blob_t *blob = calloc (1, sizeof *blob);
        assert (blob);
        if (s_read_bucket (self, which, b, blob, why)) {
            free (blob);
            return NULL;
        }
        set->slots [b] = blob;
        set->touched [set->touched_count++] = b;
    }
    return set->slots [b];
}

static void
s_buckets_clear (s_buckets_t *set)
{
    for (size_t i = 0; i < set->touched_count; i++) {
        s_blob_t *blob = set->slots [set->touched [i]];
        free (blob->data);
        free (blob);
        set->slots [set->touched [i]] = NULL;
    }
    set->touched_count = 0;
}

static int
s_buckets_write (kc_cache_t *self, s_buckets_t *set, s_statement_t which, kc_why_t *why)
{
    for (size_t i = 0; i < set->touched_count; i++) {
        s_blob_t *blob = set->slots [set->touched [i]];
        if (blob->dirty) {
            sqlite3_stmt *stmt = s_stmt (self, which);
            sqlite3_bind_int (stmt, 1, (int) set->touched [i]);
            sqlite3_bind_blob (stmt, 2, blob->data ? blob->data : (const uint8_t *) "",
                               (int) blob->size, SQLITE_STATIC);
            int rc = sqlite3_step (stmt);
            sqlite3_reset (stmt);
            if (rc != SQLITE_DONE) {
                return s_fail (self, why, "write a bucket");
            }
        }
    }
    return 0;
}

//  Replaces a blob's bytes with a writer's.
static void
s_blob_take (s_blob_t *blob, kc_writer_t *writer)
{
    free (blob->data);
    blob->data = kc_writer_take (writer, &blob->size);
    blob->dirty = true;
}

//  --- Open, state -------------------------------------------------------------

static int
s_load_state (kc_cache_t *self, kc_why_t *why)
{
    sqlite3_stmt *stmt = kc_db_prepare (self->db,
        "SELECT directory, seq, chain, head, keys, revoked, changes_from, head_keys FROM state WHERE id = 1", why);
    if (!stmt) {
        return -1;
    }
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_bytes (stmt, 0) != KC_HASH_BYTES
        ||  memcmp (sqlite3_column_blob (stmt, 0), self->directory, KC_HASH_BYTES)) {
            sqlite3_finalize (stmt);
            return kc_why (why, "cache belongs to another directory than the root");
        }
        self->seq = (uint64_t) sqlite3_column_int64 (stmt, 1);
        memcpy (self->chain, sqlite3_column_blob (stmt, 2), KC_HASH_BYTES);
        kc_why_t ignored;
        self->has_head = sqlite3_column_bytes (stmt, 3) == KC_HEAD_BYTES
            && kc_head_decode (sqlite3_column_blob (stmt, 3), KC_HEAD_BYTES, &self->head,
                               &ignored) == 0;
        self->keys = (uint64_t) sqlite3_column_int64 (stmt, 4);
        self->revoked = (uint64_t) sqlite3_column_int64 (stmt, 5);
        self->changes_from = (uint64_t) sqlite3_column_int64 (stmt, 6);
        size_t keys_size = (size_t) sqlite3_column_bytes (stmt, 7);
        if (keys_size && keys_size <= sizeof self->head_keys && keys_size % KC_KEY_BYTES == 0) {
            memcpy (self->head_keys, sqlite3_column_blob (stmt, 7), keys_size);
            self->head_keys_size = keys_size;
        }
        sqlite3_finalize (stmt);
        return 0;
    }
    sqlite3_finalize (stmt);
    if (rc != SQLITE_DONE) {
        return s_fail (self, why, "read its state");
    }
    kc_chain_genesis (self->directory, self->chain);
    stmt = kc_db_prepare (self->db, "INSERT INTO state (id, directory, seq, chain, keys, revoked, "
                          "changes_from) VALUES (1, ?, 0, ?, 0, 0, 0)", why);
    if (!stmt) {
        return -1;
    }
    sqlite3_bind_blob (stmt, 1, self->directory, KC_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob (stmt, 2, self->chain, KC_HASH_BYTES, SQLITE_STATIC);
    rc = sqlite3_step (stmt) == SQLITE_DONE ? 0 : s_fail (self, why, "create its state");
    sqlite3_finalize (stmt);
    return rc;
}

static int
s_load_history_size (kc_cache_t *self, kc_why_t *why)
{
    sqlite3_stmt *stmt = kc_db_prepare (self->db,
        "SELECT count (*), coalesce (sum (length (data)), 0) FROM history", why);
    if (!stmt) {
        return -1;
    }
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        self->history_count = (uint64_t) sqlite3_column_int64 (stmt, 0);
        self->history_bytes = (uint64_t) sqlite3_column_int64 (stmt, 1);
    }
    sqlite3_finalize (stmt);
    return rc == SQLITE_ROW ? 0 : s_fail (self, why, "read its history");
}

static int
s_on_wal (void *arg, sqlite3 *db, const char *name, int frames)
{
    (void) db;
    (void) name;
    kc_cache_t *self = arg;
    self->wal_frames = frames;
    self->last_write = kc_mono_ms ();
    return SQLITE_OK;
}

static kc_cache_t *
s_open (const char *path, const kc_root_t *root, kc_db_mode_t mode, bool *corrupt, kc_why_t *why)
{
    *corrupt = false;
    kc_cache_t *self = calloc (1, sizeof *self);
    assert (self);
    self->key_buckets.touched = malloc (KC_BUCKETS * sizeof (uint32_t));
    self->name_buckets.touched = malloc (KC_BUCKETS * sizeof (uint32_t));
    assert (self->key_buckets.touched && self->name_buckets.touched);
    memcpy (self->directory, kc_root_directory (root), KC_HASH_BYTES);
    self->db = kc_db_open (path, &kc_schema_agent, mode, "NORMAL", why);
    if (!self->db) {
        *corrupt = kc_db_last_open_corrupt ();
        goto fail;
    }
    if (mode == KC_DB_READWRITE) {
        sqlite3_wal_hook (self->db, s_on_wal, self);    //  replaces autocheckpoint
    }
    for (int i = 0; i < S_STATEMENTS; i++) {
        self->statements [i] = kc_db_prepare (self->db, s_sql [i], why);
        if (!self->statements [i]) {
            *corrupt = true;
            goto fail;
        }
    }
    if (s_load_state (self, why)) {
        *corrupt = true;
        goto fail;
    }
    if (mode == KC_DB_READWRITE && s_load_history_size (self, why)) {
        *corrupt = true;
        goto fail;
    }
    return self;
fail:
    kc_cache_destroy (&self);
    return NULL;
}

kc_cache_t *
kc_cache_open (const char *path, const kc_root_t *root, bool *corrupt, kc_why_t *why)
{
    return s_open (path, root, KC_DB_READWRITE, corrupt, why);
}

void
kc_cache_destroy (kc_cache_t **self_p)
{
    if (self_p && *self_p) {
        kc_cache_t *self = *self_p;
        kc_cache_rollback (self);
        for (int i = 0; i < S_STATEMENTS; i++) {
            sqlite3_finalize (self->statements [i]);
        }
        kc_db_close (&self->db);
        free (self->key_buckets.touched);
        free (self->name_buckets.touched);
        free (self->scratch.data);
        free (self);
        *self_p = NULL;
    }
}

bool
kc_cache_damaged (const kc_cache_t *self)
{
    return self->damaged;
}

uint64_t
kc_cache_seq (const kc_cache_t *self)
{
    return self->seq;
}

const uint8_t *
kc_cache_chain (const kc_cache_t *self)
{
    return self->chain;
}

uint64_t
kc_cache_key_count (const kc_cache_t *self)
{
    return self->keys;
}

uint64_t
kc_cache_revoked_count (const kc_cache_t *self)
{
    return self->revoked;
}

int
kc_cache_head (const kc_cache_t *self, kc_head_t *head)
{
    if (!self->has_head) {
        return -1;
    }
    *head = self->head;
    return 0;
}

int
kc_cache_set_head (kc_cache_t *self, const kc_head_t *head, kc_why_t *why)
{
    uint8_t bytes [KC_HEAD_BYTES];
    kc_head_encode (head, bytes);
    sqlite3_stmt *stmt = s_stmt (self, S_HEAD);
    sqlite3_bind_blob (stmt, 1, bytes, KC_HEAD_BYTES, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        return s_fail (self, why, "store a head");
    }
    self->head = *head;
    self->has_head = true;
    return 0;
}

int
kc_cache_set_head_keys (kc_cache_t *self, const kc_root_t *root, kc_why_t *why)
{
    uint8_t keys [KC_ROOT_SERVERS_MAX * KC_KEY_BYTES];
    size_t count = kc_root_server_count (root);
    for (size_t i = 0; i < count; i++) {
        memcpy (keys + i * KC_KEY_BYTES, kc_root_server (root, i)->head_key, KC_KEY_BYTES);
    }
    size_t size = count * KC_KEY_BYTES;
    if (size == self->head_keys_size && memcmp (keys, self->head_keys, size) == 0) {
        return 0;                           //  no disk write unless they changed
    }
    sqlite3_stmt *stmt = kc_db_prepare (self->db, "UPDATE state SET head_keys = ? WHERE id = 1", why);
    if (!stmt) {
        return -1;
    }
    sqlite3_bind_blob (stmt, 1, keys, (int) size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_finalize (stmt);
    if (rc != SQLITE_DONE) {
        return s_fail (self, why, "store the head keys");
    }
    memcpy (self->head_keys, keys, size);
    self->head_keys_size = size;
    return 0;
}

//  --- Lookups -------------------------------------------------------------------

static void
s_fill_entry (const kc_bucket_entry_t *found, kc_cache_entry_t *entry)
{
    const kc_record_t *record = &found->record;
    entry->status = record->status;
    entry->version = record->version;
    entry->not_before = record->not_before;
    entry->not_after = record->not_after;
    entry->seq = found->seq;
    kc_record_name (record, entry->name);
    kc_record_tags (record, ',', entry->tags, sizeof entry->tags);
    memcpy (entry->reason, record->reason, record->reason_size);
    entry->reason [record->reason_size] = 0;
}

int
kc_cache_lookup (kc_cache_t *self, const uint8_t key [static KC_KEY_BYTES],
                 kc_cache_entry_t *entry, kc_why_t *why)
{
    memset (entry, 0, sizeof *entry);
    memcpy (entry->key, key, KC_KEY_BYTES);
    s_blob_t *blob = s_bucket (self, &self->key_buckets, S_GET_KEYS, kc_bucket_of_key (key), why);
    if (!blob) {
        return -1;
    }
    kc_bucket_entry_t found;
    int rc = kc_bucket_find (blob->data, blob->size, key, &found, why);
    if (rc < 0) {
        self->damaged = true;
        return kc_why_prefix (why, "cache: damaged bucket %u", kc_bucket_of_key (key));
    }
    if (rc == 1) {
        s_fill_entry (&found, entry);
    }
    return 0;
}

static bool
s_has_prefix (const uint8_t *key, const uint8_t *prefix, size_t nibbles)
{
    if (memcmp (key, prefix, nibbles / 2)) {
        return false;
    }
    return nibbles % 2 == 0 || (key [nibbles / 2] >> 4) == (prefix [nibbles / 2] >> 4);
}

int
kc_cache_prefix (kc_cache_t *self, const uint8_t *prefix, size_t nibbles, kc_cache_entry_fn *fn, void *arg,
                 kc_why_t *why)
{
    if (nibbles < KC_CACHE_PREFIX_MIN || nibbles > 2 * KC_KEY_BYTES) {
        return kc_why (why, "a key prefix is %d to %d hex digits", KC_CACHE_PREFIX_MIN, 2 * KC_KEY_BYTES);
    }
    s_blob_t *blob = s_bucket (self, &self->key_buckets, S_GET_KEYS, kc_bucket_of_key (prefix), why);
    if (!blob) {
        return -1;
    }
    //  The matching keys first: lookups reuse the scratch blob
    uint8_t (*keys) [KC_KEY_BYTES] = malloc (blob->size + KC_KEY_BYTES);
    assert (keys);
    size_t offset = 0, count = 0;
    kc_bucket_entry_t entry;
    int rc;
    while ((rc = kc_bucket_next (blob->data, blob->size, &offset, &entry, why)) == 1) {
        if (s_has_prefix (entry.record.key, prefix, nibbles)) {
            memcpy (keys [count++], entry.record.key, KC_KEY_BYTES);
        }
    }
    if (rc < 0) {
        self->damaged = true;
        kc_why_prefix (why, "cache: damaged bucket %u", kc_bucket_of_key (prefix));
    }
    bool more = true;
    for (size_t i = 0; rc == 0 && more && i < count; i++) {
        kc_cache_entry_t found;
        if (kc_cache_lookup (self, keys [i], &found, why)) {
            rc = -1;
        }
        else {
            more = fn (&found, arg) == 0;
        }
    }
    free (keys);
    return rc < 0 ? -1 : (int) count;
}

int
kc_cache_by_name (kc_cache_t *self, const char *name, kc_cache_entry_fn *fn, void *arg,
                  kc_why_t *why)
{
    size_t size = strlen (name);
    s_blob_t *blob = s_bucket (self, &self->name_buckets, S_GET_NAMES,
                               kc_bucket_of_name (name, size), why);
    if (!blob) {
        return -1;
    }
    //  Copy the matching keys first: lookups reuse the scratch blob
    uint8_t (*keys) [KC_KEY_BYTES] = malloc (blob->size + 1);
    assert (keys);
    size_t offset = 0, count = 0, entry_size;
    const char *entry_name;
    const uint8_t *key;
    int rc;
    while ((rc = kc_names_next (blob->data, blob->size, &offset, &entry_name, &entry_size,
                                &key, why)) == 1) {
        if (entry_size == size && memcmp (entry_name, name, size) == 0) {
            memcpy (keys [count++], key, KC_KEY_BYTES);
        }
    }
    int given = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        kc_cache_entry_t entry;
        if (kc_cache_lookup (self, keys [i], &entry, why)) {
            rc = -1;
        }
        else
        if (entry.status && KC_STREQ (entry.name, name)) {
            given++;
            if (fn (&entry, arg)) {
                break;
            }
        }
    }
    free (keys);
    return rc < 0 ? -1 : given;
}

int
kc_cache_changes (kc_cache_t *self, uint64_t after, kc_cache_change_fn *fn, void *arg,
                  kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, S_CHANGES);
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) after);
    int count = 0, rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        count++;
        if (fn ((uint64_t) sqlite3_column_int64 (stmt, 0), sqlite3_column_blob (stmt, 1), arg)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? count : s_fail (self, why, "read changes");
}

//  --- Incremental applies ----------------------------------------------------

int
kc_cache_begin (kc_cache_t *self, kc_why_t *why)
{
    assert (!self->in_group);
    if (kc_db_exec (self->db, "BEGIN IMMEDIATE", why)) {
        return kc_why_prefix (why, "cache: cannot begin");
    }
    self->in_group = true;
    self->saved_seq = self->seq;
    self->saved_keys = self->keys;
    self->saved_revoked = self->revoked;
    self->saved_history_count = self->history_count;
    self->saved_history_bytes = self->history_bytes;
    memcpy (self->saved_chain, self->chain, KC_HASH_BYTES);
    return 0;
}

int
kc_cache_check (kc_cache_t *self, const kc_batch_t *batch, kc_why_t *why)
{
    for (size_t i = 0; i < kc_batch_count (batch); i++) {
        const kc_record_t *record = kc_batch_record (batch, i);
        kc_cache_entry_t stored;
        if (kc_cache_lookup (self, record->key, &stored, why)
        ||  kc_record_check_successor (record, stored.status, stored.version, why)) {
            return -1;
        }
    }
    return 0;
}

//  Moves (name, key) from the old name to the new one in the name buckets.
static int
s_rename (kc_cache_t *self, const kc_cache_entry_t *old, const kc_record_t *record, kc_why_t *why)
{
    bool had = old->status && old->name [0];
    size_t old_size = strlen (old->name);
    if (had && old_size == record->name_size && memcmp (old->name, record->name, old_size) == 0) {
        return 0;
    }
    kc_writer_t writer;
    kc_writer_init (&writer);
    if (had) {
        s_blob_t *blob = s_bucket (self, &self->name_buckets, S_GET_NAMES,
                                   kc_bucket_of_name (old->name, old_size), why);
        if (!blob || kc_names_update (&writer, blob->data, blob->size, old->name, old_size,
                                      record->key, false, why)) {
            kc_writer_free (&writer);
            return -1;
        }
        s_blob_take (blob, &writer);
    }
    if (record->name_size) {
        s_blob_t *blob = s_bucket (self, &self->name_buckets, S_GET_NAMES,
                                   kc_bucket_of_name (record->name, record->name_size), why);
        if (!blob || kc_names_update (&writer, blob->data, blob->size, record->name,
                                      record->name_size, record->key, true, why)) {
            kc_writer_free (&writer);
            return -1;
        }
        s_blob_take (blob, &writer);
    }
    return 0;
}

static int
s_apply_record (kc_cache_t *self, uint64_t seq, const kc_record_t *record, kc_why_t *why)
{
    kc_cache_entry_t stored;
    if (kc_cache_lookup (self, record->key, &stored, why)
    ||  s_rename (self, &stored, record, why)) {
        return -1;
    }
    s_blob_t *blob = s_bucket (self, &self->key_buckets, S_GET_KEYS,
                               kc_bucket_of_key (record->key), why);
    kc_writer_t writer;
    kc_writer_init (&writer);
    if (!blob || kc_bucket_put (&writer, blob->data, blob->size, seq, record, why)) {
        kc_writer_free (&writer);
        return -1;
    }
    s_blob_take (blob, &writer);
    sqlite3_stmt *stmt = s_stmt (self, S_CHANGE);
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) seq);
    sqlite3_bind_blob (stmt, 2, record->key, KC_KEY_BYTES, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        return s_fail (self, why, "record a change");
    }
    self->keys += stored.status == 0;
    self->revoked += record->status == KC_STATUS_REVOKED && stored.status != KC_STATUS_REVOKED;
    return 0;
}

int
kc_cache_apply (kc_cache_t *self, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                const kc_batch_t *batch, kc_why_t *why)
{
    assert (self->in_group);
    if (seq != self->seq + 1) {
        return kc_why (why, "cache: batch %llu does not follow %llu",
                       (unsigned long long) seq, (unsigned long long) self->seq);
    }
    for (size_t i = 0; i < kc_batch_count (batch); i++) {
        if (s_apply_record (self, seq, kc_batch_record (batch, i), why)) {
            return -1;
        }
    }
    self->seq = seq;
    memcpy (self->chain, chain, KC_HASH_BYTES);
    return 0;
}

static int
s_put_root (kc_cache_t *self, uint64_t seq, const kc_root_t *root, kc_why_t *why)
{
    size_t size;
    const uint8_t *data = kc_root_data (root, &size);
    sqlite3_stmt *stmt = s_stmt (self, S_PUT_ROOT);
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) seq);
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) kc_root_version (root));
    sqlite3_bind_blob (stmt, 3, data, (int) size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : s_fail (self, why, "store a root change");
}

int
kc_cache_apply_root (kc_cache_t *self, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                     const kc_root_t *root, kc_why_t *why)
{
    assert (self->in_group);
    if (seq != self->seq + 1) {
        return kc_why (why, "cache: root change %llu does not follow %llu",
                       (unsigned long long) seq, (unsigned long long) self->seq);
    }
    if (s_put_root (self, seq, root, why)) {
        return -1;
    }
    self->seq = seq;
    memcpy (self->chain, chain, KC_HASH_BYTES);
    return 0;
}

int
kc_cache_grant (kc_cache_t *self, const uint8_t key [static KC_KEY_BYTES], kc_grant_t **grant, uint64_t *used,
                bool *revoked, kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, S_GRANT);
    sqlite3_bind_blob (stmt, 1, key, KC_KEY_BYTES, SQLITE_STATIC);
    return kc_db_read_grant (stmt, grant, used, revoked, why);
}

int
kc_cache_put_grant (kc_cache_t *self, const kc_grant_t *grant, uint64_t seq, uint64_t used, bool revoked,
                    kc_why_t *why)
{
    assert (self->in_group);
    return kc_db_put_grant (s_stmt (self, S_PUT_GRANT), grant, seq, used, revoked, why);
}

int
kc_cache_advance (kc_cache_t *self, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES], kc_why_t *why)
{
    assert (self->in_group);
    if (seq != self->seq + 1) {
        return kc_why (why, "cache: entry %llu does not follow %llu", (unsigned long long) seq,
                       (unsigned long long) self->seq);
    }
    self->seq = seq;
    memcpy (self->chain, chain, KC_HASH_BYTES);
    return 0;
}

int
kc_cache_roots (kc_cache_t *self, kc_cache_root_fn *fn, void *arg, kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, S_ROOTS);
    int count = 0, rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (fn ((uint64_t) sqlite3_column_int64 (stmt, 0), sqlite3_column_blob (stmt, 1),
                (size_t) sqlite3_column_bytes (stmt, 1), arg)) {
            break;
        }
        count++;
    }
    bool failed = rc != SQLITE_DONE && rc != SQLITE_ROW;
    sqlite3_reset (stmt);
    return failed ? s_fail (self, why, "read its root changes") : count;
}

kc_root_t *
kc_cache_current_root (kc_cache_t *self, const kc_root_t *pinned, kc_root_visit_fn *fn, void *arg,
                       kc_why_t *why)
{
    return kc_db_follow_roots (s_stmt (self, S_ROOTS), pinned, "cache", fn, arg, why);
}

static int
s_write_state (kc_cache_t *self, kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, S_STATE);
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) self->seq);
    sqlite3_bind_blob (stmt, 2, self->chain, KC_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 3, (sqlite3_int64) self->keys);
    sqlite3_bind_int64 (stmt, 4, (sqlite3_int64) self->revoked);
    sqlite3_bind_int64 (stmt, 5, (sqlite3_int64) self->changes_from);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : s_fail (self, why, "update its state");
}

//  Keeps the change feed to the last KC_CACHE_CHANGES_KEEP batches.
static int
s_prune_changes (kc_cache_t *self, kc_why_t *why)
{
    if (self->seq <= self->changes_from + 2 * KC_CACHE_CHANGES_KEEP) {
        return 0;
    }
    uint64_t below = self->seq - KC_CACHE_CHANGES_KEEP;
    sqlite3_stmt *stmt = s_stmt (self, S_PRUNE);
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) below);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        return s_fail (self, why, "prune changes");
    }
    self->changes_from = below;
    return 0;
}

//  Keeps the history within KC_CACHE_HISTORY_ENTRIES and _BYTES: deletes
//  the oldest entries, a few hundred at a time when many are over.
static int
s_prune_history (kc_cache_t *self, kc_why_t *why)
{
    while (self->history_count > KC_CACHE_HISTORY_ENTRIES || self->history_bytes > KC_CACHE_HISTORY_BYTES) {
        sqlite3_stmt *stmt = s_stmt (self, S_HISTORY_OLDEST);
        uint64_t cut = 0, count = self->history_count, bytes = self->history_bytes;
        int rc;
        while ((count > KC_CACHE_HISTORY_ENTRIES || bytes > KC_CACHE_HISTORY_BYTES)
           &&  (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
            cut = (uint64_t) sqlite3_column_int64 (stmt, 0);
            bytes -= (uint64_t) sqlite3_column_int64 (stmt, 1);
            count--;
        }
        sqlite3_reset (stmt);
        if (cut == 0) {
            return s_fail (self, why, "prune its history");
        }
        stmt = s_stmt (self, S_PRUNE_HISTORY);
        sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) cut);
        rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE) {
            return s_fail (self, why, "prune its history");
        }
        self->history_count = count;
        self->history_bytes = bytes;
    }
    return 0;
}

int
kc_cache_add_history (kc_cache_t *self, uint64_t seq, uint64_t accepted, const uint8_t *submitter,
                      const uint8_t *data, size_t size, kc_why_t *why)
{
    assert (self->in_group);
    sqlite3_stmt *stmt = s_stmt (self, S_PUT_HISTORY);
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) seq);
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) (accepted <= INT64_MAX ? accepted : 0));
    if (submitter) {
        sqlite3_bind_blob (stmt, 3, submitter, KC_KEY_BYTES, SQLITE_STATIC);
    }
    else {
        sqlite3_bind_null (stmt, 3);
    }
    sqlite3_bind_blob (stmt, 4, data, (int) size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        return s_fail (self, why, "add to its history");
    }
    self->history_count++;
    self->history_bytes += size;
    return 0;
}

int
kc_cache_history (kc_cache_t *self, uint64_t after, size_t max_count, size_t max_bytes,
                  kc_cache_history_fn *fn, void *arg, kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, S_HISTORY);
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) (after <= INT64_MAX ? after : INT64_MAX));
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) max_count);
    int count = 0, rc = SQLITE_DONE;
    size_t bytes = 0;
    while ((count == 0 || bytes < max_bytes) && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        size_t size = (size_t) sqlite3_column_bytes (stmt, 3);
        if (count && bytes + size > max_bytes) {
            break;
        }
        const uint8_t *submitter = sqlite3_column_bytes (stmt, 2) == KC_KEY_BYTES
                                 ? sqlite3_column_blob (stmt, 2) : NULL;
        if (fn ((uint64_t) sqlite3_column_int64 (stmt, 0), (uint64_t) sqlite3_column_int64 (stmt, 1),
                submitter, sqlite3_column_blob (stmt, 3), size, arg)) {
            break;
        }
        bytes += size;
        count++;
    }
    bool failed = rc != SQLITE_DONE && rc != SQLITE_ROW;
    sqlite3_reset (stmt);
    return failed ? s_fail (self, why, "read its history") : count;
}

int
kc_cache_commit (kc_cache_t *self, kc_why_t *why)
{
    assert (self->in_group);
    if (s_buckets_write (self, &self->key_buckets, S_PUT_KEYS, why)
    ||  s_buckets_write (self, &self->name_buckets, S_PUT_NAMES, why)
    ||  s_prune_changes (self, why)
    ||  s_prune_history (self, why)
    ||  s_write_state (self, why)
    ||  kc_db_exec (self->db, "COMMIT", why)) {
        kc_why_prefix (why, "cache: cannot commit");
        kc_cache_rollback (self);
        return -1;
    }
    s_buckets_clear (&self->key_buckets);
    s_buckets_clear (&self->name_buckets);
    self->in_group = false;
    return 0;
}

int
kc_cache_checkpoint (kc_cache_t *self, kc_why_t *why)
{
    if (self->in_group || self->wal_frames == 0
    ||  (kc_mono_ms () - self->last_write < KC_CACHE_IDLE_MS && self->wal_frames < KC_CACHE_WAL_FRAMES_MAX)) {
        return 0;
    }
    self->wal_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2 (self->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        return s_fail (self, why, "checkpoint its WAL");
    }
    return 1;
}

void
kc_cache_rollback (kc_cache_t *self)
{
    if (self->in_group) {
        if (!sqlite3_get_autocommit (self->db)) {
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        }
        s_buckets_clear (&self->key_buckets);
        s_buckets_clear (&self->name_buckets);
        self->seq = self->saved_seq;
        self->keys = self->saved_keys;
        self->revoked = self->saved_revoked;
        self->history_count = self->saved_history_count;
        self->history_bytes = self->saved_history_bytes;
        memcpy (self->chain, self->saved_chain, KC_HASH_BYTES);
        self->in_group = false;
    }
}

int
kc_cache_check_file (const char *path, kc_why_t *why)
{
    sqlite3 *db = kc_db_open (path, &kc_schema_agent, KC_DB_READONLY, "NORMAL", why);
    if (!db) {
        return -1;
    }
    int rc = -1;
    sqlite3_stmt *stmt = kc_db_prepare (db, "PRAGMA quick_check", why);
    if (stmt && sqlite3_step (stmt) == SQLITE_ROW) {
        const char *verdict = (const char *) sqlite3_column_text (stmt, 0);
        if (verdict && KC_STREQ (verdict, "ok")) {
            rc = 0;
        }
        else {
            kc_why (why, "cache '%s' is damaged: %.120s", path, verdict ? verdict : "?");
        }
    }
    else
    if (stmt) {
        kc_why (why, "cache '%s' is damaged: %s", path, sqlite3_errmsg (db));
    }
    sqlite3_finalize (stmt);
    kc_db_close (&db);
    return rc;
}

//  --- Building a whole cache (cold sync) -------------------------------------

#define BUILD_PREFETCH  8               //  records fetched this many entries ahead
#define WRITEBACK_BUCKETS 4096          //  a build starts writeback every so many buckets

//  The name buckets of a build, laid out before the keys are written: each
//  bucket's bytes at their final place, filled as the key pass reads each
//  record (once), then written as they stand.
typedef struct {
    uint8_t *data;
    size_t size;
    size_t *starts;                     //  KC_BUCKETS + 1: bucket b is starts [b]..starts [b + 1]
    size_t *fill;                       //  KC_BUCKETS: where bucket b's next pair goes
} s_names_t;

static void
s_names_free (s_names_t *names)
{
    kc_big_free (names->data, names->size);
    free (names->starts);
    free (names->fill);
}

static int
s_names_plan (s_names_t *names, const kc_keyindex_entry_t *entries, size_t count, kc_why_t *why)
{
    memset (names, 0, sizeof *names);
    names->starts = calloc (KC_BUCKETS + 1, sizeof (size_t));
    names->fill = malloc (KC_BUCKETS * sizeof (size_t));
    if (!names->starts || !names->fill) {
        return kc_why (why, "out of memory planning the name buckets");
    }
    for (size_t i = 0; i < count; i++) {
        if (entries [i].name_size) {
            names->starts [entries [i].name_bucket + 1] += 1 + entries [i].name_size + KC_KEY_BYTES;
        }
    }
    for (uint32_t b = 0; b < KC_BUCKETS; b++) {
        names->starts [b + 1] += names->starts [b];
    }
    memcpy (names->fill, names->starts, KC_BUCKETS * sizeof (size_t));
    names->size = names->starts [KC_BUCKETS];
    names->data = kc_big_alloc (names->size);
    if (!names->data) {
        return kc_why (why, "out of memory for %zu bytes of names", names->size);
    }
    return 0;
}

//  The key pass runs on two threads: a gatherer copies each bucket's
//  records (random reads across the received batches) and each name pair
//  into place, a group of GROUP_BUCKETS buckets at a time, while the
//  caller's thread hands the previous groups to sqlite (copies into pages,
//  writes to the file). Each does about half of the work.
#define GROUP_BUCKETS   256
#define GROUP_SLOTS     4

typedef struct {
    kc_writer_t data;                   //  the group's buckets back to back
    uint32_t ends [GROUP_BUCKETS];      //  where each bucket's bytes end in data
    bool ready;                         //  filled, not yet written
} s_group_t;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    s_group_t groups [GROUP_SLOTS];
    const kc_keyindex_entry_t *entries;
    size_t count;
    s_names_t *names;
    bool stop;                          //  the writer failed: the gatherer quits
} s_gather_t;

static void
s_gather_group (s_gather_t *gather, s_group_t *group, uint32_t first, size_t *i)
{
    const kc_keyindex_entry_t *entries = gather->entries;
    s_names_t *names = gather->names;
    group->data.size = 0;
    for (uint32_t b = 0; b < GROUP_BUCKETS; b++) {
        for (; *i < gather->count && entries [*i].tag >> 48 == first + b; (*i)++) {
            if (*i + BUILD_PREFETCH < gather->count) {
                __builtin_prefetch (entries [*i + BUILD_PREFETCH].encoded);
            }
            const kc_keyindex_entry_t *entry = &entries [*i];
            kc_bucket_write_encoded (&group->data, entry->seq, entry->encoded, entry->size);
            if (entry->name_size) {
                uint8_t *pair = names->data + names->fill [entry->name_bucket];
                pair [0] = entry->name_size;
                memcpy (pair + 1, entry->encoded + KC_RECORD_AT_NAME, entry->name_size);
                memcpy (pair + 1 + entry->name_size, entry->encoded + KC_RECORD_AT_KEY, KC_KEY_BYTES);
                names->fill [entry->name_bucket] += 1 + entry->name_size + KC_KEY_BYTES;
            }
        }
        group->ends [b] = (uint32_t) group->data.size;
    }
}

static void *
s_gatherer (void *arg)
{
    s_gather_t *gather = arg;
    size_t i = 0;
    for (uint32_t g = 0; g < KC_BUCKETS / GROUP_BUCKETS; g++) {
        s_group_t *group = &gather->groups [g % GROUP_SLOTS];
        pthread_mutex_lock (&gather->lock);
        while (group->ready && !gather->stop) {
            pthread_cond_wait (&gather->changed, &gather->lock);
        }
        bool stop = gather->stop;
        pthread_mutex_unlock (&gather->lock);
        if (stop) {
            break;
        }
        s_gather_group (gather, group, g * GROUP_BUCKETS, &i);
        pthread_mutex_lock (&gather->lock);
        group->ready = true;
        pthread_cond_broadcast (&gather->changed);
        pthread_mutex_unlock (&gather->lock);
    }
    return NULL;
}

//  Writes one gathered group's non-empty buckets.
static int
s_write_group (kc_cache_t *self, const s_group_t *group, uint32_t first, int file, kc_why_t *why)
{
    //  What sqlite wrote so far starts going to the disk now, while the
    //  build goes on: the fsync at the end has little left to wait for
    if (file >= 0 && first % WRITEBACK_BUCKETS == 0) {
        sync_file_range (file, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
    uint32_t start = 0;
    for (uint32_t b = 0; b < GROUP_BUCKETS; start = group->ends [b++]) {
        if (group->ends [b] == start) {
            continue;
        }
        sqlite3_stmt *stmt = s_stmt (self, S_PUT_KEYS);
        sqlite3_bind_int (stmt, 1, (int) (first + b));
        sqlite3_bind_blob (stmt, 2, group->data.data + start, (int) (group->ends [b] - start), SQLITE_STATIC);
        int rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE) {
            return s_fail (self, why, "write a bucket");
        }
    }
    return 0;
}

//  Writes the key buckets from the sorted entries; puts each named record's
//  (name, key) pair in its name bucket (kc_bucket.h's layout).
static int
s_build_keys (kc_cache_t *self, const kc_keyindex_entry_t *entries, size_t count,
              s_names_t *names, int file, kc_why_t *why)
{
    s_gather_t *gather = calloc (1, sizeof *gather);
    if (!gather) {
        return kc_why (why, "out of memory building the cache");
    }
    pthread_mutex_init (&gather->lock, NULL);
    pthread_cond_init (&gather->changed, NULL);
    for (int k = 0; k < GROUP_SLOTS; k++) {
        kc_writer_init (&gather->groups [k].data);
    }
    gather->entries = entries;
    gather->count = count;
    gather->names = names;
    pthread_t thread;
    bool threaded = pthread_create (&thread, NULL, s_gatherer, gather) == 0;
    int rc = 0;
    size_t i = 0;
    for (uint32_t g = 0; rc == 0 && g < KC_BUCKETS / GROUP_BUCKETS; g++) {
        s_group_t *group = &gather->groups [g % GROUP_SLOTS];
        if (threaded) {
            pthread_mutex_lock (&gather->lock);
            while (!group->ready) {
                pthread_cond_wait (&gather->changed, &gather->lock);
            }
            pthread_mutex_unlock (&gather->lock);
        }
        else {
            s_gather_group (gather, group, g * GROUP_BUCKETS, &i);      //  no thread: in turn
        }
        rc = s_write_group (self, group, g * GROUP_BUCKETS, file, why);
        pthread_mutex_lock (&gather->lock);
        group->ready = false;
        gather->stop = rc != 0;
        pthread_cond_broadcast (&gather->changed);
        pthread_mutex_unlock (&gather->lock);
    }
    if (threaded) {
        pthread_join (thread, NULL);
    }
    for (int k = 0; k < GROUP_SLOTS; k++) {
        kc_writer_free (&gather->groups [k].data);
    }
    pthread_cond_destroy (&gather->changed);
    pthread_mutex_destroy (&gather->lock);
    free (gather);
    return rc;
}

static int
s_build_names (kc_cache_t *self, const s_names_t *names, int file, kc_why_t *why)
{
    for (uint32_t b = 0; b < KC_BUCKETS; b++) {
        if (file >= 0 && b % WRITEBACK_BUCKETS == 0) {
            sync_file_range (file, 0, 0, SYNC_FILE_RANGE_WRITE);
        }
        size_t size = names->starts [b + 1] - names->starts [b];
        if (size == 0) {
            continue;
        }
        sqlite3_stmt *stmt = s_stmt (self, S_PUT_NAMES);
        sqlite3_bind_int (stmt, 1, (int) b);
        sqlite3_bind_blob (stmt, 2, names->data + names->starts [b], (int) size, SQLITE_STATIC);
        int rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE) {
            return s_fail (self, why, "write a name bucket");
        }
    }
    return 0;
}

static void
s_remove_files (const char *path)
{
    static const char *suffixes [] = { "", "-wal", "-shm", "-journal", NULL };
    char name [4200];
    for (int i = 0; suffixes [i]; i++) {
        snprintf (name, sizeof name, "%s%s", path, suffixes [i]);
        unlink (name);
    }
}

static int
s_fsync_path (const char *path, int flags)
{
    int fd = open (path, flags | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync (fd);
    close (fd);
    return rc;
}

//  Fills a new cache file from the index; leaves it closed, in WAL mode.
static int
s_build_file (const char *temp, const kc_root_t *root, kc_keyindex_t *index, uint64_t seq,
              const uint8_t chain [static KC_HASH_BYTES], const kc_cache_roots_t *roots,
              const kc_head_t *head, kc_why_t *why)
{
    size_t total;
    const kc_keyindex_entry_t *entries = kc_keyindex_sort (index, &total);
    if (!entries) {
        return kc_why (why, "out of memory sorting %zu keys", kc_keyindex_size (index));
    }
    bool corrupt;
    kc_cache_t *self = s_open (temp, root, KC_DB_BUILD, &corrupt, why);
    if (!self) {
        return -1;
    }
    s_names_t names;
    int rc = s_names_plan (&names, entries, total, why);
    if (rc == 0) {
        rc = kc_db_exec (self->db, "BEGIN", why);
    }
    int file = open (temp, O_RDONLY | O_CLOEXEC);
    if (rc == 0) {
        rc = s_build_keys (self, entries, total, &names, file, why);
    }

    if (rc == 0) {
        rc = s_build_names (self, &names, file, why);
    }
    if (file >= 0) {
        close (file);
    }
    s_names_free (&names);
    for (size_t i = 0; rc == 0 && roots && i < roots->count; i++) {
        rc = s_put_root (self, roots->seqs [i], roots->roots [i], why);
    }
    if (rc == 0) {
        self->keys = total;
        self->revoked = kc_keyindex_revoked (index);
        self->seq = seq;
        self->changes_from = seq;
        memcpy (self->chain, chain, KC_HASH_BYTES);
        rc = s_write_state (self, why);
    }
    if (rc == 0 && head) {
        rc = kc_cache_set_head (self, head, why);
    }
    if (rc == 0) {
        rc = kc_db_exec (self->db, "COMMIT; PRAGMA journal_mode = WAL", why);
    }
    kc_cache_destroy (&self);
    return rc;
}

kc_cache_t *
kc_cache_create_from (const char *path, const kc_root_t *root, kc_keyindex_t *index, uint64_t seq,
                      const uint8_t chain [static KC_HASH_BYTES], const kc_cache_roots_t *roots,
                      const kc_head_t *head, kc_why_t *why)
{
    char temp [4200];
    snprintf (temp, sizeof temp, "%s.new", path);
    s_remove_files (temp);
    if (s_build_file (temp, root, index, seq, chain, roots, head, why)) {
        s_remove_files (temp);
        return NULL;
    }
    //  Durable before it replaces anything; the old file's WAL must not be
    //  applied to the new one
    if (s_fsync_path (temp, O_RDONLY)) {
        kc_why (why, "cache: cannot fsync '%s': %s", temp, strerror (errno));
        s_remove_files (temp);
        return NULL;
    }
    char side [4200];
    snprintf (side, sizeof side, "%s-wal", path);
    unlink (side);
    snprintf (side, sizeof side, "%s-shm", path);
    unlink (side);
    if (rename (temp, path)) {
        kc_why (why, "cache: cannot rename '%s' to '%s': %s", temp, path, strerror (errno));
        s_remove_files (temp);
        return NULL;
    }
    char directory [4200];
    snprintf (directory, sizeof directory, "%s", path);
    char *slash = strrchr (directory, '/');
    snprintf (slash ? slash : directory, sizeof directory - (size_t) (slash ? slash - directory : 0),
              "%s", slash ? "/." : ".");
    s_fsync_path (directory, O_RDONLY | O_DIRECTORY);
    bool corrupt;
    return kc_cache_open (path, root, &corrupt, why);
}

kc_cache_t *
kc_cache_create (const char *path, const kc_root_t *root, kc_batch_t *const *batches,
                 size_t count, const uint8_t chain [static KC_HASH_BYTES],
                 const kc_head_t *head, kc_why_t *why)
{
    kc_keyindex_t *index = kc_keyindex_new ();
    for (size_t i = 0; i < count; i++) {
        if (kc_keyindex_apply (index, batches [i], i + 1, why)) {
            kc_keyindex_destroy (&index);
            kc_why_prefix (why, "batch %zu", i + 1);
            return NULL;
        }
    }
    kc_cache_t *cache = kc_cache_create_from (path, root, index, count, chain, NULL, head, why);
    kc_keyindex_destroy (&index);
    return cache;
}

//  --- Selftest ----------------------------------------------------------------

static kc_batch_t *
s_batch (const kc_root_t *root, kc_signer_t *signer, uint8_t first, int count,
         uint64_t version, kc_status_t status, const char *name)
{
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), 1);
    kc_why_t why;
    const char *tags [] = { "role=db", "dc=eu" };
    for (int i = 0; i < count; i++) {
        uint8_t key [32];
        memset (key, first + i, 32);
        kc_record_spec_t spec = { .key = key, .version = version, .status = status,
                                  .name = name, .tags = tags,
                                  .tag_count = status == KC_STATUS_ACTIVE ? 2 : 0 };
        assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    }
    kc_batch_t *batch = kc_batch_builder_finish (builder, &signer, 1, &why);
    kc_batch_builder_destroy (&builder);
    return batch;
}

static int
s_count_entry (const kc_cache_entry_t *entry, void *arg)
{
    (void) entry;
    (*(int *) arg)++;
    return 0;
}

static int
s_count_change (uint64_t seq, const uint8_t *key, void *arg)
{
    (void) seq;
    (void) key;
    (*(int *) arg)++;
    return 0;
}

//  Same contents: every key of the three test batches looks the same.
static void
s_compare_caches (kc_cache_t *a, kc_cache_t *b)
{
    kc_why_t why;
    assert (kc_cache_seq (a) == kc_cache_seq (b));
    assert (memcmp (kc_cache_chain (a), kc_cache_chain (b), 32) == 0);
    assert (kc_cache_key_count (a) == kc_cache_key_count (b));
    assert (kc_cache_revoked_count (a) == kc_cache_revoked_count (b));
    for (int i = 1; i < 6; i++) {
        uint8_t key [32];
        memset (key, i, 32);
        kc_cache_entry_t x, y;
        assert (kc_cache_lookup (a, key, &x, &why) == 0 && kc_cache_lookup (b, key, &y, &why) == 0);
        assert (x.status == y.status && x.version == y.version && x.seq == y.seq);
        assert (KC_STREQ (x.name, y.name) && KC_STREQ (x.tags, y.tags));
    }
    int na = 0, nb = 0;
    assert (kc_cache_by_name (a, "web", s_count_entry, &na, &why) >= 0);
    assert (kc_cache_by_name (b, "web", s_count_entry, &nb, &why) >= 0);
    assert (na == nb);
}

void
kc_cache_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_cache: ");
    }
    char dir [] = "/tmp/kc_cache_test.XXXXXX";
    assert (mkdtemp (dir));
    char path [256], built_path [256];
    snprintf (path, sizeof path, "%s/agent.db", dir);
    snprintf (built_path, sizeof built_path, "%s/built.db", dir);
    kc_why_t why;
    uint8_t seed [32] = { 4 }, fill [32];
    memset (fill, 0x55, 32);
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
    bool corrupt;
    kc_cache_t *cache = kc_cache_open (path, root, &corrupt, &why);
    assert (cache && kc_cache_seq (cache) == 0 && !corrupt);

    //  Keys 1..4 as "web"; then key 2 revoked; then key 3 renamed "db"
    kc_batch_t *run [4] = {
        s_batch (root, signer, 1, 4, 5, KC_STATUS_ACTIVE, "web"),
        s_batch (root, signer, 2, 1, 6, KC_STATUS_REVOKED, NULL),
        s_batch (root, signer, 3, 1, 7, KC_STATUS_ACTIVE, "db"),
        s_batch (root, signer, 2, 1, 8, KC_STATUS_ACTIVE, "web")       //  un-revoke: refused
    };
    uint8_t chain [32];
    kc_chain_genesis (kc_root_directory (root), chain);
    assert (kc_cache_begin (cache, &why) == 0);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        kc_chain_next (chain, seq, run [seq - 1], chain);
        assert (kc_cache_check (cache, run [seq - 1], &why) == 0);
        assert (kc_cache_apply (cache, seq, chain, run [seq - 1], &why) == 0);
    }
    assert (kc_cache_check (cache, run [3], &why) == -1 && strstr (why.text, "terminal"));
    assert (kc_cache_apply (cache, 9, chain, run [3], &why) == -1);
    assert (kc_cache_commit (cache, &why) == 0);
    assert (kc_cache_seq (cache) == 3 && kc_cache_key_count (cache) == 4);
    assert (kc_cache_revoked_count (cache) == 1);
    //  The WAL is checkpointed only once the cache has been idle a while
    assert (kc_cache_checkpoint (cache, &why) == 0);
    usleep ((KC_CACHE_IDLE_MS + 20) * 1000);
    assert (kc_cache_checkpoint (cache, &why) == 1);
    assert (kc_cache_checkpoint (cache, &why) == 0);

    kc_cache_entry_t entry;
    uint8_t key [32];
    memset (key, 1, 32);
    assert (kc_cache_lookup (cache, key, &entry, &why) == 0);
    assert (entry.status == KC_STATUS_ACTIVE && KC_STREQ (entry.name, "web"));
    assert (KC_STREQ (entry.tags, "dc=eu,role=db") && entry.seq == 1 && entry.version == 5);
    memset (key, 2, 32);
    assert (kc_cache_lookup (cache, key, &entry, &why) == 0 && entry.status == KC_STATUS_REVOKED);
    memset (key, 9, 32);
    assert (kc_cache_lookup (cache, key, &entry, &why) == 0 && entry.status == 0);
    int named = 0;
    assert (kc_cache_by_name (cache, "web", s_count_entry, &named, &why) == 2 && named == 2);
    named = 0;
    assert (kc_cache_by_name (cache, "db", s_count_entry, &named, &why) == 1);
    //  Fingerprint search: key 0x0101... by 8 hex digits, upper or odd length
    uint8_t prefix [32] = { 0x01, 0x01, 0x01, 0x01, 0x10 };
    named = 0;
    assert (kc_cache_prefix (cache, prefix, 8, s_count_entry, &named, &why) == 1 && named == 1);
    named = 0;
    assert (kc_cache_prefix (cache, prefix, 9, s_count_entry, &named, &why) == 0 && named == 0);
    prefix [4] = 0x01;
    assert (kc_cache_prefix (cache, prefix, 10, s_count_entry, &named, &why) == 1);
    assert (kc_cache_prefix (cache, prefix, 3, s_count_entry, &named, &why) == -1);
    int changes = 0;
    assert (kc_cache_changes (cache, 1, s_count_change, &changes, &why) == 2);

    //  A rolled-back group changes nothing
    assert (kc_cache_begin (cache, &why) == 0);
    kc_batch_t *extra = s_batch (root, signer, 7, 2, 1, KC_STATUS_ACTIVE, "x");
    uint8_t extra_chain [32];
    kc_chain_next (chain, 4, extra, extra_chain);
    assert (kc_cache_apply (cache, 4, extra_chain, extra, &why) == 0);
    kc_cache_rollback (cache);
    assert (kc_cache_seq (cache) == 3 && kc_cache_key_count (cache) == 4);
    memset (key, 7, 32);
    assert (kc_cache_lookup (cache, key, &entry, &why) == 0 && entry.status == 0);
    kc_batch_destroy (&extra);

    //  Heads persist; the state survives a reopen
    kc_head_t head = { .seq = 3, .time = 10, .valid_until = 20 };
    memcpy (head.chain, chain, 32);
    memcpy (head.directory, kc_root_directory (root), 32);
    assert (kc_cache_set_head (cache, &head, &why) == 0);
    kc_cache_destroy (&cache);
    cache = kc_cache_open (path, root, &corrupt, &why);
    assert (cache && kc_cache_seq (cache) == 3 && memcmp (kc_cache_chain (cache), chain, 32) == 0);
    kc_head_t back;
    assert (kc_cache_head (cache, &back) == 0 && back.seq == 3 && back.time == 10);
    assert (kc_cache_check_file (path, &why) == 0);

    //  Building from the same run gives the same contents
    kc_cache_t *built = kc_cache_create (built_path, root, run, 3, chain, &head, &why);
    assert (built);
    s_compare_caches (cache, built);
    assert (kc_cache_head (built, &back) == 0 && back.seq == 3);
    kc_cache_destroy (&built);
    assert (kc_cache_check_file (built_path, &why) == 0);
    //  A run that regresses a key is refused whole; the old file stays
    assert (kc_cache_create (built_path, root, run, 4, chain, NULL, &why) == NULL);
    assert (strstr (why.text, "terminal"));
    built = kc_cache_open (built_path, root, &corrupt, &why);
    assert (built && kc_cache_seq (built) == 3);
    kc_cache_destroy (&built);
    kc_cache_destroy (&cache);

    //  A damaged file is reported as corrupt
    FILE *file = fopen (path, "r+b");
    assert (file);
    fputs ("garbage garbage garbage garbage", file);
    fclose (file);
    char side [300];
    snprintf (side, sizeof side, "%s-wal", path);
    unlink (side);
    snprintf (side, sizeof side, "%s-shm", path);
    unlink (side);
    assert (kc_cache_check_file (path, &why) == -1);
    assert (kc_cache_open (path, root, &corrupt, &why) == NULL && corrupt);

    for (int i = 0; i < 4; i++) {
        kc_batch_destroy (&run [i]);
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
