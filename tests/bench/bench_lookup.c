/*  =========================================================================
    bench_lookup - lookups by key on one core: kc_lookup over an agent cache
    of 100,000 and 1,000,000 keys, against a raw sqlite primary-key lookup
    (WITHOUT ROWID, prepared statement, the same keys) and an in-memory czmq
    zhashx (32-byte keys) measured in the same run. Target: >= 1M lookups/s
    per core. Also the time to open a handle and the memory it takes.
    =========================================================================
*/
#include "kc_all.h"

#include <sodium.h>
#include <unistd.h>

#define LOOKUPS 2000000

static double
s_now (void)
{
    return (double) zclock_usecs () / 1e6;
}

static long
s_rss_kb (void)
{
    FILE *file = fopen ("/proc/self/status", "r");
    char line [256];
    long kb = 0;
    while (file && fgets (line, sizeof line, file)) {
        if (strncmp (line, "VmRSS:", 6) == 0) {
            kb = atol (line + 6);
        }
    }
    if (file) {
        fclose (file);
    }
    return kb;
}

static size_t
s_hash (const void *key)
{
    uint64_t h;
    memcpy (&h, key, 8);
    return (size_t) h;
}

static int
s_compare (const void *a, const void *b)
{
    return memcmp (a, b, 32);
}

//  Builds an agent cache of count keys (batches of 10,000) at path.
static void
s_build (const char *path, uint8_t *keys, size_t count)
{
    kc_why_t why;
    kc_signer_t *signer = kc_signer_new ("op", "keyclone-operator");
    kc_operator_t op;
    memcpy (op.key, kc_signer_public_key (signer), 32);
    snprintf (op.name, sizeof op.name, "op");
    uint8_t fill [32];
    memset (fill, 7, 32);
    kc_root_spec_t spec = {
        .version = 1, .created = 1, .expires = 4000000000ULL, .operators = &op,
        .operator_count = 1, .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1,
        .head_key = fill, .server_key = fill,
        .endpoints = { "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3" }
    };
    kc_root_t *root = kc_root_new (&spec, &why);
    size_t batch_count = (count + 9999) / 10000;
    kc_batch_t **batches = calloc (batch_count, sizeof (kc_batch_t *));
    uint8_t chain [32];
    kc_chain_genesis (kc_root_directory (root), chain);
    const char *tags [] = { "role=web" };
    for (size_t b = 0; b < batch_count; b++) {
        kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), 1);
        for (size_t i = b * 10000; i < count && i < (b + 1) * 10000; i++) {
            char name [32];
            snprintf (name, sizeof name, "node-%zu", i);
            kc_record_spec_t record = { .key = keys + 32 * i, .version = 1, .status = KC_STATUS_ACTIVE,
                                        .name = name, .tags = tags, .tag_count = 1 };
            if (kc_batch_builder_add (builder, &record, &why)) {
                fprintf (stderr, "bench_lookup: %s\n", why.text);
                exit (1);
            }
        }
        batches [b] = kc_batch_builder_finish (builder, &signer, 1, &why);
        kc_chain_next (chain, b + 1, batches [b], chain);
        kc_batch_builder_destroy (&builder);
    }
    kc_cache_t *cache = kc_cache_create (path, root, batches, batch_count, chain, NULL, &why);
    if (!cache) {
        fprintf (stderr, "bench_lookup: %s\n", why.text);
        exit (1);
    }
    kc_cache_destroy (&cache);
    for (size_t b = 0; b < batch_count; b++) {
        kc_batch_destroy (&batches [b]);
    }
    free (batches);
    kc_root_destroy (&root);
    kc_signer_destroy (&signer);
}

static double
s_bench_keyclone (const char *path, const uint8_t *keys, size_t count, const uint32_t *order)
{
    kc_why_t why;
    long before = s_rss_kb ();
    double start = s_now ();
    kc_lookup_t *lookup = kc_lookup_new (path, &why);
    double opened = s_now ();
    long after = s_rss_kb ();
    //  Normal use: refresh checks are on (every 10 ms by default)
    size_t trusted = 0;
    double t0 = s_now ();
    for (size_t i = 0; i < LOOKUPS; i++) {
        trusted += kc_lookup_key (lookup, keys + 32 * (size_t) order [i % count], NULL) == KC_VERDICT_TRUSTED;
    }
    double rate = LOOKUPS / (s_now () - t0);
    if (trusted != LOOKUPS) {
        fprintf (stderr, "bench_lookup: %zu of %d lookups trusted\n", trusted, LOOKUPS);
        exit (1);
    }
    printf ("  kc_lookup   %8zu keys: %10.0f lookups/s   (open %.2f s, %.0f bytes/key)\n",
            count, rate, opened - start, (double) (after - before) * 1024 / (double) count);
    kc_lookup_destroy (&lookup);
    return rate;
}

static double
s_bench_sqlite (const char *dir, const uint8_t *keys, size_t count, const uint32_t *order)
{
    char path [512];
    snprintf (path, sizeof path, "%s/raw.db", dir);
    unlink (path);
    sqlite3 *db;
    sqlite3_open (path, &db);
    sqlite3_exec (db, "PRAGMA journal_mode=WAL; CREATE TABLE keys (key BLOB PRIMARY KEY, name TEXT, "
                  "status INTEGER, not_after INTEGER, tags TEXT) WITHOUT ROWID; BEGIN", NULL, NULL, NULL);
    sqlite3_stmt *insert, *select;
    sqlite3_prepare_v2 (db, "INSERT INTO keys VALUES (?, 'node', 1, 0, 'role=web')", -1, &insert, NULL);
    for (size_t i = 0; i < count; i++) {
        sqlite3_bind_blob (insert, 1, keys + 32 * i, 32, SQLITE_STATIC);
        sqlite3_step (insert);
        sqlite3_reset (insert);
    }
    sqlite3_finalize (insert);
    sqlite3_exec (db, "COMMIT", NULL, NULL, NULL);
    sqlite3_prepare_v2 (db, "SELECT name, status, not_after, tags FROM keys WHERE key = ?", -1, &select, NULL);
    size_t found = 0, n = LOOKUPS / 4;
    double t0 = s_now ();
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_blob (select, 1, keys + 32 * (size_t) order [i % count], 32, SQLITE_STATIC);
        found += sqlite3_step (select) == SQLITE_ROW;
        sqlite3_reset (select);
    }
    double rate = (double) n / (s_now () - t0);
    sqlite3_finalize (select);
    sqlite3_close (db);
    unlink (path);
    printf ("  raw sqlite  %8zu keys: %10.0f lookups/s   (primary key, prepared)\n", count, rate);
    return found == n ? rate : 0;
}

static double
s_bench_zhashx (const uint8_t *keys, size_t count, const uint32_t *order)
{
    zhashx_t *hash = zhashx_new ();
    zhashx_set_key_hasher (hash, s_hash);
    zhashx_set_key_comparator (hash, s_compare);
    zhashx_set_key_duplicator (hash, NULL);
    zhashx_set_key_destructor (hash, NULL);
    static int value = 1;
    for (size_t i = 0; i < count; i++) {
        zhashx_insert (hash, keys + 32 * i, &value);
    }
    size_t found = 0;
    double t0 = s_now ();
    for (size_t i = 0; i < LOOKUPS; i++) {
        found += zhashx_lookup (hash, keys + 32 * (size_t) order [i % count]) != NULL;
    }
    double rate = LOOKUPS / (s_now () - t0);
    zhashx_destroy (&hash);
    printf ("  zhashx      %8zu keys: %10.0f lookups/s   (in memory, no status)\n", count, rate);
    return found == LOOKUPS ? rate : 0;
}

int
main (void)
{
    if (sodium_init () < 0) {
        return 1;
    }
    char dir [] = "/tmp/bench_lookup.XXXXXX";
    if (!mkdtemp (dir)) {
        return 1;
    }
    size_t sizes [2] = { 100000, 1000000 };
    uint8_t *keys = malloc (32 * sizes [1]);
    randombytes_buf (keys, 32 * sizes [1]);
    uint32_t *order = malloc (sizeof (uint32_t) * sizes [1]);
    printf ("lookups by key, one core, random existing keys\n");
    for (int s = 0; s < 2; s++) {
        size_t count = sizes [s];
        for (size_t i = 0; i < count; i++) {
            order [i] = (uint32_t) randombytes_uniform ((uint32_t) count);
        }
        char path [512];
        snprintf (path, sizeof path, "%s/agent.db", dir);
        s_build (path, keys, count);
        double keyclone = s_bench_keyclone (path, keys, count, order);
        double raw = s_bench_sqlite (dir, keys, count, order);
        double hash = s_bench_zhashx (keys, count, order);
        printf ("  => %zu keys: kc_lookup %.1fx raw sqlite, %.2fx zhashx; %.2fM/s vs target 1M/s: %s\n",
                count, keyclone / raw, keyclone / hash, keyclone / 1e6, keyclone >= 1e6 ? "met" : "MISSED");
        unlink (path);
    }
    char command [600];
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    if (system (command)) {
        return 1;
    }
    free (order);
    free (keys);
    return 0;
}
