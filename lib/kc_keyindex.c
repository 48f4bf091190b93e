/*  =========================================================================
    kc_keyindex - per-key state of a run of batches, checked as they come.
    =========================================================================
*/
#include "kc_keyindex.h"
#include "kc_bucket.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_BITS      12                  //  4,096 tables, chosen by the hash
#define TABLES          (1u << TABLE_BITS)
#define TABLE_INITIAL   16                  //  slots of a table's first allocation
#define PREFETCH_AHEAD  12                  //  slots fetched this many records ahead
#define SMALL_SORT      24                  //  buckets up to this size: insertion sort
#define ENTRIES_MAX     (UINT32_MAX - 1)    //  slot indices are 32 bits
#define NONE            UINT32_MAX

//  The hash's high half places the slot within its table and settles
//  almost every mismatch without touching the entry; a table grows from its
//  own slots (no entry read), in cache, never the whole index at once.
typedef struct {
    uint32_t bits;
    uint32_t index;                         //  entry + 1; 0: empty
} s_slot_t;

typedef struct {
    s_slot_t *slots;
    uint32_t mask;                          //  slots - 1; slots a power of two
    uint32_t count;
    uint32_t pending;                       //  new keys of the batch being checked
} s_table_t;

struct _kc_keyindex_t {
    kc_keyindex_entry_t *entries;           //  one a key, in first-seen order until sorted
    size_t count, capacity;
    size_t revoked;
    s_table_t *tables;                      //  TABLES of them
    uint64_t *hashes;                       //  per record of the batch being applied
    uint32_t *found;
    size_t scratch;
    bool sorted;
    uint64_t mix [3];                       //  random; mix [1] and mix [2] odd
};

kc_keyindex_t *
kc_keyindex_new (void)
{
    kc_keyindex_t *self = calloc (1, sizeof *self);
    assert (self);
    randombytes_buf (self->mix, sizeof self->mix);
    self->mix [1] |= 1;
    self->mix [2] |= 1;
    return self;
}

static void
s_free_tables (kc_keyindex_t *self)
{
    if (self->tables) {
        for (size_t t = 0; t < TABLES; t++) {
            free (self->tables [t].slots);
        }
        free (self->tables);
        self->tables = NULL;
    }
}

void
kc_keyindex_destroy (kc_keyindex_t **self_p)
{
    if (self_p && *self_p) {
        kc_keyindex_t *self = *self_p;
        kc_big_free (self->entries, self->capacity * sizeof *self->entries);
        s_free_tables (self);
        free (self->hashes);
        free (self->found);
        free (self);
        *self_p = NULL;
    }
}

//  Keys are public keys (uniform bytes) that operators signed: a keyed
//  multiply-xorshift of their first 8 bytes spreads them well at a few
//  instructions a key (SipHash cost as much as the rest of a cold sync's
//  checks), and the random key keeps the slots unpredictable. Keys that
//  share 8 bytes share a hash and are told apart by a full compare.
static inline uint64_t
s_hash (const kc_keyindex_t *self, uint64_t tag)
{
    uint64_t value = (tag ^ self->mix [0]) * self->mix [1];
    value ^= value >> 29;
    value *= self->mix [2];
    return value ^ value >> 32;
}

static inline s_table_t *
s_table (const kc_keyindex_t *self, uint64_t hash)
{
    return &self->tables [hash & (TABLES - 1)];
}

//  The entry holding key (or NONE).
static uint32_t
s_find (const kc_keyindex_t *self, uint64_t hash, const uint8_t *key)
{
    const s_table_t *table = s_table (self, hash);
    if (!table->slots) {
        return NONE;
    }
    uint32_t bits = (uint32_t) (hash >> 32), at = bits & table->mask;
    while (table->slots [at].index) {
        if (table->slots [at].bits == bits) {
            uint32_t index = table->slots [at].index - 1;
            if (memcmp (kc_keyindex_key (&self->entries [index]), key, KC_KEY_BYTES) == 0) {
                return index;
            }
        }
        at = (at + 1) & table->mask;
    }
    return NONE;
}

static void
s_place (s_slot_t *slots, uint32_t mask, s_slot_t slot)
{
    uint32_t at = slot.bits & mask;
    while (slots [at].index) {
        at = (at + 1) & mask;
    }
    slots [at] = slot;
}

//  Room in a table for its keys and pending ones, at most half full: grown
//  fourfold from its own slots. -1 when memory runs out (table unchanged).
static int
s_table_room (s_table_t *table)
{
    size_t need = ((size_t) table->count + table->pending) * 2;
    size_t size = table->slots ? (size_t) table->mask + 1 : 0;
    if (need <= size) {
        return 0;
    }
    size_t grown = size ? size : TABLE_INITIAL;
    while (need > grown) {
        grown *= 4;
    }
    if (grown - 1 > UINT32_MAX) {
        return -1;
    }
    s_slot_t *slots = calloc (grown, sizeof *slots);
    if (!slots) {
        return -1;
    }
    for (size_t i = 0; i < size; i++) {
        if (table->slots [i].index) {
            s_place (slots, (uint32_t) (grown - 1), table->slots [i]);
        }
    }
    free (table->slots);
    table->slots = slots;
    table->mask = (uint32_t) (grown - 1);
    return 0;
}

//  Room for a batch of more keys: entries and scratch. -1 when memory runs
//  out (the index is unchanged).
static int
s_reserve (kc_keyindex_t *self, size_t more)
{
    size_t need = self->count + more;
    if (need > ENTRIES_MAX) {
        return -1;
    }
    if (!self->tables && !(self->tables = calloc (TABLES, sizeof (s_table_t)))) {
        return -1;
    }
    if (more > self->scratch) {
        uint64_t *hashes = realloc (self->hashes, more * sizeof (uint64_t));
        if (hashes) {
            self->hashes = hashes;
        }
        uint32_t *found = realloc (self->found, more * sizeof (uint32_t));
        if (found) {
            self->found = found;
        }
        if (!hashes || !found) {
            return -1;
        }
        self->scratch = more;
    }
    if (need > self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 1024;
        while (capacity < need) {
            capacity *= 2;
        }
        kc_keyindex_entry_t *entries = kc_big_grow (self->entries, self->capacity * sizeof *entries,
                                                    capacity * sizeof *entries);
        if (!entries) {
            return -1;
        }
        self->entries = entries;
        self->capacity = capacity;
    }
    return 0;
}

static void
s_set (kc_keyindex_t *self, kc_keyindex_entry_t *entry, const kc_record_t *record, uint64_t seq)
{
    *entry = (kc_keyindex_entry_t) {
        .tag = kc_get_u64 (record->key), .seq = seq, .encoded = record->encoded,
        .size = (uint32_t) record->encoded_size, .status = record->status,
        .name_size = record->name_size,
        .name_bucket = record->name_size ? (uint16_t) kc_bucket_of_name (record->name, record->name_size) : 0
    };
    self->revoked += record->status == KC_STATUS_REVOKED;
}

//  Checks records [0, count) of batch against the index and makes room for
//  the new ones. 0, or -1 with a reason.
static int
s_check (kc_keyindex_t *self, const kc_batch_t *batch, size_t count, kc_why_t *why)
{
    for (size_t i = 0; i < count; i++) {
        if (i + PREFETCH_AHEAD < count) {
            uint64_t ahead = self->hashes [i + PREFETCH_AHEAD];
            const s_table_t *table = s_table (self, ahead);
            if (table->slots) {
                __builtin_prefetch (&table->slots [(uint32_t) (ahead >> 32) & table->mask]);
            }
        }
        const kc_record_t *record = kc_batch_record (batch, i);
        uint32_t index = s_find (self, self->hashes [i], record->key);
        self->found [i] = index;
        const kc_keyindex_entry_t *stored = index == NONE ? NULL : &self->entries [index];
        if (kc_record_check_successor (record, stored ? stored->status : 0,
                                       stored ? kc_get_u64 (stored->encoded + KC_RECORD_AT_VERSION) : 0,
                                       why)) {
            return -1;
        }
        if (index == NONE) {
            s_table_t *table = s_table (self, self->hashes [i]);
            table->pending++;
            if (s_table_room (table)) {
                return kc_why (why, "out of memory indexing %zu more keys", count);
            }
        }
    }
    return 0;
}

int
kc_keyindex_apply (kc_keyindex_t *self, const kc_batch_t *batch, uint64_t seq, kc_why_t *why)
{
    if (self->sorted) {
        return kc_why (why, "the key index was already sorted");
    }
    size_t count = kc_batch_count (batch);
    if (s_reserve (self, count)) {
        return kc_why (why, "out of memory indexing %zu more keys", count);
    }
    for (size_t i = 0; i < count; i++) {
        self->hashes [i] = s_hash (self, kc_get_u64 (kc_batch_record (batch, i)->key));
    }
    //  Check all first (a batch applies whole or not at all); the keys of
    //  one batch are distinct, so records of this batch never meet. The
    //  slots are random reads: fetched ahead, they overlap.
    int rc = s_check (self, batch, count, why);
    for (size_t i = 0; i < count; i++) {
        s_table (self, self->hashes [i])->pending = 0;
    }
    if (rc) {
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const kc_record_t *record = kc_batch_record (batch, i);
        if (self->found [i] != NONE) {
            kc_keyindex_entry_t *entry = &self->entries [self->found [i]];
            self->revoked -= entry->status == KC_STATUS_REVOKED;
            s_set (self, entry, record, seq);
        }
        else {
            s_table_t *table = s_table (self, self->hashes [i]);
            s_place (table->slots, table->mask,
                     (s_slot_t) { (uint32_t) (self->hashes [i] >> 32), (uint32_t) self->count + 1 });
            table->count++;
            s_set (self, &self->entries [self->count++], record, seq);
        }
    }
    return 0;
}

const kc_keyindex_entry_t *
kc_keyindex_find (const kc_keyindex_t *self, const uint8_t key [static KC_KEY_BYTES])
{
    if (self->sorted) {
        return NULL;
    }
    uint32_t index = s_find (self, s_hash (self, kc_get_u64 (key)), key);
    return index == NONE ? NULL : &self->entries [index];
}

size_t
kc_keyindex_size (const kc_keyindex_t *self)
{
    return self->count;
}

size_t
kc_keyindex_revoked (const kc_keyindex_t *self)
{
    return self->revoked;
}

static inline int
s_order (const kc_keyindex_entry_t *x, const kc_keyindex_entry_t *y)
{
    if (x->tag != y->tag) {
        return x->tag < y->tag ? -1 : 1;
    }
    return memcmp (kc_keyindex_key (x), kc_keyindex_key (y), KC_KEY_BYTES);
}

static int
s_compare (const void *a, const void *b)
{
    return s_order (a, b);
}

const kc_keyindex_entry_t *
kc_keyindex_sort (kc_keyindex_t *self, size_t *count)
{
    if (self->sorted) {
        *count = self->count;
        return self->entries;
    }
    //  By the key's first two bytes (the cache's buckets) with a counting
    //  sort, then each bucket on its own (keys are uniform: a few a bucket)
    uint32_t *starts = calloc (KC_BUCKETS + 1, sizeof (uint32_t));
    kc_keyindex_entry_t *sorted = kc_big_alloc (self->count * sizeof *sorted);
    if (!starts || !sorted) {
        free (starts);
        kc_big_free (sorted, self->count * sizeof *sorted);
        *count = 0;
        return NULL;
    }
    for (size_t i = 0; i < self->count; i++) {
        starts [(self->entries [i].tag >> 48) + 1]++;
    }
    for (uint32_t b = 0; b < KC_BUCKETS; b++) {
        starts [b + 1] += starts [b];
    }
    for (size_t i = 0; i < self->count; i++) {
        sorted [starts [self->entries [i].tag >> 48]++] = self->entries [i];
    }
    //  starts [b] is now bucket b's end, which is bucket b + 1's start
    for (uint32_t b = 0, begin = 0; b < KC_BUCKETS; begin = starts [b++]) {
        uint32_t size = starts [b] - begin;
        kc_keyindex_entry_t *run = sorted + begin;
        if (size > SMALL_SORT) {
            qsort (run, size, sizeof *run, s_compare);
            continue;
        }
        for (uint32_t i = 1; i < size; i++) {
            kc_keyindex_entry_t item = run [i];
            uint32_t j = i;
            while (j && s_order (&run [j - 1], &item) > 0) {
                run [j] = run [j - 1];
                j--;
            }
            run [j] = item;
        }
    }
    free (starts);
    kc_big_free (self->entries, self->capacity * sizeof *self->entries);
    s_free_tables (self);
    self->entries = sorted;
    self->capacity = self->count;
    self->sorted = true;
    *count = self->count;
    return self->entries;
}

//  --- Self test -----------------------------------------------------------------

static kc_batch_t *
s_batch (const uint8_t *directory, kc_signer_t *signer, int first, int count, uint64_t version,
         kc_status_t status)
{
    kc_batch_builder_t *builder = kc_batch_builder_new (directory, 1);
    kc_why_t why;
    for (int i = 0; i < count; i++) {
        uint8_t key [32] = { 0 };
        key [0] = (uint8_t) ((first + i) >> 8);
        key [1] = (uint8_t) (first + i);
        key [31] = 1;
        kc_record_spec_t spec = { .key = key, .version = version, .status = status,
                                  .name = status == KC_STATUS_ACTIVE ? "n" : NULL };
        assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    }
    kc_batch_t *batch = kc_batch_builder_finish (builder, &signer, 1, &why);
    kc_batch_builder_destroy (&builder);
    return batch;
}

void
kc_keyindex_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_keyindex: ");
    }
    uint8_t directory [32], seed [32] = { 4 };
    memset (directory, 0xd1, 32);
    kc_signer_t *signer = kc_signer_new_from_seed (seed, "op", "keyclone-operator");
    kc_keyindex_t *index = kc_keyindex_new ();
    kc_why_t why;
    //  3,000 keys: the slots grow (and are rehashed) twice
    kc_batch_t *big = s_batch (directory, signer, 0, 3000, 5, KC_STATUS_ACTIVE);
    assert (kc_keyindex_apply (index, big, 1, &why) == 0 && kc_keyindex_size (index) == 3000);
    //  The same batch again: refused at its first record, nothing recorded
    assert (kc_keyindex_apply (index, big, 2, &why) == -1 && strstr (why.text, "not above"));
    assert (kc_keyindex_size (index) == 3000);
    //  A higher version and new keys together; then a revocation at version 1
    kc_batch_t *newer = s_batch (directory, signer, 2990, 20, 6, KC_STATUS_ACTIVE);
    assert (kc_keyindex_apply (index, newer, 2, &why) == 0 && kc_keyindex_size (index) == 3010);
    kc_batch_t *revoke = s_batch (directory, signer, 2995, 2, 1, KC_STATUS_REVOKED);
    assert (kc_keyindex_apply (index, revoke, 3, &why) == 0);
    assert (kc_keyindex_revoked (index) == 2);
    kc_batch_t *again = s_batch (directory, signer, 2996, 1, 99, KC_STATUS_ACTIVE);
    assert (kc_keyindex_apply (index, again, 4, &why) == -1 && strstr (why.text, "terminal"));
    //  Found as the batches left each key (a grant rotation's check); unknown: NULL
    uint8_t probe [32] = { 0 };
    probe [0] = 2995 >> 8;
    probe [1] = 2995 & 0xff;
    probe [31] = 1;
    const kc_keyindex_entry_t *found = kc_keyindex_find (index, probe);
    assert (found && found->status == KC_STATUS_REVOKED && found->seq == 3);
    probe [1] = 10;
    found = kc_keyindex_find (index, probe);
    assert (found && found->status == KC_STATUS_ACTIVE && found->encoded [KC_RECORD_AT_NAME] == 'n');
    probe [31] = 2;
    assert (kc_keyindex_find (index, probe) == NULL);
    //  Sorted: every key once, in key order, with the record that set it last
    size_t count;
    const kc_keyindex_entry_t *entries = kc_keyindex_sort (index, &count);
    assert (entries && count == 3010 && kc_keyindex_find (index, probe) == NULL);
    for (size_t i = 0; i < count; i++) {
        const uint8_t *key = kc_keyindex_key (&entries [i]);
        int n = key [0] << 8 | key [1];
        assert (n == (int) i);
        assert (entries [i].tag == kc_get_u64 (key));
        uint64_t seq = n >= 2995 && n < 2997 ? 3 : n >= 2990 ? 2 : 1;
        assert (entries [i].seq == seq);
        assert (entries [i].status == (seq == 3 ? KC_STATUS_REVOKED : KC_STATUS_ACTIVE));
        assert (kc_get_u64 (entries [i].encoded + KC_RECORD_AT_VERSION) == (seq == 1 ? 5 : seq == 2 ? 6 : 1));
        assert (entries [i].name_size == (seq == 3 ? 0 : 1));
        assert (entries [i].name_size == 0 || entries [i].name_bucket == kc_bucket_of_name ("n", 1));
    }
    //  Keys sharing their first 8 bytes are told apart, and ordered, by the rest
    kc_keyindex_t *twins = kc_keyindex_new ();
    kc_batch_t *high = s_batch (directory, signer, 7, 1, 1, KC_STATUS_ACTIVE);
    kc_batch_builder_t *builder = kc_batch_builder_new (directory, 1);
    uint8_t key [32] = { 0 };
    key [1] = 7;
    key [31] = 0;               //  same first 8 bytes as high's key, lower last byte
    kc_record_spec_t spec = { .key = key, .version = 1, .status = KC_STATUS_ACTIVE, .name = "t" };
    assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    kc_batch_t *low = kc_batch_builder_finish (builder, &signer, 1, &why);
    kc_batch_builder_destroy (&builder);
    assert (kc_keyindex_apply (twins, high, 1, &why) == 0 && kc_keyindex_apply (twins, low, 2, &why) == 0);
    assert (kc_keyindex_size (twins) == 2);
    entries = kc_keyindex_sort (twins, &count);
    assert (count == 2 && entries [0].seq == 2 && entries [1].seq == 1);
    assert (kc_keyindex_apply (twins, high, 3, &why) == -1 && strstr (why.text, "sorted"));
    kc_keyindex_destroy (&twins);
    kc_keyindex_destroy (&index);
    kc_keyindex_destroy (&index);
    kc_batch_destroy (&big);
    kc_batch_destroy (&newer);
    kc_batch_destroy (&revoke);
    kc_batch_destroy (&again);
    kc_batch_destroy (&high);
    kc_batch_destroy (&low);
    kc_signer_destroy (&signer);
    if (verbose) {
        printf ("OK\n");
    }
}
