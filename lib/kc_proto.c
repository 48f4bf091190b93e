/*  =========================================================================
    kc_proto - KCP/1 message encoders and decoders.
    =========================================================================
*/
#include "kc_proto.h"
#include "kc_cosig.h"
#include "kc_enrol.h"
#include "kc_record.h"
#include "kc_wire.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert (KC_PROTO_COSIG_BYTES == KC_COSIG_BYTES, "a cosignature frame holds one cosignature");
_Static_assert (KC_PROTO_COSIGS_MAX == KC_ROOT_WITNESSES_MAX, "a head carries one per witness");

static const char *s_names [] = {
    NULL, "SYNC", "CREDIT", "ACK", "BATCHES", "END", "ERROR", "UPDATE", "HEAD",
    "SUBMIT", "OK", "QUERY", "RECORDS", "STATUS", "ROOTS", "LOG", "ENROL", "PENDING", "REJECT",
    "ENROLMENT", "ROTATE", "METRICS", "COSIGN"
};

const char *
kc_proto_name (kc_msg_type_t type)
{
    return type >= KC_MSG_SYNC && type <= KC_MSG_COSIGN ? s_names [type] : "?";
}

//  A message's frames as an array, so decoders index them.
typedef struct {
    zframe_t *frames [2 + 2 * KC_PROTO_RECORDS_MAX];
    size_t count;
    size_t bytes;
} s_frames_t;

static bool
s_is (zframe_t *frame, const char *text)
{
    size_t length = strlen (text);
    return zframe_size (frame) == length && memcmp (zframe_data (frame), text, length) == 0;
}

static bool
s_printable (const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data [i] < 0x20 || data [i] > 0x7e) {
            return false;
        }
    }
    return true;
}

static int
s_u64 (zframe_t *frame, uint64_t *value)
{
    if (zframe_size (frame) != 8) {
        return -1;
    }
    *value = kc_get_u64 (zframe_data (frame));
    return *value > INT64_MAX ? -1 : 0;
}

static int
s_u32 (zframe_t *frame, uint32_t *value)
{
    if (zframe_size (frame) != 4) {
        return -1;
    }
    *value = kc_get_u32 (zframe_data (frame));
    return 0;
}

static int
s_expect (const s_frames_t *f, size_t count, const char *command, kc_why_t *why)
{
    if (f->count != count) {
        return kc_why (why, "%s has %zu frames, expected %zu", command, f->count, count);
    }
    return 0;
}

//  A 32-byte key field, or NULL when it is all zero (unknown).
static const uint8_t *
s_key_or_null (const uint8_t *field)
{
    static const uint8_t zero [KC_KEY_BYTES] = { 0 };
    return memcmp (field, zero, KC_KEY_BYTES) ? field : NULL;
}

//  BATCHES / UPDATE: 1..1024 (header, batch) pairs, consecutive seqs.
static int
s_entries (const s_frames_t *f, kc_proto_msg_t *out, const char *command, kc_why_t *why)
{
    if (f->count < 3 || f->count % 2 == 0) {
        return kc_why (why, "%s has %zu frames, expected 1 + 2 per batch", command, f->count);
    }
    size_t count = (f->count - 1) / 2;
    if (count > KC_PROTO_BATCHES_MAX) {
        return kc_why (why, "%s carries %zu batches (limit %d)", command, count, KC_PROTO_BATCHES_MAX);
    }
    out->entries = calloc (count, sizeof (kc_entry_t));
    if (!out->entries) {
        return kc_why (why, "out of memory decoding %s", command);
    }
    for (size_t i = 0; i < count; i++) {
        zframe_t *header = f->frames [1 + 2 * i], *batch = f->frames [2 + 2 * i];
        if (zframe_size (header) != KC_PROTO_ENTRY_HEADER
        &&  zframe_size (header) != KC_PROTO_ENTRY_HEADER_META) {
            return kc_why (why, "%s entry %zu: header is %zu bytes, expected %d or %d", command,
                           i + 1, zframe_size (header), KC_PROTO_ENTRY_HEADER,
                           KC_PROTO_ENTRY_HEADER_META);
        }
        kc_entry_t *entry = &out->entries [i];
        entry->seq = kc_get_u64 (zframe_data (header));
        entry->chain = zframe_data (header) + 8;
        if (zframe_size (header) == KC_PROTO_ENTRY_HEADER_META) {
            entry->accepted = kc_get_u64 (zframe_data (header) + 40);
            entry->submitter = s_key_or_null (zframe_data (header) + 48);
        }
        entry->data = zframe_data (batch);
        entry->size = zframe_size (batch);
        if (entry->seq == 0 || entry->seq > INT64_MAX) {
            return kc_why (why, "%s entry %zu: invalid sequence number", command, i + 1);
        }
        if (i && entry->seq != out->entries [i - 1].seq + 1) {
            return kc_why (why, "%s entries are not consecutive (%llu after %llu)", command,
                           (unsigned long long) entry->seq,
                           (unsigned long long) out->entries [i - 1].seq);
        }
        if (entry->size == 0 || entry->size > KC_BATCH_BYTES_MAX) {
            return kc_why (why, "%s entry %zu: batch of %zu bytes", command, i + 1, entry->size);
        }
        out->entry_count++;
    }
    return 0;
}

static int
s_records (const s_frames_t *f, kc_proto_msg_t *out, kc_why_t *why)
{
    if (f->count < 2 || f->count % 2 == 1) {
        return kc_why (why, "RECORDS has %zu frames, expected 2 + 2 per record", f->count);
    }
    size_t count = (f->count - 2) / 2;
    if (count > KC_PROTO_RECORDS_MAX) {
        return kc_why (why, "RECORDS carries %zu records (limit %d)", count, KC_PROTO_RECORDS_MAX);
    }
    if (zframe_size (f->frames [1]) > KC_PROTO_ARGUMENT_MAX) {
        return kc_why (why, "RECORDS cursor is too long");
    }
    out->argument = zframe_data (f->frames [1]);
    out->argument_size = zframe_size (f->frames [1]);
    out->entries = calloc (count ? count : 1, sizeof (kc_entry_t));
    if (!out->entries) {
        return kc_why (why, "out of memory decoding RECORDS");
    }
    for (size_t i = 0; i < count; i++) {
        kc_entry_t *entry = &out->entries [i];
        zframe_t *record = f->frames [3 + 2 * i];
        if (s_u64 (f->frames [2 + 2 * i], &entry->seq)
        ||  zframe_size (record) == 0 || zframe_size (record) > KC_RECORD_BYTES_MAX) {
            return kc_why (why, "RECORDS entry %zu is malformed", i + 1);
        }
        entry->data = zframe_data (record);
        entry->size = zframe_size (record);
        out->entry_count++;
    }
    return 0;
}

static int
s_text (zframe_t *frame, size_t min, size_t max, kc_proto_msg_t *out)
{
    size_t size = zframe_size (frame);
    if (size < min || size > max || !s_printable (zframe_data (frame), size)) {
        return -1;
    }
    out->text = (const char *) zframe_data (frame);
    out->text_size = size;
    return 0;
}

static int
s_decode_head (zframe_t *frame, kc_proto_msg_t *out, kc_why_t *why)
{
    return kc_head_decode (zframe_data (frame), zframe_size (frame), &out->head, why);
}

//  The cosignature frames from frames [first] on: each exactly
//  KC_PROTO_COSIG_BYTES, at most KC_PROTO_COSIGS_MAX (the receiver decodes
//  and verifies them, kc_cosig.h).
static int
s_cosigs (const s_frames_t *f, size_t first, kc_proto_msg_t *out, const char *command, kc_why_t *why)
{
    if (f->count - first > KC_PROTO_COSIGS_MAX) {
        return kc_why (why, "%s carries %zu cosignatures (limit %d)", command, f->count - first,
                       KC_PROTO_COSIGS_MAX);
    }
    for (size_t i = first; i < f->count; i++) {
        if (zframe_size (f->frames [i]) != KC_PROTO_COSIG_BYTES) {
            return kc_why (why, "%s cosignature %zu is %zu bytes, expected %d", command, i - first + 1,
                           zframe_size (f->frames [i]), KC_PROTO_COSIG_BYTES);
        }
        out->cosigs [out->cosig_count++] = zframe_data (f->frames [i]);
    }
    return 0;
}

static int
s_snapshot_server (const s_frames_t *f, kc_proto_msg_t *out, kc_why_t *why)
{
    zframe_t *command = f->frames [0];
    if (s_is (command, "SYNC")) {
        out->type = KC_MSG_SYNC;
        if (s_expect (f, 4, "SYNC", why)) {
            return -1;
        }
        if (zframe_size (f->frames [1]) != KC_HASH_BYTES || s_u64 (f->frames [2], &out->seq)
        ||  s_u32 (f->frames [3], &out->credit)) {
            return kc_why (why, "SYNC frames have the wrong sizes");
        }
        out->directory = zframe_data (f->frames [1]);
    }
    else
    if (s_is (command, "CREDIT")) {
        out->type = KC_MSG_CREDIT;
        if (s_expect (f, 2, "CREDIT", why) || s_u32 (f->frames [1], &out->credit)) {
            return kc_why (why, "CREDIT is malformed");
        }
    }
    else
    if (s_is (command, "ACK")) {
        out->type = KC_MSG_ACK;
        if ((f->count != 3 && f->count != 4) || s_u64 (f->frames [1], &out->seq)
        ||  zframe_size (f->frames [2]) != KC_HASH_BYTES
        ||  (f->count == 4 && zframe_size (f->frames [3]) != KC_KEY_BYTES)) {
            return kc_why (why, "ACK is malformed");
        }
        out->chain = zframe_data (f->frames [2]);
        if (f->count == 4) {
            out->argument = zframe_data (f->frames [3]);    //  relayed by a mirror for this agent
            out->argument_size = KC_KEY_BYTES;
        }
        return 0;
    }
    else
    if (s_is (command, "COSIGN")) {
        out->type = KC_MSG_COSIGN;
        if (s_expect (f, 2, "COSIGN", why)) {
            return -1;
        }
        return s_cosigs (f, 1, out, "COSIGN", why);
    }
    else {
        return -2;
    }
    if (out->credit < 1 || out->credit > KC_PROTO_CREDIT_MAX) {
        return kc_why (why, "%s grants %u credit (allowed 1..%d)", kc_proto_name (out->type),
                       out->credit, KC_PROTO_CREDIT_MAX);
    }
    return 0;
}

static int
s_snapshot_agent (const s_frames_t *f, kc_proto_msg_t *out, kc_why_t *why)
{
    zframe_t *command = f->frames [0];
    if (s_is (command, "BATCHES")) {
        out->type = KC_MSG_BATCHES;
        return s_entries (f, out, "BATCHES", why);
    }
    if (s_is (command, "END")) {
        out->type = KC_MSG_END;
        if (f->count < 4 || s_u64 (f->frames [1], &out->batches)
        ||  s_u64 (f->frames [2], &out->records)) {
            return kc_why (why, "END is malformed");
        }
        return s_decode_head (f->frames [3], out, why) || s_cosigs (f, 4, out, "END", why) ? -1 : 0;
    }
    return -2;
}

static int
s_updates (const s_frames_t *f, kc_proto_msg_t *out, kc_why_t *why)
{
    zframe_t *command = f->frames [0];
    if (s_is (command, "UPDATE")) {
        out->type = KC_MSG_UPDATE;
        return s_entries (f, out, "UPDATE", why);
    }
    if (s_is (command, "HEAD")) {
        out->type = KC_MSG_HEAD;
        if (f->count < 2) {
            return kc_why (why, "HEAD has no head");
        }
        return s_decode_head (f->frames [1], out, why) || s_cosigs (f, 2, out, "HEAD", why) ? -1 : 0;
    }
    return -2;
}

//  The optional last frame of QUERY and STATUS: an operator's authorization
//  of KC_ACCESS_BYTES (checked by the server with kc_access_verify).
static int
s_auth (const s_frames_t *f, kc_proto_msg_t *out, kc_why_t *why)
{
    if (out->auth && zframe_size (f->frames [f->count - 1]) != KC_PROTO_AUTH_BYTES) {
        return kc_why (why, "%s authorization is %zu bytes, expected %d",
                       kc_proto_name (out->type), zframe_size (f->frames [f->count - 1]),
                       KC_PROTO_AUTH_BYTES);
    }
    return 0;
}

static int
s_submit_server (const s_frames_t *f, kc_proto_msg_t *out, kc_why_t *why)
{
    zframe_t *command = f->frames [0];
    if (s_is (command, "SUBMIT")) {
        out->type = KC_MSG_SUBMIT;
        if (s_expect (f, 2, "SUBMIT", why)) {
            return -1;
        }
        out->batch = zframe_data (f->frames [1]);
        out->batch_size = zframe_size (f->frames [1]);
        if (out->batch_size == 0 || out->batch_size > KC_BATCH_BYTES_MAX) {
            return kc_why (why, "SUBMIT batch is %zu bytes (allowed 1..%d)", out->batch_size,
                           KC_BATCH_BYTES_MAX);
        }
        return 0;
    }
    if (s_is (command, "QUERY")) {
        out->type = KC_MSG_QUERY;
        //  An operator's authorization may follow (kc_access.h)
        out->auth = f->count == 5;
        if (s_expect (f, out->auth ? 5 : 4, "QUERY", why) || s_auth (f, out, why)) {
            return -1;
        }
        zframe_t *kind = f->frames [1];
        if (!s_is (kind, "key") && !s_is (kind, "name") && !s_is (kind, "list")) {
            return kc_why (why, "QUERY kind must be key, name or list");
        }
        s_text (kind, 1, 8, out);
        out->argument = zframe_data (f->frames [2]);
        out->argument_size = zframe_size (f->frames [2]);
        if (out->argument_size > KC_PROTO_ARGUMENT_MAX
        ||  (s_is (kind, "key") && out->argument_size != KC_KEY_BYTES)
        ||  (s_is (kind, "name") && out->argument_size == 0)) {
            return kc_why (why, "QUERY argument has the wrong size");
        }
        if (s_u32 (f->frames [3], &out->credit) || out->credit < 1
        ||  out->credit > KC_PROTO_RECORDS_MAX) {
            return kc_why (why, "QUERY limit must be 1..%d", KC_PROTO_RECORDS_MAX);
        }
        return 0;
    }
    if (s_is (command, "STATUS")) {
        out->type = KC_MSG_STATUS;
        out->auth = f->count == 2;
        return s_expect (f, out->auth ? 2 : 1, "STATUS", why) || s_auth (f, out, why) ? -1 : 0;
    }
    if (s_is (command, "ROOTS")) {
        out->type = KC_MSG_ROOTS;
        return s_expect (f, 1, "ROOTS", why);
    }
    if (s_is (command, "METRICS")) {
        out->type = KC_MSG_METRICS;
        out->auth = f->count == 2;
        return s_expect (f, out->auth ? 2 : 1, "METRICS", why) || s_auth (f, out, why) ? -1 : 0;
    }
    if (s_is (command, "LOG")) {
        out->type = KC_MSG_LOG;
        out->auth = f->count == 4;
        if (s_expect (f, out->auth ? 4 : 3, "LOG", why) || s_auth (f, out, why)) {
            return -1;
        }
        if (s_u64 (f->frames [1], &out->seq) || s_u32 (f->frames [2], &out->credit)
        ||  out->credit < 1 || out->credit > KC_PROTO_LOG_MAX) {
            return kc_why (why, "LOG wants after (u64) and a limit of 1..%d", KC_PROTO_LOG_MAX);
        }
        return 0;
    }
    if (s_is (command, "ENROL")) {
        out->type = KC_MSG_ENROL;
        if (f->count < 2 || f->count > 2 + KC_RECORD_TAGS_MAX) {
            return kc_why (why, "ENROL has %zu frames, expected a name and 0..%d tags", f->count,
                           KC_RECORD_TAGS_MAX);
        }
        if (!kc_record_name_valid ((const char *) zframe_data (f->frames [1]), zframe_size (f->frames [1]))) {
            return kc_why (why, "ENROL name is not a valid node name");
        }
        out->text = (const char *) zframe_data (f->frames [1]);
        out->text_size = zframe_size (f->frames [1]);
        for (size_t i = 2; i < f->count; i++) {
            out->tags [out->tag_count] = (const char *) zframe_data (f->frames [i]);
            out->tag_sizes [out->tag_count] = zframe_size (f->frames [i]);
            if (!kc_record_tag_valid (out->tags [out->tag_count], out->tag_sizes [out->tag_count])) {
                return kc_why (why, "ENROL tag %zu is not a valid tag", i - 1);
            }
            out->tag_count++;
        }
        return 0;
    }
    if (s_is (command, "ROTATE")) {
        out->type = KC_MSG_ROTATE;
        if (s_expect (f, 3, "ROTATE", why)) {
            return -1;
        }
        if (zframe_size (f->frames [1]) != KC_KEY_BYTES || s_u64 (f->frames [2], &out->seq)
        ||  out->seq > KC_ENROL_OVERLAP_MAX) {
            return kc_why (why, "ROTATE wants a %d-byte key and an overlap of 0..%llu s (u64)", KC_KEY_BYTES,
                           (unsigned long long) KC_ENROL_OVERLAP_MAX);
        }
        out->argument = zframe_data (f->frames [1]);
        out->argument_size = KC_KEY_BYTES;
        return 0;
    }
    if (s_is (command, "PENDING")) {
        out->type = KC_MSG_PENDING;
        out->auth = f->count == 2;
        return s_expect (f, out->auth ? 2 : 1, "PENDING", why) || s_auth (f, out, why) ? -1 : 0;
    }
    if (s_is (command, "REJECT")) {
        //  Only an operator rejects: the authorization is required
        out->type = KC_MSG_REJECT;
        out->auth = true;
        if (s_expect (f, 4, "REJECT", why) || s_auth (f, out, why)) {
            return -1;
        }
        if (zframe_size (f->frames [1]) != KC_KEY_BYTES) {
            return kc_why (why, "REJECT key is %zu bytes, expected %d", zframe_size (f->frames [1]),
                           KC_KEY_BYTES);
        }
        out->argument = zframe_data (f->frames [1]);
        out->argument_size = KC_KEY_BYTES;
        if (!kc_record_reason_valid ((const char *) zframe_data (f->frames [2]), zframe_size (f->frames [2]))) {
            return kc_why (why, "REJECT reason must be 0..%d bytes of printable ASCII", KC_RECORD_REASON_MAX);
        }
        out->text = (const char *) zframe_data (f->frames [2]);
        out->text_size = zframe_size (f->frames [2]);
        return 0;
    }
    return -2;
}

//  ENROLMENT (exactly one) and PENDING (0..KC_PROTO_PENDING_MAX) replies:
//  each frame after the command an enrolment, checked by its decoder.
static int
s_enrolments (const s_frames_t *f, kc_proto_msg_t *out, size_t min, size_t max, kc_why_t *why)
{
    size_t count = f->count - 1;
    if (count < min || count > max) {
        return kc_why (why, "%s carries %zu enrolments (allowed %zu..%zu)", kc_proto_name (out->type),
                       count, min, max);
    }
    out->entries = calloc (count ? count : 1, sizeof (kc_entry_t));
    if (!out->entries) {
        return kc_why (why, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        kc_enrolment_t enrolment;
        zframe_t *frame = f->frames [1 + i];
        if (kc_enrolment_decode (zframe_data (frame), zframe_size (frame), &enrolment, why)) {
            free (out->entries);
            out->entries = NULL;
            return kc_why_prefix (why, "%s entry %zu", kc_proto_name (out->type), i + 1);
        }
        out->entries [i].data = zframe_data (frame);
        out->entries [i].size = zframe_size (frame);
        out->entry_count++;
    }
    return 0;
}

//  LOG reply: 0..KC_PROTO_LOG_MAX pairs (header, entry).
static int
s_log (const s_frames_t *f, kc_proto_msg_t *out, kc_why_t *why)
{
    if (f->count % 2 == 0) {
        return kc_why (why, "LOG has %zu frames, expected 1 + 2 per entry", f->count);
    }
    size_t count = (f->count - 1) / 2;
    if (count > KC_PROTO_LOG_MAX) {
        return kc_why (why, "LOG carries %zu entries (limit %d)", count, KC_PROTO_LOG_MAX);
    }
    out->entries = calloc (count ? count : 1, sizeof (kc_entry_t));
    if (!out->entries) {
        return kc_why (why, "out of memory decoding LOG");
    }
    for (size_t i = 0; i < count; i++) {
        kc_entry_t *entry = &out->entries [i];
        zframe_t *header = f->frames [1 + 2 * i], *data = f->frames [2 + 2 * i];
        if (zframe_size (header) != KC_PROTO_LOG_HEADER || zframe_size (data) == 0
        ||  zframe_size (data) > KC_BATCH_BYTES_MAX) {
            free (out->entries);
            out->entries = NULL;
            out->entry_count = 0;
            return kc_why (why, "LOG entry %zu is malformed", i + 1);
        }
        entry->seq = kc_get_u64 (zframe_data (header));
        entry->accepted = kc_get_u64 (zframe_data (header) + 8);
        entry->submitter = s_key_or_null (zframe_data (header) + 16);
        entry->data = zframe_data (data);
        entry->size = zframe_size (data);
        out->entry_count++;
    }
    return 0;
}

//  ROOTS reply: 0..KC_PROTO_ROOTS_MAX pairs (u64 seq, root of 1..KC_ROOT_BYTES_MAX).
static int
s_roots (const s_frames_t *f, kc_proto_msg_t *out, kc_why_t *why)
{
    if (f->count % 2 == 0) {
        return kc_why (why, "ROOTS has %zu frames, expected 1 + 2 per root", f->count);
    }
    size_t count = (f->count - 1) / 2;
    if (count > KC_PROTO_ROOTS_MAX) {
        return kc_why (why, "ROOTS carries %zu roots (limit %d)", count, KC_PROTO_ROOTS_MAX);
    }
    out->entries = calloc (count ? count : 1, sizeof (kc_entry_t));
    if (!out->entries) {
        return kc_why (why, "out of memory");
    }
    out->entry_count = count;
    for (size_t i = 0; i < count; i++) {
        zframe_t *frame = f->frames [2 + 2 * i];
        if (s_u64 (f->frames [1 + 2 * i], &out->entries [i].seq)
        ||  zframe_size (frame) == 0 || zframe_size (frame) > KC_ROOT_BYTES_MAX) {
            free (out->entries);
            out->entries = NULL;
            out->entry_count = 0;
            return kc_why (why, "ROOTS entry %zu is malformed (a u64 seq, then 1..%d bytes)", i + 1,
                           KC_ROOT_BYTES_MAX);
        }
        out->entries [i].data = zframe_data (frame);
        out->entries [i].size = zframe_size (frame);
    }
    return 0;
}

static int
s_submit_client (const s_frames_t *f, kc_proto_msg_t *out, kc_why_t *why)
{
    zframe_t *command = f->frames [0];
    if (s_is (command, "OK")) {
        out->type = KC_MSG_OK;
        if (s_expect (f, 4, "OK", why) || s_u64 (f->frames [1], &out->seq)
        ||  zframe_size (f->frames [2]) != KC_HASH_BYTES
        ||  (!s_is (f->frames [3], "accepted") && !s_is (f->frames [3], "duplicate"))) {
            return kc_why (why, "OK is malformed");
        }
        out->chain = zframe_data (f->frames [2]);
        s_text (f->frames [3], 1, 16, out);
        return 0;
    }
    if (s_is (command, "RECORDS")) {
        out->type = KC_MSG_RECORDS;
        return s_records (f, out, why);
    }
    if (s_is (command, "ROOTS")) {
        out->type = KC_MSG_ROOTS;
        return s_roots (f, out, why);
    }
    if (s_is (command, "LOG")) {
        out->type = KC_MSG_LOG;
        return s_log (f, out, why);
    }
    if (s_is (command, "ENROLMENT")) {
        out->type = KC_MSG_ENROLMENT;
        return s_enrolments (f, out, 1, 1, why);
    }
    if (s_is (command, "PENDING")) {
        out->type = KC_MSG_PENDING;
        return s_enrolments (f, out, 0, KC_PROTO_PENDING_MAX, why);
    }
    if (s_is (command, "STATUS")) {
        out->type = KC_MSG_STATUS;
        if (s_expect (f, 3, "STATUS", why)) {
            return -1;
        }
        if (zframe_size (f->frames [1]) > KC_PROTO_STATUS_MAX
        ||  zframe_size (f->frames [2]) > KC_PROTO_STATUS_MAX) {
            return kc_why (why, "STATUS reply too large");
        }
        out->text = (const char *) zframe_data (f->frames [1]);
        out->text_size = zframe_size (f->frames [1]);
        out->rendering = (const char *) zframe_data (f->frames [2]);
        out->rendering_size = zframe_size (f->frames [2]);
        return 0;
    }
    return -2;
}

int
kc_proto_decode (zmsg_t *msg, kc_channel_t channel, kc_proto_msg_t *out, kc_why_t *why)
{
    memset (out, 0, sizeof *out);
    static __thread s_frames_t f;
    f.count = 0;
    f.bytes = 0;
    size_t limit = sizeof f.frames / sizeof f.frames [0];
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        if (f.count == limit) {
            return kc_why (why, "message has more than %zu frames", limit);
        }
        f.frames [f.count++] = frame;
        f.bytes += zframe_size (frame);
    }
    if (f.count == 0) {
        return kc_why (why, "empty message");
    }
    if (f.bytes > KC_PROTO_MESSAGE_MAX) {
        return kc_why (why, "message is %zu bytes (limit %d)", f.bytes, KC_PROTO_MESSAGE_MAX);
    }
    //  ERROR is valid wherever a server answers
    if (s_is (f.frames [0], "ERROR")
    &&  (channel == KC_CHANNEL_SNAPSHOT_AGENT || channel == KC_CHANNEL_SUBMIT_CLIENT)) {
        out->type = KC_MSG_ERROR;
        if (s_expect (&f, 2, "ERROR", why)
        ||  s_text (f.frames [1], 1, KC_PROTO_REASON_MAX, out)) {
            return kc_why (why, "ERROR is malformed");
        }
        return 0;
    }
    int rc = channel == KC_CHANNEL_SNAPSHOT_SERVER ? s_snapshot_server (&f, out, why)
           : channel == KC_CHANNEL_SNAPSHOT_AGENT ? s_snapshot_agent (&f, out, why)
           : channel == KC_CHANNEL_UPDATES ? s_updates (&f, out, why)
           : channel == KC_CHANNEL_SUBMIT_SERVER ? s_submit_server (&f, out, why)
           : s_submit_client (&f, out, why);
    if (rc == -2) {
        size_t size = zframe_size (f.frames [0]);
        const uint8_t *data = zframe_data (f.frames [0]);
        if (size <= 16 && s_printable (data, size)) {
            kc_why (why, "unexpected command '%.*s'", (int) size, (const char *) data);
        }
        else {
            kc_why (why, "unexpected command (%zu bytes of binary)", size);
        }
    }
    if (rc) {
        kc_proto_msg_reset (out);           //  nothing to free after a refusal
        return -1;
    }
    return 0;
}

void
kc_proto_msg_reset (kc_proto_msg_t *out)
{
    free (out->entries);
    memset (out, 0, sizeof *out);
}

static void
s_add_u64 (zmsg_t *msg, uint64_t value)
{
    uint8_t bytes [8];
    kc_put_u64 (bytes, value);
    zmsg_addmem (msg, bytes, 8);
}

static void
s_add_u32 (zmsg_t *msg, uint32_t value)
{
    uint8_t bytes [4];
    kc_put_u32 (bytes, value);
    zmsg_addmem (msg, bytes, 4);
}

zmsg_t *
kc_proto_sync (const uint8_t directory [static KC_HASH_BYTES], uint64_t from, uint32_t credit)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "SYNC");
    zmsg_addmem (msg, directory, KC_HASH_BYTES);
    s_add_u64 (msg, from);
    s_add_u32 (msg, credit);
    return msg;
}

zmsg_t *
kc_proto_credit (uint32_t credit)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "CREDIT");
    s_add_u32 (msg, credit);
    return msg;
}

zmsg_t *
kc_proto_ack (uint64_t seq, const uint8_t chain [static KC_HASH_BYTES])
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "ACK");
    s_add_u64 (msg, seq);
    zmsg_addmem (msg, chain, KC_HASH_BYTES);
    return msg;
}

zmsg_t *
kc_proto_ack_for (uint64_t seq, const uint8_t chain [static KC_HASH_BYTES], const uint8_t key [static KC_KEY_BYTES])
{
    zmsg_t *msg = kc_proto_ack (seq, chain);
    zmsg_addmem (msg, key, KC_KEY_BYTES);
    return msg;
}

zmsg_t *
kc_proto_end (uint64_t batches, uint64_t records, const kc_head_t *head)
{
    uint8_t bytes [KC_HEAD_BYTES];
    kc_head_encode (head, bytes);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "END");
    s_add_u64 (msg, batches);
    s_add_u64 (msg, records);
    zmsg_addmem (msg, bytes, KC_HEAD_BYTES);
    return msg;
}

zmsg_t *
kc_proto_head (const kc_head_t *head)
{
    uint8_t bytes [KC_HEAD_BYTES];
    kc_head_encode (head, bytes);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "HEAD");
    zmsg_addmem (msg, bytes, KC_HEAD_BYTES);
    return msg;
}

void
kc_proto_add_cosig (zmsg_t *msg, const uint8_t cosig [static KC_PROTO_COSIG_BYTES])
{
    zmsg_addmem (msg, cosig, KC_PROTO_COSIG_BYTES);
}

zmsg_t *
kc_proto_cosign (const uint8_t cosig [static KC_PROTO_COSIG_BYTES])
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "COSIGN");
    zmsg_addmem (msg, cosig, KC_PROTO_COSIG_BYTES);
    return msg;
}

zmsg_t *
kc_proto_error (const char *format, ...)
{
    char reason [KC_PROTO_REASON_MAX + 1];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    for (char *p = reason; *p; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            *p = '?';
        }
    }
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "ERROR");
    zmsg_addstr (msg, *reason ? reason : "error");
    return msg;
}

zmsg_t *
kc_proto_submit (const uint8_t *batch, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "SUBMIT");
    zmsg_addmem (msg, batch, size);
    return msg;
}

zmsg_t *
kc_proto_ok (uint64_t seq, const uint8_t chain [static KC_HASH_BYTES], const char *status)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "OK");
    s_add_u64 (msg, seq);
    zmsg_addmem (msg, chain, KC_HASH_BYTES);
    zmsg_addstr (msg, status);
    return msg;
}

zmsg_t *
kc_proto_query (const char *kind, const uint8_t *argument, size_t size, uint32_t limit)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "QUERY");
    zmsg_addstr (msg, kind);
    zmsg_addmem (msg, argument, size);
    s_add_u32 (msg, limit);
    return msg;
}

zmsg_t *
kc_proto_status_request (void)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "STATUS");
    return msg;
}

zmsg_t *
kc_proto_metrics_request (void)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "METRICS");
    return msg;
}

zmsg_t *
kc_proto_roots_request (void)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "ROOTS");
    return msg;
}

zmsg_t *
kc_proto_roots_reply (void)
{
    return kc_proto_roots_request ();
}

void
kc_proto_add_root (zmsg_t *msg, uint64_t seq, const uint8_t *root, size_t size)
{
    s_add_u64 (msg, seq);
    zmsg_addmem (msg, root, size);
}

zmsg_t *
kc_proto_log_request (uint64_t after, uint32_t limit)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "LOG");
    s_add_u64 (msg, after);
    s_add_u32 (msg, limit);
    return msg;
}

zmsg_t *
kc_proto_log_reply (void)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "LOG");
    return msg;
}

void
kc_proto_add_log (zmsg_t *msg, uint64_t seq, uint64_t accepted, const uint8_t *submitter,
                  const uint8_t *data, size_t size)
{
    uint8_t header [KC_PROTO_LOG_HEADER] = { 0 };
    kc_put_u64 (header, seq);
    kc_put_u64 (header + 8, accepted);
    if (submitter) {
        memcpy (header + 16, submitter, KC_KEY_BYTES);
    }
    zmsg_addmem (msg, header, sizeof header);
    zmsg_addmem (msg, data, size);
}

zmsg_t *
kc_proto_status_reply (const char *json, size_t json_size, const char *text, size_t text_size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "STATUS");
    zmsg_addmem (msg, json, json_size);
    zmsg_addmem (msg, text, text_size);
    return msg;
}

zmsg_t *
kc_proto_enrol (const char *name, const char *const *tags, size_t tag_count)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "ENROL");
    zmsg_addstr (msg, name);
    for (size_t i = 0; i < tag_count; i++) {
        zmsg_addstr (msg, tags [i]);
    }
    return msg;
}

zmsg_t *
kc_proto_rotate (const uint8_t key [static KC_KEY_BYTES], uint64_t overlap)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "ROTATE");
    zmsg_addmem (msg, key, KC_KEY_BYTES);
    s_add_u64 (msg, overlap);
    return msg;
}

zmsg_t *
kc_proto_pending_request (void)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "PENDING");
    return msg;
}

zmsg_t *
kc_proto_reject (const uint8_t key [static KC_KEY_BYTES], const char *reason)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "REJECT");
    zmsg_addmem (msg, key, KC_KEY_BYTES);
    zmsg_addstr (msg, reason);
    return msg;
}

zmsg_t *
kc_proto_enrolment (const kc_enrolment_t *enrolment)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "ENROLMENT");
    size_t size;
    uint8_t *data = kc_enrolment_encode (enrolment, &size);
    zmsg_addmem (msg, data, size);
    free (data);
    return msg;
}

zmsg_t *
kc_proto_pending_reply (void)
{
    return kc_proto_pending_request ();
}

zmsg_t *
kc_proto_entries (const char *command)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, command);
    return msg;
}

int
kc_proto_add_root_fn (uint64_t seq, const uint8_t *data, size_t size, void *msg)
{
    kc_proto_add_root ((zmsg_t *) msg, seq, data, size);
    return zmsg_size ((zmsg_t *) msg) > 2 * KC_PROTO_ROOTS_MAX;
}

int
kc_proto_add_log_fn (uint64_t seq, uint64_t accepted, const uint8_t *submitter, const uint8_t *data,
                     size_t size, void *msg)
{
    kc_proto_add_log ((zmsg_t *) msg, seq, accepted, submitter, data, size);
    return 0;
}

void
kc_proto_add_entry_meta (zmsg_t *msg, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                         uint64_t accepted, const uint8_t *submitter, const uint8_t *batch, size_t size)
{
    uint8_t header [KC_PROTO_ENTRY_HEADER_META] = { 0 };
    kc_put_u64 (header, seq);
    memcpy (header + 8, chain, KC_HASH_BYTES);
    kc_put_u64 (header + 40, accepted);
    if (submitter) {
        memcpy (header + 48, submitter, KC_KEY_BYTES);
    }
    zmsg_addmem (msg, header, sizeof header);
    zmsg_addmem (msg, batch, size);
}

void
kc_proto_add_entry (zmsg_t *msg, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                    const uint8_t *batch, size_t size)
{
    uint8_t header [KC_PROTO_ENTRY_HEADER];
    kc_put_u64 (header, seq);
    memcpy (header + 8, chain, KC_HASH_BYTES);
    zmsg_addmem (msg, header, sizeof header);
    zmsg_addmem (msg, batch, size);
}

zmsg_t *
kc_proto_records (const uint8_t *next, size_t next_size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "RECORDS");
    zmsg_addmem (msg, next, next_size);
    return msg;
}

void
kc_proto_add_record (zmsg_t *msg, uint64_t seq, const uint8_t *record, size_t size)
{
    s_add_u64 (msg, seq);
    zmsg_addmem (msg, record, size);
}

void
kc_proto_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_proto: ");
    }
    kc_why_t why;
    kc_proto_msg_t out;
    uint8_t directory [32], chain [32];
    memset (directory, 0xd1, 32);
    memset (chain, 0xc4, 32);

    zmsg_t *msg = kc_proto_sync (directory, 7, 4);
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &out, &why) == 0);
    assert (out.type == KC_MSG_SYNC && out.seq == 7 && out.credit == 4);
    assert (memcmp (out.directory, directory, 32) == 0);
    kc_proto_msg_reset (&out);
    //  The same message on another channel is refused
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == -1);
    assert (strstr (why.text, "unexpected command 'SYNC'"));
    //  A missing frame, an extra frame, a wrong size
    zframe_t *last = zmsg_last (msg);
    zmsg_remove (msg, last);
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &out, &why) == -1);
    zmsg_append (msg, &last);
    zmsg_addstr (msg, "extra");
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &out, &why) == -1);
    assert (strstr (why.text, "5 frames"));
    zmsg_destroy (&msg);
    msg = kc_proto_sync (directory, 7, KC_PROTO_CREDIT_MAX + 1);
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &out, &why) == -1);
    assert (strstr (why.text, "credit"));
    zmsg_destroy (&msg);

    //  Enrolment: ENROL with tags; REJECT needs its authorization frame
    const char *tags [] = { "role=web", "dc=eu" };
    msg = kc_proto_enrol ("web-1", tags, 2);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == 0);
    assert (out.type == KC_MSG_ENROL && out.text_size == 5 && out.tag_count == 2 && out.tag_sizes [1] == 5);
    kc_proto_msg_reset (&out);
    zmsg_addstr (msg, "bad tag");
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == -1);
    zmsg_destroy (&msg);
    msg = kc_proto_enrol ("-bad", NULL, 0);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == -1);
    zmsg_destroy (&msg);
    msg = kc_proto_reject (chain, "unknown host");
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == -1);
    uint8_t auth [KC_PROTO_AUTH_BYTES] = { 0 };
    zmsg_addmem (msg, auth, sizeof auth);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == 0);
    assert (out.type == KC_MSG_REJECT && out.auth && out.text_size == 12 && out.argument_size == 32);
    kc_proto_msg_reset (&out);
    zmsg_destroy (&msg);
    msg = kc_proto_rotate (chain, 3600);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == 0);
    assert (out.type == KC_MSG_ROTATE && out.seq == 3600 && out.argument_size == 32);
    kc_proto_msg_reset (&out);
    zmsg_destroy (&msg);
    msg = kc_proto_rotate (chain, KC_ENROL_OVERLAP_MAX + 1);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == -1);
    zmsg_destroy (&msg);
    kc_enrolment_t enrolment = { .state = KC_ENROL_PENDING, .requested = 1, .expires = 2 };
    memcpy (enrolment.key, chain, 32);
    snprintf (enrolment.name, sizeof enrolment.name, "web-1");
    size_t enrolment_size;
    uint8_t *encoded = kc_enrolment_encode (&enrolment, &enrolment_size);
    msg = kc_proto_pending_reply ();
    zmsg_addmem (msg, encoded, enrolment_size);
    zmsg_addmem (msg, encoded, enrolment_size);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_CLIENT, &out, &why) == 0);
    assert (out.type == KC_MSG_PENDING && out.entry_count == 2);
    kc_proto_msg_reset (&out);
    zmsg_addmem (msg, encoded, enrolment_size - 1);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_CLIENT, &out, &why) == -1);
    assert (strstr (why.text, "PENDING entry 3"));
    zmsg_destroy (&msg);
    msg = kc_proto_enrolment (&enrolment);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_CLIENT, &out, &why) == 0);
    assert (out.type == KC_MSG_ENROLMENT && out.entry_count == 1);
    kc_proto_msg_reset (&out);
    zmsg_destroy (&msg);
    free (encoded);

    //  Batch entries: consecutive, bounded
    msg = kc_proto_entries ("UPDATE");
    kc_proto_add_entry (msg, 5, chain, (const uint8_t *) "b5", 2);
    kc_proto_add_entry (msg, 6, chain, (const uint8_t *) "b6", 2);
    assert (kc_proto_decode (msg, KC_CHANNEL_UPDATES, &out, &why) == 0);
    assert (out.type == KC_MSG_UPDATE && out.entry_count == 2 && out.entries [1].seq == 6);
    assert (out.entries [1].size == 2 && memcmp (out.entries [1].data, "b6", 2) == 0);
    assert (out.entries [1].accepted == 0 && out.entries [1].submitter == NULL);
    kc_proto_msg_reset (&out);
    //  With the audit metadata (80-byte headers), mixed with plain ones
    zmsg_t *meta = kc_proto_entries ("UPDATE");
    kc_proto_add_entry_meta (meta, 5, chain, 1234, directory, (const uint8_t *) "b5", 2);
    kc_proto_add_entry_meta (meta, 6, chain, 0, NULL, (const uint8_t *) "b6", 2);
    kc_proto_add_entry (meta, 7, chain, (const uint8_t *) "b7", 2);
    assert (kc_proto_decode (meta, KC_CHANNEL_UPDATES, &out, &why) == 0 && out.entry_count == 3);
    assert (out.entries [0].accepted == 1234 && memcmp (out.entries [0].submitter, directory, 32) == 0);
    assert (out.entries [1].accepted == 0 && out.entries [1].submitter == NULL);
    assert (memcmp (out.entries [0].chain, chain, KC_HASH_BYTES) == 0 && out.entries [2].seq == 7);
    kc_proto_msg_reset (&out);
    zmsg_destroy (&meta);
    kc_proto_add_entry (msg, 8, chain, (const uint8_t *) "b8", 2);
    assert (kc_proto_decode (msg, KC_CHANNEL_UPDATES, &out, &why) == -1);
    assert (strstr (why.text, "not consecutive"));
    kc_proto_msg_reset (&out);
    zmsg_destroy (&msg);
    msg = kc_proto_entries ("BATCHES");
    for (int i = 1; i <= KC_PROTO_BATCHES_MAX + 1; i++) {
        kc_proto_add_entry (msg, (uint64_t) i, chain, (const uint8_t *) "b", 1);
    }
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_AGENT, &out, &why) == -1);
    assert (strstr (why.text, "limit"));
    kc_proto_msg_reset (&out);
    zmsg_destroy (&msg);

    //  Heads travel whole; a short head is refused
    kc_head_t head = { .seq = 3, .time = 1, .valid_until = 2 };
    memcpy (head.directory, directory, 32);
    msg = kc_proto_end (1, 10, &head);
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_AGENT, &out, &why) == 0);
    assert (out.type == KC_MSG_END && out.records == 10 && out.head.seq == 3 && out.cosig_count == 0);
    zmsg_destroy (&msg);
    //  Heads may carry up to 16 cosignatures of the right size, COSIGN one
    uint8_t cosig [KC_PROTO_COSIG_BYTES] = { 0xc5 };
    msg = kc_proto_head (&head);
    for (int i = 0; i < KC_PROTO_COSIGS_MAX; i++) {
        kc_proto_add_cosig (msg, cosig);
    }
    assert (kc_proto_decode (msg, KC_CHANNEL_UPDATES, &out, &why) == 0);
    assert (out.type == KC_MSG_HEAD && out.cosig_count == KC_PROTO_COSIGS_MAX && out.cosigs [15][0] == 0xc5);
    kc_proto_msg_reset (&out);
    kc_proto_add_cosig (msg, cosig);
    assert (kc_proto_decode (msg, KC_CHANNEL_UPDATES, &out, &why) == -1 && strstr (why.text, "limit"));
    zmsg_destroy (&msg);
    msg = kc_proto_end (1, 10, &head);
    zmsg_addmem (msg, cosig, KC_PROTO_COSIG_BYTES - 1);
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_AGENT, &out, &why) == -1 && strstr (why.text, "cosignature 1"));
    zmsg_destroy (&msg);
    uint8_t agent_key [KC_KEY_BYTES] = { 0xa9 };
    msg = kc_proto_ack_for (12, directory, agent_key);
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &out, &why) == 0);
    assert (out.type == KC_MSG_ACK && out.seq == 12 && out.argument_size == 32 && out.argument [0] == 0xa9);
    kc_proto_msg_reset (&out);
    zmsg_addmem (msg, agent_key, 1);
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &out, &why) == -1);
    zmsg_destroy (&msg);
    msg = kc_proto_cosign (cosig);
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &out, &why) == 0);
    assert (out.type == KC_MSG_COSIGN && out.cosig_count == 1 && strcmp (kc_proto_name (out.type), "COSIGN") == 0);
    kc_proto_msg_reset (&out);
    zmsg_addmem (msg, cosig, KC_PROTO_COSIG_BYTES);
    assert (kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &out, &why) == -1);
    zmsg_destroy (&msg);
    msg = zmsg_new ();
    zmsg_addstr (msg, "HEAD");
    zmsg_addmem (msg, "short", 5);
    assert (kc_proto_decode (msg, KC_CHANNEL_UPDATES, &out, &why) == -1);
    zmsg_destroy (&msg);

    //  Submissions and replies
    msg = kc_proto_submit ((const uint8_t *) "batch", 5);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == 0);
    assert (out.type == KC_MSG_SUBMIT && out.batch_size == 5);
    zmsg_destroy (&msg);
    msg = kc_proto_ok (9, chain, "duplicate");
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_CLIENT, &out, &why) == 0);
    assert (out.type == KC_MSG_OK && out.seq == 9 && out.text_size == 9);
    zmsg_destroy (&msg);
    msg = kc_proto_error ("bad \x01 thing %d", 7);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_CLIENT, &out, &why) == 0);
    assert (out.type == KC_MSG_ERROR && memcmp (out.text, "bad ? thing 7", 13) == 0);
    //  ERROR is not something a server accepts
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == -1);
    zmsg_destroy (&msg);
    msg = kc_proto_query ("key", directory, 32, 10);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == 0);
    assert (out.type == KC_MSG_QUERY && out.credit == 10 && out.argument_size == 32);
    zmsg_destroy (&msg);
    msg = kc_proto_query ("key", directory, 31, 10);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == -1);
    zmsg_destroy (&msg);
    msg = kc_proto_query ("drop", directory, 1, 10);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == -1);
    zmsg_destroy (&msg);
    msg = kc_proto_records ((const uint8_t *) "next", 4);
    kc_proto_add_record (msg, 3, (const uint8_t *) "record", 6);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_CLIENT, &out, &why) == 0);
    assert (out.type == KC_MSG_RECORDS && out.entry_count == 1 && out.entries [0].seq == 3);
    kc_proto_msg_reset (&out);
    zmsg_destroy (&msg);
    msg = kc_proto_status_request ();
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_SERVER, &out, &why) == 0);
    zmsg_destroy (&msg);
    msg = kc_proto_status_reply ("{}", 2, "ok", 2);
    assert (kc_proto_decode (msg, KC_CHANNEL_SUBMIT_CLIENT, &out, &why) == 0);
    assert (out.type == KC_MSG_STATUS && out.text_size == 2 && out.rendering_size == 2);
    zmsg_destroy (&msg);

    //  Empty and binary-garbage messages
    msg = zmsg_new ();
    assert (kc_proto_decode (msg, KC_CHANNEL_UPDATES, &out, &why) == -1);
    zmsg_addmem (msg, "\x00\xff", 2);
    assert (kc_proto_decode (msg, KC_CHANNEL_UPDATES, &out, &why) == -1);
    assert (strstr (why.text, "binary"));
    zmsg_destroy (&msg);
    if (verbose) {
        printf ("OK\n");
    }
}
