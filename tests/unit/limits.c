/*  =========================================================================
    limits - every named limit of the record, batch, root and key-file
    encodings: the limit itself is accepted, the limit + 1 is refused, by the
    encoder (where it can express it) and by the decoder (on crafted bytes).
    =========================================================================
*/
#include "kc_all.h"
#include "selftest.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t s_directory [32];
static uint8_t s_key [32];

static char *
s_repeat (char c, size_t count)
{
    char *text = malloc (count + 1);
    assert (text);
    memset (text, c, count);
    text [count] = 0;
    return text;
}

static int
s_encode (kc_record_spec_t *spec, kc_writer_t *w)
{
    kc_why_t why;
    kc_writer_free (w);
    spec->directory = s_directory;
    spec->key = s_key;
    return kc_record_encode (spec, w, &why);
}

static int
s_decode (const uint8_t *data, size_t size, kc_why_t *why)
{
    kc_reader_t r;
    kc_record_t record;
    kc_reader_init (&r, data, size);
    return kc_record_decode (&r, &record, why);
}

static void
s_record_limits (void)
{
    kc_writer_t w;
    kc_writer_init (&w);
    kc_why_t why;
    char *name = s_repeat ('n', KC_RECORD_NAME_MAX + 1);
    char *tag = s_repeat ('t', KC_RECORD_TAG_MAX + 1);
    char *reason = s_repeat ('r', KC_RECORD_REASON_MAX + 1);

    //  Name: 255 accepted, 256 refused
    kc_record_spec_t spec = { .version = 1, .status = KC_STATUS_ACTIVE, .name = name };
    name [KC_RECORD_NAME_MAX] = 0;
    assert (s_encode (&spec, &w) == 0);
    name [KC_RECORD_NAME_MAX] = 'n';
    assert (s_encode (&spec, &w) == -1);

    //  One tag of 64 accepted, 65 refused (encoder, then decoder on edited bytes)
    const char *tags [KC_RECORD_TAGS_MAX + 1];
    spec = (kc_record_spec_t) { .version = 1, .status = KC_STATUS_ACTIVE, .name = "n",
                                .tags = tags, .tag_count = 1 };
    tags [0] = tag;
    assert (s_encode (&spec, &w) == -1);
    tag [KC_RECORD_TAG_MAX] = 0;
    assert (s_encode (&spec, &w) == 0);
    assert (s_decode (w.data, w.size, &why) == 0);
    //  Grow the tag to 65 bytes in the encoding
    uint8_t *edited = malloc (w.size + 1);
    size_t tag_at = KC_RECORD_FIXED_BYTES - 2 + 1;          //  after the 1-byte name
    memcpy (edited, w.data, tag_at + 1);
    edited [tag_at + 1] = KC_RECORD_TAG_MAX + 1;
    memset (edited + tag_at + 2, 't', KC_RECORD_TAG_MAX + 1);
    edited [tag_at + 2 + KC_RECORD_TAG_MAX + 1] = 0;        //  reason size
    assert (s_decode (edited, w.size + 1, &why) == -1);
    free (edited);

    //  16 tags accepted, 17 refused (encoder); a count byte of 17 refused (decoder)
    char names [KC_RECORD_TAGS_MAX + 1][16];
    for (int i = 0; i <= KC_RECORD_TAGS_MAX; i++) {
        snprintf (names [i], sizeof names [i], "t%02d", i);
        tags [i] = names [i];
    }
    spec.tag_count = KC_RECORD_TAGS_MAX;
    assert (s_encode (&spec, &w) == 0);
    assert (s_decode (w.data, w.size, &why) == 0);
    spec.tag_count = KC_RECORD_TAGS_MAX + 1;
    assert (s_encode (&spec, &w) == -1);
    spec.tag_count = 0;
    assert (s_encode (&spec, &w) == 0);
    w.data [KC_RECORD_FIXED_BYTES - 2 + 1] = KC_RECORD_TAGS_MAX + 1;
    assert (s_decode (w.data, w.size, &why) == -1 && strstr (why.text, "17 tags"));

    //  Reason: 255 accepted, 256 refused
    spec = (kc_record_spec_t) { .version = 1, .status = KC_STATUS_REVOKED, .reason = reason };
    assert (s_encode (&spec, &w) == -1);
    reason [KC_RECORD_REASON_MAX] = 0;
    assert (s_encode (&spec, &w) == 0);
    assert (s_decode (w.data, w.size, &why) == 0);

    //  Version and times: 2^63-1 accepted, 2^63 refused (encoder and decoder)
    spec = (kc_record_spec_t) { .version = KC_RECORD_VERSION_MAX, .status = KC_STATUS_ACTIVE,
                                .name = "n", .not_after = KC_RECORD_TIME_MAX };
    assert (s_encode (&spec, &w) == 0);
    assert (s_decode (w.data, w.size, &why) == 0);
    w.data [65] = 0x80;                                     //  version high byte
    assert (s_decode (w.data, w.size, &why) == -1 && strstr (why.text, "version"));
    spec.version = (uint64_t) KC_RECORD_VERSION_MAX + 1;
    assert (s_encode (&spec, &w) == -1);
    spec.version = 1;
    spec.not_after = (uint64_t) KC_RECORD_TIME_MAX + 1;
    assert (s_encode (&spec, &w) == -1);

    kc_writer_free (&w);
    free (name);
    free (tag);
    free (reason);
}

static kc_root_t *
s_make_root (kc_signer_t **signers, size_t operators, const char *endpoint, kc_why_t *why)
{
    kc_operator_t list [KC_ROOT_OPERATORS_MAX + 1];
    for (size_t i = 0; i < operators; i++) {
        memcpy (list [i].key, kc_signer_public_key (signers [i]), 32);
        snprintf (list [i].name, sizeof list [i].name, "op%zu", i);
    }
    kc_root_spec_t spec = {
        .version = 1, .created = 1, .expires = 4000000000ULL, .operators = list,
        .operator_count = operators, .threshold_register = 1, .threshold_revoke = 1,
        .threshold_root = 1, .head_key = s_key, .server_key = s_key,
        .endpoints = { endpoint, endpoint, endpoint }
    };
    return kc_root_new (&spec, why);
}

static void
s_root_limits (kc_signer_t **signers)
{
    kc_why_t why;
    //  32 operators accepted, 33 refused
    kc_root_t *root = s_make_root (signers, KC_ROOT_OPERATORS_MAX, "tcp://a:1", &why);
    assert (root);
    assert (s_make_root (signers, KC_ROOT_OPERATORS_MAX + 1, "tcp://a:1", &why) == NULL);
    //  Signatures: the root's own 32 operators all sign, then 33 in the count byte
    for (size_t i = 0; i < KC_ROOT_OPERATORS_MAX; i++) {
        kc_root_sign (root, signers [i]);
    }
    size_t size;
    const uint8_t *data = kc_root_data (root, &size);
    kc_root_t *copy = kc_root_decode (data, size, &why);
    assert (copy && kc_root_verify (copy, 100, &why) == 0);
    kc_root_destroy (&copy);
    //  Over-large roots are refused before parsing
    uint8_t *big = calloc (1, KC_ROOT_BYTES_MAX + 1);
    memcpy (big, data, size);
    assert (kc_root_decode (big, KC_ROOT_BYTES_MAX + 1, &why) == NULL && strstr (why.text, "limit"));
    //  A signature count of 65 is refused
    memcpy (big, data, size);
    size_t count_at = size - 1 - KC_ROOT_OPERATORS_MAX * 96;
    assert (big [count_at] == KC_ROOT_OPERATORS_MAX);
    big [count_at] = KC_ROOT_SIGNATURES_MAX + 1;
    assert (kc_root_decode (big, size, &why) == NULL && strstr (why.text, "65 signatures"));
    //  An operator count of 33 is refused
    memcpy (big, data, size);
    big [4 + 1 + 32 + 24 + 32] = KC_ROOT_OPERATORS_MAX + 1;
    assert (kc_root_decode (big, size, &why) == NULL && strstr (why.text, "33 operators"));
    free (big);
    kc_root_destroy (&root);

    //  Endpoint: 255 bytes accepted, 256 refused
    char endpoint [300];
    memset (endpoint, 'e', sizeof endpoint);
    memcpy (endpoint, "tcp://", 6);
    endpoint [KC_ROOT_ENDPOINT_MAX] = 0;
    root = s_make_root (signers, 1, endpoint, &why);
    assert (root);
    kc_root_destroy (&root);
    endpoint [KC_ROOT_ENDPOINT_MAX] = 'e';
    endpoint [KC_ROOT_ENDPOINT_MAX + 1] = 0;
    assert (s_make_root (signers, 1, endpoint, &why) == NULL);

    //  Operator name: 64 accepted, 65 refused (decoder on an edited name size)
    root = s_make_root (signers, 1, "tcp://a:1", &why);
    data = kc_root_data (root, &size);
    uint8_t *edited = malloc (size + 1);
    memcpy (edited, data, size);
    size_t name_at = 4 + 1 + 32 + 24 + 32 + 1 + 32;
    assert (edited [name_at] == 3);                     //  "op0"
    edited [name_at] = KC_ROOT_OPERATOR_NAME_MAX + 1;
    assert (kc_root_decode (edited, size, &why) == NULL);
    free (edited);
    kc_root_destroy (&root);
}

static void
s_batch_limits (kc_signer_t **signers)
{
    kc_why_t why;
    kc_batch_builder_t *builder = kc_batch_builder_new (s_directory, 1);
    uint8_t key [32] = { 0 };
    key [31] = 1;
    kc_record_spec_t spec = { .key = key, .version = 1, .status = KC_STATUS_ACTIVE, .name = "n" };
    for (uint32_t i = 0; i < KC_BATCH_RECORDS_MAX; i++) {
        key [0] = (uint8_t) (i >> 16);
        key [1] = (uint8_t) (i >> 8);
        key [2] = (uint8_t) i;
        assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    }
    //  100,000 records accepted, the 100,001st refused
    key [3] = 1;
    assert (kc_batch_builder_add (builder, &spec, &why) == -1 && strstr (why.text, "at most"));
    kc_batch_t *batch = kc_batch_builder_finish (builder, signers, 1, &why);
    assert (batch && kc_batch_count (batch) == KC_BATCH_RECORDS_MAX);
    size_t size;
    const uint8_t *data = kc_batch_data (batch, &size);
    kc_batch_t *copy = kc_batch_decode (data, size, &why);
    assert (copy);
    kc_batch_destroy (&copy);
    //  A record count of 100,001 in the header is refused
    uint8_t *edited = malloc (size);
    memcpy (edited, data, size);
    kc_put_u32 (edited + 4 + 1 + 32 + 8, KC_BATCH_RECORDS_MAX + 1);
    assert (kc_batch_decode (edited, size, &why) == NULL && strstr (why.text, "100001 records"));
    //  A signature count of 33 is refused
    memcpy (edited, data, size);
    edited [size - 1 - 96] = KC_BATCH_SIGNATURES_MAX + 1;
    assert (kc_batch_decode (edited, size, &why) == NULL && strstr (why.text, "33 signatures"));
    free (edited);
    kc_batch_destroy (&batch);
    kc_batch_builder_destroy (&builder);

    //  32 signers accepted, 33 refused
    builder = kc_batch_builder_new (s_directory, 1);
    assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    batch = kc_batch_builder_finish (builder, signers, KC_BATCH_SIGNATURES_MAX, &why);
    assert (batch && kc_batch_signature_count (batch) == KC_BATCH_SIGNATURES_MAX);
    assert (kc_batch_cosign (batch, signers [KC_BATCH_SIGNATURES_MAX]) == NULL);
    kc_batch_destroy (&batch);
    assert (kc_batch_builder_finish (builder, signers, KC_BATCH_SIGNATURES_MAX + 1, &why) == NULL);
    kc_batch_builder_destroy (&builder);

    //  Byte limit: a batch of maximal records stops at 32 MiB
    char *name = s_repeat ('n', KC_RECORD_NAME_MAX);
    char tag_text [KC_RECORD_TAGS_MAX][KC_RECORD_TAG_MAX + 1];
    const char *tags [KC_RECORD_TAGS_MAX];
    for (int i = 0; i < KC_RECORD_TAGS_MAX; i++) {
        memset (tag_text [i], 'a' + i, KC_RECORD_TAG_MAX);
        tag_text [i][KC_RECORD_TAG_MAX] = 0;
        tags [i] = tag_text [i];
    }
    kc_record_spec_t fat = { .key = key, .version = 1, .status = KC_STATUS_ACTIVE,
                             .name = name, .tags = tags, .tag_count = KC_RECORD_TAGS_MAX };
    builder = kc_batch_builder_new (s_directory, 1);
    size_t per_record = KC_RECORD_FIXED_BYTES + KC_RECORD_NAME_MAX
                      + KC_RECORD_TAGS_MAX * (1 + KC_RECORD_TAG_MAX);
    size_t fits = (KC_BATCH_BYTES_MAX - KC_BATCH_HEADER_BYTES - 1 - 96) / per_record;
    for (size_t i = 0; i <= fits; i++) {
        key [0] = (uint8_t) (i >> 16);
        key [1] = (uint8_t) (i >> 8);
        key [2] = (uint8_t) i;
        assert (kc_batch_builder_add (builder, &fat, &why) == 0);
    }
    assert (kc_batch_builder_finish (builder, signers, 1, &why) == NULL && strstr (why.text, "limit"));
    kc_batch_builder_destroy (&builder);
    builder = kc_batch_builder_new (s_directory, 1);
    for (size_t i = 0; i < fits; i++) {
        key [0] = (uint8_t) (i >> 16);
        key [1] = (uint8_t) (i >> 8);
        key [2] = (uint8_t) i;
        assert (kc_batch_builder_add (builder, &fat, &why) == 0);
    }
    batch = kc_batch_builder_finish (builder, signers, 1, &why);
    assert (batch);
    data = kc_batch_data (batch, &size);
    assert (size <= KC_BATCH_BYTES_MAX && size + per_record > KC_BATCH_BYTES_MAX);
    kc_batch_destroy (&batch);
    kc_batch_builder_destroy (&builder);
    free (name);
    uint8_t *huge = calloc (1, KC_BATCH_BYTES_MAX + 1);
    assert (kc_batch_decode (huge, KC_BATCH_BYTES_MAX + 1, &why) == NULL && strstr (why.text, "limit"));
    free (huge);
}

static void
s_keyfile_limit (void)
{
    char dir [] = "/tmp/kc_limits.XXXXXX";
    assert (mkdtemp (dir));
    char path [256];
    snprintf (path, sizeof path, "%s/big_secret", dir);
    char *text = s_repeat ('#', KC_KEYFILE_BYTES_MAX + 1);
    kc_why_t why;
    assert (kc_file_write_atomic (path, text, KC_KEYFILE_BYTES_MAX + 1, 0600, &why) == 0);
    assert (kc_cert_load_secret (path, &why) == NULL && strstr (why.text, "too large"));
    unlink (path);
    rmdir (dir);
    free (text);
}

void
kc_limits_test (bool verbose)
{
    if (verbose) {
        printf (" * limits: ");
    }
    memset (s_directory, 0xd1, 32);
    memset (s_key, 0x42, 32);
    kc_signer_t *signers [KC_ROOT_OPERATORS_MAX + 1];
    uint8_t seed [32] = { 0 };
    for (int i = 0; i <= KC_ROOT_OPERATORS_MAX; i++) {
        seed [0] = (uint8_t) i;
        seed [1] = 0x99;
        signers [i] = kc_signer_new_from_seed (seed, "op", "keyclone-operator");
    }
    s_record_limits ();
    s_root_limits (signers);
    s_batch_limits (signers);
    s_keyfile_limit ();
    for (int i = 0; i <= KC_ROOT_OPERATORS_MAX; i++) {
        kc_signer_destroy (&signers [i]);
    }
    if (verbose) {
        printf ("OK\n");
    }
}
