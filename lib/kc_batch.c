/*  =========================================================================
    kc_batch - records signed together.

    Layout (big-endian):
        "KCBT" u8 format(1)  u8[32] directory  u64 created  u32 record count
        records (kc_record), strictly ascending by key
        --- end of signed body ---
        u8 signature count, then (u8[32] key, u8[64] signature)* by key
    =========================================================================
*/
#include "kc_batch.h"
#include "kc_file.h"
#include "kc_wire.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "KCBT"

struct _kc_batch_t {
    uint8_t *data;                      //  whole encoding, owned unless borrowed
    size_t size;
    bool borrowed;                      //  kc_batch_view: the caller's bytes
    size_t body_size;
    uint8_t digest [KC_HASH_BYTES];
    const uint8_t *directory;           //  into data
    uint64_t created;
    size_t count;
    kc_record_t *records;               //  views into data
    size_t signature_count;
    kc_signature_t signatures [KC_BATCH_SIGNATURES_MAX + 1];   //  into data (+1: test hook)
};

typedef struct {
    const uint8_t *key;                 //  into the builder's buffer (by offset)
    size_t offset;
    size_t size;
} s_entry_t;

struct _kc_batch_builder_t {
    uint8_t directory [KC_HASH_BYTES];
    uint64_t created;
    kc_writer_t records;                //  encoded records, in add order
    s_entry_t *entries;
    size_t count;
    size_t capacity;
};

kc_batch_builder_t *
kc_batch_builder_new (const uint8_t directory [static KC_HASH_BYTES], uint64_t created)
{
    kc_batch_builder_t *self = calloc (1, sizeof *self);
    assert (self);
    memcpy (self->directory, directory, KC_HASH_BYTES);
    self->created = created;
    kc_writer_init (&self->records);
    return self;
}

int
kc_batch_builder_add (kc_batch_builder_t *self, const kc_record_spec_t *spec, kc_why_t *why)
{
    if (self->count == KC_BATCH_RECORDS_MAX) {
        return kc_why (why, "a batch holds at most %d records", KC_BATCH_RECORDS_MAX);
    }
    kc_record_spec_t copy = *spec;
    copy.directory = self->directory;
    size_t offset = self->records.size;
    if (kc_record_encode (&copy, &self->records, why)) {
        return -1;
    }
    if (self->count == self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 64;
        self->entries = realloc (self->entries, self->capacity * sizeof (s_entry_t));
        assert (self->entries);
    }
    self->entries [self->count].offset = offset;
    self->entries [self->count].size = self->records.size - offset;
    self->count++;
    return 0;
}

size_t
kc_batch_builder_count (const kc_batch_builder_t *self)
{
    return self->count;
}

static int
s_compare_entries (const void *a, const void *b)
{
    return memcmp (((const s_entry_t *) a)->key, ((const s_entry_t *) b)->key, KC_KEY_BYTES);
}

//  Decodes the full encoding in self->data into views; shared by decode and
//  the builder, so both produce exactly what a peer would decode.
static int s_parse (kc_batch_t *self, kc_why_t *why);

static kc_batch_t *
s_from_bytes (uint8_t *data, size_t size, kc_why_t *why)
{
    //  Decoding input from the network or a file never aborts: out of
    //  memory is a refusal like any other
    kc_batch_t *self = calloc (1, sizeof *self);
    if (!self) {
        free (data);
        kc_why (why, "out of memory decoding a batch of %zu bytes", size);
        return NULL;
    }
    self->data = data;
    self->size = size;
    if (s_parse (self, why)) {
        kc_batch_destroy (&self);
    }
    return self;
}

//  Writes body + signatures of the given list into a new buffer.
static uint8_t *
s_encode (const uint8_t *body, size_t body_size, const kc_signature_t *signatures,
          size_t count, size_t *size)
{
    kc_writer_t w;
    kc_writer_init (&w);
    kc_write_bytes (&w, body, body_size);
    kc_write_u8 (&w, (uint8_t) count);
    for (size_t i = 0; i < count; i++) {
        kc_write_bytes (&w, signatures [i].key, KC_KEY_BYTES);
        kc_write_bytes (&w, signatures [i].signature, KC_SIGNATURE_BYTES);
    }
    return kc_writer_take (&w, size);
}

static int
s_compare_signatures (const void *a, const void *b)
{
    return memcmp (((const kc_signature_t *) a)->key, ((const kc_signature_t *) b)->key,
                   KC_KEY_BYTES);
}

kc_batch_t *
kc_batch_builder_finish (kc_batch_builder_t *self, kc_signer_t *const *signers,
                         size_t signer_count, kc_why_t *why)
{
    if (self->count == 0) {
        kc_why (why, "a batch needs at least one record");
        return NULL;
    }
    if (signer_count > KC_BATCH_SIGNATURES_MAX) {
        kc_why (why, "a batch carries at most %d signatures", KC_BATCH_SIGNATURES_MAX);
        return NULL;
    }
    for (size_t i = 0; i < self->count; i++) {
        self->entries [i].key = self->records.data + self->entries [i].offset + 1 + KC_HASH_BYTES;
    }
    qsort (self->entries, self->count, sizeof (s_entry_t), s_compare_entries);
    char fp [KC_FINGERPRINT_CHARS + 1];
    for (size_t i = 1; i < self->count; i++) {
        if (memcmp (self->entries [i - 1].key, self->entries [i].key, KC_KEY_BYTES) == 0) {
            kc_why (why, "key %s appears twice in the batch",
                    kc_fingerprint (self->entries [i].key, fp));
            return NULL;
        }
    }
    kc_writer_t w;
    kc_writer_init (&w);
    kc_write_bytes (&w, MAGIC, 4);
    kc_write_u8 (&w, KC_BATCH_FORMAT);
    kc_write_bytes (&w, self->directory, KC_HASH_BYTES);
    kc_write_u64 (&w, self->created);
    kc_write_u32 (&w, (uint32_t) self->count);
    for (size_t i = 0; i < self->count; i++) {
        kc_write_bytes (&w, self->records.data + self->entries [i].offset, self->entries [i].size);
    }
    if (w.size + 1 + signer_count * 96 > KC_BATCH_BYTES_MAX) {
        kc_why (why, "batch would be %zu bytes (limit %d)", w.size, KC_BATCH_BYTES_MAX);
        kc_writer_free (&w);
        return NULL;
    }
    uint8_t digest [KC_HASH_BYTES], message [64];
    crypto_generichash (digest, KC_HASH_BYTES, w.data, w.size, NULL, 0);
    size_t message_size = kc_signed_message (KC_CONTEXT_BATCH, digest, message);
    uint8_t raw [KC_BATCH_SIGNATURES_MAX][KC_SIGNATURE_BYTES];
    kc_signature_t list [KC_BATCH_SIGNATURES_MAX];
    size_t count = 0;
    for (size_t i = 0; i < signer_count; i++) {
        const uint8_t *key = kc_signer_public_key (signers [i]);
        bool seen = false;
        for (size_t j = 0; j < count; j++) {
            seen |= memcmp (list [j].key, key, KC_KEY_BYTES) == 0;
        }
        if (!seen) {
            kc_signer_sign (signers [i], message, message_size, raw [count]);
            list [count].key = key;
            list [count].signature = raw [count];
            count++;
        }
    }
    qsort (list, count, sizeof list [0], s_compare_signatures);
    size_t size;
    uint8_t *data = s_encode (w.data, w.size, list, count, &size);
    kc_writer_free (&w);
    return s_from_bytes (data, size, why);
}

void
kc_batch_builder_destroy (kc_batch_builder_t **self_p)
{
    if (self_p && *self_p) {
        kc_writer_free (&(*self_p)->records);
        free ((*self_p)->entries);
        free (*self_p);
        *self_p = NULL;
    }
}

static int
s_parse_records (kc_batch_t *self, kc_reader_t *r, kc_why_t *why)
{
    self->records = malloc (self->count * sizeof (kc_record_t));
    if (!self->records) {
        return kc_why (why, "out of memory decoding %zu records", self->count);
    }
    char fp [KC_FINGERPRINT_CHARS + 1];
    for (size_t i = 0; i < self->count; i++) {
        kc_record_t *record = &self->records [i];
        if (kc_record_decode (r, record, why)) {
            return kc_why_prefix (why, "record %zu", i + 1);
        }
        if (memcmp (record->directory, self->directory, KC_HASH_BYTES)) {
            return kc_why (why, "record %zu (%s) is for another directory", i + 1,
                           kc_fingerprint (record->key, fp));
        }
        if (i && memcmp (self->records [i - 1].key, record->key, KC_KEY_BYTES) >= 0) {
            return kc_why (why, "record %zu (%s): keys are not in strictly ascending order "
                           "(a key appears twice?)", i + 1, kc_fingerprint (record->key, fp));
        }
    }
    return 0;
}

static int
s_parse (kc_batch_t *self, kc_why_t *why)
{
    if (self->size > KC_BATCH_BYTES_MAX) {
        return kc_why (why, "batch is %zu bytes (limit %d)", self->size, KC_BATCH_BYTES_MAX);
    }
    kc_reader_t r;
    kc_reader_init (&r, self->data, self->size);
    const uint8_t *magic = kc_read_bytes (&r, 4);
    uint8_t format, count;
    uint32_t records;
    if (!magic || memcmp (magic, MAGIC, 4)) {
        return kc_why (why, "not a keyclone batch (bad magic)");
    }
    if (kc_read_u8 (&r, &format) || format != KC_BATCH_FORMAT) {
        return kc_why (why, "unknown batch format %u", r.failed ? 0 : format);
    }
    self->directory = kc_read_bytes (&r, KC_HASH_BYTES);
    if (kc_read_u64 (&r, &self->created) || kc_read_u32 (&r, &records)) {
        return kc_why (why, "truncated batch header");
    }
    if (records == 0 || records > KC_BATCH_RECORDS_MAX) {
        return kc_why (why, "batch holds %u records (allowed 1..%d)", records, KC_BATCH_RECORDS_MAX);
    }
    if ((size_t) records * KC_RECORD_FIXED_BYTES > kc_reader_left (&r)) {
        return kc_why (why, "batch claims %u records but is too short for them", records);
    }
    self->count = records;
    if (s_parse_records (self, &r, why)) {
        return -1;
    }
    self->body_size = r.pos;
    if (kc_read_u8 (&r, &count)) {
        return kc_why (why, "truncated batch: no signature list");
    }
    if (count > KC_BATCH_SIGNATURES_MAX) {
        return kc_why (why, "batch carries %u signatures (limit %d)", count, KC_BATCH_SIGNATURES_MAX);
    }
    for (size_t i = 0; i < count; i++) {
        self->signatures [i].key = kc_read_bytes (&r, KC_KEY_BYTES);
        self->signatures [i].signature = kc_read_bytes (&r, KC_SIGNATURE_BYTES);
        if (r.failed) {
            return kc_why (why, "truncated batch signature %zu", i + 1);
        }
        if (i && memcmp (self->signatures [i - 1].key, self->signatures [i].key, KC_KEY_BYTES) >= 0) {
            return kc_why (why, "batch signatures are not in strictly ascending key order "
                           "(a signer is listed twice?)");
        }
    }
    self->signature_count = count;
    if (kc_reader_left (&r)) {
        return kc_why (why, "%zu trailing bytes after batch", kc_reader_left (&r));
    }
    crypto_generichash (self->digest, KC_HASH_BYTES, self->data, self->body_size, NULL, 0);
    return 0;
}

kc_batch_t *
kc_batch_decode (const uint8_t *data, size_t size, kc_why_t *why)
{
    if (size > KC_BATCH_BYTES_MAX) {
        kc_why (why, "batch is %zu bytes (limit %d)", size, KC_BATCH_BYTES_MAX);
        return NULL;
    }
    uint8_t *copy = malloc (size ? size : 1);
    if (!copy) {
        kc_why (why, "out of memory decoding a batch of %zu bytes", size);
        return NULL;
    }
    if (size) {
        memcpy (copy, data, size);
    }
    return s_from_bytes (copy, size, why);
}

kc_batch_t *
kc_batch_view (const uint8_t *data, size_t size, kc_why_t *why)
{
    kc_batch_t *self = calloc (1, sizeof *self);
    if (!self) {
        kc_why (why, "out of memory decoding a batch of %zu bytes", size);
        return NULL;
    }
    //  Never written through: the cast only lets one struct serve both kinds
    self->data = (uint8_t *) data;
    self->size = size;
    self->borrowed = true;
    if (s_parse (self, why)) {
        kc_batch_destroy (&self);
    }
    return self;
}

kc_batch_t *
kc_batch_load (const char *path, kc_why_t *why)
{
    size_t size;
    uint8_t *data = kc_file_read (path, KC_BATCH_BYTES_MAX, false, &size, why);
    if (!data) {
        return NULL;
    }
    kc_batch_t *self = s_from_bytes (data, size, why);
    if (!self) {
        kc_why_prefix (why, "'%s'", path);
    }
    return self;
}

int
kc_batch_save (const kc_batch_t *self, const char *path, kc_why_t *why)
{
    return kc_file_write_atomic (path, self->data, self->size, KC_FILE_MODE_PUBLIC, why);
}

kc_batch_t *
kc_batch_cosign (const kc_batch_t *self, const kc_signer_t *signer)
{
    uint8_t message [64], signature [KC_SIGNATURE_BYTES];
    size_t message_size = kc_signed_message (KC_CONTEXT_BATCH, self->digest, message);
    kc_signer_sign (signer, message, message_size, signature);
    kc_signature_t list [KC_BATCH_SIGNATURES_MAX + 1];
    size_t count = 0;
    const uint8_t *key = kc_signer_public_key (signer);
    for (size_t i = 0; i < self->signature_count; i++) {
        if (memcmp (self->signatures [i].key, key, KC_KEY_BYTES)) {
            list [count++] = self->signatures [i];
        }
    }
    if (count == KC_BATCH_SIGNATURES_MAX) {
        return NULL;
    }
    list [count].key = key;
    list [count].signature = signature;
    count++;
    qsort (list, count, sizeof list [0], s_compare_signatures);
    size_t size;
    uint8_t *data = s_encode (self->data, self->body_size, list, count, &size);
    kc_batch_t *result = s_from_bytes (data, size, NULL);
    assert (result);
    return result;
}

int
kc_batch_verify (const kc_batch_t *self, const kc_root_t *root, uint64_t now, kc_why_t *why)
{
    char when [32];
    if (memcmp (self->directory, kc_root_directory (root), KC_HASH_BYTES)) {
        char ours [65], theirs [65];
        return kc_why (why, "wrong directory: batch is for %.16s..., root is %.16s...",
                       kc_hex (self->directory, KC_HASH_BYTES, ours),
                       kc_hex (kc_root_directory (root), KC_HASH_BYTES, theirs));
    }
    if (now >= kc_root_expires (root)) {
        return kc_why (why, "root v%llu expired at %s", (unsigned long long) kc_root_version (root),
                       kc_time_format (kc_root_expires (root), when));
    }
    bool registers = false, revokes = false;
    for (size_t i = 0; i < self->count; i++) {
        registers |= self->records [i].status == KC_STATUS_ACTIVE;
        revokes |= self->records [i].status == KC_STATUS_REVOKED;
    }
    int threshold = 0;
    if (registers) {
        threshold = kc_root_threshold_register (root);
    }
    if (revokes && kc_root_threshold_revoke (root) > threshold) {
        threshold = kc_root_threshold_revoke (root);
    }
    return kc_root_check_signatures (root, KC_CONTEXT_BATCH, self->digest, self->signatures,
                                     self->signature_count, threshold, true, NULL, why);
}

void
kc_batch_destroy (kc_batch_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->records);
        if (!(*self_p)->borrowed) {
            free ((*self_p)->data);
        }
        free (*self_p);
        *self_p = NULL;
    }
}

const uint8_t *
kc_batch_data (const kc_batch_t *self, size_t *size)
{
    *size = self->size;
    return self->data;
}

const uint8_t *
kc_batch_digest (const kc_batch_t *self)
{
    return self->digest;
}

size_t
kc_batch_body_size (const kc_batch_t *self)
{
    return self->body_size;
}

const uint8_t *
kc_batch_directory (const kc_batch_t *self)
{
    return self->directory;
}

uint64_t
kc_batch_created (const kc_batch_t *self)
{
    return self->created;
}

size_t
kc_batch_count (const kc_batch_t *self)
{
    return self->count;
}

const kc_record_t *
kc_batch_record (const kc_batch_t *self, size_t index)
{
    return index < self->count ? &self->records [index] : NULL;
}

size_t
kc_batch_signature_count (const kc_batch_t *self)
{
    return self->signature_count;
}

kc_signature_t
kc_batch_signature (const kc_batch_t *self, size_t index)
{
    return self->signatures [index];
}

size_t
kc_batch_peek_count (const uint8_t *data, size_t size)
{
    //  0 for anything else (a root change in the log holds no records)
    return size >= KC_BATCH_HEADER_BYTES && memcmp (data, MAGIC, 4) == 0
         ? kc_get_u32 (data + KC_BATCH_HEADER_BYTES - 4) : 0;
}

void
kc_batch_test_append_signature (kc_batch_t *self, kc_signature_t signature)
{
    assert (self->signature_count <= KC_BATCH_SIGNATURES_MAX);
    self->signatures [self->signature_count++] = signature;
}

void
kc_batch_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_batch: ");
    }
    kc_why_t why;
    uint8_t seed [32] = { 0 };
    kc_signer_t *signers [3];
    kc_operator_t operators [3];
    for (int i = 0; i < 3; i++) {
        seed [0] = (uint8_t) (i + 1);
        signers [i] = kc_signer_new_from_seed (seed, "op", "keyclone-operator");
        memcpy (operators [i].key, kc_signer_public_key (signers [i]), 32);
        snprintf (operators [i].name, sizeof operators [i].name, "op%d", i + 1);
    }
    uint8_t keyfill [32];
    memset (keyfill, 0x33, 32);
    kc_root_spec_t root_spec = {
        .version = 1, .created = 1000, .expires = 5000, .operators = operators,
        .operator_count = 3, .threshold_register = 2, .threshold_revoke = 1,
        .threshold_root = 3, .head_key = keyfill, .server_key = keyfill,
        .endpoints = { "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3" }
    };
    kc_root_t *root = kc_root_new (&root_spec, &why);
    assert (root);
    const uint8_t *directory = kc_root_directory (root);

    //  Build 1000 records in descending key order: the batch sorts them
    kc_batch_builder_t *builder = kc_batch_builder_new (directory, 1234);
    uint8_t key [32];
    char name [32];
    for (int i = 999; i >= 0; i--) {
        memset (key, 0, 32);
        key [0] = (uint8_t) (i >> 8);
        key [1] = (uint8_t) i;
        key [31] = 1;
        snprintf (name, sizeof name, "node-%d", i);
        kc_record_spec_t spec = { .key = key, .version = 1, .status = KC_STATUS_ACTIVE, .name = name };
        assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    }
    assert (kc_batch_builder_count (builder) == 1000);
    kc_batch_t *one = kc_batch_builder_finish (builder, signers, 1, &why);
    assert (one && kc_batch_count (one) == 1000);
    assert (kc_batch_record (one, 0)->key [1] == 0 && kc_batch_record (one, 999)->key [1] == (999 & 255));

    //  Threshold 2 for registration: one signer is not enough
    assert (kc_batch_verify (one, root, 2000, &why) == -1);
    assert (strstr (why.text, "signature threshold 2 not met (1 valid)"));
    //  The same signer twice still counts once
    kc_batch_t *twice = kc_batch_cosign (one, signers [0]);
    assert (kc_batch_signature_count (twice) == 1);
    kc_batch_test_append_signature (twice, kc_batch_signature (twice, 0));
    assert (kc_batch_verify (twice, root, 2000, &why) == -1);
    assert (strstr (why.text, "threshold 2 not met (1 valid)"));
    kc_batch_destroy (&twice);
    //  A second operator completes it
    kc_batch_t *two = kc_batch_cosign (one, signers [1]);
    assert (kc_batch_signature_count (two) == 2);
    assert (kc_batch_verify (two, root, 2000, &why) == 0);
    assert (memcmp (kc_batch_digest (one), kc_batch_digest (two), 32) == 0);
    //  Root expiry applies
    assert (kc_batch_verify (two, root, 5000, &why) == -1 && strstr (why.text, "expired"));

    //  Decode round trip
    size_t size;
    const uint8_t *data = kc_batch_data (two, &size);
    kc_batch_t *copy = kc_batch_decode (data, size, &why);
    assert (copy && kc_batch_verify (copy, root, 2000, &why) == 0);
    kc_batch_destroy (&copy);
    assert (kc_batch_peek_count (data, size) == 1000 && kc_batch_peek_count (data, 10) == 0);

    //  A forged signature: flip one bit of a signature
    uint8_t *edited = malloc (size + 1);
    memcpy (edited, data, size);
    edited [size - 1] ^= 1;
    copy = kc_batch_decode (edited, size, &why);
    assert (copy && kc_batch_verify (copy, root, 2000, &why) == -1);
    assert (strstr (why.text, "bad signature"));
    kc_batch_destroy (&copy);
    //  A changed record: signatures no longer match
    memcpy (edited, data, size);
    edited [KC_BATCH_HEADER_BYTES + 80] ^= 1;      //  inside the first record's not-before
    copy = kc_batch_decode (edited, size, &why);
    assert (copy && kc_batch_verify (copy, root, 2000, &why) == -1);
    kc_batch_destroy (&copy);
    //  Trailing byte, and truncations at sampled cuts
    memcpy (edited, data, size);
    edited [size] = 0;
    assert (kc_batch_decode (edited, size + 1, &why) == NULL && strstr (why.text, "trailing"));
    for (size_t cut = 0; cut < size; cut += 97) {
        assert (kc_batch_decode (data, cut, &why) == NULL);
    }
    assert (kc_batch_decode (data, size - 1, &why) == NULL);
    free (edited);

    //  A signer that is not in the root
    seed [0] = 77;
    kc_signer_t *stranger = kc_signer_new_from_seed (seed, "mallory", "keyclone-operator");
    kc_batch_t *strange = kc_batch_cosign (two, stranger);
    assert (kc_batch_verify (strange, root, 2000, &why) == -1);
    assert (strstr (why.text, "not an operator"));
    kc_batch_destroy (&strange);
    kc_signer_destroy (&stranger);

    //  Wrong directory
    uint8_t other [32];
    memset (other, 0x99, 32);
    kc_batch_builder_t *elsewhere = kc_batch_builder_new (other, 1);
    memset (key, 0x55, 32);
    kc_record_spec_t revoke = { .key = key, .version = 9, .status = KC_STATUS_REVOKED };
    assert (kc_batch_builder_add (elsewhere, &revoke, &why) == 0);
    kc_batch_t *wrong = kc_batch_builder_finish (elsewhere, signers, 1, &why);
    assert (wrong && kc_batch_verify (wrong, root, 2000, &why) == -1);
    assert (strstr (why.text, "wrong directory"));
    kc_batch_destroy (&wrong);
    kc_batch_builder_destroy (&elsewhere);

    //  A revocation needs only the revoke threshold (1)
    kc_batch_builder_t *revoker = kc_batch_builder_new (directory, 1);
    assert (kc_batch_builder_add (revoker, &revoke, &why) == 0);
    kc_batch_t *revocation = kc_batch_builder_finish (revoker, signers + 2, 1, &why);
    assert (revocation && kc_batch_verify (revocation, root, 2000, &why) == 0);
    //  Same key twice is refused
    assert (kc_batch_builder_add (revoker, &revoke, &why) == 0);
    assert (kc_batch_builder_finish (revoker, signers, 1, &why) == NULL);
    assert (strstr (why.text, "twice"));
    kc_batch_destroy (&revocation);
    kc_batch_builder_destroy (&revoker);

    //  An empty builder cannot finish
    kc_batch_builder_t *empty = kc_batch_builder_new (directory, 1);
    assert (kc_batch_builder_finish (empty, signers, 1, &why) == NULL);
    kc_batch_builder_destroy (&empty);

    kc_batch_destroy (&two);
    kc_batch_destroy (&one);
    kc_batch_builder_destroy (&builder);
    kc_root_destroy (&root);
    for (int i = 0; i < 3; i++) {
        kc_signer_destroy (&signers [i]);
    }
    if (verbose) {
        printf ("OK\n");
    }
}
