/*  =========================================================================
    raw_verify - the speed of this box right now, for the benchmarks: raw
    libsodium Ed25519 verifications of a 150-byte message (perf-baseline
    section 1 measured 27,366/s on an idle box of this kind). Every agent
    and the server verify one signature per batch, so CPU-bound figures are
    judged against this unit, measured in the same run: a shared VM can lose
    half its speed to its host without any process inside it showing it.

    Usage: raw_verify [SECONDS (default 0.3)]
    Prints one JSON object.
    =========================================================================
*/
#include "kc_all.h"

#include <sodium.h>
#include <time.h>

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
main (int argc, char *argv [])
{
    double seconds = argc > 1 ? atof (argv [1]) : 0.3;
    if (argc > 2 || seconds <= 0 || seconds > 60 || sodium_init () < 0) {
        fprintf (stderr, "Usage: raw_verify [SECONDS]\n");
        return 2;
    }
    uint8_t message [150], signature [64], public_key [32], secret_key [64];
    randombytes_buf (message, sizeof message);
    crypto_sign_keypair (public_key, secret_key);
    crypto_sign_detached (signature, NULL, message, sizeof message, secret_key);
    sodium_memzero (secret_key, sizeof secret_key);
    long count = 0, bad = 0;
    double start = s_now (), elapsed = 0;
    while (elapsed < seconds) {
        for (int i = 0; i < 100; i++) {
            bad += crypto_sign_verify_detached (signature, message, sizeof message, public_key) != 0;
        }
        count += 100;
        elapsed = s_now () - start;
    }
    if (bad) {
        fprintf (stderr, "raw_verify: %ld verifications failed\n", bad);
        return 1;
    }
    printf ("{\"verifies\": %ld, \"seconds\": %.3f, \"verifies_per_s\": %.0f, \"us_per_verify\": %.2f}\n",
            count, elapsed, (double) count / elapsed, elapsed / (double) count * 1e6);
    return 0;
}
