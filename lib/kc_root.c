/*  =========================================================================
    kc_root - the root document and the signature-threshold rule.

    Layout (big-endian; docs/records.md section 5):
        "KCRT" u8 format (1 or 2)   u8[32] directory (zero in genesis)
        u64 version  u64 created  u64 expires  u8[32] previous (zero in genesis)
        u8 operator count, then (u8[32] key, u8 name size, name)* by key
        u8 threshold register, revoke, root
      format 1:
        u8[32] head key   u8[32] server CURVE key
        3 x (u8 size, endpoint): snapshot, updates, submit
      format 2:
        u8 server count, then (str8 name, u8[32] CURVE key, u8[32] head key,
            3 x str8 endpoint)* by name
        u8 witness count, then (u8[32] key, str8 name)* by key
        u8 witness threshold
        --- end of signed body ---
        u8 signature count, then (u8[32] key, u8[64] signature)* by key
    =========================================================================
*/
#include "kc_root.h"
#include "kc_file.h"
#include "kc_record.h"
#include "kc_wire.h"

#include <assert.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "KCRT"

struct _kc_root_t {
    uint8_t *data;                      //  whole encoding, owned
    size_t size;
    size_t body_size;                   //  signed prefix
    uint8_t digest [KC_HASH_BYTES];     //  BLAKE2b-256 of the body
    uint8_t directory [KC_HASH_BYTES];  //  effective id (digest for genesis)
    uint8_t previous [KC_HASH_BYTES];
    uint64_t version, created, expires;
    size_t operator_count;
    kc_operator_t operators [KC_ROOT_OPERATORS_MAX];
    uint8_t threshold_register, threshold_revoke, threshold_root;
    uint8_t format;
    size_t server_count;
    kc_root_server_t servers [KC_ROOT_SERVERS_MAX];
    size_t witness_count;
    kc_witness_t witnesses [KC_ROOT_WITNESSES_MAX];
    uint8_t witness_threshold;
    size_t signature_count;
    struct {
        uint8_t key [KC_KEY_BYTES];
        uint8_t signature [KC_SIGNATURE_BYTES];
    } signatures [KC_ROOT_SIGNATURES_MAX];
};

static const char *s_endpoint_names [KC_ENDPOINTS] = { "snapshot", "updates", "submit" };

size_t
kc_signed_message (const char *context, const uint8_t digest [static KC_HASH_BYTES],
                   uint8_t *message)
{
    size_t length = strlen (context);
    assert (length + 1 + KC_HASH_BYTES <= 64);
    memcpy (message, context, length);
    message [length] = 0;
    memcpy (message + length + 1, digest, KC_HASH_BYTES);
    return length + 1 + KC_HASH_BYTES;
}

static bool
s_zero (const uint8_t *data, size_t size)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < size; i++) {
        acc |= data [i];
    }
    return acc == 0;
}

static bool
s_endpoint_valid (const char *text, size_t size)
{
    if (size == 0 || size > KC_ROOT_ENDPOINT_MAX || !memmem (text, size, "://", 3)) {
        return false;
    }
    for (size_t i = 0; i < size; i++) {
        if (text [i] <= 0x20 || text [i] > 0x7e) {
            return false;
        }
    }
    return true;
}

//  Checks the semantic rules on a filled-in root (from spec or decoder).
static int
s_check (const kc_root_t *self, bool genesis_fields_zero, kc_why_t *why)
{
    if (self->version == 0 || self->version > INT64_MAX) {
        return kc_why (why, "root version %llu is outside 1..2^63-1",
                       (unsigned long long) self->version);
    }
    bool genesis = self->version == 1;
    if (genesis != genesis_fields_zero) {
        return kc_why (why, genesis ? "genesis root must have zero directory and previous"
                                    : "root version %llu must name its directory and previous root",
                       (unsigned long long) self->version);
    }
    if (self->expires <= self->created || self->expires > INT64_MAX) {
        return kc_why (why, "root expiry is not after its creation time");
    }
    if (self->operator_count == 0 || self->operator_count > KC_ROOT_OPERATORS_MAX) {
        return kc_why (why, "root needs 1..%d operators, has %zu",
                       KC_ROOT_OPERATORS_MAX, self->operator_count);
    }
    for (size_t i = 0; i < self->operator_count; i++) {
        const kc_operator_t *op = &self->operators [i];
        if (!kc_record_name_valid (op->name, strlen (op->name))
        ||  strlen (op->name) > KC_ROOT_OPERATOR_NAME_MAX) {
            return kc_why (why, "invalid operator name '%s'", op->name);
        }
        if (i && memcmp (self->operators [i - 1].key, op->key, KC_KEY_BYTES) >= 0) {
            return kc_why (why, "operator keys are not in strictly ascending order "
                           "(a key is listed twice?)");
        }
    }
    int n = (int) self->operator_count;
    if (self->threshold_register < 1 || self->threshold_register > n
    ||  self->threshold_revoke < 1 || self->threshold_revoke > n
    ||  self->threshold_root < 1 || self->threshold_root > n) {
        return kc_why (why, "thresholds must be between 1 and the %d operators (a higher one "
                       "could never be met: lockout)", n);
    }
    if (self->format < KC_ROOT_FORMAT_MIN || self->format > KC_ROOT_FORMAT) {
        return kc_why (why, "unknown root format %u", self->format);
    }
    if (self->server_count == 0 || self->server_count > KC_ROOT_SERVERS_MAX) {
        return kc_why (why, "root needs 1..%d servers, has %zu", KC_ROOT_SERVERS_MAX,
                       self->server_count);
    }
    if (self->format == 1 && (self->server_count != 1 || self->witness_count)) {
        return kc_why (why, "a format 1 root has one server and no witnesses");
    }
    for (size_t i = 0; i < self->server_count; i++) {
        const kc_root_server_t *server = &self->servers [i];
        if (!kc_record_name_valid (server->name, strlen (server->name))
        ||  strlen (server->name) > KC_ROOT_OPERATOR_NAME_MAX) {
            return kc_why (why, "invalid server name '%.80s'", server->name);
        }
        if (i && strcmp (self->servers [i - 1].name, server->name) >= 0) {
            return kc_why (why, "server names are not in strictly ascending order "
                           "(a server is listed twice?)");
        }
        if (s_zero (server->head_key, KC_KEY_BYTES) || s_zero (server->server_key, KC_KEY_BYTES)) {
            return kc_why (why, "server %s has an all-zero key", server->name);
        }
        for (int e = 0; e < KC_ENDPOINTS; e++) {
            if (!s_endpoint_valid (server->endpoints [e], strlen (server->endpoints [e]))) {
                return kc_why (why, "invalid %s endpoint '%.80s' of server %s", s_endpoint_names [e],
                               server->endpoints [e], server->name);
            }
        }
    }
    if (self->witness_count > KC_ROOT_WITNESSES_MAX) {
        return kc_why (why, "root lists %zu witnesses (limit %d)", self->witness_count,
                       KC_ROOT_WITNESSES_MAX);
    }
    for (size_t i = 0; i < self->witness_count; i++) {
        const kc_witness_t *witness = &self->witnesses [i];
        if (!kc_record_name_valid (witness->name, strlen (witness->name))
        ||  strlen (witness->name) > KC_ROOT_OPERATOR_NAME_MAX) {
            return kc_why (why, "invalid witness name '%.80s'", witness->name);
        }
        if (i && memcmp (self->witnesses [i - 1].key, witness->key, KC_KEY_BYTES) >= 0) {
            return kc_why (why, "witness keys are not in strictly ascending order "
                           "(a key is listed twice?)");
        }
    }
    if (self->witness_threshold > self->witness_count) {
        return kc_why (why, "witness threshold %u is above the %zu witnesses (lockout)",
                       self->witness_threshold, self->witness_count);
    }
    return 0;
}

static void
s_write_string (kc_writer_t *w, const char *text)
{
    kc_write_u8 (w, (uint8_t) strlen (text));
    kc_write_bytes (w, text, strlen (text));
}

//  Encodes the body and signatures into self->data; computes digests.
static void
s_encode (kc_root_t *self)
{
    kc_writer_t w;
    kc_writer_init (&w);
    kc_write_bytes (&w, MAGIC, 4);
    kc_write_u8 (&w, self->format);
    bool genesis = self->version == 1;
    uint8_t zero [KC_HASH_BYTES] = { 0 };
    kc_write_bytes (&w, genesis ? zero : self->directory, KC_HASH_BYTES);
    kc_write_u64 (&w, self->version);
    kc_write_u64 (&w, self->created);
    kc_write_u64 (&w, self->expires);
    kc_write_bytes (&w, genesis ? zero : self->previous, KC_HASH_BYTES);
    kc_write_u8 (&w, (uint8_t) self->operator_count);
    for (size_t i = 0; i < self->operator_count; i++) {
        kc_write_bytes (&w, self->operators [i].key, KC_KEY_BYTES);
        kc_write_u8 (&w, (uint8_t) strlen (self->operators [i].name));
        kc_write_bytes (&w, self->operators [i].name, strlen (self->operators [i].name));
    }
    kc_write_u8 (&w, self->threshold_register);
    kc_write_u8 (&w, self->threshold_revoke);
    kc_write_u8 (&w, self->threshold_root);
    if (self->format == 1) {
        const kc_root_server_t *server = &self->servers [0];
        kc_write_bytes (&w, server->head_key, KC_KEY_BYTES);
        kc_write_bytes (&w, server->server_key, KC_KEY_BYTES);
        for (int i = 0; i < KC_ENDPOINTS; i++) {
            s_write_string (&w, server->endpoints [i]);
        }
    }
    else {
        kc_write_u8 (&w, (uint8_t) self->server_count);
        for (size_t i = 0; i < self->server_count; i++) {
            const kc_root_server_t *server = &self->servers [i];
            s_write_string (&w, server->name);
            kc_write_bytes (&w, server->server_key, KC_KEY_BYTES);
            kc_write_bytes (&w, server->head_key, KC_KEY_BYTES);
            for (int e = 0; e < KC_ENDPOINTS; e++) {
                s_write_string (&w, server->endpoints [e]);
            }
        }
        kc_write_u8 (&w, (uint8_t) self->witness_count);
        for (size_t i = 0; i < self->witness_count; i++) {
            kc_write_bytes (&w, self->witnesses [i].key, KC_KEY_BYTES);
            s_write_string (&w, self->witnesses [i].name);
        }
        kc_write_u8 (&w, self->witness_threshold);
    }
    self->body_size = w.size;
    crypto_generichash (self->digest, KC_HASH_BYTES, w.data, w.size, NULL, 0);
    if (genesis) {
        memcpy (self->directory, self->digest, KC_HASH_BYTES);
    }
    kc_write_u8 (&w, (uint8_t) self->signature_count);
    for (size_t i = 0; i < self->signature_count; i++) {
        kc_write_bytes (&w, self->signatures [i].key, KC_KEY_BYTES);
        kc_write_bytes (&w, self->signatures [i].signature, KC_SIGNATURE_BYTES);
    }
    free (self->data);
    self->data = kc_writer_take (&w, &self->size);
}

static int
s_compare_operators (const void *a, const void *b)
{
    return memcmp (((const kc_operator_t *) a)->key, ((const kc_operator_t *) b)->key,
                   KC_KEY_BYTES);
}

static int
s_compare_servers (const void *a, const void *b)
{
    return strcmp (((const kc_root_server_t *) a)->name, ((const kc_root_server_t *) b)->name);
}

//  Copies a string field, leaving it empty (invalid) when it does not fit.
static void
s_copy_text (char *out, size_t capacity, const char *text)
{
    text = text ? text : "";
    snprintf (out, capacity, "%s", strlen (text) < capacity ? text : "");
}

kc_root_t *
kc_root_new (const kc_root_spec_t *spec, kc_why_t *why)
{
    kc_root_t *self = calloc (1, sizeof *self);
    assert (self);
    self->version = spec->version;
    self->created = spec->created;
    self->expires = spec->expires;
    if (spec->directory) {
        memcpy (self->directory, spec->directory, KC_HASH_BYTES);
    }
    if (spec->previous) {
        memcpy (self->previous, spec->previous, KC_HASH_BYTES);
    }
    if (spec->operator_count > KC_ROOT_OPERATORS_MAX) {
        kc_why (why, "root needs 1..%d operators, has %zu",
                KC_ROOT_OPERATORS_MAX, spec->operator_count);
        kc_root_destroy (&self);
        return NULL;
    }
    self->operator_count = spec->operator_count;
    memcpy (self->operators, spec->operators, spec->operator_count * sizeof (kc_operator_t));
    qsort (self->operators, self->operator_count, sizeof (kc_operator_t), s_compare_operators);
    self->threshold_register = spec->threshold_register;
    self->threshold_revoke = spec->threshold_revoke;
    self->threshold_root = spec->threshold_root;
    self->format = spec->format ? spec->format : KC_ROOT_FORMAT;
    if (spec->server_count > KC_ROOT_SERVERS_MAX || spec->witness_count > KC_ROOT_WITNESSES_MAX) {
        kc_why (why, "root allows 1..%d servers and 0..%d witnesses", KC_ROOT_SERVERS_MAX,
                KC_ROOT_WITNESSES_MAX);
        kc_root_destroy (&self);
        return NULL;
    }
    if (spec->server_count) {
        self->server_count = spec->server_count;
        for (size_t i = 0; i < spec->server_count; i++) {
            kc_root_server_t *server = &self->servers [i];
            *server = spec->servers [i];
            server->name [sizeof server->name - 1] = 0;
            for (int e = 0; e < KC_ENDPOINTS; e++) {
                server->endpoints [e][sizeof server->endpoints [e] - 1] = 0;
            }
        }
        qsort (self->servers, self->server_count, sizeof (kc_root_server_t), s_compare_servers);
    }
    else {
        self->server_count = 1;
        kc_root_server_t *server = &self->servers [0];
        snprintf (server->name, sizeof server->name, "%s", KC_ROOT_SERVER_NAME);
        memcpy (server->head_key, spec->head_key, KC_KEY_BYTES);
        memcpy (server->server_key, spec->server_key, KC_KEY_BYTES);
        for (int e = 0; e < KC_ENDPOINTS; e++) {
            s_copy_text (server->endpoints [e], sizeof server->endpoints [e], spec->endpoints [e]);
        }
    }
    self->witness_count = spec->witness_count;
    if (spec->witness_count) {
        memcpy (self->witnesses, spec->witnesses, spec->witness_count * sizeof (kc_witness_t));
        qsort (self->witnesses, self->witness_count, sizeof (kc_witness_t), s_compare_operators);
    }
    self->witness_threshold = spec->witness_threshold;
    bool zero = !spec->directory && !spec->previous;
    if (!zero && (!spec->directory || !spec->previous)) {
        kc_why (why, "a successor root needs both directory and previous");
        kc_root_destroy (&self);
        return NULL;
    }
    if (s_check (self, zero, why)) {
        kc_root_destroy (&self);
        return NULL;
    }
    s_encode (self);
    return self;
}

void
kc_root_sign (kc_root_t *self, const kc_signer_t *signer)
{
    uint8_t message [64];
    size_t size = kc_signed_message (KC_CONTEXT_ROOT, self->digest, message);
    const uint8_t *key = kc_signer_public_key (signer);
    size_t at = 0;
    while (at < self->signature_count && memcmp (self->signatures [at].key, key, 32) < 0) {
        at++;
    }
    if (at == self->signature_count || memcmp (self->signatures [at].key, key, 32) != 0) {
        assert (self->signature_count < KC_ROOT_SIGNATURES_MAX);
        memmove (&self->signatures [at + 1], &self->signatures [at],
                 (self->signature_count - at) * sizeof self->signatures [0]);
        self->signature_count++;
        memcpy (self->signatures [at].key, key, KC_KEY_BYTES);
    }
    kc_signer_sign (signer, message, size, self->signatures [at].signature);
    s_encode (self);
}

static int
s_read_string (kc_reader_t *r, char *text, size_t max)
{
    uint8_t size;
    const uint8_t *bytes;
    if (kc_read_u8 (r, &size) || size > max || !(bytes = kc_read_bytes (r, size))) {
        return -1;
    }
    memcpy (text, bytes, size);
    text [size] = 0;
    return memchr (text, 0, size) ? -1 : 0;
}

static int
s_read_keys (kc_reader_t *r, uint8_t first [static KC_KEY_BYTES], uint8_t second [static KC_KEY_BYTES])
{
    const uint8_t *a = kc_read_bytes (r, KC_KEY_BYTES);
    const uint8_t *b = kc_read_bytes (r, KC_KEY_BYTES);
    if (!a || !b) {
        return -1;
    }
    memcpy (first, a, KC_KEY_BYTES);
    memcpy (second, b, KC_KEY_BYTES);
    return 0;
}

static int
s_decode_body (kc_root_t *self, kc_reader_t *r, kc_why_t *why)
{
    const uint8_t *magic = kc_read_bytes (r, 4);
    uint8_t format, count;
    if (!magic || memcmp (magic, MAGIC, 4)) {
        return kc_why (why, "not a keyclone root (bad magic)");
    }
    if (kc_read_u8 (r, &format) || format < KC_ROOT_FORMAT_MIN || format > KC_ROOT_FORMAT) {
        return kc_why (why, "unknown root format %u", r->failed ? 0 : format);
    }
    self->format = format;
    const uint8_t *directory = kc_read_bytes (r, KC_HASH_BYTES);
    if (kc_read_u64 (r, &self->version) || kc_read_u64 (r, &self->created)
    ||  kc_read_u64 (r, &self->expires)) {
        return kc_why (why, "truncated root");
    }
    const uint8_t *previous = kc_read_bytes (r, KC_HASH_BYTES);
    if (kc_read_u8 (r, &count)) {
        return kc_why (why, "truncated root");
    }
    if (count > KC_ROOT_OPERATORS_MAX) {
        return kc_why (why, "root lists %u operators (limit %d)", count, KC_ROOT_OPERATORS_MAX);
    }
    self->operator_count = count;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *key = kc_read_bytes (r, KC_KEY_BYTES);
        if (!key || s_read_string (r, self->operators [i].name, KC_ROOT_OPERATOR_NAME_MAX)) {
            return kc_why (why, "truncated or over-long operator %zu", i + 1);
        }
        memcpy (self->operators [i].key, key, KC_KEY_BYTES);
    }
    if (kc_read_u8 (r, &self->threshold_register) || kc_read_u8 (r, &self->threshold_revoke)
    ||  kc_read_u8 (r, &self->threshold_root)) {
        return kc_why (why, "truncated root");
    }
    if (format == 1) {
        kc_root_server_t *server = &self->servers [0];
        self->server_count = 1;
        snprintf (server->name, sizeof server->name, "%s", KC_ROOT_SERVER_NAME);
        if (s_read_keys (r, server->head_key, server->server_key)) {
            return kc_why (why, "truncated root");
        }
        for (int e = 0; e < KC_ENDPOINTS; e++) {
            if (s_read_string (r, server->endpoints [e], KC_ROOT_ENDPOINT_MAX)) {
                return kc_why (why, "truncated %s endpoint", s_endpoint_names [e]);
            }
        }
    }
    else {
        if (kc_read_u8 (r, &count)) {
            return kc_why (why, "truncated root");
        }
        if (count > KC_ROOT_SERVERS_MAX) {
            return kc_why (why, "root lists %u servers (limit %d)", count, KC_ROOT_SERVERS_MAX);
        }
        self->server_count = count;
        for (size_t i = 0; i < count; i++) {
            kc_root_server_t *server = &self->servers [i];
            if (s_read_string (r, server->name, KC_ROOT_OPERATOR_NAME_MAX)
            ||  s_read_keys (r, server->server_key, server->head_key)) {
                return kc_why (why, "truncated or over-long server %zu", i + 1);
            }
            for (int e = 0; e < KC_ENDPOINTS; e++) {
                if (s_read_string (r, server->endpoints [e], KC_ROOT_ENDPOINT_MAX)) {
                    return kc_why (why, "truncated %s endpoint of server %zu", s_endpoint_names [e], i + 1);
                }
            }
        }
        if (kc_read_u8 (r, &count)) {
            return kc_why (why, "truncated root");
        }
        if (count > KC_ROOT_WITNESSES_MAX) {
            return kc_why (why, "root lists %u witnesses (limit %d)", count, KC_ROOT_WITNESSES_MAX);
        }
        self->witness_count = count;
        for (size_t i = 0; i < count; i++) {
            const uint8_t *key = kc_read_bytes (r, KC_KEY_BYTES);
            if (!key || s_read_string (r, self->witnesses [i].name, KC_ROOT_OPERATOR_NAME_MAX)) {
                return kc_why (why, "truncated or over-long witness %zu", i + 1);
            }
            memcpy (self->witnesses [i].key, key, KC_KEY_BYTES);
        }
        if (kc_read_u8 (r, &self->witness_threshold)) {
            return kc_why (why, "truncated root");
        }
    }
    bool zero = s_zero (directory, KC_HASH_BYTES) && s_zero (previous, KC_HASH_BYTES);
    if (!zero && (s_zero (directory, KC_HASH_BYTES) || s_zero (previous, KC_HASH_BYTES))) {
        return kc_why (why, "root names only one of directory and previous");
    }
    memcpy (self->directory, directory, KC_HASH_BYTES);
    memcpy (self->previous, previous, KC_HASH_BYTES);
    return s_check (self, zero, why);
}

kc_root_t *
kc_root_decode (const uint8_t *data, size_t size, kc_why_t *why)
{
    if (size > KC_ROOT_BYTES_MAX) {
        kc_why (why, "root is %zu bytes (limit %d)", size, KC_ROOT_BYTES_MAX);
        return NULL;
    }
    kc_root_t *self = calloc (1, sizeof *self);
    if (!self) {
        kc_why (why, "out of memory decoding a root");
        return NULL;
    }
    kc_reader_t r;
    kc_reader_init (&r, data, size);
    uint8_t count;
    if (s_decode_body (self, &r, why)) {
        goto fail;
    }
    self->body_size = r.pos;
    if (kc_read_u8 (&r, &count)) {
        kc_why (why, "truncated root");
        goto fail;
    }
    if (count > KC_ROOT_SIGNATURES_MAX) {
        kc_why (why, "root carries %u signatures (limit %d)", count, KC_ROOT_SIGNATURES_MAX);
        goto fail;
    }
    for (size_t i = 0; i < count; i++) {
        const uint8_t *key = kc_read_bytes (&r, KC_KEY_BYTES);
        const uint8_t *signature = kc_read_bytes (&r, KC_SIGNATURE_BYTES);
        if (!signature) {
            kc_why (why, "truncated root signature %zu", i + 1);
            goto fail;
        }
        if (i && memcmp (self->signatures [i - 1].key, key, KC_KEY_BYTES) >= 0) {
            kc_why (why, "root signatures are not in strictly ascending key order "
                    "(a signer is listed twice?)");
            goto fail;
        }
        memcpy (self->signatures [i].key, key, KC_KEY_BYTES);
        memcpy (self->signatures [i].signature, signature, KC_SIGNATURE_BYTES);
    }
    self->signature_count = count;
    if (kc_reader_left (&r)) {
        kc_why (why, "%zu trailing bytes after root", kc_reader_left (&r));
        goto fail;
    }
    //  Re-encoding must give the same bytes: the encoding is canonical
    s_encode (self);
    if (self->size != size || memcmp (self->data, data, size)) {
        kc_why (why, "root encoding is not canonical");
        goto fail;
    }
    return self;
fail:
    kc_root_destroy (&self);
    return NULL;
}

kc_root_t *
kc_root_load (const char *path, kc_why_t *why)
{
    size_t size;
    uint8_t *data = kc_file_read (path, KC_ROOT_BYTES_MAX, false, &size, why);
    if (!data) {
        return NULL;
    }
    kc_root_t *self = kc_root_decode (data, size, why);
    if (!self) {
        kc_why_prefix (why, "'%s'", path);
    }
    kc_file_free (&data, false);
    return self;
}

int
kc_root_save (const kc_root_t *self, const char *path, kc_why_t *why)
{
    return kc_file_write_atomic (path, self->data, self->size, KC_FILE_MODE_PUBLIC, why);
}

kc_root_t *
kc_root_dup (const kc_root_t *self)
{
    kc_root_t *copy = malloc (sizeof *copy);
    assert (copy);
    *copy = *self;
    copy->data = malloc (self->size);
    assert (copy->data);
    memcpy (copy->data, self->data, self->size);
    return copy;
}

void
kc_root_destroy (kc_root_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->data);
        free (*self_p);
        *self_p = NULL;
    }
}

int
kc_root_operator_index (const kc_root_t *self, const uint8_t key [static KC_KEY_BYTES])
{
    for (size_t i = 0; i < self->operator_count; i++) {
        if (memcmp (self->operators [i].key, key, KC_KEY_BYTES) == 0) {
            return (int) i;
        }
    }
    return -1;
}

int
kc_root_check_signatures (const kc_root_t *self, const char *context,
                          const uint8_t digest [static KC_HASH_BYTES],
                          const kc_signature_t *signatures, size_t count,
                          int threshold, bool strict, int *valid, kc_why_t *why)
{
    uint8_t message [64];
    size_t size = kc_signed_message (context, digest, message);
    uint64_t seen = 0;                  //  bit per operator index
    int distinct = 0;
    char fp [KC_FINGERPRINT_CHARS + 1];
    for (size_t i = 0; i < count; i++) {
        int index = kc_root_operator_index (self, signatures [i].key);
        if (index < 0) {
            if (strict) {
                return kc_why (why, "signed by %s, which is not an operator in root v%llu",
                               kc_fingerprint (signatures [i].key, fp),
                               (unsigned long long) self->version);
            }
            continue;
        }
        if (crypto_sign_verify_detached (signatures [i].signature, message, size,
                                         signatures [i].key)) {
            if (strict) {
                return kc_why (why, "bad signature by operator %s (%s)",
                               self->operators [index].name,
                               kc_fingerprint (signatures [i].key, fp));
            }
            continue;
        }
        if (!(seen & (1ULL << index))) {
            seen |= 1ULL << index;
            distinct++;
        }
    }
    if (valid) {
        *valid = distinct;
    }
    if (distinct < threshold) {
        return kc_why (why, "signature threshold %d not met (%d valid)", threshold, distinct);
    }
    return 0;
}

static void
s_signature_list (const kc_root_t *self, kc_signature_t *list)
{
    for (size_t i = 0; i < self->signature_count; i++) {
        list [i].key = self->signatures [i].key;
        list [i].signature = self->signatures [i].signature;
    }
}

int
kc_root_verify (const kc_root_t *self, uint64_t now, kc_why_t *why)
{
    char when [32];
    if (now >= self->expires) {
        return kc_why (why, "root v%llu expired at %s", (unsigned long long) self->version,
                       kc_time_format (self->expires, when));
    }
    kc_signature_t list [KC_ROOT_SIGNATURES_MAX];
    s_signature_list (self, list);
    if (kc_root_check_signatures (self, KC_CONTEXT_ROOT, self->digest, list,
                                  self->signature_count, self->threshold_root, true, NULL, why)) {
        return kc_why_prefix (why, "root v%llu", (unsigned long long) self->version);
    }
    return 0;
}

int
kc_root_verify_successor (const kc_root_t *current, const kc_root_t *next, uint64_t now,
                          kc_why_t *why)
{
    char when [32];
    if (next->version != current->version + 1) {
        return kc_why (why, "root v%llu cannot follow v%llu",
                       (unsigned long long) next->version, (unsigned long long) current->version);
    }
    if (memcmp (next->directory, current->directory, KC_HASH_BYTES)) {
        return kc_why (why, "root v%llu is for another directory", (unsigned long long) next->version);
    }
    if (memcmp (next->previous, current->digest, KC_HASH_BYTES)) {
        return kc_why (why, "root v%llu does not name v%llu as its previous root",
                       (unsigned long long) next->version, (unsigned long long) current->version);
    }
    if (now >= next->expires) {
        return kc_why (why, "root v%llu expired at %s", (unsigned long long) next->version,
                       kc_time_format (next->expires, when));
    }
    if (next->created < current->created) {
        return kc_why (why, "root v%llu was created before the root it replaces",
                       (unsigned long long) next->version);
    }
    if (next->format < current->format) {
        return kc_why (why, "root v%llu is in format %u, older than v%llu's %u",
                       (unsigned long long) next->version, next->format,
                       (unsigned long long) current->version, current->format);
    }
    kc_signature_t list [KC_ROOT_SIGNATURES_MAX];
    s_signature_list (next, list);
    //  Every signer must be an operator of the old or the new root
    for (size_t i = 0; i < next->signature_count; i++) {
        if (kc_root_operator_index (current, list [i].key) < 0
        &&  kc_root_operator_index (next, list [i].key) < 0) {
            char fp [KC_FINGERPRINT_CHARS + 1];
            return kc_why (why, "root v%llu signed by %s, an operator of neither root",
                           (unsigned long long) next->version, kc_fingerprint (list [i].key, fp));
        }
    }
    if (kc_root_check_signatures (current, KC_CONTEXT_ROOT, next->digest, list,
                                  next->signature_count, current->threshold_root, false, NULL, why)) {
        return kc_why_prefix (why, "root v%llu, old operators", (unsigned long long) next->version);
    }
    if (kc_root_check_signatures (next, KC_CONTEXT_ROOT, next->digest, list,
                                  next->signature_count, next->threshold_root, false, NULL, why)) {
        return kc_why_prefix (why, "root v%llu, new operators", (unsigned long long) next->version);
    }
    return 0;
}

const uint8_t *
kc_root_data (const kc_root_t *self, size_t *size)
{
    *size = self->size;
    return self->data;
}

const uint8_t *
kc_root_directory (const kc_root_t *self)
{
    return self->directory;
}

const uint8_t *
kc_root_digest (const kc_root_t *self)
{
    return self->digest;
}

size_t
kc_root_body_size (const kc_root_t *self)
{
    return self->body_size;
}

uint64_t
kc_root_version (const kc_root_t *self)
{
    return self->version;
}

uint64_t
kc_root_created (const kc_root_t *self)
{
    return self->created;
}

uint64_t
kc_root_expires (const kc_root_t *self)
{
    return self->expires;
}

size_t
kc_root_operator_count (const kc_root_t *self)
{
    return self->operator_count;
}

const kc_operator_t *
kc_root_operator (const kc_root_t *self, size_t index)
{
    return index < self->operator_count ? &self->operators [index] : NULL;
}

int
kc_root_threshold_register (const kc_root_t *self)
{
    return self->threshold_register;
}

int
kc_root_threshold_revoke (const kc_root_t *self)
{
    return self->threshold_revoke;
}

int
kc_root_threshold_root (const kc_root_t *self)
{
    return self->threshold_root;
}

const uint8_t *
kc_root_head_key (const kc_root_t *self)
{
    return self->servers [0].head_key;
}

const uint8_t *
kc_root_server_key (const kc_root_t *self)
{
    return self->servers [0].server_key;
}

const char *
kc_root_endpoint (const kc_root_t *self, kc_endpoint_t which)
{
    return self->servers [0].endpoints [which];
}

int
kc_root_format (const kc_root_t *self)
{
    return self->format;
}

size_t
kc_root_server_count (const kc_root_t *self)
{
    return self->server_count;
}

const kc_root_server_t *
kc_root_server (const kc_root_t *self, size_t index)
{
    return index < self->server_count ? &self->servers [index] : NULL;
}

int
kc_root_raft_address (const char *submit, char *out, size_t size)
{
    const char *colon = submit ? strrchr (submit, ':') : NULL;
    char *end;
    long port = colon ? strtol (colon + 1, &end, 10) : 0;
    if (!submit || strncmp (submit, "tcp://", 6) || !colon || colon <= submit + 6 || *end || port < 1
    ||  port > 65534) {
        return -1;
    }
    snprintf (out, size, "%.*s:%ld", (int) (colon - submit - 6), submit + 6, port + 1);
    return 0;
}

size_t
kc_root_witness_count (const kc_root_t *self)
{
    return self->witness_count;
}

const kc_witness_t *
kc_root_witness (const kc_root_t *self, size_t index)
{
    return index < self->witness_count ? &self->witnesses [index] : NULL;
}

int
kc_root_witness_threshold (const kc_root_t *self)
{
    return self->witness_threshold;
}

int
kc_root_follow (kc_root_t **current, const uint8_t *data, size_t size, kc_why_t *why)
{
    kc_root_t *next = kc_root_decode (data, size, why);
    if (!next) {
        return -1;
    }
    if (kc_root_version (next) <= kc_root_version (*current)) {
        kc_root_destroy (&next);
        return 0;
    }
    if (kc_root_verify_successor (*current, next, kc_root_created (next), why)) {
        kc_root_destroy (&next);
        return -1;
    }
    kc_root_destroy (current);
    *current = next;
    return 0;
}

bool
kc_root_is_root (const uint8_t *data, size_t size)
{
    return size >= 4 && memcmp (data, MAGIC, 4) == 0;
}

void
kc_root_successor_spec (const kc_root_t *current, kc_root_spec_t *spec, kc_root_storage_t *storage)
{
    memcpy (storage->operators, current->operators, current->operator_count * sizeof (kc_operator_t));
    memcpy (storage->servers, current->servers, current->server_count * sizeof (kc_root_server_t));
    memcpy (storage->witnesses, current->witnesses, current->witness_count * sizeof (kc_witness_t));
    *spec = (kc_root_spec_t) {
        .directory = current->directory, .previous = current->digest,
        .version = current->version + 1, .created = current->created, .expires = current->expires,
        .operators = storage->operators, .operator_count = current->operator_count,
        .threshold_register = current->threshold_register,
        .threshold_revoke = current->threshold_revoke, .threshold_root = current->threshold_root,
        .servers = storage->servers, .server_count = current->server_count,
        .witnesses = storage->witnesses, .witness_count = current->witness_count,
        .witness_threshold = current->witness_threshold, .format = KC_ROOT_FORMAT
    };
}

//  Appends one line to text (kept NUL-terminated, cut at capacity).
static void KC_PRINTF (3, 4)
s_line (char *text, size_t capacity, const char *format, ...)
{
    size_t used = strlen (text);
    if (used + 1 >= capacity) {
        return;
    }
    va_list args;
    va_start (args, format);
    vsnprintf (text + used, capacity - used, format, args);
    va_end (args);
    used = strlen (text);
    if (used + 1 < capacity) {
        text [used] = '\n';
        text [used + 1] = 0;
    }
}

int
kc_root_diff (const kc_root_t *current, const kc_root_t *next, char *text, size_t capacity)
{
    int changes = 0;
    char a [32], b [32], fp [KC_FINGERPRINT_CHARS + 1];
    text [0] = 0;
    s_line (text, capacity, "version: %llu -> %llu", (unsigned long long) current->version,
            (unsigned long long) next->version);
    if (next->format != current->format) {
        s_line (text, capacity, "format: %u -> %u", current->format, next->format);
        changes++;
    }
    if (next->expires != current->expires) {
        s_line (text, capacity, "expires: %s -> %s", kc_time_format (current->expires, a),
                kc_time_format (next->expires, b));
        changes++;
    }
    for (size_t i = 0; i < next->operator_count; i++) {
        if (kc_root_operator_index (current, next->operators [i].key) < 0) {
            s_line (text, capacity, "operator added: %s (%s)", next->operators [i].name,
                    kc_fingerprint (next->operators [i].key, fp));
            changes++;
        }
    }
    for (size_t i = 0; i < current->operator_count; i++) {
        int index = kc_root_operator_index (next, current->operators [i].key);
        if (index < 0) {
            s_line (text, capacity, "operator removed: %s (%s)", current->operators [i].name,
                    kc_fingerprint (current->operators [i].key, fp));
            changes++;
        }
        else
        if (strcmp (current->operators [i].name, next->operators [index].name)) {
            s_line (text, capacity, "operator renamed: %s -> %s (%s)", current->operators [i].name,
                    next->operators [index].name, kc_fingerprint (current->operators [i].key, fp));
            changes++;
        }
    }
    if (next->threshold_register != current->threshold_register
    ||  next->threshold_revoke != current->threshold_revoke
    ||  next->threshold_root != current->threshold_root) {
        s_line (text, capacity, "thresholds: register=%u,revoke=%u,root=%u -> register=%u,revoke=%u,root=%u",
                current->threshold_register, current->threshold_revoke, current->threshold_root,
                next->threshold_register, next->threshold_revoke, next->threshold_root);
        changes++;
    }
    for (size_t i = 0; i < next->server_count; i++) {
        const kc_root_server_t *now = &next->servers [i], *was = NULL;
        for (size_t j = 0; j < current->server_count && !was; j++) {
            was = strcmp (current->servers [j].name, now->name) ? NULL : &current->servers [j];
        }
        if (!was) {
            s_line (text, capacity, "server added: %s (%s)", now->name, kc_fingerprint (now->server_key, fp));
            changes++;
            continue;
        }
        if (memcmp (was->server_key, now->server_key, KC_KEY_BYTES)) {
            s_line (text, capacity, "server %s: CURVE key %s -> %s", now->name,
                    kc_fingerprint (was->server_key, fp), kc_fingerprint (now->server_key, a));
            changes++;
        }
        if (memcmp (was->head_key, now->head_key, KC_KEY_BYTES)) {
            s_line (text, capacity, "server %s: head key %s -> %s", now->name,
                    kc_fingerprint (was->head_key, fp), kc_fingerprint (now->head_key, a));
            changes++;
        }
        for (int e = 0; e < KC_ENDPOINTS; e++) {
            if (strcmp (was->endpoints [e], now->endpoints [e])) {
                s_line (text, capacity, "server %s: %s endpoint %.80s -> %.80s", now->name,
                        s_endpoint_names [e], was->endpoints [e], now->endpoints [e]);
                changes++;
            }
        }
    }
    for (size_t j = 0; j < current->server_count; j++) {
        bool kept = false;
        for (size_t i = 0; i < next->server_count; i++) {
            kept |= strcmp (current->servers [j].name, next->servers [i].name) == 0;
        }
        if (!kept) {
            s_line (text, capacity, "server removed: %s", current->servers [j].name);
            changes++;
        }
    }
    if (next->witness_count != current->witness_count
    ||  next->witness_threshold != current->witness_threshold
    ||  memcmp (next->witnesses, current->witnesses, next->witness_count * sizeof (kc_witness_t))) {
        s_line (text, capacity, "witnesses: %zu, threshold %u -> %zu, threshold %u",
                current->witness_count, current->witness_threshold, next->witness_count,
                next->witness_threshold);
        changes++;
    }
    return changes;
}

size_t
kc_root_signature_count (const kc_root_t *self)
{
    return self->signature_count;
}

kc_signature_t
kc_root_signature (const kc_root_t *self, size_t index)
{
    kc_signature_t signature = { self->signatures [index].key, self->signatures [index].signature };
    return signature;
}

void
kc_root_test (bool verbose)
{
    char raft [64];
    assert (kc_root_raft_address ("tcp://10.0.0.1:5552", raft, sizeof raft) == 0 && KC_STREQ (raft, "10.0.0.1:5553"));
    assert (kc_root_raft_address ("tcp://[::1]:7", raft, sizeof raft) == 0 && KC_STREQ (raft, "[::1]:8"));
    assert (kc_root_raft_address ("ipc:///tmp/x.submit", raft, sizeof raft) == -1);
    assert (kc_root_raft_address ("tcp://host:65535", raft, sizeof raft) == -1);
    assert (kc_root_raft_address ("tcp://:5552", raft, sizeof raft) == -1);
    if (verbose) {
        printf (" * kc_root: ");
    }
    kc_why_t why;
    uint8_t seed [32] = { 0 };
    kc_signer_t *signers [3];
    kc_operator_t operators [3];
    const char *names [] = { "alice", "bob", "carol" };
    for (int i = 0; i < 3; i++) {
        seed [0] = (uint8_t) (i + 1);
        signers [i] = kc_signer_new_from_seed (seed, names [i], "keyclone-operator");
        memcpy (operators [i].key, kc_signer_public_key (signers [i]), 32);
        snprintf (operators [i].name, sizeof operators [i].name, "%s", names [i]);
    }
    uint8_t head [32], server [32];
    memset (head, 0x11, 32);
    memset (server, 0x22, 32);
    kc_root_spec_t spec = {
        .version = 1, .created = 1000, .expires = 2000, .operators = operators,
        .operator_count = 3, .threshold_register = 1, .threshold_revoke = 1,
        .threshold_root = 2, .head_key = head, .server_key = server,
        .endpoints = { "tcp://127.0.0.1:5550", "tcp://127.0.0.1:5551", "tcp://127.0.0.1:5552" }
    };
    kc_root_t *root = kc_root_new (&spec, &why);
    assert (root);
    //  Genesis: directory id is the digest
    assert (memcmp (kc_root_directory (root), kc_root_digest (root), 32) == 0);
    assert (kc_root_verify (root, 1500, &why) == -1);
    assert (strstr (why.text, "signature threshold 2 not met (0 valid)"));
    kc_root_sign (root, signers [0]);
    kc_root_sign (root, signers [0]);       //  signing twice replaces, counts once
    assert (kc_root_signature_count (root) == 1);
    assert (kc_root_verify (root, 1500, &why) == -1);
    assert (strstr (why.text, "threshold 2 not met (1 valid)"));
    kc_root_sign (root, signers [2]);
    assert (kc_root_verify (root, 1500, &why) == 0);
    assert (kc_root_verify (root, 2000, &why) == -1 && strstr (why.text, "expired"));

    //  Decode round trip, canonical, every truncation and one extension fail
    size_t size;
    const uint8_t *data = kc_root_data (root, &size);
    kc_root_t *copy = kc_root_decode (data, size, &why);
    assert (copy && kc_root_verify (copy, 1500, &why) == 0);
    assert (memcmp (kc_root_directory (copy), kc_root_directory (root), 32) == 0);
    assert (KC_STREQ (kc_root_endpoint (copy, KC_ENDPOINT_UPDATES), "tcp://127.0.0.1:5551"));
    kc_root_destroy (&copy);
    for (size_t cut = 0; cut < size; cut++) {
        assert (kc_root_decode (data, cut, &why) == NULL);
    }
    uint8_t *longer = malloc (size + 1);
    memcpy (longer, data, size);
    longer [size] = 0;
    assert (kc_root_decode (longer, size + 1, &why) == NULL && strstr (why.text, "trailing"));
    //  A flipped body bit breaks the signatures, not the parser
    longer [60] ^= 1;                      //  expires 2000 -> 2001
    copy = kc_root_decode (longer, size, &why);
    assert (copy && kc_root_verify (copy, 1500, &why) == -1 && strstr (why.text, "bad signature"));
    kc_root_destroy (&copy);
    free (longer);

    //  A signature from a stranger is refused by name
    seed [0] = 9;
    kc_signer_t *stranger = kc_signer_new_from_seed (seed, "mallory", "keyclone-operator");
    kc_root_t *forged = kc_root_new (&spec, &why);
    kc_root_sign (forged, stranger);
    kc_root_sign (forged, signers [0]);
    assert (kc_root_verify (forged, 1500, &why) == -1 && strstr (why.text, "not an operator"));
    kc_root_destroy (&forged);

    //  Successor: needs 2 of old and 2 of new
    kc_operator_t next_ops [2] = { operators [0], operators [1] };
    kc_root_spec_t next_spec = spec;
    next_spec.version = 2;
    next_spec.directory = kc_root_directory (root);
    next_spec.previous = kc_root_digest (root);
    next_spec.operators = next_ops;
    next_spec.operator_count = 2;
    next_spec.expires = 3000;
    kc_root_t *next = kc_root_new (&next_spec, &why);
    assert (next);
    kc_root_sign (next, signers [0]);
    kc_root_sign (next, signers [2]);       //  2 old, but only 1 new
    assert (kc_root_verify_successor (root, next, 1500, &why) == -1);
    assert (strstr (why.text, "new operators"));
    kc_root_sign (next, signers [1]);
    assert (kc_root_verify_successor (root, next, 1500, &why) == 0);
    assert (kc_root_verify_successor (next, root, 1500, &why) == -1);
    char diff [1024];
    assert (kc_root_diff (root, next, diff, sizeof diff) == 2);
    assert (strstr (diff, "version: 1 -> 2\n") && strstr (diff, "operator removed: carol"));
    assert (strstr (diff, "expires: "));

    //  Signed only by the new operators (bob and alice are both, carol is
    //  old only): a root that only new operators signed is refused
    kc_operator_t fresh_ops [1] = { operators [1] };
    kc_root_storage_t storage;
    kc_root_spec_t only_spec;
    kc_root_successor_spec (root, &only_spec, &storage);
    only_spec.operators = fresh_ops;
    only_spec.operator_count = 1;
    only_spec.threshold_register = only_spec.threshold_revoke = only_spec.threshold_root = 1;
    kc_root_t *only_new = kc_root_new (&only_spec, &why);
    assert (only_new && kc_root_format (only_new) == KC_ROOT_FORMAT);
    kc_root_sign (only_new, signers [1]);
    assert (kc_root_verify_successor (root, only_new, 1500, &why) == -1);
    assert (strstr (why.text, "old operators"));
    //  ... and one that only the old operators signed
    kc_root_destroy (&only_new);
    only_new = kc_root_new (&only_spec, &why);
    kc_root_sign (only_new, signers [0]);
    kc_root_sign (only_new, signers [2]);
    assert (kc_root_verify_successor (root, only_new, 1500, &why) == -1);
    assert (strstr (why.text, "new operators"));
    kc_root_sign (only_new, signers [1]);
    assert (kc_root_verify_successor (root, only_new, 1500, &why) == 0);
    assert (kc_root_diff (root, only_new, diff, sizeof diff) == 3);
    assert (strstr (diff, "thresholds: register=1,revoke=1,root=2 -> register=1,revoke=1,root=1"));
    //  A version jump, a root created before its predecessor, a downgrade
    kc_root_spec_t jump_spec;
    kc_root_successor_spec (root, &jump_spec, &storage);
    jump_spec.version = 3;
    kc_root_t *jump = kc_root_new (&jump_spec, &why);
    kc_root_sign (jump, signers [0]);
    kc_root_sign (jump, signers [1]);
    assert (kc_root_verify_successor (root, jump, 1500, &why) == -1 && strstr (why.text, "cannot follow v1"));
    kc_root_destroy (&jump);
    kc_root_successor_spec (root, &jump_spec, &storage);
    jump_spec.created = 999;
    jump = kc_root_new (&jump_spec, &why);
    kc_root_sign (jump, signers [0]);
    kc_root_sign (jump, signers [1]);
    assert (kc_root_verify_successor (root, jump, 1500, &why) == -1 && strstr (why.text, "created before"));
    kc_root_destroy (&jump);
    kc_root_successor_spec (only_new, &jump_spec, &storage);
    jump_spec.format = 1;
    jump = kc_root_new (&jump_spec, &why);
    assert (jump);
    kc_root_sign (jump, signers [1]);
    assert (kc_root_verify_successor (only_new, jump, 1500, &why) == -1 && strstr (why.text, "older"));
    kc_root_destroy (&jump);
    kc_root_destroy (&only_new);
    assert (kc_root_is_root (data, size) && !kc_root_is_root (data, 3) && !kc_root_is_root ((const uint8_t *) "KCBT", 4));
    //  Following a log: the successor is taken, an older root skipped, a
    //  root that does not follow refused with current unchanged
    kc_root_t *followed = kc_root_dup (root);
    size_t next_size;
    const uint8_t *next_data = kc_root_data (next, &next_size);
    assert (kc_root_follow (&followed, next_data, next_size, &why) == 0 && kc_root_version (followed) == 2);
    assert (kc_root_follow (&followed, data, size, &why) == 0 && kc_root_version (followed) == 2);
    kc_root_destroy (&followed);
    followed = kc_root_dup (root);
    kc_root_successor_spec (root, &jump_spec, &storage);
    jump_spec.expires = 2500;
    kc_root_t *weak = kc_root_new (&jump_spec, &why);
    kc_root_sign (weak, signers [1]);       //  one of the two old signatures needed
    size_t weak_size;
    const uint8_t *weak_data = kc_root_data (weak, &weak_size);
    assert (kc_root_follow (&followed, weak_data, weak_size, &why) == -1 && strstr (why.text, "threshold"));
    assert (kc_root_version (followed) == 1 && kc_root_expires (followed) == 2000);
    assert (kc_root_follow (&followed, weak_data, 10, &why) == -1 && kc_root_version (followed) == 1);
    kc_root_destroy (&weak);
    kc_root_destroy (&followed);

    //  Format 2 rules: servers by unique name, witnesses within threshold,
    //  format 1 holds one server and no witnesses
    kc_root_server_t servers [2];
    memset (servers, 0, sizeof servers);
    for (int i = 0; i < 2; i++) {
        snprintf (servers [i].name, sizeof servers [i].name, "kc-%d", i + 1);
        memset (servers [i].server_key, 0x30 + i, 32);
        memset (servers [i].head_key, 0x40 + i, 32);
        for (int e = 0; e < KC_ENDPOINTS; e++) {
            snprintf (servers [i].endpoints [e], sizeof servers [i].endpoints [e], "tcp://h%d:%d", i, e + 1);
        }
    }
    kc_witness_t witness = operators [2];
    kc_root_spec_t two = spec;
    two.servers = servers;
    two.server_count = 2;
    two.witnesses = &witness;
    two.witness_count = 1;
    two.witness_threshold = 1;
    kc_root_t *pair = kc_root_new (&two, &why);
    assert (pair && kc_root_server_count (pair) == 2 && kc_root_witness_count (pair) == 1);
    data = kc_root_data (pair, &size);
    copy = kc_root_decode (data, size, &why);
    assert (copy && KC_STREQ (kc_root_server (copy, 1)->name, "kc-2"));
    assert (memcmp (kc_root_server_key (copy), servers [0].server_key, 32) == 0);
    kc_root_destroy (&copy);
    for (size_t cut = 0; cut < size; cut++) {
        assert (kc_root_decode (data, cut, &why) == NULL);
    }
    kc_root_destroy (&pair);
    kc_root_spec_t wrong = two;
    wrong.witness_threshold = 2;
    assert (kc_root_new (&wrong, &why) == NULL && strstr (why.text, "lockout"));
    wrong = two;
    wrong.format = 1;
    assert (kc_root_new (&wrong, &why) == NULL && strstr (why.text, "format 1"));
    kc_root_server_t same [2] = { servers [0], servers [0] };
    wrong = two;
    wrong.servers = same;
    assert (kc_root_new (&wrong, &why) == NULL && strstr (why.text, "twice"));

    //  Spec refusals: thresholds, duplicate operators, endpoints
    kc_root_spec_t bad = spec;
    bad.threshold_root = 4;
    assert (kc_root_new (&bad, &why) == NULL && strstr (why.text, "thresholds"));
    kc_operator_t dup [2] = { operators [0], operators [0] };
    bad = spec;
    bad.operators = dup;
    bad.operator_count = 2;
    bad.threshold_root = 1;
    assert (kc_root_new (&bad, &why) == NULL && strstr (why.text, "twice"));
    bad = spec;
    bad.endpoints [1] = "not an endpoint";
    assert (kc_root_new (&bad, &why) == NULL && strstr (why.text, "updates endpoint"));
    bad = spec;
    bad.expires = 1000;
    assert (kc_root_new (&bad, &why) == NULL);

    kc_root_destroy (&next);
    kc_root_destroy (&root);
    kc_signer_destroy (&stranger);
    for (int i = 0; i < 3; i++) {
        kc_signer_destroy (&signers [i]);
    }
    if (verbose) {
        printf ("OK\n");
    }
}
