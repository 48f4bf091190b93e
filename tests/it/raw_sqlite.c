/*  =========================================================================
    raw_sqlite - the raw sqlite peer of the agent's cold sync, for
    tests/bench/bench_sync.py: inserts ROWS rows of a random 32-byte key, a
    sequence number and a RECORD_BYTES blob into a new WITHOUT ROWID table
    in one transaction (WAL, synchronous=NORMAL, default cache, as in
    perf-baseline section 3), COMMIT included. The rows are made before the
    clock starts; with --sorted they are inserted in key order (the best
    case), else in random key order (as keys arrive).

    Usage: raw_sqlite PATH ROWS RECORD_BYTES [--sorted]
    PATH must not exist; it is removed afterwards. Prints one JSON object.
    =========================================================================
*/
#include "kc_all.h"

#include <sodium.h>
#include <sqlite3.h>
#include <time.h>

#define KEY_BYTES 32

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
s_compare_keys (const void *a, const void *b)
{
    return memcmp (a, b, KEY_BYTES);
}

static int
s_exec (sqlite3 *db, const char *sql)
{
    char *error = NULL;
    if (sqlite3_exec (db, sql, NULL, NULL, &error) != SQLITE_OK) {
        fprintf (stderr, "raw_sqlite: cannot run '%s': %s\n", sql, error ? error : "?");
        sqlite3_free (error);
        return -1;
    }
    return 0;
}

static void
s_remove (const char *path)
{
    static const char *suffixes [] = { "", "-wal", "-shm", "-journal", NULL };
    char name [4200];
    for (int i = 0; suffixes [i]; i++) {
        snprintf (name, sizeof name, "%s%s", path, suffixes [i]);
        unlink (name);
    }
}

//  Inserts every row in one transaction; returns the seconds taken or -1.
static double
s_insert (sqlite3 *db, const uint8_t *keys, long rows, const uint8_t *record, long record_bytes)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (db, "INSERT INTO keys (key, seq, record) VALUES (?, ?, ?)", -1,
                            &stmt, NULL) != SQLITE_OK) {
        fprintf (stderr, "raw_sqlite: cannot prepare: %s\n", sqlite3_errmsg (db));
        return -1;
    }
    double start = s_now ();
    double seconds = -1;
    if (s_exec (db, "BEGIN")) {
        goto cleanup;
    }
    for (long i = 0; i < rows; i++) {
        sqlite3_bind_blob (stmt, 1, keys + i * KEY_BYTES, KEY_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, i / 10000 + 1);
        sqlite3_bind_blob (stmt, 3, record, (int) record_bytes, SQLITE_STATIC);
        if (sqlite3_step (stmt) != SQLITE_DONE) {
            fprintf (stderr, "raw_sqlite: cannot insert row %ld: %s\n", i, sqlite3_errmsg (db));
            goto cleanup;
        }
        sqlite3_reset (stmt);
    }
    if (s_exec (db, "COMMIT")) {
        goto cleanup;
    }
    seconds = s_now () - start;
cleanup:
    sqlite3_finalize (stmt);
    return seconds;
}

int
main (int argc, char *argv [])
{
    if (argc < 4 || argc > 5 || (argc == 5 && strcmp (argv [4], "--sorted"))) {
        fprintf (stderr, "Usage: raw_sqlite PATH ROWS RECORD_BYTES [--sorted]\n");
        return 2;
    }
    const char *path = argv [1];
    long rows = atol (argv [2]), record_bytes = atol (argv [3]);
    bool sorted = argc == 5;
    if (rows < 1 || record_bytes < 1 || record_bytes > 65536 || sodium_init () < 0) {
        fprintf (stderr, "raw_sqlite: ROWS >= 1 and RECORD_BYTES 1..65536 needed\n");
        return 2;
    }
    uint8_t *keys = malloc ((size_t) rows * KEY_BYTES);
    uint8_t *record = malloc ((size_t) record_bytes);
    assert (keys && record);
    randombytes_buf (keys, (size_t) rows * KEY_BYTES);
    randombytes_buf (record, (size_t) record_bytes);
    if (sorted) {
        qsort (keys, (size_t) rows, KEY_BYTES, s_compare_keys);
    }
    int rc = 1;
    sqlite3 *db = NULL;
    if (sqlite3_open (path, &db) != SQLITE_OK) {
        fprintf (stderr, "raw_sqlite: cannot open '%s': %s\n", path, sqlite3_errmsg (db));
        goto cleanup;
    }
    if (s_exec (db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                    "CREATE TABLE keys (key BLOB PRIMARY KEY, seq INTEGER NOT NULL, "
                    "record BLOB NOT NULL) WITHOUT ROWID")) {
        goto cleanup;
    }
    double seconds = s_insert (db, keys, rows, record, record_bytes);
    if (seconds < 0) {
        goto cleanup;
    }
    printf ("{\"rows\": %ld, \"record_bytes\": %ld, \"sorted\": %s, \"seconds\": %.4f, "
            "\"rows_per_s\": %.0f}\n", rows, record_bytes, sorted ? "true" : "false", seconds,
            (double) rows / seconds);
    rc = 0;
cleanup:
    sqlite3_close (db);
    s_remove (path);
    free (keys);
    free (record);
    return rc;
}
