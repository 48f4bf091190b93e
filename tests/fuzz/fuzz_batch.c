/*  fuzz_batch - the batch decoder and verifier, against the frozen test root
    of tests/vectors/root-1of1.hex (so signatures in the seeds verify and
    mutations exercise every refusal).  */
#include "kc_all.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

static kc_root_t *s_root;


static uint8_t *
s_load_root_vector (size_t *size)
{
    FILE *file = fopen ("tests/vectors/root-1of1.hex", "r");
    if (!file) {
        return NULL;
    }
    uint8_t *data = malloc (KC_ROOT_BYTES_MAX);
    size_t n = 0;
    int high = -1, c;
    while ((c = fgetc (file)) != EOF && n < KC_ROOT_BYTES_MAX) {
        if (c == '#') {
            while ((c = fgetc (file)) != EOF && c != '\n') {
            }
            continue;
        }
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (digit < 0) {
            continue;
        }
        if (high < 0) {
            high = digit;
        }
        else {
            data [n++] = (uint8_t) (high << 4 | digit);
            high = -1;
        }
    }
    fclose (file);
    *size = n;
    return data;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    if (sodium_init () < 0) {
        return 1;
    }
    size_t size = 0;
    uint8_t *data = s_load_root_vector (&size);
    if (data) {
        s_root = kc_root_decode (data, size, NULL);
        free (data);
    }
    if (!s_root) {
        fprintf (stderr, "fuzz_batch: run from the project root (needs tests/vectors)\n");
        return 1;
    }
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    kc_why_t why;
    kc_batch_t *batch = kc_batch_decode (data, size, &why);
    if (batch) {
        for (size_t i = 0; i < kc_batch_count (batch); i++) {
            char tags [KC_RECORD_TAGS_TEXT_MAX];
            kc_record_tags (kc_batch_record (batch, i), ',', tags, sizeof tags);
        }
        if (s_root) {
            int rc = kc_batch_verify (batch, s_root, 1800000000, &why);
            (void) rc;
        }
        kc_batch_destroy (&batch);
    }
    return 0;
}
