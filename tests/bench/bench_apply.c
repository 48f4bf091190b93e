/*  =========================================================================
    bench_apply - what an agent pays per single-record update, piece by
    piece, without sockets: verifying the batch (kc_batch_verify), then
    decoding, checking, chaining, applying and keeping its history, and
    committing the group, for groups of 1, 16, 64 and 256 updates (an
    agent commits once per wake-up: the group is what arrived together).
    Beside it, raw libsodium Ed25519 verification of a message of the same
    size, in the same run. The sum is the floor of issue 10's "agent CPU per
    single-record update / raw verify": what is left once receiving, waking
    up and events cost nothing.
    =========================================================================
*/
#include "kc_all.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define UPDATES 3000

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
s_check (int rc, const kc_why_t *why)
{
    if (rc) {
        fprintf (stderr, "bench_apply: %s\n", why->text);
        exit (1);
    }
}

int
main (void)
{
    assert (sodium_init () >= 0);
    kc_why_t why;
    kc_signer_t *signer = kc_signer_new ("op", "keyclone-operator");
    kc_operator_t op;
    memcpy (op.key, kc_signer_public_key (signer), KC_KEY_BYTES);
    snprintf (op.name, sizeof op.name, "op");
    uint8_t fill [KC_KEY_BYTES];
    memset (fill, 7, sizeof fill);
    kc_root_spec_t spec = {
        .version = 1, .created = 1, .expires = 4000000000ULL, .operators = &op,
        .operator_count = 1, .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1,
        .head_key = fill, .server_key = fill,
        .endpoints = { "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3" }
    };
    kc_root_t *root = kc_root_new (&spec, &why);
    s_check (root ? 0 : -1, &why);
    //  The updates: single-record registrations, signed once up front
    static uint8_t *data [UPDATES];
    static size_t size [UPDATES];
    const char *tags [] = { "role=agent" };
    for (size_t i = 0; i < UPDATES; i++) {
        uint8_t key [KC_KEY_BYTES];
        char name [32];
        randombytes_buf (key, sizeof key);
        snprintf (name, sizeof name, "node-%zu", i);
        kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), 1);
        kc_record_spec_t record = { .key = key, .version = 1, .status = KC_STATUS_ACTIVE, .name = name,
                                    .tags = tags, .tag_count = 1 };
        s_check (kc_batch_builder_add (builder, &record, &why), &why);
        kc_batch_t *batch = kc_batch_builder_finish (builder, &signer, 1, &why);
        s_check (batch ? 0 : -1, &why);
        const uint8_t *bytes = kc_batch_data (batch, &size [i]);
        data [i] = malloc (size [i]);
        assert (data [i]);
        memcpy (data [i], bytes, size [i]);
        kc_batch_destroy (&batch);
        kc_batch_builder_destroy (&builder);
    }
    //  Raw verification of a message of the same size
    uint8_t pk [crypto_sign_PUBLICKEYBYTES], sk [crypto_sign_SECRETKEYBYTES], sig [crypto_sign_BYTES];
    crypto_sign_keypair (pk, sk);
    crypto_sign_detached (sig, NULL, data [0], size [0], sk);
    double start = s_now ();
    for (size_t i = 0; i < UPDATES; i++) {
        if (crypto_sign_verify_detached (sig, data [0], size [0], pk)) {
            fprintf (stderr, "bench_apply: raw verify failed\n");
            return 1;
        }
    }
    double raw = (s_now () - start) / UPDATES * 1e6;
    //  In the agent: verify each batch against the root
    start = s_now ();
    for (size_t i = 0; i < UPDATES; i++) {
        kc_batch_t *batch = kc_batch_decode (data [i], size [i], &why);
        s_check (batch ? kc_batch_verify (batch, root, 2, &why) : -1, &why);
        kc_batch_destroy (&batch);
    }
    double verify = (s_now () - start) / UPDATES * 1e6;
    printf ("apply: an agent's work per single-record update, without sockets (%d updates, %zu-byte batches)\n",
            UPDATES, size [0]);
    printf ("  raw Ed25519 verify (libsodium)                 %6.1f us\n", raw);
    printf ("  kc_batch_verify (decode, root checks, verify)  %6.1f us   %.2fx raw\n", verify, verify / raw);
    char dir [] = "/tmp/kc-bench-apply-XXXXXX";
    assert (mkdtemp (dir));
    char path [64];
    snprintf (path, sizeof path, "%s/agent.db", dir);
    static const size_t groups [] = { 1, 16, 64, 256 };
    for (size_t g = 0; g < sizeof groups / sizeof groups [0]; g++) {
        uint8_t chain [KC_HASH_BYTES];
        kc_chain_genesis (kc_root_directory (root), chain);
        kc_cache_t *cache = kc_cache_create (path, root, NULL, 0, chain, NULL, &why);
        s_check (cache ? 0 : -1, &why);
        double apply = 0, commit = 0;
        uint64_t seq = 0;
        for (size_t i = 0; i < UPDATES; i += groups [g]) {
            double t0 = s_now ();
            s_check (kc_cache_begin (cache, &why), &why);
            for (size_t j = i; j < i + groups [g] && j < UPDATES; j++) {
                kc_batch_t *batch = kc_batch_decode (data [j], size [j], &why);
                s_check (batch ? kc_cache_check (cache, batch, &why) : -1, &why);
                kc_chain_next (chain, ++seq, batch, chain);
                s_check (kc_cache_apply (cache, seq, chain, batch, &why), &why);
                s_check (kc_cache_add_history (cache, seq, 1, NULL, data [j], size [j], &why), &why);
                kc_batch_destroy (&batch);
            }
            double t1 = s_now ();
            s_check (kc_cache_commit (cache, &why), &why);
            apply += t1 - t0;
            commit += s_now () - t1;
        }
        kc_cache_destroy (&cache);
        unlink (path);
        double per_apply = apply / UPDATES * 1e6, per_commit = commit / UPDATES * 1e6;
        printf ("  group of %3zu: apply %5.1f us + commit %5.1f us; with verify %6.1f us = %.2fx raw verify\n",
                groups [g], per_apply, per_commit, verify + per_apply + per_commit,
                (verify + per_apply + per_commit) / raw);
    }
    printf ("  the floor of issue 10's per-update ratio (target 1.3x): receiving, wake-ups and events add to it\n");
    char wal [80];
    snprintf (wal, sizeof wal, "%s-wal", path);
    unlink (wal);
    snprintf (wal, sizeof wal, "%s-shm", path);
    unlink (wal);
    rmdir (dir);
    for (size_t i = 0; i < UPDATES; i++) {
        free (data [i]);
    }
    kc_root_destroy (&root);
    kc_signer_destroy (&signer);
    return 0;
}
