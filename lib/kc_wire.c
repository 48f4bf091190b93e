/*  =========================================================================
    kc_wire - bounds-checked big-endian reader and growable writer.
    =========================================================================
*/
#include "kc_wire.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
kc_reader_init (kc_reader_t *self, const uint8_t *data, size_t size)
{
    self->data = data;
    self->size = data ? size : 0;
    self->pos = 0;
    self->failed = false;
}

const uint8_t *
kc_read_bytes (kc_reader_t *self, size_t size)
{
    if (self->failed || size > self->size - self->pos) {
        self->failed = true;
        return NULL;
    }
    const uint8_t *start = self->data + self->pos;
    self->pos += size;
    return start;
}

int
kc_read_u8 (kc_reader_t *self, uint8_t *value)
{
    const uint8_t *p = kc_read_bytes (self, 1);
    if (!p) {
        return -1;
    }
    *value = p [0];
    return 0;
}

int
kc_read_u16 (kc_reader_t *self, uint16_t *value)
{
    const uint8_t *p = kc_read_bytes (self, 2);
    if (!p) {
        return -1;
    }
    *value = (uint16_t) (p [0] << 8 | p [1]);
    return 0;
}

int
kc_read_u32 (kc_reader_t *self, uint32_t *value)
{
    const uint8_t *p = kc_read_bytes (self, 4);
    if (!p) {
        return -1;
    }
    *value = kc_get_u32 (p);
    return 0;
}

int
kc_read_u64 (kc_reader_t *self, uint64_t *value)
{
    const uint8_t *p = kc_read_bytes (self, 8);
    if (!p) {
        return -1;
    }
    *value = kc_get_u64 (p);
    return 0;
}

size_t
kc_reader_left (const kc_reader_t *self)
{
    return self->size - self->pos;
}

void
kc_writer_init (kc_writer_t *self)
{
    self->data = NULL;
    self->size = 0;
    self->capacity = 0;
}

void
kc_writer_free (kc_writer_t *self)
{
    free (self->data);
    kc_writer_init (self);
}

uint8_t *
kc_writer_take (kc_writer_t *self, size_t *size)
{
    uint8_t *data = self->data;
    *size = self->size;
    kc_writer_init (self);
    return data;
}

uint8_t *
kc_write_space (kc_writer_t *self, size_t size)
{
    if (size > self->capacity - self->size) {
        size_t capacity = self->capacity ? self->capacity : 256;
        while (capacity - self->size < size) {
            if (capacity > SIZE_MAX / 2) {
                fprintf (stderr, "kc_wire: buffer too large\n");
                abort ();
            }
            capacity *= 2;
        }
        uint8_t *data = realloc (self->data, capacity);
        if (!data) {
            fprintf (stderr, "kc_wire: out of memory\n");
            abort ();
        }
        self->data = data;
        self->capacity = capacity;
    }
    uint8_t *start = self->data + self->size;
    self->size += size;
    return start;
}

void
kc_write_u8 (kc_writer_t *self, uint8_t value)
{
    *kc_write_space (self, 1) = value;
}

void
kc_write_u16 (kc_writer_t *self, uint16_t value)
{
    uint8_t *p = kc_write_space (self, 2);
    p [0] = (uint8_t) (value >> 8);
    p [1] = (uint8_t) value;
}

void
kc_write_u32 (kc_writer_t *self, uint32_t value)
{
    kc_put_u32 (kc_write_space (self, 4), value);
}

void
kc_write_u64 (kc_writer_t *self, uint64_t value)
{
    kc_put_u64 (kc_write_space (self, 8), value);
}

void
kc_write_bytes (kc_writer_t *self, const void *data, size_t size)
{
    if (size) {
        memcpy (kc_write_space (self, size), data, size);
    }
}

void
kc_wire_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_wire: ");
    }
    kc_writer_t w;
    kc_writer_init (&w);
    kc_write_u8 (&w, 0xab);
    kc_write_u16 (&w, 0x0102);
    kc_write_u32 (&w, 0x03040506);
    kc_write_u64 (&w, 0x0708090a0b0c0d0eULL);
    kc_write_bytes (&w, "xyz", 3);
    for (int i = 0; i < 1000; i++) {
        kc_write_u8 (&w, (uint8_t) i);
    }
    assert (w.size == 1 + 2 + 4 + 8 + 3 + 1000);
    assert (w.data [1] == 1 && w.data [2] == 2 && w.data [14] == 0x0e);

    kc_reader_t r;
    kc_reader_init (&r, w.data, w.size);
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    assert (kc_read_u8 (&r, &u8) == 0 && u8 == 0xab);
    assert (kc_read_u16 (&r, &u16) == 0 && u16 == 0x0102);
    assert (kc_read_u32 (&r, &u32) == 0 && u32 == 0x03040506);
    assert (kc_read_u64 (&r, &u64) == 0 && u64 == 0x0708090a0b0c0d0eULL);
    const uint8_t *p = kc_read_bytes (&r, 3);
    assert (p && memcmp (p, "xyz", 3) == 0);
    assert (kc_reader_left (&r) == 1000);
    assert (kc_read_bytes (&r, 1001) == NULL);
    assert (r.failed);
    //  Once failed, even a read that would fit fails
    assert (kc_read_u8 (&r, &u8) == -1);

    //  Huge sizes must not wrap the bounds check
    kc_reader_init (&r, w.data, w.size);
    assert (kc_read_bytes (&r, SIZE_MAX) == NULL);
    kc_reader_init (&r, NULL, 5);
    assert (kc_read_u8 (&r, &u8) == -1);

    size_t size;
    uint8_t *data = kc_writer_take (&w, &size);
    assert (size == 1018 && w.data == NULL);
    free (data);
    kc_writer_free (&w);
    if (verbose) {
        printf ("OK\n");
    }
}
