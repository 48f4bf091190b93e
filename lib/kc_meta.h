/*  =========================================================================
    kc_meta - ZMTP metadata: the property list carried by CurveZMQ INITIATE
    and READY (and by NULL READY and ZAP replies).

    Encoding (ZeroMQ RFC 23/26): zero or more properties, each
        u8 name size (1..255)   name ([A-Za-z0-9-_.+])
        u32 value size (big-endian, 0..2^31-1)   value (opaque bytes)
    Names compare case-insensitively (RFC 26); a block naming one property
    twice is refused. Decoding is a pure function with named limits; every
    value is an exact-size heap copy, so nothing is sized from a field on the
    stack (the CVE-2019-13132 class). Properties keep their order, so a
    decoded block re-encodes to exactly its input.
    =========================================================================
*/
#ifndef KC_META_H_INCLUDED
#define KC_META_H_INCLUDED

#include "kc_util.h"
#include "kc_wire.h"

#define KC_META_NAME_MAX        255         //  bytes of a property name
#define KC_META_PROPERTIES_MAX  64          //  properties in one block
#define KC_META_BYTES_MAX       65536       //  encoded size of one block
#define KC_META_VALUE_MAX       (KC_META_BYTES_MAX - 6)     //  one value, in bytes

typedef struct _kc_meta_t kc_meta_t;

//  Makes an empty property list.
kc_meta_t *
    kc_meta_new (void);

//  Destroys the list and its copies of names and values. Nulls *self_p.
void
    kc_meta_destroy (kc_meta_t **self_p);

//  Sets property name to size bytes of value (copied), replacing a property
//  of the same name (any case) in place. Refuses an invalid name or a change
//  that would break a limit. Returns 0, or -1 with a reason.
int
    kc_meta_set (kc_meta_t *self, const char *name, const void *value, size_t size,
                 kc_why_t *why) KC_WUR;

//  Returns the value of property name (any case) and its size, or NULL. The
//  value is owned by the list and followed by a NUL that is not part of it,
//  so a text value can be used as a C string.
const uint8_t *
    kc_meta_get (const kc_meta_t *self, const char *name, size_t *size);

//  Number of properties.
size_t
    kc_meta_count (const kc_meta_t *self);

//  The name of the index-th property (as it was set or received), or NULL
//  past the end; owned by the list.
const char *
    kc_meta_name (const kc_meta_t *self, size_t index);

//  The value of the index-th property, or NULL past the end; owned by the
//  list (NUL-terminated like kc_meta_get).
const uint8_t *
    kc_meta_value (const kc_meta_t *self, size_t index, size_t *size);

//  Size in bytes of the encoding (at most KC_META_BYTES_MAX).
size_t
    kc_meta_encoded_size (const kc_meta_t *self);

//  Appends the encoding to writer.
void
    kc_meta_encode (const kc_meta_t *self, kc_writer_t *writer);

//  Decodes exactly size bytes at data (nothing may follow the last
//  property). Returns a new list, or NULL with a reason.
kc_meta_t *
    kc_meta_decode (const uint8_t *data, size_t size, kc_why_t *why);

//  True if name is a valid property name (1..255 of [A-Za-z0-9-_.+]).
bool
    kc_meta_name_valid (const char *name, size_t size);

//  Self test of this module.
void
    kc_meta_test (bool verbose);

#endif
