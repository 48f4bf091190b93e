/*  =========================================================================
    kc_pending - the server's enrolment requests: a table of the store's
    database (schema/server/0005), a count and the next expiry in memory
    (so a server at rest never touches it), and a token bucket per source
    address.
    =========================================================================
*/
#include "kc_pending.h"
#include "kc_db.h"

#include <czmq.h>

typedef struct {
    double tokens;
    int64_t at;                             //  unix ms of the last refill
} s_bucket_t;

enum { S_GET, S_PUT, S_DELETE, S_EXPIRE, S_NEXT, S_COUNT, S_LIST, S_STATEMENTS };

static const char *s_sql [S_STATEMENTS] = {
    [S_GET] = "SELECT data FROM enrolments WHERE key = ?1 AND expires > ?2",
    [S_PUT] = "INSERT OR REPLACE INTO enrolments (key, expires, data) VALUES (?1, ?2, ?3)",
    [S_DELETE] = "DELETE FROM enrolments WHERE key = ?1",
    [S_EXPIRE] = "DELETE FROM enrolments WHERE expires <= ?1",
    [S_NEXT] = "SELECT min(expires) FROM enrolments",
    [S_COUNT] = "SELECT count(*) FROM enrolments",
    [S_LIST] = "SELECT data FROM enrolments ORDER BY expires, key"
};

struct _kc_pending_t {
    sqlite3 *db;
    sqlite3_stmt *statements [S_STATEMENTS];
    kc_pending_config_t config;
    size_t count;                           //  rows in the table
    uint64_t next_expiry;                   //  the earliest expires, 0 when none
    zhashx_t *sources;                      //  address -> s_bucket_t
    uint64_t refused;
};

static int
s_fail (kc_pending_t *self, kc_why_t *why, const char *what)
{
    return kc_why (why, "enrolments: cannot %s: %s", what, sqlite3_errmsg (self->db));
}

//  Re-reads the count and the next expiry (after a change).
static void
s_recount (kc_pending_t *self)
{
    sqlite3_stmt *stmt = self->statements [S_COUNT];
    self->count = sqlite3_step (stmt) == SQLITE_ROW ? (size_t) sqlite3_column_int64 (stmt, 0) : 0;
    sqlite3_reset (stmt);
    stmt = self->statements [S_NEXT];
    self->next_expiry = sqlite3_step (stmt) == SQLITE_ROW ? (uint64_t) sqlite3_column_int64 (stmt, 0) : 0;
    sqlite3_reset (stmt);
}

static void
s_free_bucket (void **item)
{
    free (*item);
    *item = NULL;
}

kc_pending_t *
kc_pending_new (sqlite3 *db, const kc_pending_config_t *config, kc_why_t *why)
{
    kc_pending_t *self = calloc (1, sizeof *self);
    assert (self);
    self->db = db;
    self->config = *config;
    for (int i = 0; i < S_STATEMENTS; i++) {
        self->statements [i] = kc_db_prepare (db, s_sql [i], why);
        if (!self->statements [i]) {
            kc_pending_destroy (&self);
            return NULL;
        }
    }
    self->sources = zhashx_new ();
    zhashx_set_destructor (self->sources, s_free_bucket);
    s_recount (self);
    return self;
}

void
kc_pending_destroy (kc_pending_t **self_p)
{
    if (self_p && *self_p) {
        kc_pending_t *self = *self_p;
        for (int i = 0; i < S_STATEMENTS; i++) {
            sqlite3_finalize (self->statements [i]);
        }
        zhashx_destroy (&self->sources);
        free (self);
        *self_p = NULL;
    }
}

void
kc_pending_configure (kc_pending_t *self, const kc_pending_config_t *config)
{
    self->config = *config;
}

//  The bucket of a source, refilled to now: per_minute tokens at most.
static double
s_refill (const kc_pending_t *self, s_bucket_t *bucket, int64_t now)
{
    double rate = (double) self->config.per_minute / 60000.0;
    bucket->tokens += (double) (now - bucket->at) * rate;
    if (bucket->tokens > self->config.per_minute) {
        bucket->tokens = self->config.per_minute;
    }
    bucket->at = now;
    return bucket->tokens;
}

//  Takes one token from the source's bucket; -1 with a reason when it has
//  none (or when too many sources are being tracked to add one more).
static int
s_take (kc_pending_t *self, const char *source, uint64_t now_ms, kc_why_t *why)
{
    int64_t now = (int64_t) now_ms;
    s_bucket_t *bucket = zhashx_lookup (self->sources, source);
    if (!bucket && zhashx_size (self->sources) >= KC_PENDING_SOURCES_MAX) {
        //  Forget sources whose bucket is full again: they are as new
        zlistx_t *keys = zhashx_keys (self->sources);
        for (const char *key = zlistx_first (keys); key; key = zlistx_next (keys)) {
            s_bucket_t *other = zhashx_lookup (self->sources, key);
            if (s_refill (self, other, now) >= self->config.per_minute) {
                zhashx_delete (self->sources, key);
            }
        }
        zlistx_destroy (&keys);
        if (zhashx_size (self->sources) >= KC_PENDING_SOURCES_MAX) {
            return kc_why (why, "refused: enrolment requests from %d sources in the last minute; try later",
                           KC_PENDING_SOURCES_MAX);
        }
    }
    if (!bucket) {
        bucket = calloc (1, sizeof *bucket);
        assert (bucket);
        bucket->tokens = self->config.per_minute;
        bucket->at = now;
        zhashx_insert (self->sources, source, bucket);
    }
    if (s_refill (self, bucket, now) < 1.0) {
        return kc_why (why, "refused: too many enrolment requests from %s (at most %u a minute); try later",
                       source, self->config.per_minute);
    }
    bucket->tokens -= 1.0;
    return 0;
}

static int
s_put (kc_pending_t *self, const kc_enrolment_t *enrolment, kc_why_t *why)
{
    size_t size;
    uint8_t *data = kc_enrolment_encode (enrolment, &size);
    sqlite3_stmt *stmt = self->statements [S_PUT];
    sqlite3_bind_blob (stmt, 1, enrolment->key, KC_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) enrolment->expires);
    sqlite3_bind_blob (stmt, 3, data, (int) size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    free (data);
    if (rc != SQLITE_DONE) {
        return s_fail (self, why, "store a request");
    }
    s_recount (self);
    return 0;
}

int
kc_pending_get (kc_pending_t *self, const uint8_t key [static KC_KEY_BYTES], uint64_t now_ms,
                kc_enrolment_t *out, kc_why_t *why)
{
    if (self->count == 0) {
        return 0;
    }
    sqlite3_stmt *stmt = self->statements [S_GET];
    sqlite3_bind_blob (stmt, 1, key, KC_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) now_ms);
    int rc = sqlite3_step (stmt);
    int found = 0;
    if (rc == SQLITE_ROW) {
        found = kc_enrolment_decode (sqlite3_column_blob (stmt, 0), (size_t) sqlite3_column_bytes (stmt, 0),
                                     out, why) ? -1 : 1;
    }
    else
    if (rc != SQLITE_DONE) {
        found = s_fail (self, why, "read a request");
    }
    sqlite3_reset (stmt);
    return found;
}

static bool
s_same_request (const kc_enrolment_t *a, const kc_enrolment_t *b)
{
    if (!KC_STREQ (a->name, b->name) || a->tag_count != b->tag_count || a->rotation != b->rotation
    ||  (a->rotation && (memcmp (a->replaces, b->replaces, KC_KEY_BYTES) || a->overlap != b->overlap))) {
        return false;
    }
    for (size_t i = 0; i < a->tag_count; i++) {
        if (!KC_STREQ (a->tags [i], b->tags [i])) {
            return false;
        }
    }
    return true;
}

int
kc_pending_request (kc_pending_t *self, const kc_enrolment_t *asked, uint64_t now_ms,
                    kc_enrolment_t *out, kc_why_t *why)
{
    kc_pending_expire (self, now_ms);
    int found = kc_pending_get (self, asked->key, now_ms, out, why);
    if (found < 0) {
        return -1;
    }
    if (found && (out->state == KC_ENROL_REJECTED || s_same_request (out, asked))) {
        return 0;                           //  asked again: where it stands
    }
    if (found) {
        self->refused++;
        return kc_why (why, "refused: a request from this key is already pending as '%s'%s; wait for "
                       "an operator, or ask one to reject it first", out->name,
                       out->rotation ? " (a rotation)" : "");
    }
    //  The bound first: a request the list has no room for does not use up
    //  its source's rate
    if (self->count >= self->config.max) {
        self->refused++;
        return kc_why (why, "refused: %zu enrolment requests are already waiting (the server keeps "
                       "at most %zu); try later", self->count, self->config.max);
    }
    if (s_take (self, asked->source, now_ms, why)) {
        self->refused++;
        return -1;
    }
    *out = *asked;
    out->state = KC_ENROL_PENDING;
    out->requested = now_ms;
    out->expires = now_ms + self->config.expiry_ms;
    out->seq = 0;
    out->reason [0] = 0;
    return s_put (self, out, why);
}

int
kc_pending_reject (kc_pending_t *self, const uint8_t key [static KC_KEY_BYTES], const char *reason,
                   uint64_t now_ms, kc_enrolment_t *out, kc_why_t *why)
{
    int found = kc_pending_get (self, key, now_ms, out, why);
    if (found < 0) {
        return -1;
    }
    if (found == 0) {
        char fp [KC_FINGERPRINT_CHARS + 1];
        return kc_why (why, "no enrolment request from %s is waiting (expired, or never made)",
                       kc_fingerprint (key, fp));
    }
    out->state = KC_ENROL_REJECTED;
    snprintf (out->reason, sizeof out->reason, "%s", reason && *reason ? reason : "rejected by an operator");
    return s_put (self, out, why);
}

void
kc_pending_forget (kc_pending_t *self, const kc_batch_t *batch)
{
    if (self->count == 0) {
        return;
    }
    kc_why_t why;
    bool open = kc_db_exec (self->db, "BEGIN", &why) == 0;
    sqlite3_stmt *stmt = self->statements [S_DELETE];
    size_t deleted = 0;
    for (size_t r = 0; r < kc_batch_count (batch); r++) {
        sqlite3_bind_blob (stmt, 1, kc_batch_record (batch, r)->key, KC_KEY_BYTES, SQLITE_STATIC);
        sqlite3_step (stmt);
        sqlite3_reset (stmt);
        deleted += (size_t) sqlite3_changes (self->db);
    }
    if (open && kc_db_exec (self->db, "COMMIT", &why)) {
        zsys_error ("kc_pending: %s", why.text);
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (deleted) {
        s_recount (self);
    }
}

size_t
kc_pending_expire (kc_pending_t *self, uint64_t now_ms)
{
    if (self->count == 0 || self->next_expiry > now_ms) {
        return 0;
    }
    sqlite3_stmt *stmt = self->statements [S_EXPIRE];
    sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) now_ms);
    sqlite3_step (stmt);
    sqlite3_reset (stmt);
    size_t removed = (size_t) sqlite3_changes (self->db);
    s_recount (self);
    return removed;
}

int
kc_pending_list (kc_pending_t *self, uint64_t now_ms, kc_pending_fn *fn, void *arg, kc_why_t *why)
{
    kc_pending_expire (self, now_ms);
    if (self->count == 0) {
        return 0;
    }
    sqlite3_stmt *stmt = self->statements [S_LIST];
    int count = 0, rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (fn (sqlite3_column_blob (stmt, 0), (size_t) sqlite3_column_bytes (stmt, 0), arg)) {
            rc = SQLITE_DONE;
            break;
        }
        count++;
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? count : s_fail (self, why, "list the requests");
}

size_t
kc_pending_count (const kc_pending_t *self)
{
    return self->count;
}

uint64_t
kc_pending_refused (const kc_pending_t *self)
{
    return self->refused;
}
