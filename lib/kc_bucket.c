/*  =========================================================================
    kc_bucket - key and name bucket blobs of the agent cache.
    =========================================================================
*/
#include "kc_bucket.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_OFFSET (2 + 8 + 1 + KC_HASH_BYTES)  //  size, seq, format, directory

uint32_t
kc_bucket_of_name (const char *name, size_t size)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < size; i++) {
        hash ^= (uint8_t) name [i];
        hash *= 0x100000001b3ULL;
    }
    return (uint32_t) (hash & 0xffff);
}

int
kc_bucket_next (const uint8_t *data, size_t size, size_t *offset, kc_bucket_entry_t *entry,
                kc_why_t *why)
{
    if (*offset == size) {
        return 0;
    }
    kc_reader_t reader;
    kc_reader_init (&reader, data + *offset, size - *offset);
    uint16_t length;
    if (kc_read_u16 (&reader, &length) || length < KC_BUCKET_ENTRY_MIN
    ||  length > KC_BUCKET_ENTRY_MAX || length > kc_reader_left (&reader)) {
        return kc_why (why, "bucket entry at %zu has a bad size", *offset);
    }
    kc_reader_t inner;
    kc_reader_init (&inner, data + *offset + 2, length);
    if (kc_read_u64 (&inner, &entry->seq) || entry->seq == 0 || entry->seq > INT64_MAX) {
        return kc_why (why, "bucket entry at %zu has a bad sequence number", *offset);
    }
    if (kc_record_decode (&inner, &entry->record, why) || kc_reader_left (&inner)) {
        return kc_why_prefix (why, "bucket entry at %zu", *offset);
    }
    entry->offset = *offset;
    entry->size = 2 + (size_t) length;
    *offset += entry->size;
    return 1;
}

int
kc_bucket_find (const uint8_t *data, size_t size, const uint8_t key [static KC_KEY_BYTES],
                kc_bucket_entry_t *entry, kc_why_t *why)
{
    size_t offset = 0;
    while (offset < size) {
        //  Compare the key in place; decode only the match
        if (size - offset < KEY_OFFSET + KC_KEY_BYTES) {
            return kc_why (why, "bucket truncated at %zu", offset);
        }
        int order = memcmp (data + offset + KEY_OFFSET, key, KC_KEY_BYTES);
        size_t at = offset;
        if (order == 0) {
            return kc_bucket_next (data, size, &at, entry, why) == 1 ? 1 : -1;
        }
        if (order > 0) {
            return 0;                   //  sorted: passed where it would be
        }
        size_t length = (size_t) (data [offset] << 8 | data [offset + 1]);
        if (length < KC_BUCKET_ENTRY_MIN || length > size - offset - 2) {
            return kc_why (why, "bucket entry at %zu has a bad size", offset);
        }
        offset += 2 + length;
    }
    return 0;
}

int
kc_bucket_validate (const uint8_t *data, size_t size, uint32_t bucket,
                    const uint8_t directory [static KC_HASH_BYTES], kc_why_t *why)
{
    if (size > KC_BUCKET_BYTES_MAX) {
        return kc_why (why, "bucket %u is %zu bytes", bucket, size);
    }
    size_t offset = 0;
    const uint8_t *previous = NULL;
    kc_bucket_entry_t entry;
    int rc;
    while ((rc = kc_bucket_next (data, size, &offset, &entry, why)) == 1) {
        if (kc_bucket_of_key (entry.record.key) != bucket) {
            return kc_why (why, "bucket %u holds a key of bucket %u", bucket,
                           kc_bucket_of_key (entry.record.key));
        }
        if (memcmp (entry.record.directory, directory, KC_HASH_BYTES)) {
            return kc_why (why, "bucket %u holds a record of another directory", bucket);
        }
        if (previous && memcmp (previous, entry.record.key, KC_KEY_BYTES) >= 0) {
            return kc_why (why, "bucket %u keys are not in ascending order", bucket);
        }
        previous = entry.record.key;
    }
    return rc;
}

void
kc_bucket_write (kc_writer_t *out, uint64_t seq, const kc_record_t *record)
{
    kc_bucket_write_encoded (out, seq, record->encoded, record->encoded_size);
}

void
kc_bucket_write_encoded (kc_writer_t *out, uint64_t seq, const uint8_t *encoded, size_t size)
{
    kc_write_u16 (out, (uint16_t) (8 + size));
    kc_write_u64 (out, seq);
    kc_write_bytes (out, encoded, size);
}

int
kc_bucket_put (kc_writer_t *out, const uint8_t *data, size_t size, uint64_t seq,
               const kc_record_t *record, kc_why_t *why)
{
    size_t offset = 0;
    kc_bucket_entry_t entry;
    bool written = false;
    int rc;
    while ((rc = kc_bucket_next (data, size, &offset, &entry, why)) == 1) {
        int order = memcmp (entry.record.key, record->key, KC_KEY_BYTES);
        if (!written && order >= 0) {
            kc_bucket_write (out, seq, record);
            written = true;
        }
        if (order != 0) {
            kc_write_bytes (out, data + entry.offset, entry.size);
        }
    }
    if (rc < 0) {
        return -1;
    }
    if (!written) {
        kc_bucket_write (out, seq, record);
    }
    return 0;
}

int
kc_names_next (const uint8_t *data, size_t size, size_t *offset, const char **name,
               size_t *name_size, const uint8_t **key, kc_why_t *why)
{
    if (*offset == size) {
        return 0;
    }
    kc_reader_t reader;
    kc_reader_init (&reader, data + *offset, size - *offset);
    uint8_t length;
    if (kc_read_u8 (&reader, &length) || length == 0) {
        return kc_why (why, "name entry at %zu is malformed", *offset);
    }
    *name = (const char *) kc_read_bytes (&reader, length);
    *key = kc_read_bytes (&reader, KC_KEY_BYTES);
    if (!*key || !kc_record_name_valid (*name, length)) {
        return kc_why (why, "name entry at %zu is malformed", *offset);
    }
    *name_size = length;
    *offset += reader.pos;
    return 1;
}

void
kc_names_write (kc_writer_t *out, const char *name, size_t name_size,
                const uint8_t key [static KC_KEY_BYTES])
{
    kc_write_u8 (out, (uint8_t) name_size);
    kc_write_bytes (out, name, name_size);
    kc_write_bytes (out, key, KC_KEY_BYTES);
}

int
kc_names_update (kc_writer_t *out, const uint8_t *data, size_t size, const char *name,
                 size_t name_size, const uint8_t key [static KC_KEY_BYTES], bool add,
                 kc_why_t *why)
{
    size_t offset = 0, entry_size;
    const char *entry_name;
    const uint8_t *entry_key;
    int rc;
    while ((rc = kc_names_next (data, size, &offset, &entry_name, &entry_size, &entry_key, why)) == 1) {
        bool same = entry_size == name_size && memcmp (entry_name, name, name_size) == 0
                 && memcmp (entry_key, key, KC_KEY_BYTES) == 0;
        if (!same) {
            kc_names_write (out, entry_name, entry_size, entry_key);
        }
    }
    if (rc < 0) {
        return -1;
    }
    if (add) {
        kc_names_write (out, name, name_size, key);
    }
    return 0;
}

void
kc_bucket_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_bucket: ");
    }
    kc_why_t why;
    uint8_t directory [32], keys [3][32];
    memset (directory, 0xd1, 32);
    kc_writer_t records [3];
    kc_record_t views [3];
    for (int i = 0; i < 3; i++) {
        memset (keys [i], 0, 32);
        keys [i][0] = 0x12;
        keys [i][1] = 0x34;
        keys [i][2] = (uint8_t) (10 * (i + 1));
        kc_record_spec_t spec = { .directory = directory, .key = keys [i], .version = 1,
                                  .status = KC_STATUS_ACTIVE, .name = "n" };
        kc_writer_init (&records [i]);
        assert (kc_record_encode (&spec, &records [i], &why) == 0);
        kc_reader_t r;
        kc_reader_init (&r, records [i].data, records [i].size);
        assert (kc_record_decode (&r, &views [i], &why) == 0);
    }
    assert (kc_bucket_of_key (keys [0]) == 0x1234);
    //  Put in the order 2, 0, 1 and replace 1: result is sorted and unique
    kc_writer_t a, b;
    kc_writer_init (&a);
    kc_writer_init (&b);
    assert (kc_bucket_put (&a, NULL, 0, 5, &views [2], &why) == 0);
    assert (kc_bucket_put (&b, a.data, a.size, 6, &views [0], &why) == 0);
    kc_writer_free (&a);
    assert (kc_bucket_put (&a, b.data, b.size, 7, &views [1], &why) == 0);
    kc_writer_free (&b);
    assert (kc_bucket_put (&b, a.data, a.size, 8, &views [1], &why) == 0);
    assert (kc_bucket_validate (b.data, b.size, 0x1234, directory, &why) == 0);
    assert (kc_bucket_validate (b.data, b.size, 0x1235, directory, &why) == -1);
    size_t offset = 0;
    kc_bucket_entry_t entry;
    int count = 0;
    while (kc_bucket_next (b.data, b.size, &offset, &entry, &why) == 1) {
        assert (memcmp (entry.record.key, keys [count], 32) == 0);
        count++;
    }
    assert (count == 3);
    assert (kc_bucket_find (b.data, b.size, keys [1], &entry, &why) == 1 && entry.seq == 8);
    uint8_t absent [32];
    memcpy (absent, keys [1], 32);
    absent [3] = 1;
    assert (kc_bucket_find (b.data, b.size, absent, &entry, &why) == 0);
    //  Every truncation is caught, never read past
    for (size_t cut = 1; cut < b.size; cut++) {
        kc_why_t ignored;
        int rc = kc_bucket_validate (b.data, cut, 0x1234, directory, &ignored);
        rc |= kc_bucket_find (b.data, cut, keys [2], &entry, &ignored);
        (void) rc;
    }
    assert (kc_bucket_validate (b.data, b.size - 1, 0x1234, directory, &why) == -1);

    //  Names: add, add, add twice, remove
    kc_writer_t n1, n2;
    kc_writer_init (&n1);
    kc_writer_init (&n2);
    assert (kc_names_update (&n1, NULL, 0, "web", 3, keys [1], true, &why) == 0);
    assert (kc_names_update (&n2, n1.data, n1.size, "db", 2, keys [2], true, &why) == 0);
    kc_writer_free (&n1);
    assert (kc_names_update (&n1, n2.data, n2.size, "web", 3, keys [0], true, &why) == 0);
    kc_writer_free (&n2);
    kc_writer_free (&n2);
    assert (kc_names_update (&n2, n1.data, n1.size, "web", 3, keys [0], true, &why) == 0);
    kc_writer_free (&n1);
    assert (kc_names_update (&n1, n2.data, n2.size, "web", 3, keys [1], false, &why) == 0);
    offset = 0;
    const char *name;
    size_t name_size;
    const uint8_t *key;
    int seen_db = 0, seen_web = 0;
    while (kc_names_next (n1.data, n1.size, &offset, &name, &name_size, &key, &why) == 1) {
        seen_db += name_size == 2 && memcmp (key, keys [2], 32) == 0;
        seen_web += name_size == 3 && memcmp (key, keys [0], 32) == 0;
        assert (memcmp (key, keys [1], 32) != 0);
    }
    assert (seen_db == 1 && seen_web == 1);
    assert (kc_bucket_of_name ("web", 3) == kc_bucket_of_name ("web", 3));
    kc_writer_free (&n1);
    kc_writer_free (&n2);
    kc_writer_free (&a);
    kc_writer_free (&b);
    for (int i = 0; i < 3; i++) {
        kc_writer_free (&records [i]);
    }
    if (verbose) {
        printf ("OK\n");
    }
}
