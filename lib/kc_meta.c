/*  =========================================================================
    kc_meta - ZMTP metadata property lists: encoding, strict decoding.
    =========================================================================
*/
#include "kc_meta.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char *name;                         //  malloc, NUL-terminated
    size_t name_size;
    uint8_t *value;                     //  malloc, value_size + 1 (NUL)
    size_t value_size;
} s_property_t;

struct _kc_meta_t {
    s_property_t properties [KC_META_PROPERTIES_MAX];
    size_t count;
    size_t encoded_size;                //  sum of 5 + name + value
};

static void *
s_alloc (size_t size)
{
    void *memory = malloc (size ? size : 1);
    if (!memory) {
        fprintf (stderr, "kc_meta: out of memory\n");
        abort ();
    }
    return memory;
}

//  An exact-size copy with a NUL after it.
static void *
s_copy (const void *data, size_t size)
{
    uint8_t *copy = s_alloc (size + 1);
    if (size) {
        memcpy (copy, data, size);
    }
    copy [size] = 0;
    return copy;
}

kc_meta_t *
kc_meta_new (void)
{
    kc_meta_t *self = calloc (1, sizeof *self);
    if (!self) {
        fprintf (stderr, "kc_meta: out of memory\n");
        abort ();
    }
    return self;
}

void
kc_meta_destroy (kc_meta_t **self_p)
{
    if (self_p && *self_p) {
        kc_meta_t *self = *self_p;
        for (size_t i = 0; i < self->count; i++) {
            free (self->properties [i].name);
            free (self->properties [i].value);
        }
        free (self);
        *self_p = NULL;
    }
}

bool
kc_meta_name_valid (const char *name, size_t size)
{
    if (size == 0 || size > KC_META_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < size; i++) {
        char c = name [i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
               || c == '-' || c == '_' || c == '.' || c == '+';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static s_property_t *
s_find (const kc_meta_t *self, const char *name, size_t size)
{
    for (size_t i = 0; i < self->count; i++) {
        const s_property_t *property = &self->properties [i];
        if (property->name_size == size && strncasecmp (property->name, name, size) == 0) {
            return (s_property_t *) property;
        }
    }
    return NULL;
}

int
kc_meta_set (kc_meta_t *self, const char *name, const void *value, size_t size, kc_why_t *why)
{
    assert (self);
    assert (name);
    assert (value || size == 0);
    size_t name_size = strlen (name);
    if (!kc_meta_name_valid (name, name_size)) {
        return kc_why (why, "invalid property name '%.64s'", name);
    }
    if (size > KC_META_VALUE_MAX) {
        return kc_why (why, "property '%s': %zu-byte value exceeds %d bytes",
                       name, size, KC_META_VALUE_MAX);
    }
    s_property_t *property = s_find (self, name, name_size);
    size_t encoded = self->encoded_size + 5 + name_size + size;
    if (property) {
        encoded -= 5 + property->name_size + property->value_size;
    }
    if (encoded > KC_META_BYTES_MAX) {
        return kc_why (why, "property '%s': metadata would exceed %d bytes",
                       name, KC_META_BYTES_MAX);
    }
    if (!property) {
        if (self->count == KC_META_PROPERTIES_MAX) {
            return kc_why (why, "property '%s': more than %d properties",
                           name, KC_META_PROPERTIES_MAX);
        }
        property = &self->properties [self->count++];
        property->name = s_copy (name, name_size);
        property->name_size = name_size;
    }
    else {
        free (property->value);
    }
    property->value = s_copy (value, size);
    property->value_size = size;
    self->encoded_size = encoded;
    return 0;
}

const uint8_t *
kc_meta_get (const kc_meta_t *self, const char *name, size_t *size)
{
    assert (self);
    const s_property_t *property = s_find (self, name, strlen (name));
    if (!property) {
        return NULL;
    }
    if (size) {
        *size = property->value_size;
    }
    return property->value;
}

size_t
kc_meta_count (const kc_meta_t *self)
{
    assert (self);
    return self->count;
}

const char *
kc_meta_name (const kc_meta_t *self, size_t index)
{
    assert (self);
    return index < self->count ? self->properties [index].name : NULL;
}

const uint8_t *
kc_meta_value (const kc_meta_t *self, size_t index, size_t *size)
{
    assert (self);
    if (index >= self->count) {
        return NULL;
    }
    if (size) {
        *size = self->properties [index].value_size;
    }
    return self->properties [index].value;
}

size_t
kc_meta_encoded_size (const kc_meta_t *self)
{
    assert (self);
    return self->encoded_size;
}

void
kc_meta_encode (const kc_meta_t *self, kc_writer_t *writer)
{
    assert (self);
    for (size_t i = 0; i < self->count; i++) {
        const s_property_t *property = &self->properties [i];
        kc_write_u8 (writer, (uint8_t) property->name_size);
        kc_write_bytes (writer, property->name, property->name_size);
        kc_write_u32 (writer, (uint32_t) property->value_size);
        kc_write_bytes (writer, property->value, property->value_size);
    }
}

//  Reads one property; returns 0 or -1 with a reason.
static int
s_decode_property (kc_meta_t *self, kc_reader_t *reader, kc_why_t *why)
{
    size_t index = self->count;
    uint8_t name_size;
    if (kc_read_u8 (reader, &name_size)) {
        return kc_why (why, "property %zu: truncated", index + 1);
    }
    const char *name = (const char *) kc_read_bytes (reader, name_size);
    if (!name) {
        return kc_why (why, "property %zu: name runs past the end", index + 1);
    }
    if (!kc_meta_name_valid (name, name_size)) {
        return kc_why (why, "property %zu: invalid name", index + 1);
    }
    if (s_find (self, name, name_size)) {
        return kc_why (why, "property %zu: '%.*s' appears twice", index + 1,
                       (int) name_size, name);
    }
    uint32_t value_size;
    if (kc_read_u32 (reader, &value_size)) {
        return kc_why (why, "property '%.*s': truncated value size", (int) name_size, name);
    }
    if (value_size > INT32_MAX || value_size > kc_reader_left (reader)) {
        return kc_why (why, "property '%.*s': value size %u exceeds the %zu bytes left",
                       (int) name_size, name, value_size, kc_reader_left (reader));
    }
    const uint8_t *value = kc_read_bytes (reader, value_size);
    if (self->count == KC_META_PROPERTIES_MAX) {
        return kc_why (why, "more than %d properties", KC_META_PROPERTIES_MAX);
    }
    s_property_t *property = &self->properties [self->count++];
    property->name = s_copy (name, name_size);
    property->name_size = name_size;
    property->value = s_copy (value, value_size);
    property->value_size = value_size;
    self->encoded_size += 5 + name_size + value_size;
    return 0;
}

kc_meta_t *
kc_meta_decode (const uint8_t *data, size_t size, kc_why_t *why)
{
    if (size > KC_META_BYTES_MAX) {
        kc_why (why, "metadata of %zu bytes exceeds %d", size, KC_META_BYTES_MAX);
        return NULL;
    }
    kc_meta_t *self = kc_meta_new ();
    kc_reader_t reader;
    kc_reader_init (&reader, data, size);
    while (kc_reader_left (&reader)) {
        if (s_decode_property (self, &reader, why)) {
            kc_why_prefix (why, "metadata");
            kc_meta_destroy (&self);
            break;
        }
    }
    return self;
}

//  --- Self test ------------------------------------------------------------

static void
s_expect_refused (const uint8_t *data, size_t size, const char *contains)
{
    kc_why_t why;
    kc_why_clear (&why);
    kc_meta_t *meta = kc_meta_decode (data, size, &why);
    assert (meta == NULL);
    if (!strstr (why.text, contains)) {
        fprintf (stderr, "kc_meta: reason '%s' lacks '%s'\n", why.text, contains);
        assert (false);
    }
}

void
kc_meta_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_meta: ");
    }
    kc_why_t why;
    kc_meta_t *meta = kc_meta_new ();
    assert (kc_meta_set (meta, "Socket-Type", "DEALER", 6, &why) == 0);
    assert (kc_meta_set (meta, "Identity", "", 0, &why) == 0);
    assert (kc_meta_set (meta, "X-Keyclone-Head", "\x00\x01\x02", 3, &why) == 0);
    assert (kc_meta_set (meta, "socket-type", "ROUTER", 6, &why) == 0);    //  replaces
    assert (kc_meta_count (meta) == 3);
    assert (KC_STREQ (kc_meta_name (meta, 0), "Socket-Type"));
    size_t size = 0;
    assert (KC_STREQ ((const char *) kc_meta_get (meta, "SOCKET-TYPE", &size), "ROUTER"));
    assert (size == 6);
    assert (kc_meta_get (meta, "Identity", &size) && size == 0);
    assert (kc_meta_get (meta, "Missing", &size) == NULL);
    assert (kc_meta_name (meta, 3) == NULL && kc_meta_value (meta, 3, &size) == NULL);
    assert (kc_meta_set (meta, "", "x", 1, &why) == -1);
    assert (kc_meta_set (meta, "bad name", "x", 1, &why) == -1);
    assert (kc_meta_set (meta, "X-Big", "x", KC_META_VALUE_MAX + 1, &why) == -1);

    //  Round trip: same bytes, same order
    kc_writer_t w;
    kc_writer_init (&w);
    kc_meta_encode (meta, &w);
    assert (w.size == kc_meta_encoded_size (meta));
    static const uint8_t expected [] =
        "\x0bSocket-Type\0\0\0\x06ROUTER" "\x08Identity\0\0\0\0"
        "\x0fX-Keyclone-Head\0\0\0\x03\x00\x01\x02";
    assert (w.size == sizeof expected - 1 && memcmp (w.data, expected, w.size) == 0);
    kc_meta_t *copy = kc_meta_decode (w.data, w.size, &why);
    assert (copy && kc_meta_count (copy) == 3);
    const uint8_t *head = kc_meta_get (copy, "x-keyclone-head", &size);
    assert (head && size == 3 && head [2] == 2);
    kc_writer_t again;
    kc_writer_init (&again);
    kc_meta_encode (copy, &again);
    assert (again.size == w.size && memcmp (again.data, w.data, w.size) == 0);
    kc_writer_free (&again);
    kc_meta_destroy (&copy);

    //  Every truncation is refused, never read past
    for (size_t cut = 1; cut < w.size; cut++) {
        uint8_t *exact = s_copy (w.data, cut);
        copy = kc_meta_decode (exact, cut, &why);
        //  A cut at a property boundary is a valid shorter list
        assert (copy == NULL || cut == 22 || cut == 35);
        kc_meta_destroy (&copy);
        free (exact);
    }
    //  Empty is valid
    copy = kc_meta_decode (NULL, 0, &why);
    assert (copy && kc_meta_count (copy) == 0);
    kc_meta_destroy (&copy);

    //  Refusals
    s_expect_refused ((const uint8_t *) "\x00\0\0\0\0", 5, "invalid name");
    s_expect_refused ((const uint8_t *) "\x01 \0\0\0\0", 6, "invalid name");
    s_expect_refused ((const uint8_t *) "\x05" "ab", 3, "name runs past");
    s_expect_refused ((const uint8_t *) "\x01" "a\0\0", 4, "truncated value size");
    //  A value size far beyond the data (CVE-2019-13132 class) and beyond 2^31-1
    s_expect_refused ((const uint8_t *) "\x01" "a\x7f\xff\xff\xff" "xy", 8, "exceeds");
    s_expect_refused ((const uint8_t *) "\x01" "a\xff\xff\xff\xff" "xy", 8, "exceeds");
    s_expect_refused ((const uint8_t *) "\x01" "a\0\0\0\x01", 6, "exceeds");
    //  Trailing garbage: a lone byte after a complete property
    s_expect_refused ((const uint8_t *) "\x01" "a\0\0\0\x00" "\x01", 7, "runs past");
    //  Duplicates in any case
    s_expect_refused ((const uint8_t *) "\x01" "a\0\0\0\0" "\x01" "A\0\0\0\0", 12, "twice");

    //  Limits: count and total size, the limit accepted, one more refused
    kc_meta_t *many = kc_meta_new ();
    char name [16];
    for (int i = 0; i < KC_META_PROPERTIES_MAX; i++) {
        snprintf (name, sizeof name, "p%d", i);
        assert (kc_meta_set (many, name, "", 0, &why) == 0);
    }
    assert (kc_meta_set (many, "one-more", "", 0, &why) == -1);
    kc_writer_free (&w);
    kc_meta_encode (many, &w);
    copy = kc_meta_decode (w.data, w.size, &why);
    assert (copy && kc_meta_count (copy) == KC_META_PROPERTIES_MAX);
    kc_meta_destroy (&copy);
    kc_write_bytes (&w, "\x01z\0\0\0\0", 6);
    s_expect_refused (w.data, w.size, "more than");
    kc_meta_destroy (&many);
    kc_writer_free (&w);

    uint8_t *big = calloc (1, KC_META_BYTES_MAX + 1);
    assert (big);
    kc_meta_t *full = kc_meta_new ();
    assert (kc_meta_set (full, "X", big, KC_META_VALUE_MAX, &why) == 0);
    assert (kc_meta_encoded_size (full) == KC_META_BYTES_MAX);
    assert (kc_meta_set (full, "Y", "", 0, &why) == -1);
    kc_meta_encode (full, &w);
    copy = kc_meta_decode (w.data, w.size, &why);
    assert (copy && kc_meta_count (copy) == 1);
    kc_meta_destroy (&copy);
    kc_meta_destroy (&full);
    s_expect_refused (big, KC_META_BYTES_MAX + 1, "exceeds");
    free (big);
    kc_writer_free (&w);
    kc_meta_destroy (&meta);
    if (verbose) {
        printf ("OK\n");
    }
}
