/*  =========================================================================
    kc_record - node key record: canonical v1 encoding and validation.

    Layout (all integers big-endian):
        u8   format (1)         u8[32] directory id     u8[32] CURVE key
        u64  version            u8     status           u64    not-before
        u64  not-after          u8     name size, name  u8     tag count,
        (u8 size, tag)*         u8     reason size, reason
    =========================================================================
*/
#include "kc_record.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
s_alnum (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool
kc_record_name_valid (const char *name, size_t size)
{
    if (size == 0 || size > KC_RECORD_NAME_MAX || !s_alnum (name [0])) {
        return false;
    }
    for (size_t i = 1; i < size; i++) {
        if (!s_alnum (name [i]) && name [i] != '.' && name [i] != '-' && name [i] != '_') {
            return false;
        }
    }
    return true;
}

bool
kc_record_tag_valid (const char *tag, size_t size)
{
    if (size == 0 || size > KC_RECORD_TAG_MAX) {
        return false;
    }
    for (size_t i = 0; i < size; i++) {
        if (!s_alnum (tag [i]) && !strchr ("._:=/+-@", tag [i])) {
            return false;
        }
        if (tag [i] == 0) {
            return false;
        }
    }
    return true;
}

bool
kc_record_reason_valid (const char *reason, size_t size)
{
    if (size > KC_RECORD_REASON_MAX) {
        return false;
    }
    for (size_t i = 0; i < size; i++) {
        if (reason [i] < 0x20 || reason [i] > 0x7e) {
            return false;
        }
    }
    return true;
}

//  Byte-wise order of (a, as) and (b, bs): memcmp, then shorter first.
static int
s_compare (const void *a, size_t as, const void *b, size_t bs)
{
    int c = memcmp (a, b, as < bs ? as : bs);
    if (c) {
        return c;
    }
    return as < bs ? -1 : as > bs ? 1 : 0;
}

static int
s_compare_tags (const void *a, const void *b)
{
    const char *x = *(const char *const *) a, *y = *(const char *const *) b;
    return s_compare (x, strlen (x), y, strlen (y));
}

static bool
s_all_zero (const uint8_t *data, size_t size)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < size; i++) {
        acc |= data [i];
    }
    return acc == 0;
}

//  The rules shared by encoder and decoder, over plain values.
static int
s_check_fields (const uint8_t *key, uint64_t version, uint8_t status,
                uint64_t not_before, uint64_t not_after,
                const char *name, size_t name_size, size_t tag_count,
                size_t reason_size, kc_why_t *why)
{
    if (s_all_zero (key, KC_KEY_BYTES)) {
        return kc_why (why, "key is all zero");
    }
    if (version == 0 || version > KC_RECORD_VERSION_MAX) {
        return kc_why (why, "version %llu is outside 1..2^63-1", (unsigned long long) version);
    }
    if (status != KC_STATUS_ACTIVE && status != KC_STATUS_REVOKED) {
        return kc_why (why, "unknown status %u", status);
    }
    if (not_before > KC_RECORD_TIME_MAX || not_after > KC_RECORD_TIME_MAX) {
        return kc_why (why, "validity time beyond 2^63-1");
    }
    if (not_after && not_after <= not_before) {
        return kc_why (why, "not-after %llu is not later than not-before %llu",
                       (unsigned long long) not_after, (unsigned long long) not_before);
    }
    if (name_size > KC_RECORD_NAME_MAX) {
        return kc_why (why, "name longer than %d bytes", KC_RECORD_NAME_MAX);
    }
    if (status == KC_STATUS_ACTIVE && name_size == 0) {
        return kc_why (why, "active record without a name");
    }
    if (name_size && !kc_record_name_valid (name, name_size)) {
        return kc_why (why, "invalid name '%.*s' (allowed: letters, digits, '.', '-', '_'; "
                       "starting with a letter or digit)", (int) name_size, name);
    }
    if (tag_count > KC_RECORD_TAGS_MAX) {
        return kc_why (why, "%zu tags (limit %d)", tag_count, KC_RECORD_TAGS_MAX);
    }
    if (reason_size > KC_RECORD_REASON_MAX) {
        return kc_why (why, "reason longer than %d bytes", KC_RECORD_REASON_MAX);
    }
    if (status == KC_STATUS_ACTIVE && reason_size) {
        return kc_why (why, "an active record cannot carry a revocation reason");
    }
    if (status == KC_STATUS_REVOKED && (tag_count || not_before || not_after)) {
        return kc_why (why, "a revoked record carries no tags and no validity window");
    }
    return 0;
}

int
kc_record_encode (const kc_record_spec_t *spec, kc_writer_t *writer, kc_why_t *why)
{
    const char *name = spec->name ? spec->name : "";
    const char *reason = spec->reason ? spec->reason : "";
    size_t name_size = strlen (name), reason_size = strlen (reason);
    if (s_check_fields (spec->key, spec->version, (uint8_t) spec->status,
                        spec->not_before, spec->not_after, name, name_size,
                        spec->tag_count, reason_size, why)) {
        return -1;
    }
    if (!kc_record_reason_valid (reason, reason_size)) {
        return kc_why (why, "reason has a non-printable character");
    }
    const char *sorted [KC_RECORD_TAGS_MAX];
    for (size_t i = 0; i < spec->tag_count; i++) {
        sorted [i] = spec->tags [i];
        if (!kc_record_tag_valid (sorted [i], strlen (sorted [i]))) {
            return kc_why (why, "invalid tag '%.80s' (1-%d of letters, digits, ._:=/+-@)",
                           sorted [i], KC_RECORD_TAG_MAX);
        }
    }
    qsort (sorted, spec->tag_count, sizeof sorted [0], s_compare_tags);
    for (size_t i = 1; i < spec->tag_count; i++) {
        if (KC_STREQ (sorted [i - 1], sorted [i])) {
            return kc_why (why, "tag '%s' given twice", sorted [i]);
        }
    }
    kc_write_u8 (writer, KC_RECORD_FORMAT);
    kc_write_bytes (writer, spec->directory, 32);
    kc_write_bytes (writer, spec->key, 32);
    kc_write_u64 (writer, spec->version);
    kc_write_u8 (writer, (uint8_t) spec->status);
    kc_write_u64 (writer, spec->not_before);
    kc_write_u64 (writer, spec->not_after);
    kc_write_u8 (writer, (uint8_t) name_size);
    kc_write_bytes (writer, name, name_size);
    kc_write_u8 (writer, (uint8_t) spec->tag_count);
    for (size_t i = 0; i < spec->tag_count; i++) {
        kc_write_u8 (writer, (uint8_t) strlen (sorted [i]));
        kc_write_bytes (writer, sorted [i], strlen (sorted [i]));
    }
    kc_write_u8 (writer, (uint8_t) reason_size);
    kc_write_bytes (writer, reason, reason_size);
    return 0;
}

//  Reads the tag list, checking each tag and strict ascending order.
static int
s_decode_tags (kc_reader_t *reader, kc_record_t *record, kc_why_t *why)
{
    const uint8_t *start = reader->data + reader->pos;
    const uint8_t *previous = NULL;
    uint8_t previous_size = 0;
    for (int i = 0; i < record->tag_count; i++) {
        uint8_t size;
        const uint8_t *tag;
        if (kc_read_u8 (reader, &size) || !(tag = kc_read_bytes (reader, size))) {
            return kc_why (why, "truncated tag %d", i + 1);
        }
        if (!kc_record_tag_valid ((const char *) tag, size)) {
            return kc_why (why, "tag %d is empty, too long or has an invalid character", i + 1);
        }
        if (previous && s_compare (previous, previous_size, tag, size) >= 0) {
            return kc_why (why, "tags are not in strictly ascending order");
        }
        previous = tag;
        previous_size = size;
    }
    record->tags = start;
    return 0;
}

int
kc_record_decode (kc_reader_t *reader, kc_record_t *record, kc_why_t *why)
{
    size_t start = reader->pos;
    uint8_t format;
    memset (record, 0, sizeof *record);
    if (kc_read_u8 (reader, &format)) {
        return kc_why (why, "truncated record");
    }
    if (format != KC_RECORD_FORMAT) {
        return kc_why (why, "unknown record format %u", format);
    }
    record->directory = kc_read_bytes (reader, 32);
    record->key = kc_read_bytes (reader, 32);
    if (kc_read_u64 (reader, &record->version)
    ||  kc_read_u8 (reader, &record->status)
    ||  kc_read_u64 (reader, &record->not_before)
    ||  kc_read_u64 (reader, &record->not_after)
    ||  kc_read_u8 (reader, &record->name_size)) {
        return kc_why (why, "truncated record");
    }
    record->name = (const char *) kc_read_bytes (reader, record->name_size);
    if (kc_read_u8 (reader, &record->tag_count)) {
        return kc_why (why, "truncated record");
    }
    if (record->tag_count > KC_RECORD_TAGS_MAX) {
        return kc_why (why, "%u tags (limit %d)", record->tag_count, KC_RECORD_TAGS_MAX);
    }
    if (s_decode_tags (reader, record, why)) {
        return -1;
    }
    if (kc_read_u8 (reader, &record->reason_size)) {
        return kc_why (why, "truncated record");
    }
    record->reason = (const char *) kc_read_bytes (reader, record->reason_size);
    if (reader->failed) {
        return kc_why (why, "truncated record");
    }
    if (s_check_fields (record->key, record->version, record->status,
                        record->not_before, record->not_after,
                        record->name, record->name_size, record->tag_count,
                        record->reason_size, why)) {
        return -1;
    }
    if (!kc_record_reason_valid (record->reason, record->reason_size)) {
        return kc_why (why, "reason has a non-printable character");
    }
    record->encoded = reader->data + start;
    record->encoded_size = reader->pos - start;
    return 0;
}

char *
kc_record_name (const kc_record_t *self, char *text)
{
    memcpy (text, self->name, self->name_size);
    text [self->name_size] = 0;
    return text;
}

char *
kc_record_tags (const kc_record_t *self, char sep, char *text, size_t capacity)
{
    size_t out = 0;
    const uint8_t *p = self->tags;
    text [0] = 0;
    for (int i = 0; i < self->tag_count; i++) {
        size_t size = *p++;
        if (out + size + 2 > capacity) {
            break;
        }
        if (i) {
            text [out++] = sep;
        }
        memcpy (text + out, p, size);
        out += size;
        p += size;
        text [out] = 0;
    }
    return text;
}

bool
kc_record_has_tag (const kc_record_t *self, const char *tag)
{
    size_t length = strlen (tag);
    const uint8_t *p = self->tags;
    for (int i = 0; i < self->tag_count; i++) {
        size_t size = *p++;
        if (size == length && memcmp (p, tag, size) == 0) {
            return true;
        }
        p += size;
    }
    return false;
}

bool
kc_record_in_force (const kc_record_t *self, uint64_t now)
{
    return self->status == KC_STATUS_ACTIVE && self->not_before <= now
        && (self->not_after == 0 || now < self->not_after);
}

int
kc_record_check_successor (const kc_record_t *record, uint8_t stored_status,
                           uint64_t stored_version, kc_why_t *why)
{
    char fp [KC_FINGERPRINT_CHARS + 1];
    if (stored_status == KC_STATUS_REVOKED) {
        return kc_why (why, "key %s is revoked; revocation is terminal",
                       kc_fingerprint (record->key, fp));
    }
    //  Versions order registrations only: a revocation needs no higher
    //  version, so no accepted registration can make a key unrevocable
    if (record->status == KC_STATUS_REVOKED) {
        return 0;
    }
    if (stored_status && record->version <= stored_version) {
        return kc_why (why, "version %llu for key %s is not above the stored version %llu",
                       (unsigned long long) record->version, kc_fingerprint (record->key, fp),
                       (unsigned long long) stored_version);
    }
    return 0;
}

void
kc_record_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_record: ");
    }
    uint8_t directory [32], key [32];
    memset (directory, 0xd1, 32);
    memset (key, 0x42, 32);
    const char *tags [] = { "role=db", "dc=eu", "env=prod" };
    kc_record_spec_t spec = {
        .directory = directory, .key = key, .version = 7, .status = KC_STATUS_ACTIVE,
        .not_before = 100, .not_after = 200, .name = "db-1.example", .tags = tags,
        .tag_count = 3
    };
    kc_writer_t w;
    kc_writer_init (&w);
    kc_why_t why;
    assert (kc_record_encode (&spec, &w, &why) == 0);

    kc_reader_t r;
    kc_record_t record;
    kc_reader_init (&r, w.data, w.size);
    assert (kc_record_decode (&r, &record, &why) == 0);
    assert (kc_reader_left (&r) == 0);
    assert (record.version == 7 && record.status == KC_STATUS_ACTIVE);
    assert (record.encoded_size == w.size);
    //  The fixed offsets readers of validated encodings use
    assert (record.key == w.data + KC_RECORD_AT_KEY);
    assert (kc_get_u64 (w.data + KC_RECORD_AT_VERSION) == 7);
    assert (w.data [KC_RECORD_AT_STATUS] == KC_STATUS_ACTIVE);
    assert (w.data [KC_RECORD_AT_NAME_SIZE] == 12 && record.name == (char *) w.data + KC_RECORD_AT_NAME);
    char name [256], text [KC_RECORD_TAGS_TEXT_MAX];
    assert (KC_STREQ (kc_record_name (&record, name), "db-1.example"));
    //  Tags come back sorted
    assert (KC_STREQ (kc_record_tags (&record, ',', text, sizeof text), "dc=eu,env=prod,role=db"));
    assert (kc_record_has_tag (&record, "role=db") && !kc_record_has_tag (&record, "role"));
    assert (!kc_record_in_force (&record, 99) && kc_record_in_force (&record, 100));
    assert (!kc_record_in_force (&record, 200));

    //  Every truncation fails, never reads past the end
    for (size_t cut = 0; cut < w.size; cut++) {
        kc_reader_init (&r, w.data, cut);
        assert (kc_record_decode (&r, &record, &why) == -1);
    }

    //  Encoder refusals
    kc_record_spec_t bad = spec;
    bad.name = "-bad";
    assert (kc_record_encode (&bad, &w, &why) == -1 && strstr (why.text, "invalid name"));
    bad = spec; bad.name = "";
    assert (kc_record_encode (&bad, &w, &why) == -1);
    bad = spec; bad.version = 0;
    assert (kc_record_encode (&bad, &w, &why) == -1);
    bad = spec; bad.not_after = 100;
    assert (kc_record_encode (&bad, &w, &why) == -1 && strstr (why.text, "not-after"));
    bad = spec; bad.reason = "why";
    assert (kc_record_encode (&bad, &w, &why) == -1);
    const char *twice [] = { "a", "a" };
    bad = spec; bad.tags = twice; bad.tag_count = 2;
    assert (kc_record_encode (&bad, &w, &why) == -1 && strstr (why.text, "twice"));
    const char *spaced [] = { "a b" };
    bad = spec; bad.tags = spaced; bad.tag_count = 1;
    assert (kc_record_encode (&bad, &w, &why) == -1);
    bad = spec; bad.status = KC_STATUS_REVOKED;
    assert (kc_record_encode (&bad, &w, &why) == -1 && strstr (why.text, "no tags"));
    uint8_t zero [32] = { 0 };
    bad = spec; bad.key = zero;
    assert (kc_record_encode (&bad, &w, &why) == -1);

    //  A revocation with an empty name and a reason is fine
    kc_record_spec_t revoke = {
        .directory = directory, .key = key, .version = 8, .status = KC_STATUS_REVOKED,
        .reason = "laptop stolen"
    };
    kc_writer_t w2;
    kc_writer_init (&w2);
    assert (kc_record_encode (&revoke, &w2, &why) == 0);
    kc_reader_init (&r, w2.data, w2.size);
    assert (kc_record_decode (&r, &record, &why) == 0);
    assert (record.status == KC_STATUS_REVOKED && record.reason_size == 13);
    assert (!kc_record_in_force (&record, 150));

    //  Successor rules: terminal revocation; a revocation follows any
    //  active version, even the highest; registrations strictly increase
    kc_record_t revocation = record;
    assert (kc_record_check_successor (&revocation, 0, 0, &why) == 0);
    assert (kc_record_check_successor (&revocation, KC_STATUS_ACTIVE, 7, &why) == 0);
    assert (kc_record_check_successor (&revocation, KC_STATUS_ACTIVE, 8, &why) == 0);
    assert (kc_record_check_successor (&revocation, KC_STATUS_ACTIVE, KC_RECORD_VERSION_MAX, &why) == 0);
    assert (kc_record_check_successor (&revocation, KC_STATUS_REVOKED, 1, &why) == -1);
    assert (strstr (why.text, "terminal"));
    kc_record_t registration = record;
    registration.status = KC_STATUS_ACTIVE;
    assert (kc_record_check_successor (&registration, KC_STATUS_ACTIVE, 7, &why) == 0);
    assert (kc_record_check_successor (&registration, KC_STATUS_ACTIVE, 8, &why) == -1);
    assert (strstr (why.text, "not above the stored version 8"));
    assert (kc_record_check_successor (&registration, KC_STATUS_REVOKED, 1, &why) == -1);
    assert (strstr (why.text, "terminal"));

    //  Decoder refusals on edited bytes: format, status, unsorted tags
    uint8_t copy [KC_RECORD_BYTES_MAX];
    memcpy (copy, w.data, w.size);
    copy [0] = 2;
    kc_reader_init (&r, copy, w.size);
    assert (kc_record_decode (&r, &record, &why) == -1 && strstr (why.text, "format"));
    memcpy (copy, w.data, w.size);
    copy [73] = 3;
    kc_reader_init (&r, copy, w.size);
    assert (kc_record_decode (&r, &record, &why) == -1 && strstr (why.text, "status"));
    memcpy (copy, w.data, w.size);
    size_t tag_at = KC_RECORD_FIXED_BYTES - 2 + strlen ("db-1.example");
    assert (copy [tag_at] == 3 && copy [tag_at + 1] == 5);
    memcpy (copy + tag_at + 2, "zz", 2);           //  "dc=eu" -> "zz=eu"
    kc_reader_init (&r, copy, w.size);
    assert (kc_record_decode (&r, &record, &why) == -1 && strstr (why.text, "ascending"));
    kc_writer_free (&w);
    kc_writer_free (&w2);
    if (verbose) {
        printf ("OK\n");
    }
}
