/*  =========================================================================
    kc_wire - the one bounds-checked reader and the one growable writer that
    every canonical encoding in keyclone goes through.

    Integers are big-endian. The reader never reads past its end: a short read
    sets an error and every later read fails too, so a parser can read a whole
    structure and check once. The writer aborts on out-of-memory (czmq rule 1).
    =========================================================================
*/
#ifndef KC_WIRE_H_INCLUDED
#define KC_WIRE_H_INCLUDED

#include "kc_util.h"

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    bool failed;                //  a read went past the end
} kc_reader_t;

typedef struct {
    uint8_t *data;              //  owned, malloc'd
    size_t size;
    size_t capacity;
} kc_writer_t;

//  Starts reading size bytes at data (not copied, must outlive the reader).
void
    kc_reader_init (kc_reader_t *self, const uint8_t *data, size_t size);

//  Each read returns 0, or -1 when fewer bytes remain than it needs.
int
    kc_read_u8 (kc_reader_t *self, uint8_t *value) KC_WUR;
int
    kc_read_u16 (kc_reader_t *self, uint16_t *value) KC_WUR;
int
    kc_read_u32 (kc_reader_t *self, uint32_t *value) KC_WUR;
int
    kc_read_u64 (kc_reader_t *self, uint64_t *value) KC_WUR;

//  Returns a pointer to the next size bytes and advances, or NULL.
const uint8_t *
    kc_read_bytes (kc_reader_t *self, size_t size);

//  Bytes not yet read.
size_t
    kc_reader_left (const kc_reader_t *self);

//  Starts an empty writer.
void
    kc_writer_init (kc_writer_t *self);

//  Frees the writer's buffer.
void
    kc_writer_free (kc_writer_t *self);

//  Gives the buffer to the caller (who frees it) and empties the writer.
uint8_t *
    kc_writer_take (kc_writer_t *self, size_t *size);

void
    kc_write_u8 (kc_writer_t *self, uint8_t value);
void
    kc_write_u16 (kc_writer_t *self, uint16_t value);
void
    kc_write_u32 (kc_writer_t *self, uint32_t value);
void
    kc_write_u64 (kc_writer_t *self, uint64_t value);
void
    kc_write_bytes (kc_writer_t *self, const void *data, size_t size);

//  Appends size bytes left for the caller to fill; returns where they start
//  (valid until the writer's next change).
uint8_t *
    kc_write_space (kc_writer_t *self, size_t size);

//  Big-endian helpers on raw memory.
static inline uint64_t
kc_get_u64 (const uint8_t *p)
{
    return (uint64_t) p [0] << 56 | (uint64_t) p [1] << 48 | (uint64_t) p [2] << 40
         | (uint64_t) p [3] << 32 | (uint64_t) p [4] << 24 | (uint64_t) p [5] << 16
         | (uint64_t) p [6] << 8 | (uint64_t) p [7];
}

static inline void
kc_put_u64 (uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p [i] = (uint8_t) v;
        v >>= 8;
    }
}

static inline uint32_t
kc_get_u32 (const uint8_t *p)
{
    return (uint32_t) p [0] << 24 | (uint32_t) p [1] << 16 | (uint32_t) p [2] << 8 | p [3];
}

static inline void
kc_put_u32 (uint8_t *p, uint32_t v)
{
    p [0] = (uint8_t) (v >> 24);
    p [1] = (uint8_t) (v >> 16);
    p [2] = (uint8_t) (v >> 8);
    p [3] = (uint8_t) v;
}

//  Self test of this module.
void
    kc_wire_test (bool verbose);

#endif
