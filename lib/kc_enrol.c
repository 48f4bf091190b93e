/*  =========================================================================
    kc_enrol - enrolment requests: canonical encoding, pure decoder,
    comparison code (docs/protocol.md section 6.4).

    Layout (all integers big-endian):
        u8[32] key      u8 state        u64 requested (ms)   u64 expires (ms)
        u64 seq         u8[32] replaces (zero: not a rotation)   u64 overlap (s)
        str8 name       u8 tag count, str8 tag*
        str8 source     str8 reason
    =========================================================================
*/
#include "kc_enrol.h"
#include "kc_wire.h"

#include <assert.h>
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CODE_CONTEXT "keyclone enrol code v1"
static const char s_alphabet [] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";   //  Crockford base32

static int
s_compare_tags (const void *a, const void *b)
{
    return strcmp (a, b);
}

static bool
s_printable (const char *text, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (text [i] < 0x20 || text [i] > 0x7e) {
            return false;
        }
    }
    return true;
}

int
kc_enrolment_set (kc_enrolment_t *self, const char *name, size_t name_size,
                  const char *const *tags, const size_t *tag_sizes, size_t tag_count, kc_why_t *why)
{
    if (!kc_record_name_valid (name, name_size)) {
        return kc_why (why, "invalid node name (1..%d of letters, digits, '.', '-', '_', starting "
                       "with a letter or digit)", KC_RECORD_NAME_MAX);
    }
    if (tag_count > KC_RECORD_TAGS_MAX) {
        return kc_why (why, "%zu tags (at most %d)", tag_count, KC_RECORD_TAGS_MAX);
    }
    memcpy (self->name, name, name_size);
    self->name [name_size] = 0;
    for (size_t i = 0; i < tag_count; i++) {
        if (!kc_record_tag_valid (tags [i], tag_sizes [i])) {
            return kc_why (why, "invalid tag %zu (1..%d of letters, digits and ._:=/+-@)", i + 1,
                           KC_RECORD_TAG_MAX);
        }
        memcpy (self->tags [i], tags [i], tag_sizes [i]);
        self->tags [i][tag_sizes [i]] = 0;
    }
    qsort (self->tags, tag_count, sizeof self->tags [0], s_compare_tags);
    for (size_t i = 1; i < tag_count; i++) {
        if (strcmp (self->tags [i - 1], self->tags [i]) == 0) {
            return kc_why (why, "tag '%s' given twice", self->tags [i]);
        }
    }
    self->tag_count = tag_count;
    return 0;
}

static void
s_str8 (kc_writer_t *w, const char *text)
{
    size_t size = strlen (text);
    assert (size <= 255);
    kc_write_u8 (w, (uint8_t) size);
    kc_write_bytes (w, text, size);
}

uint8_t *
kc_enrolment_encode (const kc_enrolment_t *self, size_t *size)
{
    kc_writer_t w;
    kc_writer_init (&w);
    kc_write_bytes (&w, self->key, KC_KEY_BYTES);
    kc_write_u8 (&w, self->state);
    kc_write_u64 (&w, self->requested);
    kc_write_u64 (&w, self->expires);
    kc_write_u64 (&w, self->seq);
    static const uint8_t zero [KC_KEY_BYTES] = { 0 };
    kc_write_bytes (&w, self->rotation ? self->replaces : zero, KC_KEY_BYTES);
    kc_write_u64 (&w, self->rotation ? self->overlap : 0);
    s_str8 (&w, self->name);
    kc_write_u8 (&w, (uint8_t) self->tag_count);
    for (size_t i = 0; i < self->tag_count; i++) {
        s_str8 (&w, self->tags [i]);
    }
    s_str8 (&w, self->source);
    s_str8 (&w, self->reason);
    return kc_writer_take (&w, size);
}

//  Reads a str8 into text (capacity 256); NULL-terminated. Returns its size,
//  or -1 when the input ends first.
static int
s_read_str8 (kc_reader_t *r, char text [static 256])
{
    uint8_t size;
    if (kc_read_u8 (r, &size)) {
        return -1;
    }
    const uint8_t *bytes = kc_read_bytes (r, size);
    if (!bytes) {
        return -1;
    }
    memcpy (text, bytes, size);
    text [size] = 0;
    return size;
}

int
kc_enrolment_decode (const uint8_t *data, size_t size, kc_enrolment_t *out, kc_why_t *why)
{
    memset (out, 0, sizeof *out);
    if (size > KC_ENROL_BYTES_MAX) {
        return kc_why (why, "enrolment is %zu bytes (at most %d)", size, KC_ENROL_BYTES_MAX);
    }
    kc_reader_t r;
    kc_reader_init (&r, data, size);
    const uint8_t *key = kc_read_bytes (&r, KC_KEY_BYTES), *replaces = NULL;
    uint8_t tag_count = 0;
    int name_size = -1;
    if (!key || kc_read_u8 (&r, &out->state) || kc_read_u64 (&r, &out->requested)
    ||  kc_read_u64 (&r, &out->expires) || kc_read_u64 (&r, &out->seq)
    ||  !(replaces = kc_read_bytes (&r, KC_KEY_BYTES)) || kc_read_u64 (&r, &out->overlap)
    ||  (name_size = s_read_str8 (&r, out->name)) < 0 || kc_read_u8 (&r, &tag_count)) {
        return kc_why (why, "enrolment is truncated");
    }
    memcpy (out->key, key, KC_KEY_BYTES);
    static const uint8_t zero [KC_KEY_BYTES] = { 0 };
    out->rotation = memcmp (replaces, zero, KC_KEY_BYTES) != 0;
    memcpy (out->replaces, replaces, KC_KEY_BYTES);
    if ((!out->rotation && out->overlap) || out->overlap > KC_ENROL_OVERLAP_MAX
    ||  (out->rotation && memcmp (replaces, key, KC_KEY_BYTES) == 0)) {
        return kc_why (why, "enrolment rotation fields are invalid");
    }
    if (out->state < KC_ENROL_PENDING || out->state > KC_ENROL_REGISTERED) {
        return kc_why (why, "enrolment state %u is unknown", out->state);
    }
    if (!kc_record_name_valid (out->name, (size_t) name_size)) {
        return kc_why (why, "enrolment name is invalid");
    }
    if (tag_count > KC_RECORD_TAGS_MAX) {
        return kc_why (why, "enrolment has %u tags (at most %d)", tag_count, KC_RECORD_TAGS_MAX);
    }
    for (size_t i = 0; i < tag_count; i++) {
        char tag [256];
        int tag_size = s_read_str8 (&r, tag);
        if (tag_size < 0) {
            return kc_why (why, "enrolment is truncated");
        }
        if (!kc_record_tag_valid (tag, (size_t) tag_size)
        ||  (i > 0 && strcmp (out->tags [i - 1], tag) >= 0)) {
            return kc_why (why, "enrolment tag %zu is invalid or out of order", i + 1);
        }
        memcpy (out->tags [i], tag, (size_t) tag_size + 1);
    }
    out->tag_count = tag_count;
    int source_size = s_read_str8 (&r, out->source);
    int reason_size = source_size < 0 ? -1 : s_read_str8 (&r, out->reason);
    if (reason_size < 0) {
        return kc_why (why, "enrolment is truncated");
    }
    if (!s_printable (out->source, (size_t) source_size)
    ||  !kc_record_reason_valid (out->reason, (size_t) reason_size)) {
        return kc_why (why, "enrolment source or reason is not printable ASCII");
    }
    if (kc_reader_left (&r)) {
        return kc_why (why, "enrolment has %zu bytes after its end", kc_reader_left (&r));
    }
    if ((out->state == KC_ENROL_REGISTERED) != (out->seq != 0)
    ||  (out->state != KC_ENROL_REJECTED && reason_size > 0)) {
        return kc_why (why, "enrolment fields do not match its state");
    }
    return 0;
}

char *
kc_enrol_code (const uint8_t key [static KC_KEY_BYTES], const char *name,
               const char (*tags) [KC_RECORD_TAG_MAX + 1], size_t tag_count,
               char code [static KC_ENROL_CODE_CHARS + 1])
{
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, 32);
    crypto_generichash_update (&state, (const uint8_t *) CODE_CONTEXT, sizeof CODE_CONTEXT);  //  with its NUL
    crypto_generichash_update (&state, key, KC_KEY_BYTES);
    uint8_t size = (uint8_t) strlen (name);
    crypto_generichash_update (&state, &size, 1);
    crypto_generichash_update (&state, (const uint8_t *) name, size);
    uint8_t count = (uint8_t) tag_count;
    crypto_generichash_update (&state, &count, 1);
    for (size_t i = 0; i < tag_count; i++) {
        size = (uint8_t) strlen (tags [i]);
        crypto_generichash_update (&state, &size, 1);
        crypto_generichash_update (&state, (const uint8_t *) tags [i], size);
    }
    uint8_t hash [32];
    crypto_generichash_final (&state, hash, sizeof hash);
    //  40 bits, 5 per character
    uint64_t bits = 0;
    for (int i = 0; i < 5; i++) {
        bits = bits << 8 | hash [i];
    }
    for (int i = 0, at = 0; i < 8; i++) {
        if (i == 4) {
            code [at++] = '-';
        }
        code [at++] = s_alphabet [(bits >> (35 - 5 * i)) & 31];
    }
    code [KC_ENROL_CODE_CHARS] = 0;
    return code;
}

int
kc_enrol_code_parse (const char *text, char code [static KC_ENROL_CODE_CHARS + 1])
{
    int count = 0;
    for (const char *c = text; *c; c++) {
        if (*c == '-' || *c == ' ') {
            continue;
        }
        char u = (char) toupper ((unsigned char) *c);
        u = u == 'O' ? '0' : (u == 'I' || u == 'L') ? '1' : u;
        if (!strchr (s_alphabet, u) || count == 8) {
            return -1;
        }
        code [count < 4 ? count : count + 1] = u;
        count++;
    }
    if (count != 8) {
        return -1;
    }
    code [4] = '-';
    code [KC_ENROL_CODE_CHARS] = 0;
    return 0;
}

const char *
kc_enrol_state_name (uint8_t state)
{
    return state == KC_ENROL_PENDING ? "pending"
         : state == KC_ENROL_REJECTED ? "rejected"
         : state == KC_ENROL_REGISTERED ? "registered" : "?";
}

void
kc_enrol_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_enrol: ");
    }
    kc_enrolment_t in = { .state = KC_ENROL_PENDING, .requested = 1000, .expires = 2000 };
    memset (in.key, 0x42, sizeof in.key);
    const char *tags [] = { "role=web", "dc=eu" };
    size_t sizes [] = { 8, 5 };
    kc_why_t why;
    assert (kc_enrolment_set (&in, "web-1", 5, tags, sizes, 2, &why) == 0);
    assert (KC_STREQ (in.tags [0], "dc=eu") && KC_STREQ (in.tags [1], "role=web"));
    snprintf (in.source, sizeof in.source, "127.0.0.1");
    size_t size;
    uint8_t *data = kc_enrolment_encode (&in, &size);
    kc_enrolment_t out;
    assert (kc_enrolment_decode (data, size, &out, &why) == 0);
    assert (memcmp (&in, &out, sizeof in) == 0 || (KC_STREQ (out.name, "web-1") && out.tag_count == 2
            && KC_STREQ (out.source, "127.0.0.1") && out.expires == 2000));
    //  Every strict prefix and one byte more are refused
    for (size_t cut = 0; cut < size; cut++) {
        assert (kc_enrolment_decode (data, cut, &out, &why) == -1);
    }
    uint8_t *longer = malloc (size + 1);
    assert (longer);
    memcpy (longer, data, size);
    longer [size] = 0;
    assert (kc_enrolment_decode (longer, size + 1, &out, &why) == -1);
    free (longer);
    //  A rotation round-trips; overlap without it does not
    in.rotation = true;
    memset (in.replaces, 0x17, sizeof in.replaces);
    in.overlap = 3600;
    uint8_t *rotated = kc_enrolment_encode (&in, &size);
    assert (kc_enrolment_decode (rotated, size, &out, &why) == 0 && out.rotation && out.overlap == 3600
            && out.replaces [0] == 0x17);
    memset (rotated + 32 + 1 + 24, 0, KC_KEY_BYTES);      //  replaces zeroed, overlap kept
    assert (kc_enrolment_decode (rotated, size, &out, &why) == -1);
    free (rotated);
    in.rotation = false;
    in.overlap = 0;
    free (data);
    data = kc_enrolment_encode (&in, &size);
    //  State and fields must agree; a reason only when rejected
    data [32] = KC_ENROL_REGISTERED;
    assert (kc_enrolment_decode (data, size, &out, &why) == -1);
    data [32] = 9;
    assert (kc_enrolment_decode (data, size, &out, &why) == -1);
    free (data);
    //  Bad inputs to set
    const char *dup [] = { "a=1", "a=1" };
    size_t dup_sizes [] = { 3, 3 };
    assert (kc_enrolment_set (&in, "web-1", 5, dup, dup_sizes, 2, &why) == -1);
    assert (kc_enrolment_set (&in, "-web", 4, NULL, NULL, 0, &why) == -1);
    const char *bad [] = { "a b" };
    size_t bad_sizes [] = { 3 };
    assert (kc_enrolment_set (&in, "web", 3, bad, bad_sizes, 1, &why) == -1);

    //  The code: stable, depends on each part, parses back
    assert (kc_enrolment_set (&in, "web-1", 5, tags, sizes, 2, &why) == 0);
    char code [KC_ENROL_CODE_CHARS + 1], other [KC_ENROL_CODE_CHARS + 1], parsed [KC_ENROL_CODE_CHARS + 1];
    kc_enrol_code (in.key, in.name, (const char (*)[KC_RECORD_TAG_MAX + 1]) in.tags, in.tag_count, code);
    assert (strlen (code) == 9 && code [4] == '-');
    kc_enrol_code (in.key, "web-2", (const char (*)[KC_RECORD_TAG_MAX + 1]) in.tags, in.tag_count, other);
    assert (!KC_STREQ (code, other));
    kc_enrol_code (in.key, in.name, (const char (*)[KC_RECORD_TAG_MAX + 1]) in.tags, 1, other);
    assert (!KC_STREQ (code, other));
    char lower [16];
    snprintf (lower, sizeof lower, "%.4s%.4s", code, code + 5);
    for (char *c = lower; *c; c++) {
        *c = (char) tolower ((unsigned char) *c);
    }
    assert (kc_enrol_code_parse (lower, parsed) == 0 && KC_STREQ (parsed, code));
    assert (kc_enrol_code_parse ("ABCD-EFG", parsed) == -1);
    assert (kc_enrol_code_parse ("ABCD-EFGHJ", parsed) == -1);
    assert (kc_enrol_code_parse ("ABCD-EFGU", parsed) == -1);     //  U is not in the alphabet
    assert (kc_enrol_code_parse ("abcd efgo", parsed) == 0 && KC_STREQ (parsed, "ABCD-EFG0"));
    if (verbose) {
        printf ("OK\n");
    }
}
