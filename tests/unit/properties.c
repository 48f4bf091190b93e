/*  =========================================================================
    properties - randomised checks of the lifecycle promises (design.md
    5a): random sequences of register, re-register and revoke batches with
    random versions (1, the stored one, one above, 2^63-1, anything) are
    applied to a server store and an agent cache side by side, and after
    every step:

    - both accept exactly what a model of the rules accepts;
    - every key that is not revoked can still be revoked, whatever its
      version (a revocation at any version passes both checks);
    - no revoked key can ever be registered again, at any version;
    - a cold build of the accepted log gives the cache the same state.

    Fixed seeds, so a failure reproduces; KC_PROPERTY_SEEDS=N runs more.
    =========================================================================
*/
#include "kc_all.h"
#include "selftest.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define KEYS        64
#define STEPS       250
#define BATCH_MAX   3

typedef struct {
    uint8_t status [KEYS];                  //  0 unknown, 1 active, 2 revoked
    uint64_t version [KEYS];
} s_model_t;

typedef struct {
    kc_root_t *root;
    kc_signer_t *signer;
    kc_store_t *store;
    kc_cache_t *cache;
    s_model_t model;
    uint64_t state;                         //  xorshift64
    kc_batch_t *log [STEPS + 1];
    size_t log_count;
    size_t accepted, refused, max_then_revoked;
} s_world_t;

static uint64_t
s_random (s_world_t *w)
{
    w->state ^= w->state << 13;
    w->state ^= w->state >> 7;
    w->state ^= w->state << 17;
    return w->state;
}

//  A version worth trying against key k: the interesting ones often.
static uint64_t
s_version (s_world_t *w, int k)
{
    uint64_t stored = w->model.version [k];
    switch (s_random (w) % 6) {
        case 0: return 1;
        case 1: return KC_RECORD_VERSION_MAX;
        case 2: return stored ? stored : 1;
        case 3: return stored < KC_RECORD_VERSION_MAX ? stored + 1 : stored;
        case 4: return stored > 1 ? stored - 1 : 1;
        default: return 1 + s_random (w) % KC_RECORD_VERSION_MAX;
    }
}

static void
s_key (int k, uint8_t key [static 32])
{
    memset (key, 0, 32);
    key [0] = (uint8_t) (k + 1);
    key [31] = 0x5a;
}

//  One batch of records (keys distinct), signed by the operator.
static kc_batch_t *
s_batch (s_world_t *w, const int *keys, const kc_status_t *status, const uint64_t *versions,
         size_t count)
{
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (w->root), 1);
    kc_why_t why;
    for (size_t i = 0; i < count; i++) {
        uint8_t key [32];
        s_key (keys [i], key);
        kc_record_spec_t spec = { .key = key, .version = versions [i], .status = status [i],
                                  .name = status [i] == KC_STATUS_ACTIVE ? "node" : NULL };
        assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    }
    kc_batch_t *batch = kc_batch_builder_finish (builder, &w->signer, 1, &why);
    assert (batch);
    kc_batch_builder_destroy (&builder);
    return batch;
}

//  What the rules say about one record.
static bool
s_model_accepts (const s_model_t *model, int k, kc_status_t status, uint64_t version)
{
    if (model->status [k] == KC_STATUS_REVOKED) {
        return false;
    }
    if (status == KC_STATUS_REVOKED) {
        return true;
    }
    return model->status [k] == 0 || version > model->version [k];
}

//  Only the checks, changing nothing: does each party accept the batch?
static void
s_checks (s_world_t *w, const kc_batch_t *batch, bool *store_ok, bool *cache_ok)
{
    kc_why_t why;
    *store_ok = kc_store_check (w->store, batch, 100, &why) == 0;
    *cache_ok = kc_cache_check (w->cache, batch, &why) == 0;
}

static void
s_step (s_world_t *w)
{
    int keys [BATCH_MAX];
    kc_status_t status [BATCH_MAX];
    uint64_t versions [BATCH_MAX];
    size_t count = 1 + s_random (w) % BATCH_MAX;
    bool expected = true;
    for (size_t i = 0; i < count; i++) {
        bool taken;
        do {
            keys [i] = (int) (s_random (w) % KEYS);
            taken = false;
            for (size_t j = 0; j < i; j++) {
                taken |= keys [j] == keys [i];
            }
        } while (taken);
        status [i] = s_random (w) % 8 == 0 ? KC_STATUS_REVOKED : KC_STATUS_ACTIVE;
        versions [i] = s_version (w, keys [i]);
        expected &= s_model_accepts (&w->model, keys [i], status [i], versions [i]);
    }
    kc_batch_t *batch = s_batch (w, keys, status, versions, count);
    bool store_ok, cache_ok;
    s_checks (w, batch, &store_ok, &cache_ok);
    assert (store_ok == expected && cache_ok == expected);
    if (!expected) {
        w->refused++;
        kc_batch_destroy (&batch);
        return;
    }
    //  Apply to both, same sequence and chain
    kc_why_t why;
    uint64_t seq;
    uint8_t chain [KC_HASH_BYTES];
    assert (kc_store_begin (w->store, &why) == 0);
    assert (kc_store_append (w->store, batch, &seq, chain, &why) == 0);
    assert (kc_store_commit (w->store, &why) == 0);
    assert (kc_cache_begin (w->cache, &why) == 0);
    assert (kc_cache_apply (w->cache, seq, chain, batch, &why) == 0);
    assert (kc_cache_commit (w->cache, &why) == 0);
    for (size_t i = 0; i < count; i++) {
        int k = keys [i];
        w->max_then_revoked += status [i] == KC_STATUS_REVOKED
                            && w->model.version [k] == KC_RECORD_VERSION_MAX;
        w->model.status [k] = (uint8_t) status [i];
        w->model.version [k] = versions [i];
    }
    w->log [w->log_count++] = batch;
    w->accepted++;
}

//  The promises, after every step.
static void
s_invariants (s_world_t *w)
{
    for (int k = 0; k < KEYS; k++) {
        uint8_t key [32];
        s_key (k, key);
        kc_cache_entry_t entry;
        kc_why_t why;
        assert (kc_cache_lookup (w->cache, key, &entry, &why) == 0);
        assert (entry.status == w->model.status [k]);
        kc_store_key_t stored;
        assert (kc_store_key (w->store, key, &stored, &why) == 0 && stored.status == w->model.status [k]);
        kc_status_t status [1] = { KC_STATUS_REVOKED };
        uint64_t versions [1] = { s_random (w) % 2 ? 1 : s_version (w, k) };
        bool store_ok, cache_ok;
        if (w->model.status [k] != KC_STATUS_REVOKED) {
            //  Always revocable, at any version
            kc_batch_t *revoke = s_batch (w, &k, status, versions, 1);
            s_checks (w, revoke, &store_ok, &cache_ok);
            assert (store_ok && cache_ok);
            kc_batch_destroy (&revoke);
        }
        else {
            //  Never trusted again: a registration at any version, even the
            //  highest, is refused
            assert (entry.status == KC_STATUS_REVOKED);
            status [0] = KC_STATUS_ACTIVE;
            versions [0] = s_random (w) % 2 ? KC_RECORD_VERSION_MAX : s_version (w, k);
            kc_batch_t *again = s_batch (w, &k, status, versions, 1);
            s_checks (w, again, &store_ok, &cache_ok);
            assert (!store_ok && !cache_ok);
            kc_batch_destroy (&again);
        }
    }
}

static size_t
s_run (uint64_t seed, const char *dir, kc_root_t *root, kc_signer_t *signer, bool verbose)
{
    char path [256], built [256];
    snprintf (path, sizeof path, "%s/store-%llu.db", dir, (unsigned long long) seed);
    snprintf (built, sizeof built, "%s/built-%llu.db", dir, (unsigned long long) seed);
    kc_why_t why;
    bool corrupt;
    s_world_t w = { .root = root, .signer = signer, .state = seed * 2654435761ULL + 1 };
    w.store = kc_store_open (path, root, &why);
    snprintf (path, sizeof path, "%s/cache-%llu.db", dir, (unsigned long long) seed);
    w.cache = kc_cache_open (path, root, &corrupt, &why);
    assert (w.store && w.cache);

    for (int step = 0; step < STEPS; step++) {
        s_step (&w);
        s_invariants (&w);
    }
    //  A cold build of the accepted log agrees with the incremental cache
    kc_cache_t *cold = kc_cache_create (built, root, w.log, w.log_count, kc_cache_chain (w.cache),
                                        NULL, &why);
    assert (cold);
    for (int key_index = 0; key_index < KEYS; key_index++) {
        uint8_t key [32];
        s_key (key_index, key);
        kc_cache_entry_t a, b;
        assert (kc_cache_lookup (w.cache, key, &a, &why) == 0 && kc_cache_lookup (cold, key, &b, &why) == 0);
        assert (a.status == b.status && a.version == b.version && a.seq == b.seq);
    }
    if (verbose) {
        printf ("[seed %llu: %zu accepted, %zu refused, %zu revoked at 2^63-1] ",
                (unsigned long long) seed, w.accepted, w.refused, w.max_then_revoked);
    }
    kc_cache_destroy (&cold);
    for (size_t i = 0; i < w.log_count; i++) {
        kc_batch_destroy (&w.log [i]);
    }
    kc_cache_destroy (&w.cache);
    kc_store_destroy (&w.store);
    return w.max_then_revoked;
}

void
kc_properties_test (bool verbose)
{
    if (verbose) {
        printf (" * properties: ");
    }
    char dir [] = "/tmp/kc_properties.XXXXXX";
    assert (mkdtemp (dir));
    uint8_t seed [32] = { 9 }, fill [32];
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
    kc_why_t why;
    kc_root_t *root = kc_root_new (&spec, &why);
    assert (root);
    const char *more = getenv ("KC_PROPERTY_SEEDS");
    uint64_t seeds = more ? strtoull (more, NULL, 10) : 3;
    size_t planted_then_revoked = 0;
    for (uint64_t s = 1; s <= seeds; s++) {
        planted_then_revoked += s_run (s, dir, root, signer, verbose);
    }
    //  The attack of issue 9 happened: keys registered at 2^63-1, then revoked
    assert (planted_then_revoked > 0);
    char command [300];
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    assert (system (command) == 0);
    kc_root_destroy (&root);
    kc_signer_destroy (&signer);
    if (verbose) {
        printf ("OK\n");
    }
}
