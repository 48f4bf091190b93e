/*  =========================================================================
    kc_store - the server's durable batch log and key state (sqlite).
    =========================================================================
*/
#include "kc_store.h"
#include "kc_db.h"
#include "kc_head.h"
#include "kc_wire.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum {
    S_FIND_DIGEST, S_KEY, S_INSERT_BATCH, S_UPSERT_KEY, S_READ, S_QUERY_KEY,
    S_QUERY_NAME, S_QUERY_LIST, S_SAVE_ACK, S_LOAD_ACKS, S_INSERT_ROOT, S_ROOTS, S_LOG,
    S_INSERT_GRANT, S_GRANT, S_PUT_GRANT, S_STATEMENTS
} s_statement_t;

static const char *s_sql [S_STATEMENTS] = {
    "SELECT seq, chain FROM batches WHERE digest = ?1 "
        "UNION ALL SELECT seq, chain FROM roots WHERE digest = ?1 "
        "UNION ALL SELECT seq, chain FROM grant_log WHERE digest = ?1",
    "SELECT status, version, not_before, not_after, seq, name FROM keys WHERE key = ?",
    "INSERT INTO batches (seq, digest, chain, accepted, data, submitter, records) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    "INSERT INTO keys (key, name, status, version, not_before, not_after, seq, record) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET name = excluded.name, "
        "status = excluded.status, version = excluded.version, not_before = excluded.not_before, "
        "not_after = excluded.not_after, seq = excluded.seq, record = excluded.record",
    //  The log: batches and root changes merged by seq (each side is read in
    //  rowid order and merged; the LIMIT stops both early)
    "SELECT seq, chain, data, accepted, submitter FROM batches WHERE seq > ?1 "
        "UNION ALL SELECT seq, chain, data, accepted, submitter FROM roots WHERE seq > ?1 "
        "UNION ALL SELECT seq, chain, data, accepted, submitter FROM grant_log WHERE seq > ?1 "
        "ORDER BY seq LIMIT ?2",
    "SELECT seq, key, record FROM keys WHERE key = ?",
    "SELECT seq, key, record FROM keys WHERE name = ? ORDER BY key LIMIT ?",
    "SELECT seq, key, record FROM keys WHERE key > ? ORDER BY key LIMIT ?",
    "INSERT OR REPLACE INTO acks (key, seq, chain, acked) VALUES (?, ?, ?, ?)",
    "SELECT key, seq, chain, acked FROM acks",
    "INSERT INTO roots (seq, digest, chain, accepted, data, submitter, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    "SELECT seq, data FROM roots ORDER BY seq",
    "SELECT seq, accepted, submitter, data FROM batches WHERE seq > ?1 "
        "UNION ALL SELECT seq, accepted, submitter, data FROM roots WHERE seq > ?1 "
        "UNION ALL SELECT seq, accepted, submitter, data FROM grant_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    "INSERT INTO grant_log (seq, digest, chain, accepted, data, submitter) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    KC_DB_GRANT_SELECT,
    KC_DB_GRANT_UPSERT
};

struct _kc_store_t {
    sqlite3 *db;
    sqlite3_stmt *statements [S_STATEMENTS];
    uint8_t directory [KC_HASH_BYTES];
    uint64_t seq;                           //  last committed (or appended in a group)
    uint8_t chain [KC_HASH_BYTES];
    uint64_t keys, revoked;
    uint64_t saved_seq, saved_keys, saved_revoked;     //  before the group
    uint8_t submitter [KC_KEY_BYTES];       //  recorded with the next append
    bool has_submitter;
    uint64_t accepted;                      //  recorded with the last append (unix ms)
    uint64_t time_ms;                       //  kc_store_set_time: appends' accepted time, or 0
    uint8_t saved_chain [KC_HASH_BYTES];
    bool in_group;
};

static sqlite3_stmt *
s_stmt (kc_store_t *self, s_statement_t which)
{
    sqlite3_stmt *stmt = self->statements [which];
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return stmt;
}

static int
s_fail (kc_store_t *self, kc_why_t *why, const char *action)
{
    return kc_why (why, "store: cannot %s: %s", action, sqlite3_errmsg (self->db));
}

static int
s_count (kc_store_t *self, const char *sql, uint64_t *value, kc_why_t *why)
{
    sqlite3_stmt *stmt = kc_db_prepare (self->db, sql, why);
    if (!stmt) {
        return -1;
    }
    int rc = sqlite3_step (stmt) == SQLITE_ROW ? 0 : s_fail (self, why, "count");
    if (rc == 0) {
        *value = (uint64_t) sqlite3_column_int64 (stmt, 0);
    }
    sqlite3_finalize (stmt);
    return rc;
}

//  Binds the directory in meta, or checks it matches.
static int
s_bind_directory (kc_store_t *self, kc_why_t *why)
{
    sqlite3_stmt *stmt = kc_db_prepare (self->db,
        "SELECT value FROM meta WHERE name = 'directory'", why);
    if (!stmt) {
        return -1;
    }
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        bool same = sqlite3_column_bytes (stmt, 0) == KC_HASH_BYTES
                 && memcmp (sqlite3_column_blob (stmt, 0), self->directory, KC_HASH_BYTES) == 0;
        sqlite3_finalize (stmt);
        return same ? 0 : kc_why (why, "store belongs to another directory than the root");
    }
    sqlite3_finalize (stmt);
    if (rc != SQLITE_DONE) {
        return s_fail (self, why, "read meta");
    }
    stmt = kc_db_prepare (self->db, "INSERT INTO meta (name, value) VALUES ('directory', ?)", why);
    if (!stmt) {
        return -1;
    }
    sqlite3_bind_blob (stmt, 1, self->directory, KC_HASH_BYTES, SQLITE_STATIC);
    rc = sqlite3_step (stmt) == SQLITE_DONE ? 0 : s_fail (self, why, "write meta");
    sqlite3_finalize (stmt);
    return rc;
}

//  Loads the last seq and chain from the log.
static int
s_load_head (kc_store_t *self, kc_why_t *why)
{
    kc_chain_genesis (self->directory, self->chain);
    self->seq = 0;
    sqlite3_stmt *stmt = kc_db_prepare (self->db,
        "SELECT seq, chain FROM (SELECT seq, chain FROM batches ORDER BY seq DESC LIMIT 1) "
        "UNION ALL SELECT seq, chain FROM (SELECT seq, chain FROM roots ORDER BY seq DESC LIMIT 1) "
        "UNION ALL SELECT seq, chain FROM (SELECT seq, chain FROM grant_log ORDER BY seq DESC LIMIT 1) "
        "ORDER BY seq DESC LIMIT 1", why);
    if (!stmt) {
        return -1;
    }
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        self->seq = (uint64_t) sqlite3_column_int64 (stmt, 0);
        memcpy (self->chain, sqlite3_column_blob (stmt, 1), KC_HASH_BYTES);
        rc = SQLITE_DONE;
    }
    sqlite3_finalize (stmt);
    if (rc != SQLITE_DONE) {
        return s_fail (self, why, "read the log");
    }
    if (s_count (self, "SELECT count(*) FROM keys", &self->keys, why)
    ||  s_count (self, "SELECT count(*) FROM keys WHERE status = 2", &self->revoked, why)) {
        return -1;
    }
    return 0;
}

kc_store_t *
kc_store_open (const char *path, const kc_root_t *root, kc_why_t *why)
{
    kc_store_t *self = calloc (1, sizeof *self);
    assert (self);
    memcpy (self->directory, kc_root_directory (root), KC_HASH_BYTES);
    self->db = kc_db_open (path, &kc_schema_server, KC_DB_READWRITE, "FULL", why);
    if (!self->db) {
        goto fail;
    }
    for (int i = 0; i < S_STATEMENTS; i++) {
        self->statements [i] = kc_db_prepare (self->db, s_sql [i], why);
        if (!self->statements [i]) {
            goto fail;
        }
    }
    if (s_bind_directory (self, why) || s_load_head (self, why)) {
        goto fail;
    }
    return self;
fail:
    kc_store_destroy (&self);
    return NULL;
}

void
kc_store_destroy (kc_store_t **self_p)
{
    if (self_p && *self_p) {
        kc_store_t *self = *self_p;
        for (int i = 0; i < S_STATEMENTS; i++) {
            sqlite3_finalize (self->statements [i]);
        }
        kc_db_close (&self->db);
        free (self);
        *self_p = NULL;
    }
}

uint64_t
kc_store_seq (const kc_store_t *self)
{
    return self->seq;
}

const uint8_t *
kc_store_chain (const kc_store_t *self)
{
    return self->chain;
}

uint64_t
kc_store_key_count (const kc_store_t *self)
{
    return self->keys;
}

uint64_t
kc_store_revoked_count (const kc_store_t *self)
{
    return self->revoked;
}

int
kc_store_find_digest (kc_store_t *self, const uint8_t digest [static KC_HASH_BYTES],
                      uint64_t *seq, uint8_t chain [static KC_HASH_BYTES], kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, S_FIND_DIGEST);
    sqlite3_bind_blob (stmt, 1, digest, KC_HASH_BYTES, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        *seq = (uint64_t) sqlite3_column_int64 (stmt, 0);
        memcpy (chain, sqlite3_column_blob (stmt, 1), KC_HASH_BYTES);
        sqlite3_reset (stmt);
        return 1;
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : s_fail (self, why, "look up a digest");
}

sqlite3 *
kc_store_db (kc_store_t *self)
{
    return self->db;
}

int
kc_store_key (kc_store_t *self, const uint8_t key [static KC_KEY_BYTES], kc_store_key_t *info,
              kc_why_t *why)
{
    memset (info, 0, sizeof *info);
    sqlite3_stmt *stmt = s_stmt (self, S_KEY);
    sqlite3_bind_blob (stmt, 1, key, KC_KEY_BYTES, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        info->status = (uint8_t) sqlite3_column_int (stmt, 0);
        info->version = (uint64_t) sqlite3_column_int64 (stmt, 1);
        info->not_before = (uint64_t) sqlite3_column_int64 (stmt, 2);
        info->not_after = (uint64_t) sqlite3_column_int64 (stmt, 3);
        info->seq = (uint64_t) sqlite3_column_int64 (stmt, 4);
        snprintf (info->name, sizeof info->name, "%s", (const char *) sqlite3_column_text (stmt, 5));
        rc = SQLITE_DONE;
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : s_fail (self, why, "look up a key");
}

int
kc_store_begin (kc_store_t *self, kc_why_t *why)
{
    assert (!self->in_group);
    if (kc_db_exec (self->db, "BEGIN IMMEDIATE", why)) {
        return kc_why_prefix (why, "store: cannot begin");
    }
    self->in_group = true;
    self->saved_seq = self->seq;
    self->saved_keys = self->keys;
    self->saved_revoked = self->revoked;
    memcpy (self->saved_chain, self->chain, KC_HASH_BYTES);
    return 0;
}

//  On submission, an active record whose not-after is past could never be
//  in force (docs/protocol.md 7.2 rule 4). 0 or -1 with a reason.
static int
s_check_not_expired (const kc_record_t *record, uint64_t now, kc_why_t *why)
{
    char fp [KC_FINGERPRINT_CHARS + 1], when [32];
    if (record->status == KC_STATUS_ACTIVE && record->not_after && record->not_after <= now) {
        return kc_why (why, "record for key %s expired at %s", kc_fingerprint (record->key, fp),
                       kc_time_format (record->not_after, when));
    }
    return 0;
}

int
kc_store_check (kc_store_t *self, const kc_batch_t *batch, uint64_t now, kc_why_t *why)
{
    for (size_t i = 0; i < kc_batch_count (batch); i++) {
        const kc_record_t *record = kc_batch_record (batch, i);
        kc_store_key_t stored;
        if (kc_store_key (self, record->key, &stored, why)
        ||  kc_record_check_successor (record, stored.status, stored.version, why)) {
            return -1;
        }
        if (s_check_not_expired (record, now, why)) {
            return -1;
        }
    }
    return 0;
}

static int
s_upsert (kc_store_t *self, const kc_record_t *record, uint64_t seq, kc_why_t *why)
{
    kc_store_key_t stored;
    if (kc_store_key (self, record->key, &stored, why)) {
        return -1;
    }
    sqlite3_stmt *stmt = s_stmt (self, S_UPSERT_KEY);
    sqlite3_bind_blob (stmt, 1, record->key, KC_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, record->name, record->name_size, SQLITE_STATIC);
    sqlite3_bind_int (stmt, 3, record->status);
    sqlite3_bind_int64 (stmt, 4, (sqlite3_int64) record->version);
    sqlite3_bind_int64 (stmt, 5, (sqlite3_int64) record->not_before);
    sqlite3_bind_int64 (stmt, 6, (sqlite3_int64) record->not_after);
    sqlite3_bind_int64 (stmt, 7, (sqlite3_int64) seq);
    sqlite3_bind_blob (stmt, 8, record->encoded, (int) record->encoded_size, SQLITE_STATIC);
    if (sqlite3_step (stmt) != SQLITE_DONE) {
        sqlite3_reset (stmt);
        return s_fail (self, why, "store a key");
    }
    sqlite3_reset (stmt);
    self->keys += stored.status == 0;
    self->revoked += record->status == KC_STATUS_REVOKED && stored.status != KC_STATUS_REVOKED;
    return 0;
}

uint64_t
kc_store_accepted (const kc_store_t *self)
{
    return self->accepted;
}

void
kc_store_set_time (kc_store_t *self, uint64_t time_ms)
{
    self->time_ms = time_ms;
}

void
kc_store_set_submitter (kc_store_t *self, const uint8_t *key)
{
    self->has_submitter = key != NULL;
    if (key) {
        memcpy (self->submitter, key, KC_KEY_BYTES);
    }
}

static void
s_bind_submitter (kc_store_t *self, sqlite3_stmt *stmt, int column)
{
    if (self->has_submitter) {
        sqlite3_bind_blob (stmt, column, self->submitter, KC_KEY_BYTES, SQLITE_TRANSIENT);
    }
    else {
        sqlite3_bind_null (stmt, column);
    }
}

int
kc_store_log (kc_store_t *self, uint64_t after, size_t max_count, size_t max_bytes,
              kc_store_log_fn *fn, void *arg, kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, S_LOG);
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) after);
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) max_count);
    int rc, count = 0;
    size_t bytes = 0;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        size_t size = (size_t) sqlite3_column_bytes (stmt, 3);
        if (count && bytes + size > max_bytes) {
            rc = SQLITE_DONE;
            break;
        }
        const uint8_t *submitter = sqlite3_column_bytes (stmt, 2) == KC_KEY_BYTES
                                 ? sqlite3_column_blob (stmt, 2) : NULL;
        if (fn ((uint64_t) sqlite3_column_int64 (stmt, 0), (uint64_t) sqlite3_column_int64 (stmt, 1),
                submitter, sqlite3_column_blob (stmt, 3), size, arg)) {
            rc = SQLITE_DONE;
            break;
        }
        bytes += size;
        count++;
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? count : s_fail (self, why, "read the log");
}

//  The log now ends at (next, next_chain); gives them to the caller too.
static int
s_advance (kc_store_t *self, uint64_t next, const uint8_t next_chain [static KC_HASH_BYTES],
           uint64_t *seq, uint8_t chain [static KC_HASH_BYTES])
{
    self->seq = next;
    memcpy (self->chain, next_chain, KC_HASH_BYTES);
    *seq = next;
    memcpy (chain, next_chain, KC_HASH_BYTES);
    return 0;
}

//  A log entry's row: in batches (a batch, or a grant use as one record;
//  extra is the record count), roots (extra is the version) or grant_log.
static int
s_insert_entry (kc_store_t *self, s_statement_t which, uint64_t next, const uint8_t digest [static KC_HASH_BYTES],
                const uint8_t chain [static KC_HASH_BYTES], const uint8_t *data, size_t size, int64_t extra,
                const char *what, kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, which);
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) next);
    sqlite3_bind_blob (stmt, 2, digest, KC_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob (stmt, 3, chain, KC_HASH_BYTES, SQLITE_STATIC);
    self->accepted = self->time_ms ? self->time_ms : kc_now_ms ();
    sqlite3_bind_int64 (stmt, 4, (sqlite3_int64) self->accepted);
    sqlite3_bind_blob (stmt, 5, data, (int) size, SQLITE_STATIC);
    s_bind_submitter (self, stmt, 6);
    if (which != S_INSERT_GRANT) {
        sqlite3_bind_int64 (stmt, 7, extra);   //  a batch's records, a root's version
    }
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : s_fail (self, why, what);
}

int
kc_store_append (kc_store_t *self, const kc_batch_t *batch, uint64_t *seq,
                 uint8_t chain [static KC_HASH_BYTES], kc_why_t *why)
{
    assert (self->in_group);
    uint64_t next = self->seq + 1;
    uint8_t next_chain [KC_HASH_BYTES];
    kc_chain_next (self->chain, next, batch, next_chain);
    size_t size;
    const uint8_t *data = kc_batch_data (batch, &size);
    if (s_insert_entry (self, S_INSERT_BATCH, next, kc_batch_digest (batch), next_chain, data, size,
                        (int64_t) kc_batch_count (batch), "append a batch", why)) {
        return -1;
    }
    for (size_t i = 0; i < kc_batch_count (batch); i++) {
        if (s_upsert (self, kc_batch_record (batch, i), next, why)) {
            return -1;
        }
    }
    return s_advance (self, next, next_chain, seq, chain);
}

int
kc_store_grant (kc_store_t *self, const uint8_t key [static KC_KEY_BYTES], kc_grant_t **grant,
                uint64_t *used, bool *revoked, kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, S_GRANT);
    sqlite3_bind_blob (stmt, 1, key, KC_KEY_BYTES, SQLITE_STATIC);
    return kc_db_read_grant (stmt, grant, used, revoked, why);
}

//  The chain after a grant or a grant use (digest, then what follows its body).
static void
s_chain_signed (kc_store_t *self, uint64_t next, const uint8_t digest [static KC_HASH_BYTES], const uint8_t *data,
                size_t body_size, size_t size, uint8_t next_chain [static KC_HASH_BYTES])
{
    kc_chain_next_signed (self->chain, next, digest, data + body_size, size - body_size, next_chain);
}

int
kc_store_check_grant (kc_store_t *self, const kc_grant_t *grant, kc_why_t *why)
{
    kc_grant_t *stored;
    uint64_t used;
    bool revoked;
    char fp [KC_FINGERPRINT_CHARS + 1];
    int found = kc_store_grant (self, grant->grant_key, &stored, &used, &revoked, why);
    kc_grant_destroy (&stored);
    if (found < 0) {
        return -1;
    }
    kc_fingerprint (grant->grant_key, fp);
    if (grant->status == KC_STATUS_ACTIVE && found) {
        return kc_why (why, "grant key %s was granted before: a new grant needs a new key", fp);
    }
    if (grant->status == KC_STATUS_REVOKED && (!found || revoked)) {
        return kc_why (why, "grant %s is %s", fp, found ? "already revoked" : "unknown");
    }
    return 0;
}

int
kc_store_append_grant (kc_store_t *self, const kc_grant_t *grant, uint64_t *seq,
                       uint8_t chain [static KC_HASH_BYTES], kc_why_t *why)
{
    assert (self->in_group);
    uint64_t next = self->seq + 1;
    uint8_t next_chain [KC_HASH_BYTES];
    s_chain_signed (self, next, grant->digest, grant->data, grant->body_size, grant->size, next_chain);
    if (s_insert_entry (self, S_INSERT_GRANT, next, grant->digest, next_chain, grant->data, grant->size, 0,
                        "append a grant", why)) {
        return -1;
    }
    int put;
    if (grant->status == KC_STATUS_ACTIVE) {
        put = kc_db_put_grant (s_stmt (self, S_PUT_GRANT), grant, next, 0, false, why);
    }
    else {
        kc_grant_t *stored;
        uint64_t used;
        bool revoked;
        if (kc_store_grant (self, grant->grant_key, &stored, &used, &revoked, why) != 1) {
            return -1;
        }
        put = kc_db_put_grant (s_stmt (self, S_PUT_GRANT), stored, next, used, true, why);
        kc_grant_destroy (&stored);
    }
    return put ? -1 : s_advance (self, next, next_chain, seq, chain);
}

int
kc_store_check_use (kc_store_t *self, const kc_grant_use_t *use, uint64_t now, kc_why_t *why)
{
    kc_grant_t *grant;
    uint64_t used;
    bool revoked;
    char fp [KC_FINGERPRINT_CHARS + 1], when [32];
    if (kc_store_grant (self, use->grant_key, &grant, &used, &revoked, why) < 0) {
        return -1;
    }
    if (grant && revoked) {
        kc_grant_destroy (&grant);
        return kc_why (why, "grant %s was revoked", kc_fingerprint (use->grant_key, fp));
    }
    int rc = kc_grant_use_check (use, grant, used, why);
    if (rc == 0 && now >= grant->not_after) {
        rc = kc_why (why, "grant %s expired at %s", kc_fingerprint (use->grant_key, fp),
                     kc_time_format (grant->not_after, when));
    }
    kc_grant_destroy (&grant);
    kc_store_key_t stored;
    if (rc == 0 && kc_store_key (self, use->record.key, &stored, why)) {
        return -1;
    }
    if (rc == 0 && stored.status) {
        rc = kc_why (why, "key %s is already known to the directory: a grant only adds new keys",
                     kc_fingerprint (use->record.key, fp));
    }
    //  A rotation: the key it replaces is registered under the name, and
    //  its record is newer than the stored one (docs/records.md 8.5)
    if (rc == 0 && use->rotation && kc_store_key (self, use->replaced.key, &stored, why)) {
        return -1;
    }
    if (rc == 0 && use->rotation) {
        rc = kc_grant_use_check_replaced (use, stored.status, stored.name, why);
    }
    if (rc == 0 && use->rotation && use->replaced.version <= stored.version) {
        rc = kc_why (why, "key %s: version %llu is not above the stored version %llu",
                     kc_fingerprint (use->replaced.key, fp), (unsigned long long) use->replaced.version,
                     (unsigned long long) stored.version);
    }
    if (rc == 0 && use->rotation) {
        rc = s_check_not_expired (&use->replaced, now, why);
    }
    return rc ? rc : s_check_not_expired (&use->record, now, why);
}

int
kc_store_append_use (kc_store_t *self, const kc_grant_use_t *use, uint64_t *seq,
                     uint8_t chain [static KC_HASH_BYTES], kc_why_t *why)
{
    assert (self->in_group);
    uint64_t next = self->seq + 1;
    uint8_t next_chain [KC_HASH_BYTES];
    s_chain_signed (self, next, use->digest, use->data, use->body_size, use->size, next_chain);
    kc_grant_t *grant;
    uint64_t used;
    bool revoked;
    if (kc_store_grant (self, use->grant_key, &grant, &used, &revoked, why) != 1) {
        return -1;
    }
    int rc = s_insert_entry (self, S_INSERT_BATCH, next, use->digest, next_chain, use->data, use->size, 1,
                             "append a batch", why)
          || s_upsert (self, &use->record, next, why)
          || (use->rotation && s_upsert (self, &use->replaced, next, why))
          || kc_db_put_grant (s_stmt (self, S_PUT_GRANT), grant, next, used + 1, revoked, why);
    kc_grant_destroy (&grant);
    return rc ? -1 : s_advance (self, next, next_chain, seq, chain);
}

int
kc_store_append_root (kc_store_t *self, const kc_root_t *root, uint64_t *seq,
                      uint8_t chain [static KC_HASH_BYTES], kc_why_t *why)
{
    assert (self->in_group);
    uint64_t next = self->seq + 1;
    uint8_t next_chain [KC_HASH_BYTES];
    kc_chain_next_root (self->chain, next, root, next_chain);
    size_t size;
    const uint8_t *data = kc_root_data (root, &size);
    if (s_insert_entry (self, S_INSERT_ROOT, next, kc_root_digest (root), next_chain, data, size,
                        (int64_t) kc_root_version (root), "append a root change", why)) {
        return -1;
    }
    return s_advance (self, next, next_chain, seq, chain);
}

int
kc_store_roots (kc_store_t *self, kc_store_root_fn *fn, void *arg, kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, S_ROOTS);
    int rc, count = 0;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (fn ((uint64_t) sqlite3_column_int64 (stmt, 0), sqlite3_column_blob (stmt, 1),
                (size_t) sqlite3_column_bytes (stmt, 1), arg)) {
            rc = SQLITE_DONE;
            break;
        }
        count++;
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? count : s_fail (self, why, "read the root changes");
}

kc_root_t *
kc_store_current_root (kc_store_t *self, const kc_root_t *pinned, kc_why_t *why)
{
    return kc_db_follow_roots (s_stmt (self, S_ROOTS), pinned, "store", NULL, NULL, why);
}

int
kc_store_commit (kc_store_t *self, kc_why_t *why)
{
    assert (self->in_group);
    if (kc_db_exec (self->db, "COMMIT", why)) {
        kc_why_prefix (why, "store: cannot commit");
        kc_store_rollback (self);
        return -1;
    }
    self->in_group = false;
    return 0;
}

void
kc_store_rollback (kc_store_t *self)
{
    if (self->in_group) {
        if (!sqlite3_get_autocommit (self->db)) {
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        }
        self->seq = self->saved_seq;
        self->keys = self->saved_keys;
        self->revoked = self->saved_revoked;
        memcpy (self->chain, self->saved_chain, KC_HASH_BYTES);
        self->in_group = false;
    }
}

int
kc_store_read (kc_store_t *self, uint64_t from, size_t max_count, size_t max_bytes,
               kc_store_batch_fn *fn, void *arg, kc_why_t *why)
{
    sqlite3_stmt *stmt = s_stmt (self, S_READ);
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) from);
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) max_count);
    int count = 0, rc = SQLITE_DONE;
    size_t bytes = 0;
    while (bytes < max_bytes && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        size_t size = (size_t) sqlite3_column_bytes (stmt, 2);
        const uint8_t *submitter = sqlite3_column_bytes (stmt, 4) == KC_KEY_BYTES
                                 ? sqlite3_column_blob (stmt, 4) : NULL;
        if (fn ((uint64_t) sqlite3_column_int64 (stmt, 0), sqlite3_column_blob (stmt, 1),
                sqlite3_column_blob (stmt, 2), size, (uint64_t) sqlite3_column_int64 (stmt, 3),
                submitter, arg)) {
            break;
        }
        bytes += size;
        count++;
    }
    bool failed = rc != SQLITE_DONE && rc != SQLITE_ROW;
    sqlite3_reset (stmt);
    return failed ? s_fail (self, why, "read the log") : count;
}

int
kc_store_query (kc_store_t *self, const char *kind, const uint8_t *argument, size_t size,
                size_t limit, kc_store_record_fn *fn, void *arg, kc_why_t *why)
{
    sqlite3_stmt *stmt;
    if (KC_STREQ (kind, "key")) {
        stmt = s_stmt (self, S_QUERY_KEY);
        sqlite3_bind_blob (stmt, 1, argument, (int) size, SQLITE_STATIC);
    }
    else
    if (KC_STREQ (kind, "name")) {
        stmt = s_stmt (self, S_QUERY_NAME);
        sqlite3_bind_text (stmt, 1, (const char *) argument, (int) size, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) limit);
    }
    else {
        stmt = s_stmt (self, S_QUERY_LIST);
        sqlite3_bind_blob (stmt, 1, size ? argument : (const uint8_t *) "", (int) size,
                           SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) limit);
    }
    int count = 0, rc = SQLITE_DONE;
    while ((size_t) count < limit && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (fn ((uint64_t) sqlite3_column_int64 (stmt, 0), sqlite3_column_blob (stmt, 1),
                sqlite3_column_blob (stmt, 2), (size_t) sqlite3_column_bytes (stmt, 2), arg)) {
            break;
        }
        count++;
    }
    bool failed = rc != SQLITE_DONE && rc != SQLITE_ROW;
    sqlite3_reset (stmt);
    return failed ? s_fail (self, why, "query keys") : count;
}

//  --- Selftest ----------------------------------------------------------------

static int
s_count_batch (uint64_t seq, const uint8_t *chain, const uint8_t *data, size_t size,
               uint64_t accepted, const uint8_t *submitter, void *arg)
{
    (void) accepted;
    (void) submitter;
    (void) chain;
    (void) data;
    (void) size;
    uint64_t *last = arg;
    assert (seq == *last + 1);
    *last = seq;
    return 0;
}

static int
s_count_record (uint64_t seq, const uint8_t *key, const uint8_t *record, size_t size, void *arg)
{
    (void) seq;
    (void) key;
    (void) record;
    (void) size;
    (*(int *) arg)++;
    return 0;
}

static int
s_sum_acks (const kc_store_ack_t *ack, void *arg)
{
    *(uint64_t *) arg += ack->seq;
    return 0;
}

static kc_batch_t *
s_batch (const kc_root_t *root, kc_signer_t *signer, uint8_t fill, uint64_t version,
         kc_status_t status, uint64_t not_after)
{
    uint8_t key [32];
    memset (key, fill, 32);
    kc_record_spec_t spec = { .key = key, .version = version, .status = status,
                              .name = status == KC_STATUS_ACTIVE ? "node" : NULL,
                              .not_after = not_after };
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), 1);
    kc_why_t why;
    assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    kc_batch_t *batch = kc_batch_builder_finish (builder, &signer, 1, &why);
    kc_batch_builder_destroy (&builder);
    return batch;
}

int
kc_store_save_acks (kc_store_t *self, const kc_store_ack_t *acks, size_t count, kc_why_t *why)
{
    assert (!self->in_group);
    if (count == 0) {
        return 0;
    }
    if (kc_db_exec (self->db, "BEGIN IMMEDIATE", why)) {
        return -1;
    }
    sqlite3_stmt *stmt = self->statements [S_SAVE_ACK];
    for (size_t i = 0; i < count; i++) {
        sqlite3_reset (stmt);
        sqlite3_bind_blob (stmt, 1, acks [i].key, KC_KEY_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) acks [i].seq);
        sqlite3_bind_blob (stmt, 3, acks [i].chain, KC_HASH_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 4, (sqlite3_int64) acks [i].acked);
        if (sqlite3_step (stmt) != SQLITE_DONE) {
            s_fail (self, why, "save an acknowledgement");
            sqlite3_reset (stmt);
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    sqlite3_reset (stmt);
    if (kc_db_exec (self->db, "COMMIT", why)) {
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

int
kc_store_load_acks (kc_store_t *self, kc_store_ack_fn *fn, void *arg, kc_why_t *why)
{
    sqlite3_stmt *stmt = self->statements [S_LOAD_ACKS];
    sqlite3_reset (stmt);
    int count = 0, rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        kc_store_ack_t ack;
        if (sqlite3_column_bytes (stmt, 0) != KC_KEY_BYTES || sqlite3_column_bytes (stmt, 2) != KC_HASH_BYTES) {
            continue;
        }
        memcpy (ack.key, sqlite3_column_blob (stmt, 0), KC_KEY_BYTES);
        ack.seq = (uint64_t) sqlite3_column_int64 (stmt, 1);
        memcpy (ack.chain, sqlite3_column_blob (stmt, 2), KC_HASH_BYTES);
        ack.acked = (uint64_t) sqlite3_column_int64 (stmt, 3);
        count++;
        if (fn (&ack, arg)) {
            break;
        }
    }
    sqlite3_reset (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return s_fail (self, why, "read the acknowledgements");
    }
    return count;
}

void
kc_store_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_store: ");
    }
    char dir [] = "/tmp/kc_store_test.XXXXXX";
    assert (mkdtemp (dir));
    char path [256];
    snprintf (path, sizeof path, "%s/store.db", dir);
    kc_why_t why;
    uint8_t seed [32] = { 3 }, fill [32];
    memset (fill, 0x44, 32);
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
    kc_store_t *store = kc_store_open (path, root, &why);
    assert (store && kc_store_seq (store) == 0);
    uint8_t genesis [32];
    kc_chain_genesis (kc_root_directory (root), genesis);
    assert (memcmp (kc_store_chain (store), genesis, 32) == 0);

    //  A group of two batches for two keys
    kc_batch_t *a = s_batch (root, signer, 1, 10, KC_STATUS_ACTIVE, 0);
    kc_batch_t *b = s_batch (root, signer, 2, 10, KC_STATUS_ACTIVE, 0);
    uint64_t seq;
    uint8_t chain [32], expected [32];
    assert (kc_store_begin (store, &why) == 0);
    assert (kc_store_check (store, a, 100, &why) == 0);
    assert (kc_store_append (store, a, &seq, chain, &why) == 0 && seq == 1);
    kc_chain_next (genesis, 1, a, expected);
    assert (memcmp (chain, expected, 32) == 0);
    assert (kc_store_check (store, b, 100, &why) == 0);
    assert (kc_store_append (store, b, &seq, chain, &why) == 0 && seq == 2);
    //  Within the group, a lower version for key 1 is already refused
    kc_batch_t *older = s_batch (root, signer, 1, 9, KC_STATUS_ACTIVE, 0);
    assert (kc_store_check (store, older, 100, &why) == -1 && strstr (why.text, "not above"));
    assert (kc_store_commit (store, &why) == 0);
    assert (kc_store_key_count (store) == 2);

    //  Idempotency lookup
    uint64_t found;
    assert (kc_store_find_digest (store, kc_batch_digest (b), &found, chain, &why) == 1);
    assert (found == 2);
    assert (kc_store_find_digest (store, kc_batch_digest (older), &found, chain, &why) == 0);

    //  Revocation is terminal; expired registrations are refused
    kc_batch_t *revoke = s_batch (root, signer, 1, 11, KC_STATUS_REVOKED, 0);
    kc_batch_t *again = s_batch (root, signer, 1, 12, KC_STATUS_ACTIVE, 0);
    kc_batch_t *expired = s_batch (root, signer, 3, 1, KC_STATUS_ACTIVE, 50);
    assert (kc_store_begin (store, &why) == 0);
    assert (kc_store_check (store, revoke, 100, &why) == 0);
    assert (kc_store_append (store, revoke, &seq, chain, &why) == 0 && seq == 3);
    assert (kc_store_check (store, again, 100, &why) == -1 && strstr (why.text, "terminal"));
    assert (kc_store_check (store, expired, 100, &why) == -1 && strstr (why.text, "expired"));
    assert (kc_store_commit (store, &why) == 0);
    assert (kc_store_revoked_count (store) == 1);

    //  A rolled-back group leaves nothing behind
    assert (kc_store_begin (store, &why) == 0);
    kc_batch_t *c = s_batch (root, signer, 4, 1, KC_STATUS_ACTIVE, 0);
    assert (kc_store_append (store, c, &seq, chain, &why) == 0 && seq == 4);
    kc_store_rollback (store);
    assert (kc_store_seq (store) == 3 && kc_store_key_count (store) == 2);
    kc_store_key_t info;
    uint8_t four [32];
    memset (four, 4, 32);
    assert (kc_store_key (store, four, &info, &why) == 0 && info.status == 0);

    //  Reading the log and querying keys
    uint64_t last = 0;
    assert (kc_store_read (store, 0, 100, 1 << 20, s_count_batch, &last, &why) == 3);
    assert (last == 3);
    last = 1;
    assert (kc_store_read (store, 1, 1, 1 << 20, s_count_batch, &last, &why) == 1 && last == 2);
    int records = 0;
    assert (kc_store_query (store, "list", NULL, 0, 10, s_count_record, &records, &why) == 2);
    records = 0;
    assert (kc_store_query (store, "name", (const uint8_t *) "node", 4, 10, s_count_record,
                            &records, &why) == 1);

    //  Acknowledgements are kept across a reopen, the last one of a key wins
    kc_store_ack_t acks [2] = { { .seq = 2, .acked = 100 }, { .seq = 3, .acked = 200 } };
    memset (acks [0].key, 7, 32);
    memset (acks [1].key, 8, 32);
    assert (kc_store_save_acks (store, acks, 2, &why) == 0);
    acks [0].seq = 3;
    assert (kc_store_save_acks (store, acks, 1, &why) == 0);

    //  Reopen: the log and chain survive
    uint8_t head_chain [32];
    memcpy (head_chain, kc_store_chain (store), 32);
    kc_store_destroy (&store);
    store = kc_store_open (path, root, &why);
    assert (store && kc_store_seq (store) == 3);
    assert (memcmp (kc_store_chain (store), head_chain, 32) == 0);
    uint64_t acked_seqs = 0;
    assert (kc_store_load_acks (store, s_sum_acks, &acked_seqs, &why) == 2 && acked_seqs == 6);
    assert (kc_store_key_count (store) == 2 && kc_store_revoked_count (store) == 1);
    kc_store_destroy (&store);

    //  A store of another directory is refused
    spec.created = 2;
    kc_root_t *other = kc_root_new (&spec, &why);
    assert (kc_store_open (path, other, &why) == NULL && strstr (why.text, "another directory"));
    kc_root_destroy (&other);

    kc_batch_t *batches [] = { a, b, older, revoke, again, expired, c };
    for (size_t i = 0; i < sizeof batches / sizeof batches [0]; i++) {
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
