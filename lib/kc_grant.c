/*  =========================================================================
    kc_grant - enrolment grants and grant uses: canonical encodings, pure
    decoders, signing and the checks (docs/records.md section 8).
    =========================================================================
*/
#include "kc_grant.h"
#include "kc_enrol.h"
#include "kc_head.h"
#include "kc_keys.h"
#include "kc_wire.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t s_grant_magic [4] = { 'K', 'C', 'G', 'R' };
static const uint8_t s_use_magic [4] = { 'K', 'C', 'G', 'U' };
static const uint8_t s_rotation_magic [4] = { 'K', 'C', 'G', 'X' };

bool
kc_grant_is_grant (const uint8_t *data, size_t size)
{
    return size >= 4 && memcmp (data, s_grant_magic, 4) == 0;
}

bool
kc_grant_is_use (const uint8_t *data, size_t size)
{
    return size >= 4 && (memcmp (data, s_use_magic, 4) == 0 || memcmp (data, s_rotation_magic, 4) == 0);
}

static bool
s_zero (const uint8_t *data, size_t size)
{
    uint8_t any = 0;
    for (size_t i = 0; i < size; i++) {
        any |= data [i];
    }
    return any == 0;
}

static bool
s_pattern_valid (const char *pattern, size_t size)
{
    if (size == 0 || size > KC_GRANT_PATTERN_MAX) {
        return false;
    }
    for (size_t i = 0; i < size; i++) {
        char c = pattern [i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '*' && (i == 0 || (c != '.' && c != '-' && c != '_'))) {
            return false;
        }
    }
    return true;
}

bool
kc_grant_pattern_match (const char *pattern, const char *name, size_t name_size)
{
    //  Greedy with one back-track point: linear in practice, never
    //  exponential (at most |pattern| * |name| steps)
    size_t p = 0, n = 0, star = SIZE_MAX, mark = 0, plen = strlen (pattern);
    while (n < name_size) {
        if (p < plen && pattern [p] == '*') {
            star = p++;
            mark = n;
        }
        else
        if (p < plen && pattern [p] == name [n]) {
            p++;
            n++;
        }
        else
        if (star != SIZE_MAX) {
            p = star + 1;
            n = ++mark;
        }
        else {
            return false;
        }
    }
    while (p < plen && pattern [p] == '*') {
        p++;
    }
    return p == plen;
}

static int
s_read_str8 (kc_reader_t *r, char text [static 256], size_t *size)
{
    uint8_t length;
    const uint8_t *bytes;
    if (kc_read_u8 (r, &length) || !(bytes = kc_read_bytes (r, length))) {
        return -1;
    }
    memcpy (text, bytes, length);
    text [length] = 0;
    *size = length;
    return 0;
}

static void
s_write_str8 (kc_writer_t *w, const char *text)
{
    size_t size = strlen (text);
    kc_write_u8 (w, (uint8_t) size);
    kc_write_bytes (w, text, size);
}

//  Checks the fields of a grant (as decoded or as asked for). 0 or -1.
static int
s_check_fields (const kc_grant_t *g, kc_why_t *why)
{
    if (s_zero (g->grant_key, KC_KEY_BYTES)) {
        return kc_why (why, "grant key is all zero");
    }
    if (g->status == KC_STATUS_ACTIVE) {
        if (g->not_after == 0 || g->not_after > INT64_MAX || g->uses == 0 || g->uses > KC_GRANT_USES_MAX
        ||  !s_pattern_valid (g->pattern, strlen (g->pattern)) || g->reason [0]) {
            return kc_why (why, "an active grant needs a not-after, 1..%d uses, a name pattern (letters, "
                           "digits, '.', '-', '_' and '*') and no reason", KC_GRANT_USES_MAX);
        }
    }
    else
    if (g->status == KC_STATUS_REVOKED) {
        if (g->not_after || g->uses || g->pattern [0] || g->tag_count
        ||  !kc_record_reason_valid (g->reason, strlen (g->reason))) {
            return kc_why (why, "a grant revocation holds only the grant key and a printable reason");
        }
    }
    else {
        return kc_why (why, "grant status %u is unknown", g->status);
    }
    if (g->tag_count > KC_RECORD_TAGS_MAX) {
        return kc_why (why, "grant has %zu tags (at most %d)", g->tag_count, KC_RECORD_TAGS_MAX);
    }
    for (size_t i = 0; i < g->tag_count; i++) {
        if (!kc_record_tag_valid (g->tags [i], strlen (g->tags [i]))
        ||  (i > 0 && strcmp (g->tags [i - 1], g->tags [i]) >= 0)) {
            return kc_why (why, "grant tag %zu is invalid, repeated or out of order", i + 1);
        }
    }
    return 0;
}

static void
s_digest (const uint8_t *body, size_t size, uint8_t digest [static KC_HASH_BYTES])
{
    crypto_generichash (digest, KC_HASH_BYTES, body, size, NULL, 0);
}

static int
s_compare_keys (const void *a, const void *b)
{
    return memcmp (((const kc_signature_t *) a)->key, ((const kc_signature_t *) b)->key, KC_KEY_BYTES);
}

static int
s_compare_tags (const void *a, const void *b)
{
    return strcmp (a, b);
}

//  Encodes fields and the given signatures (any order: sorted here).
static uint8_t *
s_encode (const kc_grant_t *g, const kc_signature_t *signatures, size_t count, size_t *size,
          size_t *body_size)
{
    kc_writer_t w;
    kc_writer_init (&w);
    kc_write_bytes (&w, s_grant_magic, 4);
    kc_write_u8 (&w, KC_GRANT_FORMAT);
    kc_write_bytes (&w, g->directory, KC_HASH_BYTES);
    kc_write_bytes (&w, g->grant_key, KC_KEY_BYTES);
    kc_write_u8 (&w, g->status);
    kc_write_u64 (&w, g->created);
    kc_write_u64 (&w, g->not_after);
    kc_write_u32 (&w, g->uses);
    s_write_str8 (&w, g->pattern);
    kc_write_u8 (&w, (uint8_t) g->tag_count);
    for (size_t i = 0; i < g->tag_count; i++) {
        s_write_str8 (&w, g->tags [i]);
    }
    s_write_str8 (&w, g->reason);
    *body_size = w.size;
    kc_signature_t sorted [KC_GRANT_SIGNATURES_MAX];
    if (count) {
        memcpy (sorted, signatures, count * sizeof *sorted);
    }
    qsort (sorted, count, sizeof *sorted, s_compare_keys);
    kc_write_u8 (&w, (uint8_t) count);
    for (size_t i = 0; i < count; i++) {
        kc_write_bytes (&w, sorted [i].key, KC_KEY_BYTES);
        kc_write_bytes (&w, sorted [i].signature, KC_SIGNATURE_BYTES);
    }
    return kc_writer_take (&w, size);
}

kc_grant_t *
kc_grant_decode (const uint8_t *data, size_t size, kc_why_t *why)
{
    if (size > KC_GRANT_BYTES_MAX) {
        kc_why (why, "grant is %zu bytes (at most %d)", size, KC_GRANT_BYTES_MAX);
        return NULL;
    }
    kc_grant_t *self = calloc (1, sizeof *self);
    assert (self);
    kc_reader_t r;
    kc_reader_init (&r, data, size);
    const uint8_t *magic = kc_read_bytes (&r, 4), *directory, *key;
    uint8_t format = 0, tag_count = 0, count = 0;
    size_t length;
    if (!magic || memcmp (magic, s_grant_magic, 4) || kc_read_u8 (&r, &format) || format != KC_GRANT_FORMAT) {
        kc_why (why, "not a grant (magic KCGR, format %d)", KC_GRANT_FORMAT);
        goto fail;
    }
    if (!(directory = kc_read_bytes (&r, KC_HASH_BYTES)) || !(key = kc_read_bytes (&r, KC_KEY_BYTES))
    ||  kc_read_u8 (&r, &self->status) || kc_read_u64 (&r, &self->created) || kc_read_u64 (&r, &self->not_after)
    ||  kc_read_u32 (&r, &self->uses) || s_read_str8 (&r, self->pattern, &length) || kc_read_u8 (&r, &tag_count)) {
        kc_why (why, "grant is truncated");
        goto fail;
    }
    memcpy (self->directory, directory, KC_HASH_BYTES);
    memcpy (self->grant_key, key, KC_KEY_BYTES);
    if (tag_count > KC_RECORD_TAGS_MAX || strlen (self->pattern) != length) {
        kc_why (why, "grant has too many tags or a NUL in its pattern");
        goto fail;
    }
    for (size_t i = 0; i < tag_count; i++) {
        if (s_read_str8 (&r, self->tags [i], &length) || strlen (self->tags [i]) != length) {
            kc_why (why, "grant is truncated");
            goto fail;
        }
    }
    self->tag_count = tag_count;
    if (s_read_str8 (&r, self->reason, &length) || strlen (self->reason) != length) {
        kc_why (why, "grant is truncated");
        goto fail;
    }
    if (self->created > INT64_MAX || s_check_fields (self, why)) {
        kc_why_prefix (why, "grant");
        goto fail;
    }
    self->body_size = r.pos;
    if (kc_read_u8 (&r, &count) || count > KC_GRANT_SIGNATURES_MAX) {
        kc_why (why, "grant has a bad signature count");
        goto fail;
    }
    self->data = malloc (size);
    assert (self->data);
    memcpy (self->data, data, size);
    for (size_t i = 0; i < count; i++) {
        size_t at = r.pos;
        if (!kc_read_bytes (&r, KC_KEY_BYTES + KC_SIGNATURE_BYTES)) {
            kc_why (why, "grant signatures are truncated");
            goto fail;
        }
        self->signatures [i].key = self->data + at;
        self->signatures [i].signature = self->data + at + KC_KEY_BYTES;
        if (i > 0 && memcmp (self->signatures [i - 1].key, self->signatures [i].key, KC_KEY_BYTES) >= 0) {
            kc_why (why, "grant signatures are not in strictly ascending key order");
            goto fail;
        }
    }
    self->signature_count = count;
    if (kc_reader_left (&r)) {
        kc_why (why, "grant has %zu bytes after its end", kc_reader_left (&r));
        goto fail;
    }
    self->size = size;
    s_digest (self->data, self->body_size, self->digest);
    return self;
fail:
    kc_grant_destroy (&self);
    return NULL;
}

//  Encodes g with signatures (count), then decodes it: the one canonical form.
static kc_grant_t *
s_build (const kc_grant_t *g, const kc_signature_t *signatures, size_t count, kc_why_t *why)
{
    size_t size, body_size;
    uint8_t *data = s_encode (g, signatures, count, &size, &body_size);
    kc_grant_t *self = kc_grant_decode (data, size, why);
    free (data);
    return self;
}

kc_grant_t *
kc_grant_new (const kc_grant_t *fields, kc_signer_t *const *signers, size_t signer_count, kc_why_t *why)
{
    kc_grant_t g = *fields;
    qsort (g.tags, g.tag_count, sizeof g.tags [0], s_compare_tags);
    if (signer_count > KC_GRANT_SIGNATURES_MAX || s_check_fields (&g, why)) {
        return NULL;
    }
    size_t size, body_size;
    uint8_t *body = s_encode (&g, NULL, 0, &size, &body_size);
    uint8_t digest [KC_HASH_BYTES], message [64], signatures [KC_GRANT_SIGNATURES_MAX][KC_SIGNATURE_BYTES];
    s_digest (body, body_size, digest);
    free (body);
    size_t message_size = kc_signed_message (KC_CONTEXT_GRANT, digest, message);
    kc_signature_t list [KC_GRANT_SIGNATURES_MAX];
    for (size_t i = 0; i < signer_count; i++) {
        kc_signer_sign (signers [i], message, message_size, signatures [i]);
        list [i] = (kc_signature_t) { kc_signer_public_key (signers [i]), signatures [i] };
    }
    return s_build (&g, list, signer_count, why);
}

kc_grant_t *
kc_grant_cosign (const kc_grant_t *self, const kc_signer_t *signer)
{
    uint8_t message [64], signature [KC_SIGNATURE_BYTES];
    size_t message_size = kc_signed_message (KC_CONTEXT_GRANT, self->digest, message);
    kc_signer_sign (signer, message, message_size, signature);
    kc_signature_t list [KC_GRANT_SIGNATURES_MAX];
    size_t count = 0;
    for (size_t i = 0; i < self->signature_count; i++) {
        if (memcmp (self->signatures [i].key, kc_signer_public_key (signer), KC_KEY_BYTES)) {
            list [count++] = self->signatures [i];
        }
    }
    if (count == KC_GRANT_SIGNATURES_MAX) {
        return NULL;
    }
    list [count++] = (kc_signature_t) { kc_signer_public_key (signer), signature };
    return s_build (self, list, count, NULL);
}

int
kc_grant_verify (const kc_grant_t *self, const kc_root_t *root, kc_why_t *why)
{
    if (memcmp (self->directory, kc_root_directory (root), KC_HASH_BYTES)) {
        return kc_why (why, "grant is for another directory");
    }
    int threshold = self->status == KC_STATUS_ACTIVE ? kc_root_threshold_register (root)
                                                     : kc_root_threshold_revoke (root);
    return kc_root_check_signatures (root, KC_CONTEXT_GRANT, self->digest, self->signatures,
                                     self->signature_count, threshold, true, NULL, why);
}

void
kc_grant_destroy (kc_grant_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->data);
        free (*self_p);
        *self_p = NULL;
    }
}

//  --- Uses ----------------------------------------------------------------------

static bool
s_same_tags (const kc_record_t *a, const kc_record_t *b)
{
    size_t size_a = a->encoded_size - (size_t) (a->tags - a->encoded);
    size_t size_b = b->encoded_size - (size_t) (b->tags - b->encoded);
    //  The tags run to the reason, which is empty in an active record
    return a->tag_count == b->tag_count && size_a == size_b && memcmp (a->tags, b->tags, size_a) == 0;
}

//  A rotation's second record: the key the new one replaces, active, in the
//  use's directory, under the same name and tags, ending within the
//  longest overlap after the use was made.
static int
s_decode_replaced (kc_reader_t *r, kc_grant_use_t *self, kc_why_t *why)
{
    if (kc_record_decode (r, &self->replaced, why)) {
        return kc_why_prefix (why, "grant rotation: the replaced key's record");
    }
    const kc_record_t *new_key = &self->record, *old_key = &self->replaced;
    if (old_key->status != KC_STATUS_ACTIVE || memcmp (old_key->directory, self->directory, KC_HASH_BYTES)
    ||  memcmp (old_key->key, new_key->key, KC_KEY_BYTES) == 0
    ||  old_key->name_size != new_key->name_size || memcmp (old_key->name, new_key->name, new_key->name_size)
    ||  !s_same_tags (old_key, new_key)) {
        return kc_why (why, "a grant rotation's replaced key is another key, active, in its directory, "
                       "with the new key's name and tags");
    }
    if (old_key->not_after <= self->created || old_key->not_after > self->created + KC_ENROL_OVERLAP_MAX) {
        return kc_why (why, "a grant rotation ends the replaced key after its creation, within %llu s",
                       (unsigned long long) KC_ENROL_OVERLAP_MAX);
    }
    return 0;
}

kc_grant_use_t *
kc_grant_use_decode (const uint8_t *data, size_t size, kc_why_t *why)
{
    if (size > KC_GRANT_USE_BYTES_MAX) {
        kc_why (why, "grant use is %zu bytes (at most %d)", size, (int) KC_GRANT_USE_BYTES_MAX);
        return NULL;
    }
    kc_grant_use_t *self = calloc (1, sizeof *self);
    assert (self);
    self->data = malloc (size ? size : 1);
    assert (self->data);
    if (size) {
        memcpy (self->data, data, size);
    }
    self->size = size;
    kc_reader_t r;
    kc_reader_init (&r, self->data, size);
    const uint8_t *magic = kc_read_bytes (&r, 4), *directory, *key;
    uint8_t format = 0;
    self->rotation = magic && memcmp (magic, s_rotation_magic, 4) == 0;
    if (!magic || (memcmp (magic, s_use_magic, 4) && !self->rotation) || kc_read_u8 (&r, &format)
    ||  format != KC_GRANT_FORMAT) {
        kc_why (why, "not a grant use (magic KCGU or KCGX, format %d)", KC_GRANT_FORMAT);
        goto fail;
    }
    if (!(directory = kc_read_bytes (&r, KC_HASH_BYTES)) || !(key = kc_read_bytes (&r, KC_KEY_BYTES))
    ||  kc_read_u64 (&r, &self->created) || self->created > INT64_MAX) {
        kc_why (why, "grant use is truncated");
        goto fail;
    }
    memcpy (self->directory, directory, KC_HASH_BYTES);
    memcpy (self->grant_key, key, KC_KEY_BYTES);
    if (kc_record_decode (&r, &self->record, why)) {
        kc_why_prefix (why, "grant use");
        goto fail;
    }
    const kc_record_t *record = &self->record;
    if (record->status != KC_STATUS_ACTIVE || record->version != 1 || record->not_before != 0
    ||  memcmp (record->directory, self->directory, KC_HASH_BYTES)) {
        kc_why (why, "a grant use registers a key: active, version 1, no not-before, its own directory");
        goto fail;
    }
    if (self->rotation && s_decode_replaced (&r, self, why)) {
        goto fail;
    }
    self->body_size = r.pos;
    if (!kc_read_bytes (&r, KC_SIGNATURE_BYTES) || kc_reader_left (&r)) {
        kc_why (why, "grant use must end with exactly one 64-byte signature");
        goto fail;
    }
    s_digest (self->data, self->body_size, self->digest);
    return self;
fail:
    kc_grant_use_destroy (&self);
    return NULL;
}

static kc_grant_use_t *
s_use_new (const uint8_t directory [static KC_HASH_BYTES], const kc_signer_t *token, uint64_t created,
           const kc_record_spec_t *spec, const kc_record_spec_t *replaced, kc_why_t *why)
{
    kc_writer_t w;
    kc_writer_init (&w);
    kc_write_bytes (&w, replaced ? s_rotation_magic : s_use_magic, 4);
    kc_write_u8 (&w, KC_GRANT_FORMAT);
    kc_write_bytes (&w, directory, KC_HASH_BYTES);
    kc_write_bytes (&w, kc_signer_public_key (token), KC_KEY_BYTES);
    kc_write_u64 (&w, created);
    kc_record_spec_t record = *spec;
    record.directory = directory;
    record.version = 1;
    record.not_before = 0;
    record.status = KC_STATUS_ACTIVE;
    kc_record_spec_t old_key = replaced ? *replaced : record;
    old_key.directory = directory;
    old_key.status = KC_STATUS_ACTIVE;
    if (kc_record_encode (&record, &w, why) || (replaced && kc_record_encode (&old_key, &w, why))) {
        kc_writer_free (&w);
        return NULL;
    }
    uint8_t digest [KC_HASH_BYTES], message [64], signature [KC_SIGNATURE_BYTES];
    s_digest (w.data, w.size, digest);
    size_t message_size = kc_signed_message (KC_CONTEXT_GRANT_USE, digest, message);
    kc_signer_sign (token, message, message_size, signature);
    kc_write_bytes (&w, signature, sizeof signature);
    size_t size;
    uint8_t *data = kc_writer_take (&w, &size);
    kc_grant_use_t *self = kc_grant_use_decode (data, size, why);
    free (data);
    return self;
}

kc_grant_use_t *
kc_grant_use_new (const uint8_t directory [static KC_HASH_BYTES], const kc_signer_t *token, uint64_t created,
                  const kc_record_spec_t *spec, kc_why_t *why)
{
    return s_use_new (directory, token, created, spec, NULL, why);
}

kc_grant_use_t *
kc_grant_use_new_rotation (const uint8_t directory [static KC_HASH_BYTES], const kc_signer_t *token,
                           uint64_t created, const kc_record_spec_t *spec, const kc_record_spec_t *replaced,
                           kc_why_t *why)
{
    return s_use_new (directory, token, created, spec, replaced, why);
}

int
kc_grant_use_check (const kc_grant_use_t *self, const kc_grant_t *grant, uint64_t used, kc_why_t *why)
{
    char fp [KC_FINGERPRINT_CHARS + 1], when [32], name [KC_RECORD_NAME_MAX + 1];
    kc_fingerprint (self->grant_key, fp);
    if (!grant || memcmp (grant->grant_key, self->grant_key, KC_KEY_BYTES)) {
        return kc_why (why, "grant %s is unknown", fp);
    }
    if (grant->status != KC_STATUS_ACTIVE) {
        return kc_why (why, "grant %s was revoked", fp);
    }
    uint8_t message [64];
    size_t message_size = kc_signed_message (KC_CONTEXT_GRANT_USE, self->digest, message);
    if (crypto_sign_verify_detached (self->data + self->body_size, message, message_size, self->grant_key)) {
        return kc_why (why, "grant use is not signed with the token of grant %s", fp);
    }
    snprintf (name, sizeof name, "%.*s", self->record.name_size, self->record.name);
    if (!kc_grant_pattern_match (grant->pattern, name, strlen (name))) {
        return kc_why (why, "name '%s' does not match grant %s's pattern '%s'", name, fp, grant->pattern);
    }
    bool same = self->record.tag_count == grant->tag_count;
    const uint8_t *p = self->record.tags;
    for (size_t i = 0; same && i < grant->tag_count; i++, p += 1 + *p) {
        same = *p == strlen (grant->tags [i]) && memcmp (p + 1, grant->tags [i], *p) == 0;
    }
    if (!same) {
        return kc_why (why, "the tags are not grant %s's tags", fp);
    }
    if (self->created >= grant->not_after) {
        return kc_why (why, "made after grant %s expired (%s)", fp, kc_time_format (grant->not_after, when));
    }
    if (used >= grant->uses) {
        return kc_why (why, "grant %s is used up (%u use%s)", fp, grant->uses, grant->uses == 1 ? "" : "s");
    }
    return 0;
}

int
kc_grant_use_check_replaced (const kc_grant_use_t *self, uint8_t stored_status, const char *stored_name,
                             kc_why_t *why)
{
    if (!self->rotation) {
        return 0;
    }
    char fp [KC_FINGERPRINT_CHARS + 1], name [KC_RECORD_NAME_MAX + 1];
    kc_fingerprint (self->replaced.key, fp);
    kc_record_name (&self->record, name);
    if (stored_status != KC_STATUS_ACTIVE) {
        return kc_why (why, "the key a grant rotation replaces, %s, is not registered", fp);
    }
    if (!KC_STREQ (stored_name, name)) {
        return kc_why (why, "the key a grant rotation replaces, %s, is registered under another name than '%s'",
                       fp, name);
    }
    return 0;
}

kc_batch_t *
kc_grant_use_batch (const kc_grant_use_t *self)
{
    kc_writer_t w;
    kc_writer_init (&w);
    kc_write_bytes (&w, "KCBT", 4);
    kc_write_u8 (&w, KC_BATCH_FORMAT);
    kc_write_bytes (&w, self->directory, KC_HASH_BYTES);
    kc_write_u64 (&w, self->created);
    kc_write_u32 (&w, self->rotation ? 2 : 1);
    const kc_record_t *first = &self->record, *second = &self->replaced;
    if (self->rotation && memcmp (second->key, first->key, KC_KEY_BYTES) < 0) {
        first = &self->replaced;            //  a batch's records ascend by key
        second = &self->record;
    }
    kc_write_bytes (&w, first->encoded, first->encoded_size);
    if (self->rotation) {
        kc_write_bytes (&w, second->encoded, second->encoded_size);
    }
    kc_write_u8 (&w, 0);
    size_t size;
    uint8_t *data = kc_writer_take (&w, &size);
    kc_batch_t *batch = kc_batch_decode (data, size, NULL);
    free (data);
    assert (batch);                         //  a decoded record makes a valid batch
    return batch;
}

void
kc_grant_use_destroy (kc_grant_use_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->data);
        free (*self_p);
        *self_p = NULL;
    }
}

int
kc_log_entry_chain (const uint8_t previous [static KC_HASH_BYTES], uint64_t seq, const uint8_t *data,
                    size_t size, uint8_t chain [static KC_HASH_BYTES], kc_why_t *why)
{
    if (kc_root_is_root (data, size)) {
        kc_root_t *root = kc_root_decode (data, size, why);
        if (!root) {
            return -1;
        }
        kc_chain_next_root (previous, seq, root, chain);
        kc_root_destroy (&root);
        return 0;
    }
    if (kc_grant_is_grant (data, size)) {
        kc_grant_t *grant = kc_grant_decode (data, size, why);
        if (!grant) {
            return -1;
        }
        kc_chain_next_signed (previous, seq, grant->digest, grant->data + grant->body_size,
                              grant->size - grant->body_size, chain);
        kc_grant_destroy (&grant);
        return 0;
    }
    if (kc_grant_is_use (data, size)) {
        kc_grant_use_t *use = kc_grant_use_decode (data, size, why);
        if (!use) {
            return -1;
        }
        kc_chain_next_signed (previous, seq, use->digest, use->data + use->body_size, use->size - use->body_size,
                              chain);
        kc_grant_use_destroy (&use);
        return 0;
    }
    kc_batch_t *batch = kc_batch_decode (data, size, why);
    if (!batch) {
        return -1;
    }
    kc_chain_next (previous, seq, batch, chain);
    kc_batch_destroy (&batch);
    return 0;
}

//  --- Self test -----------------------------------------------------------------

void
kc_grant_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_grant: ");
    }
    assert (kc_grant_pattern_match ("web-*", "web-12", 6));
    assert (kc_grant_pattern_match ("web-*", "web-", 4));
    assert (!kc_grant_pattern_match ("web-*", "db-1", 4));
    assert (kc_grant_pattern_match ("*", "x", 1));
    assert (kc_grant_pattern_match ("a*b*c", "aXbYbc", 6));
    assert (!kc_grant_pattern_match ("a*b*c", "aXbYb", 5));
    assert (!kc_grant_pattern_match ("web-1", "web-12", 6));

    uint8_t seed [32];
    memset (seed, 7, sizeof seed);
    kc_signer_t *op = kc_signer_new_from_seed (seed, "op1", "keyclone-operator");
    seed [0] = 8;
    kc_signer_t *token = kc_signer_new_from_seed (seed, "grant", "keyclone-grant");
    kc_grant_t fields = { .status = KC_STATUS_ACTIVE, .created = 1000, .not_after = 2000, .uses = 2,
                          .tag_count = 2 };
    memset (fields.directory, 0xd1, KC_HASH_BYTES);
    memcpy (fields.grant_key, kc_signer_public_key (token), KC_KEY_BYTES);
    snprintf (fields.pattern, sizeof fields.pattern, "web-*");
    snprintf (fields.tags [0], sizeof fields.tags [0], "role=web");
    snprintf (fields.tags [1], sizeof fields.tags [1], "dc=eu");
    kc_why_t why;
    kc_grant_t *grant = kc_grant_new (&fields, &op, 1, &why);
    assert (grant && grant->signature_count == 1 && KC_STREQ (grant->tags [0], "dc=eu"));
    //  Canonical: every prefix and one more byte refused
    for (size_t cut = 0; cut < grant->size; cut++) {
        assert (kc_grant_decode (grant->data, cut, &why) == NULL);
    }
    kc_grant_t *copy = kc_grant_cosign (grant, op);
    assert (copy && copy->size == grant->size && memcmp (copy->data, grant->data, grant->size) == 0);
    kc_grant_destroy (&copy);
    //  Bad fields
    kc_grant_t bad = fields;
    bad.uses = 0;
    assert (kc_grant_new (&bad, &op, 1, &why) == NULL);
    bad = fields;
    snprintf (bad.pattern, sizeof bad.pattern, "web 1");
    assert (kc_grant_new (&bad, &op, 1, &why) == NULL);

    //  A use: signed with the token, checked against the grant
    uint8_t node [KC_KEY_BYTES];
    memset (node, 0x42, sizeof node);
    const char *tags [] = { "role=web", "dc=eu" };
    kc_record_spec_t spec = { .key = node, .name = "web-7", .tags = tags, .tag_count = 2 };
    kc_grant_use_t *use = kc_grant_use_new (fields.directory, token, 1500, &spec, &why);
    assert (use && use->record.version == 1);
    assert (kc_grant_use_check (use, grant, 0, &why) == 0);
    assert (kc_grant_use_check (use, grant, 2, &why) == -1 && strstr (why.text, "used up"));
    assert (kc_grant_use_check (use, NULL, 0, &why) == -1 && strstr (why.text, "unknown"));
    kc_batch_t *batch = kc_grant_use_batch (use);
    assert (kc_batch_count (batch) == 1 && memcmp (kc_batch_record (batch, 0)->key, node, 32) == 0);
    //  Where an entry sits: the chain of each kind from its bytes alone
    uint8_t previous [KC_HASH_BYTES], chain [KC_HASH_BYTES], expected [KC_HASH_BYTES];
    memset (previous, 0x5a, sizeof previous);
    size_t batch_size;
    const uint8_t *batch_data = kc_batch_data (batch, &batch_size);
    assert (kc_log_entry_chain (previous, 3, batch_data, batch_size, chain, &why) == 0);
    kc_chain_next (previous, 3, batch, expected);
    assert (memcmp (chain, expected, KC_HASH_BYTES) == 0);
    assert (kc_log_entry_chain (previous, 4, use->data, use->size, chain, &why) == 0);
    kc_chain_next_signed (previous, 4, use->digest, use->data + use->body_size, use->size - use->body_size,
                          expected);
    assert (memcmp (chain, expected, KC_HASH_BYTES) == 0);
    assert (kc_log_entry_chain (previous, 5, grant->data, grant->size, chain, &why) == 0);
    kc_chain_next_signed (previous, 5, grant->digest, grant->data + grant->body_size,
                          grant->size - grant->body_size, expected);
    assert (memcmp (chain, expected, KC_HASH_BYTES) == 0);
    assert (kc_log_entry_chain (previous, 6, (const uint8_t *) "KCBTx", 5, chain, &why) == -1);
    kc_batch_destroy (&batch);
    //  A tampered byte breaks the token signature
    use->data [use->body_size - 1] ^= 1;
    kc_grant_use_t *tampered = kc_grant_use_decode (use->data, use->size, &why);
    assert (!tampered || kc_grant_use_check (tampered, grant, 0, &why) == -1);
    kc_grant_use_destroy (&tampered);
    kc_grant_use_destroy (&use);
    //  Another name, other tags, too late, signed by someone else
    spec.name = "db-1";
    use = kc_grant_use_new (fields.directory, token, 1500, &spec, &why);
    assert (kc_grant_use_check (use, grant, 0, &why) == -1 && strstr (why.text, "pattern"));
    kc_grant_use_destroy (&use);
    spec.name = "web-8";
    spec.tag_count = 1;
    use = kc_grant_use_new (fields.directory, token, 1500, &spec, &why);
    assert (kc_grant_use_check (use, grant, 0, &why) == -1 && strstr (why.text, "tags"));
    kc_grant_use_destroy (&use);
    spec.tag_count = 2;
    use = kc_grant_use_new (fields.directory, token, 2000, &spec, &why);
    assert (kc_grant_use_check (use, grant, 0, &why) == -1 && strstr (why.text, "expired"));
    kc_grant_use_destroy (&use);
    use = kc_grant_use_new (fields.directory, op, 1500, &spec, &why);
    assert (kc_grant_use_check (use, grant, 0, &why) == -1 && strstr (why.text, "unknown"));
    kc_grant_use_destroy (&use);
    //  A rotation: the new key and the replaced one ending, one use
    uint8_t older [KC_KEY_BYTES];
    memset (older, 0x7f, sizeof older);             //  above node: the batch puts it second
    kc_record_spec_t ending = { .key = older, .version = 9, .not_after = 1500 + 3600, .name = "web-8",
                                .tags = tags, .tag_count = 2 };
    use = kc_grant_use_new_rotation (fields.directory, token, 1500, &spec, &ending, &why);
    assert (use && use->rotation && memcmp (use->data, "KCGX", 4) == 0 && kc_grant_is_use (use->data, use->size));
    assert (kc_grant_use_check (use, grant, 0, &why) == 0);
    assert (kc_grant_use_check_replaced (use, KC_STATUS_ACTIVE, "web-8", &why) == 0);
    assert (kc_grant_use_check_replaced (use, KC_STATUS_ACTIVE, "web-9", &why) == -1
            && strstr (why.text, "another name"));
    assert (kc_grant_use_check_replaced (use, 0, "", &why) == -1 && strstr (why.text, "not registered"));
    batch = kc_grant_use_batch (use);
    assert (kc_batch_count (batch) == 2 && memcmp (kc_batch_record (batch, 0)->key, node, 32) == 0
            && kc_batch_record (batch, 1)->not_after == 1500 + 3600);
    kc_batch_destroy (&batch);
    kc_grant_use_t *again = kc_grant_use_decode (use->data, use->size, &why);
    assert (again && again->size == use->size && memcmp (again->digest, use->digest, KC_HASH_BYTES) == 0);
    kc_grant_use_destroy (&again);
    kc_grant_use_destroy (&use);
    //  Refused: no end, an end past the longest overlap, another name, the same key
    ending.not_after = 0;
    assert (!kc_grant_use_new_rotation (fields.directory, token, 1500, &spec, &ending, &why));
    ending.not_after = 1500 + KC_ENROL_OVERLAP_MAX + 1;
    assert (!kc_grant_use_new_rotation (fields.directory, token, 1500, &spec, &ending, &why));
    ending.not_after = 1600;
    ending.name = "web-9";
    assert (!kc_grant_use_new_rotation (fields.directory, token, 1500, &spec, &ending, &why));
    ending.name = "web-8";
    ending.key = node;
    assert (!kc_grant_use_new_rotation (fields.directory, token, 1500, &spec, &ending, &why));
    //  A revocation: only the key and a reason
    kc_grant_t revoked = { .status = KC_STATUS_REVOKED };
    memcpy (revoked.directory, fields.directory, KC_HASH_BYTES);
    memcpy (revoked.grant_key, fields.grant_key, KC_KEY_BYTES);
    snprintf (revoked.reason, sizeof revoked.reason, "leaked");
    kc_grant_t *revocation = kc_grant_new (&revoked, &op, 1, &why);
    assert (revocation && revocation->status == KC_STATUS_REVOKED);
    kc_grant_destroy (&revocation);
    kc_grant_destroy (&grant);
    kc_signer_destroy (&op);
    kc_signer_destroy (&token);
    if (verbose) {
        printf ("OK\n");
    }
}
