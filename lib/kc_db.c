/*  =========================================================================
    kc_db - sqlite open, pragmas and migrations.
    =========================================================================
*/
#include "kc_db.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static __thread bool s_open_corrupt;

bool
kc_db_last_open_corrupt (void)
{
    return s_open_corrupt;
}

static void
s_note (int rc)
{
    int primary = rc & 0xff;
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
        s_open_corrupt = true;
    }
}

int
kc_db_exec (sqlite3 *db, const char *sql, kc_why_t *why)
{
    char *message = NULL;
    int rc = sqlite3_exec (db, sql, NULL, NULL, &message);
    s_note (rc);
    if (rc != SQLITE_OK) {
        kc_why (why, "%s", message ? message : sqlite3_errmsg (db));
        sqlite3_free (message);
        return -1;
    }
    return 0;
}

kc_root_t *
kc_db_follow_roots (sqlite3_stmt *stmt, const kc_root_t *pinned, const char *what,
                    kc_root_visit_fn *fn, void *arg, kc_why_t *why)
{
    kc_root_t *current = kc_root_dup (pinned);
    if (fn) {
        fn (current, arg);
    }
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const kc_root_t *before = current;
        if (kc_root_follow (&current, sqlite3_column_blob (stmt, 1),
                            (size_t) sqlite3_column_bytes (stmt, 1), why)) {
            kc_why_prefix (why, "%s: root change at seq %llu", what,
                           (unsigned long long) sqlite3_column_int64 (stmt, 0));
            break;
        }
        if (fn && current != before) {
            fn (current, arg);
        }
    }
    if (rc != SQLITE_DONE) {
        if (rc != SQLITE_ROW) {
            kc_why (why, "%s: cannot read the root changes: %s", what,
                    sqlite3_errmsg (sqlite3_db_handle (stmt)));
        }
        kc_root_destroy (&current);
    }
    sqlite3_reset (stmt);
    return current;
}

sqlite3_stmt *
kc_db_prepare (sqlite3 *db, const char *sql, kc_why_t *why)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v3 (db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK) {
        kc_why (why, "cannot prepare '%.60s': %s", sql, sqlite3_errmsg (db));
        return NULL;
    }
    return stmt;
}

int
kc_db_version (sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;
    int version = -1;
    if (sqlite3_prepare_v2 (db, "PRAGMA user_version", -1, &stmt, NULL) == SQLITE_OK
    &&  sqlite3_step (stmt) == SQLITE_ROW) {
        version = sqlite3_column_int (stmt, 0);
    }
    sqlite3_finalize (stmt);
    return version;
}

int
kc_schema_count (const kc_schema_t *schema)
{
    int count = 0;
    while (schema->migrations [count]) {
        count++;
    }
    return count;
}

static int
s_migrate (sqlite3 *db, const kc_schema_t *schema, kc_why_t *why)
{
    int known = kc_schema_count (schema);
    if (kc_db_exec (db, "BEGIN IMMEDIATE", why)) {
        return -1;
    }
    //  Read the version inside the write transaction, so two processes
    //  opening a new file cannot both migrate it
    int version = kc_db_version (db);
    if (version < 0 || version > known) {
        kc_why (why, "%s database has schema version %d; this keyclone knows 1..%d "
                "(newer keyclone, or not a keyclone %s database)",
                schema->kind, version, known, schema->kind);
        goto fail;
    }
    for (int i = version; i < known; i++) {
        if (kc_db_exec (db, schema->migrations [i], why)) {
            kc_why_prefix (why, "%s migration %d", schema->kind, i + 1);
            goto fail;
        }
    }
    char sql [64];
    snprintf (sql, sizeof sql, "PRAGMA user_version = %d", known);
    if (kc_db_exec (db, sql, why) || kc_db_exec (db, "COMMIT", why)) {
        goto fail;
    }
    return 0;
fail:
    if (!sqlite3_get_autocommit (db)) {
        sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
    }
    return -1;
}

sqlite3 *
kc_db_open (const char *path, const kc_schema_t *schema, kc_db_mode_t mode,
            const char *synchronous, kc_why_t *why)
{
    sqlite3 *db = NULL;
    s_open_corrupt = false;
    int flags = mode == KC_DB_READONLY ? SQLITE_OPEN_READONLY
                                       : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    //  A new database is created with KC_DB_FILE_MODE whatever the umask;
    //  sqlite gives its -wal and -shm files the same mode
    if (mode != KC_DB_READONLY) {
        int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, KC_DB_FILE_MODE);
        if (fd >= 0) {
            int rc = fchmod (fd, KC_DB_FILE_MODE);
            close (fd);
            if (rc) {
                kc_why (why, "cannot chmod '%s': %s", path, strerror (errno));
                return NULL;
            }
        }
    }
    if (sqlite3_open_v2 (path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        kc_why (why, "cannot open '%s': %s", path, db ? sqlite3_errmsg (db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes (db, 1);
    sqlite3_busy_timeout (db, 5000);
    char pragmas [160];
    snprintf (pragmas, sizeof pragmas, "PRAGMA foreign_keys = ON; PRAGMA synchronous = %s;",
              synchronous);
    //  A file built in one go is mostly large bucket rows: bigger pages keep
    //  them in fewer pages (measured: 1M keys build in 0.86 s instead of 1.26)
    if (mode == KC_DB_BUILD && kc_db_exec (db, "PRAGMA page_size = 16384", why)) {
        goto fail;
    }
    const char *journal = mode == KC_DB_READWRITE ? "PRAGMA journal_mode = WAL"
                        : mode == KC_DB_BUILD ? "PRAGMA journal_mode = OFF" : NULL;
    if (journal && kc_db_exec (db, journal, why)) {
        kc_why_prefix (why, "cannot open '%s'", path);
        goto fail;
    }
    if (mode == KC_DB_BUILD) {
        snprintf (pragmas, sizeof pragmas, "PRAGMA synchronous = OFF;");
    }
    if (kc_db_exec (db, pragmas, why)) {
        kc_why_prefix (why, "cannot open '%s'", path);
        goto fail;
    }
    if (mode != KC_DB_READONLY) {
        if (s_migrate (db, schema, why)) {
            kc_why_prefix (why, "'%s'", path);
            goto fail;
        }
    }
    else
    if (kc_db_version (db) != kc_schema_count (schema)) {
        kc_why (why, "'%s' has schema version %d, expected %d", path, kc_db_version (db),
                kc_schema_count (schema));
        goto fail;
    }
    return db;
fail:
    sqlite3_close (db);
    return NULL;
}

void
kc_db_close (sqlite3 **db_p)
{
    if (db_p && *db_p) {
        sqlite3_close_v2 (*db_p);
        *db_p = NULL;
    }
}

void
kc_db_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_db: ");
    }
    char dir [] = "/tmp/kc_db_test.XXXXXX";
    assert (mkdtemp (dir));
    char path [256];
    snprintf (path, sizeof path, "%s/server.db", dir);
    kc_why_t why;

    sqlite3 *db = kc_db_open (path, &kc_schema_server, KC_DB_READWRITE, "FULL", &why);
    assert (db);
    int known = kc_schema_count (&kc_schema_server);
    assert (known >= 1 && kc_db_version (db) == known);
    //  WAL mode is on and persistent
    sqlite3_stmt *stmt = kc_db_prepare (db, "PRAGMA journal_mode", &why);
    assert (stmt && sqlite3_step (stmt) == SQLITE_ROW);
    assert (KC_STREQ ((const char *) sqlite3_column_text (stmt, 0), "wal"));
    sqlite3_finalize (stmt);
    //  The tables exist and enforce their checks
    assert (kc_db_exec (db, "INSERT INTO meta (name, value) VALUES ('x', 'y')", &why) == 0);
    assert (kc_db_exec (db, "INSERT INTO batches (seq, digest, chain, records, accepted, data) "
                        "VALUES (1, x'00', x'00', 1, 0, x'00')", &why) == -1);
    assert (strstr (why.text, "CHECK"));
    kc_db_close (&db);
    assert (db == NULL);

    //  Reopening applies nothing new and keeps data
    db = kc_db_open (path, &kc_schema_server, KC_DB_READWRITE, "FULL", &why);
    assert (db && kc_db_version (db) == known);
    stmt = kc_db_prepare (db, "SELECT value FROM meta WHERE name = 'x'", &why);
    assert (stmt && sqlite3_step (stmt) == SQLITE_ROW);
    sqlite3_finalize (stmt);
    //  A newer schema than we know is refused
    assert (kc_db_exec (db, "PRAGMA user_version = 999", &why) == 0);
    kc_db_close (&db);
    assert (kc_db_open (path, &kc_schema_server, KC_DB_READWRITE, "FULL", &why) == NULL);
    assert (strstr (why.text, "schema version 999"));
    assert (kc_db_open (path, &kc_schema_server, KC_DB_READONLY, "FULL", &why) == NULL);

    //  A file that is not a database is refused with sqlite's reason
    FILE *file = fopen (path, "w");
    fputs ("this is not a database, it is a sentence long enough to fill a header......"
           "................................................................", file);
    fclose (file);
    char wal [300];
    snprintf (wal, sizeof wal, "%s-wal", path);
    unlink (wal);
    snprintf (wal, sizeof wal, "%s-shm", path);
    unlink (wal);
    assert (kc_db_open (path, &kc_schema_server, KC_DB_READWRITE, "FULL", &why) == NULL);
    assert (strstr (why.text, "not a database"));

    char command [300];
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    assert (system (command) == 0);
    if (verbose) {
        printf ("OK\n");
    }
}

int
kc_db_read_grant (sqlite3_stmt *stmt, kc_grant_t **grant, uint64_t *used, bool *revoked, kc_why_t *why)
{
    *grant = NULL;
    *used = 0;
    *revoked = false;
    int rc = sqlite3_step (stmt), found = 0;
    if (rc == SQLITE_ROW) {
        *grant = kc_grant_decode (sqlite3_column_blob (stmt, 0), (size_t) sqlite3_column_bytes (stmt, 0), why);
        *used = (uint64_t) sqlite3_column_int64 (stmt, 1);
        *revoked = sqlite3_column_int (stmt, 2) != 0;
        found = *grant ? 1 : -1;
    }
    else
    if (rc != SQLITE_DONE) {
        found = kc_why (why, "cannot read a grant: %s", sqlite3_errmsg (sqlite3_db_handle (stmt)));
    }
    sqlite3_reset (stmt);
    return found;
}

int
kc_db_put_grant (sqlite3_stmt *stmt, const kc_grant_t *grant, uint64_t seq, uint64_t used, bool revoked,
                 kc_why_t *why)
{
    sqlite3_bind_blob (stmt, 1, grant->grant_key, KC_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) seq);
    sqlite3_bind_int64 (stmt, 3, (sqlite3_int64) used);
    sqlite3_bind_int (stmt, 4, revoked);
    sqlite3_bind_blob (stmt, 5, grant->data, (int) grant->size, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : kc_why (why, "cannot store a grant: %s", sqlite3_errmsg (sqlite3_db_handle (stmt)));
}
