/*  =========================================================================
    bench_records - sign and verify rates of batches: one 10,000-record batch
    against 10,000 single-record batches, beside raw libsodium Ed25519 sign
    and verify of a 150-byte message measured in the same run. Each figure is
    the median of 5 runs.
    =========================================================================
*/
#include "kc_all.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORDS 10000
#define RUNS 5

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static double
s_median (double *values)
{
    qsort (values, RUNS, sizeof (double), s_compare);
    return values [RUNS / 2];
}

static kc_signer_t *s_signer;
static kc_root_t *s_root;

static void
s_spec (kc_record_spec_t *spec, uint8_t key [32], char name [32], uint32_t i)
{
    memset (key, 0, 32);
    kc_put_u32 (key, i * 2654435761u);      //  spread keys: batches sort them
    key [31] = 1;
    snprintf (name, 32, "node-%06u", i);
    *spec = (kc_record_spec_t) { .key = key, .version = 1 + i, .status = KC_STATUS_ACTIVE,
                                 .name = name };
}

static kc_batch_t *
s_build (uint32_t first, uint32_t count)
{
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (s_root), 1);
    kc_why_t why;
    for (uint32_t i = first; i < first + count; i++) {
        kc_record_spec_t spec;
        uint8_t key [32];
        char name [32];
        s_spec (&spec, key, name, i);
        if (kc_batch_builder_add (builder, &spec, &why)) {
            fprintf (stderr, "bench_records: %s\n", why.text);
            exit (1);
        }
    }
    kc_batch_t *batch = kc_batch_builder_finish (builder, &s_signer, 1, &why);
    kc_batch_builder_destroy (&builder);
    return batch;
}

static double
s_raw_sign (void)
{
    uint8_t message [150], signature [64];
    randombytes_buf (message, sizeof message);
    uint8_t pk [32], sk [64];
    crypto_sign_keypair (pk, sk);
    double start = s_now ();
    for (int i = 0; i < RECORDS; i++) {
        message [0] = (uint8_t) i;
        crypto_sign_detached (signature, NULL, message, sizeof message, sk);
    }
    return RECORDS / (s_now () - start);
}

static double
s_raw_verify (void)
{
    uint8_t message [150], signature [64], pk [32], sk [64];
    randombytes_buf (message, sizeof message);
    crypto_sign_keypair (pk, sk);
    crypto_sign_detached (signature, NULL, message, sizeof message, sk);
    double start = s_now ();
    int bad = 0;
    for (int i = 0; i < RECORDS; i++) {
        bad += crypto_sign_verify_detached (signature, message, sizeof message, pk) != 0;
    }
    if (bad) {
        exit (1);
    }
    return RECORDS / (s_now () - start);
}

//  Records per second to build + sign one 10k-record batch.
static double
s_batch_sign (void)
{
    double start = s_now ();
    kc_batch_t *batch = s_build (0, RECORDS);
    double rate = RECORDS / (s_now () - start);
    kc_batch_destroy (&batch);
    return rate;
}

//  Records per second to decode + verify one 10k-record batch.
static double
s_batch_verify (const kc_batch_t *batch)
{
    size_t size;
    const uint8_t *data = kc_batch_data (batch, &size);
    kc_why_t why;
    double start = s_now ();
    kc_batch_t *copy = kc_batch_decode (data, size, &why);
    if (!copy || kc_batch_verify (copy, s_root, kc_now (), &why)) {
        fprintf (stderr, "bench_records: %s\n", why.text);
        exit (1);
    }
    double rate = RECORDS / (s_now () - start);
    kc_batch_destroy (&copy);
    return rate;
}

static double
s_single_sign (kc_batch_t **singles)
{
    double start = s_now ();
    for (uint32_t i = 0; i < RECORDS; i++) {
        singles [i] = s_build (i, 1);
    }
    return RECORDS / (s_now () - start);
}

static double
s_single_verify (kc_batch_t **singles)
{
    kc_why_t why;
    double start = s_now ();
    for (uint32_t i = 0; i < RECORDS; i++) {
        size_t size;
        const uint8_t *data = kc_batch_data (singles [i], &size);
        kc_batch_t *copy = kc_batch_decode (data, size, &why);
        if (!copy || kc_batch_verify (copy, s_root, kc_now (), &why)) {
            exit (1);
        }
        kc_batch_destroy (&copy);
    }
    return RECORDS / (s_now () - start);
}

int
main (void)
{
    if (sodium_init () < 0) {
        return 1;
    }
    s_signer = kc_signer_new ("bench", "keyclone-operator");
    kc_operator_t op;
    memcpy (op.key, kc_signer_public_key (s_signer), 32);
    snprintf (op.name, sizeof op.name, "bench");
    uint8_t key [32];
    memset (key, 7, 32);
    kc_root_spec_t spec = {
        .version = 1, .created = 1, .expires = kc_now () + 3600, .operators = &op,
        .operator_count = 1, .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1,
        .head_key = key, .server_key = key,
        .endpoints = { "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3" }
    };
    kc_why_t why;
    s_root = kc_root_new (&spec, &why);
    kc_root_sign (s_root, s_signer);

    double raw_sign [RUNS], raw_verify [RUNS], batch_sign [RUNS], batch_verify [RUNS];
    double single_sign [RUNS], single_verify [RUNS];
    kc_batch_t *big = s_build (0, RECORDS);
    kc_batch_t **singles = calloc (RECORDS, sizeof (kc_batch_t *));
    for (int run = 0; run < RUNS; run++) {
        raw_sign [run] = s_raw_sign ();
        raw_verify [run] = s_raw_verify ();
        batch_sign [run] = s_batch_sign ();
        batch_verify [run] = s_batch_verify (big);
        single_sign [run] = s_single_sign (singles);
        single_verify [run] = s_single_verify (singles);
        for (int i = 0; i < RECORDS; i++) {
            kc_batch_destroy (&singles [i]);
        }
    }
    double rs = s_median (raw_sign), rv = s_median (raw_verify);
    double bs = s_median (batch_sign), bv = s_median (batch_verify);
    double ss = s_median (single_sign), sv = s_median (single_verify);
    size_t size;
    kc_batch_data (big, &size);
    printf ("records: 10,000 records, median of %d runs, 1 core\n", RUNS);
    printf ("  raw libsodium Ed25519 sign (150 B)          %12.0f signatures/s\n", rs);
    printf ("  raw libsodium Ed25519 verify (150 B)        %12.0f verifies/s\n", rv);
    printf ("  sign one 10,000-record batch (%zu B)    %12.0f records/s  (%.1fx raw sign)\n",
            size, bs, bs / rs);
    printf ("  verify one 10,000-record batch              %12.0f records/s  (%.1fx raw verify)\n",
            bv, bv / rv);
    printf ("  sign 10,000 single-record batches           %12.0f records/s  (%.2fx raw sign)\n",
            ss, ss / rs);
    printf ("  verify 10,000 single-record batches         %12.0f records/s  (%.2fx raw verify)\n",
            sv, sv / rv);
    printf ("  batching speeds verification up %.0fx (one signature check per signer)\n", bv / sv);
    free (singles);
    kc_batch_destroy (&big);
    kc_root_destroy (&s_root);
    kc_signer_destroy (&s_signer);
    return 0;
}
