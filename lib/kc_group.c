/*  =========================================================================
    kc_group - a cluster's Raft entry: a group of accepted log entries.
    =========================================================================
*/
#include "kc_group.h"
#include "kc_wire.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define S_HEADER_BYTES  (4 + 8 + KC_HASH_BYTES + 8 + 2)

int
kc_group_decode (const uint8_t *data, size_t size, kc_group_t *group, kc_why_t *why)
{
    memset (group, 0, sizeof *group);
    if (size > KC_GROUP_BYTES_MAX) {
        return kc_why (why, "group: %zu bytes, over the limit of %u", size, KC_GROUP_BYTES_MAX);
    }
    kc_reader_t reader;
    kc_reader_init (&reader, data, size);
    const uint8_t *magic = kc_read_bytes (&reader, 4);
    if (!magic || memcmp (magic, KC_GROUP_MAGIC, 4)) {
        return kc_why (why, "group: not a keyclone Raft entry (no \"%s\")", KC_GROUP_MAGIC);
    }
    uint16_t count = 0;
    if (kc_read_u64 (&reader, &group->base_seq)
    ||  !(group->base_chain = kc_read_bytes (&reader, KC_HASH_BYTES))
    ||  kc_read_u64 (&reader, &group->time_ms)
    ||  kc_read_u16 (&reader, &count)) {
        return kc_why (why, "group: truncated header");
    }
    if (count == 0 || count > KC_GROUP_ITEMS_MAX) {
        return kc_why (why, "group: %u entries (1 to %d allowed)", count, KC_GROUP_ITEMS_MAX);
    }
    if (group->base_seq > UINT64_MAX - count) {
        return kc_why (why, "group: sequence overflow");
    }
    for (size_t i = 0; i < count; i++) {
        kc_group_item_t *item = &group->items [i];
        uint8_t flags = 0;
        uint32_t item_size = 0;
        if (kc_read_u64 (&reader, &item->seq)
        ||  !(item->chain = kc_read_bytes (&reader, KC_HASH_BYTES))
        ||  kc_read_u8 (&reader, &flags)) {
            return kc_why (why, "group: entry %zu truncated", i + 1);
        }
        if (item->seq != group->base_seq + 1 + i) {
            return kc_why (why, "group: entry %zu has seq %llu, expected %llu", i + 1,
                           (unsigned long long) item->seq, (unsigned long long) (group->base_seq + 1 + i));
        }
        if (flags & ~KC_GROUP_FLAG_SUBMITTER) {
            return kc_why (why, "group: entry %zu has unknown flags 0x%02x", i + 1, flags);
        }
        if ((flags & KC_GROUP_FLAG_SUBMITTER)
        &&  !(item->submitter = kc_read_bytes (&reader, KC_KEY_BYTES))) {
            return kc_why (why, "group: entry %zu truncated", i + 1);
        }
        if (kc_read_u32 (&reader, &item_size)) {
            return kc_why (why, "group: entry %zu truncated", i + 1);
        }
        if (item_size == 0 || item_size > KC_GROUP_ITEM_MAX) {
            return kc_why (why, "group: entry %zu is %u bytes (1 to %u allowed)", i + 1, item_size,
                           KC_GROUP_ITEM_MAX);
        }
        if (!(item->data = kc_read_bytes (&reader, item_size))) {
            return kc_why (why, "group: entry %zu truncated", i + 1);
        }
        item->size = item_size;
    }
    if (kc_reader_left (&reader)) {
        return kc_why (why, "group: %zu bytes after the last entry", kc_reader_left (&reader));
    }
    group->count = count;
    return 0;
}

uint8_t *
kc_group_encode (const kc_group_t *group, size_t *size, kc_why_t *why)
{
    if (group->count == 0 || group->count > KC_GROUP_ITEMS_MAX) {
        kc_why (why, "group: %zu entries (1 to %d allowed)", group->count, KC_GROUP_ITEMS_MAX);
        return NULL;
    }
    size_t total = S_HEADER_BYTES;
    for (size_t i = 0; i < group->count; i++) {
        const kc_group_item_t *item = &group->items [i];
        assert (item->seq == group->base_seq + 1 + i);
        if (item->size == 0 || item->size > KC_GROUP_ITEM_MAX) {
            kc_why (why, "group: an entry of %zu bytes (1 to %u allowed)", item->size, KC_GROUP_ITEM_MAX);
            return NULL;
        }
        total += 8 + KC_HASH_BYTES + 1 + (item->submitter ? KC_KEY_BYTES : 0) + 4 + item->size;
        if (total > KC_GROUP_BYTES_MAX) {
            kc_why (why, "group: over the limit of %u bytes", KC_GROUP_BYTES_MAX);
            return NULL;
        }
    }
    kc_writer_t writer;
    kc_writer_init (&writer);
    kc_write_bytes (&writer, KC_GROUP_MAGIC, 4);
    kc_write_u64 (&writer, group->base_seq);
    kc_write_bytes (&writer, group->base_chain, KC_HASH_BYTES);
    kc_write_u64 (&writer, group->time_ms);
    kc_write_u16 (&writer, (uint16_t) group->count);
    for (size_t i = 0; i < group->count; i++) {
        const kc_group_item_t *item = &group->items [i];
        kc_write_u64 (&writer, item->seq);
        kc_write_bytes (&writer, item->chain, KC_HASH_BYTES);
        kc_write_u8 (&writer, item->submitter ? KC_GROUP_FLAG_SUBMITTER : 0);
        if (item->submitter) {
            kc_write_bytes (&writer, item->submitter, KC_KEY_BYTES);
        }
        kc_write_u32 (&writer, (uint32_t) item->size);
        kc_write_bytes (&writer, item->data, item->size);
    }
    assert (writer.size == total);
    return kc_writer_take (&writer, size);
}

void
kc_group_test (bool verbose)
{
    (void) verbose;
    uint8_t chain [3][KC_HASH_BYTES], submitter [KC_KEY_BYTES];
    memset (chain, 0xc1, sizeof chain);
    memset (submitter, 0x5b, sizeof submitter);
    kc_group_t group = { .base_seq = 41, .base_chain = chain [0], .time_ms = 1700000000123ULL, .count = 2 };
    group.items [0] = (kc_group_item_t) { .seq = 42, .chain = chain [1], .submitter = submitter,
                                          .data = (const uint8_t *) "first", .size = 5 };
    group.items [1] = (kc_group_item_t) { .seq = 43, .chain = chain [2], .data = (const uint8_t *) "2", .size = 1 };
    kc_why_t why;
    size_t size;
    uint8_t *data = kc_group_encode (&group, &size, &why);
    assert (data && size == S_HEADER_BYTES + (8 + 32 + 1 + 32 + 4 + 5) + (8 + 32 + 1 + 4 + 1));
    kc_group_t *back = malloc (sizeof *back);
    assert (back);
    assert (kc_group_decode (data, size, back, &why) == 0);
    assert (back->base_seq == 41 && back->time_ms == group.time_ms && back->count == 2);
    assert (memcmp (back->base_chain, chain [0], 32) == 0);
    assert (back->items [0].seq == 42 && memcmp (back->items [0].submitter, submitter, 32) == 0);
    assert (back->items [0].size == 5 && memcmp (back->items [0].data, "first", 5) == 0);
    assert (back->items [1].seq == 43 && !back->items [1].submitter && back->items [1].size == 1);
    //  Every truncation fails, and so does a byte more
    for (size_t cut = 0; cut < size; cut++) {
        assert (kc_group_decode (data, cut, back, &why) == -1);
    }
    uint8_t *longer = malloc (size + 1);
    assert (longer);
    memcpy (longer, data, size);
    longer [size] = 0;
    assert (kc_group_decode (longer, size + 1, back, &why) == -1 && strstr (why.text, "after the last"));
    //  A seq out of order, unknown flags, an empty group
    memcpy (longer, data, size);
    longer [S_HEADER_BYTES + 7] = 43;
    assert (kc_group_decode (longer, size, back, &why) == -1 && strstr (why.text, "expected 42"));
    memcpy (longer, data, size);
    longer [S_HEADER_BYTES + 40] = 0x03;
    assert (kc_group_decode (longer, size, back, &why) == -1 && strstr (why.text, "unknown flags"));
    memcpy (longer, data, size);
    longer [S_HEADER_BYTES - 1] = 0;
    assert (kc_group_decode (longer, size, back, &why) == -1 && strstr (why.text, "0 entries"));
    memcpy (longer, data, size);
    longer [0] = 'X';
    assert (kc_group_decode (longer, size, back, &why) == -1 && strstr (why.text, "not a keyclone"));
    free (longer);
    free (back);
    free (data);
    group.count = 0;
    assert (kc_group_encode (&group, &size, &why) == NULL);
}
