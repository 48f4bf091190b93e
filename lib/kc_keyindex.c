/*  =========================================================================
    kc_keyindex - per-key state of a run of batches, checked as they come.
    =========================================================================
*/
#include "kc_keyindex.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#define INITIAL_SLOTS   1024                //  a power of two

typedef struct {
    uint64_t tag;                           //  the key's first 8 bytes, compared first
    const kc_record_t *record;              //  NULL: empty
} s_slot_t;

struct _kc_keyindex_t {
    s_slot_t *slots;
    size_t capacity;                        //  a power of two
    size_t count;
    uint64_t mix [3];                       //  random; mix [1] odd
};

kc_keyindex_t *
kc_keyindex_new (void)
{
    kc_keyindex_t *self = calloc (1, sizeof *self);
    assert (self);
    randombytes_buf (self->mix, sizeof self->mix);
    self->mix [1] |= 1;
    return self;
}

void
kc_keyindex_destroy (kc_keyindex_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->slots);
        free (*self_p);
        *self_p = NULL;
    }
}

//  Keys are public keys (uniform bytes) that operators signed: a keyed
//  multiply-xorshift of two of their words spreads them well at a few
//  instructions a key (SipHash cost as much as the rest of a cold sync's
//  checks), and the random key keeps the slots unpredictable.
static size_t
s_slot (const kc_keyindex_t *self, const uint8_t *key)
{
    uint64_t a, b;
    memcpy (&a, key, 8);
    memcpy (&b, key + 24, 8);
    uint64_t value = (a ^ self->mix [0]) * self->mix [1] ^ (b ^ self->mix [2]);
    value ^= value >> 29;
    value *= self->mix [1];
    value ^= value >> 32;
    size_t slot = (size_t) value & (self->capacity - 1);
    //  The tag settles almost every mismatch without touching the record
    while (self->slots [slot].record
    &&  (self->slots [slot].tag != a || memcmp (self->slots [slot].record->key, key, KC_KEY_BYTES))) {
        slot = (slot + 1) & (self->capacity - 1);
    }
    return slot;
}

//  Room for more keys: the table stays at most half full. -1 when memory
//  runs out.
static int
s_reserve (kc_keyindex_t *self, size_t more)
{
    if (self->capacity && (self->count + more) * 2 <= self->capacity) {
        return 0;
    }
    //  Grown four times at once: fewer rehashes of a large directory
    size_t capacity = self->capacity ? self->capacity : INITIAL_SLOTS;
    while ((self->count + more) * 2 > capacity) {
        capacity *= 4;
    }
    s_slot_t *old = self->slots;
    size_t old_capacity = self->capacity;
    self->slots = calloc (capacity, sizeof *self->slots);
    if (!self->slots) {
        self->slots = old;
        return -1;
    }
    self->capacity = capacity;
    for (size_t i = 0; i < old_capacity; i++) {
        if (old [i].record) {
            self->slots [s_slot (self, old [i].record->key)] = old [i];
        }
    }
    free (old);
    return 0;
}

int
kc_keyindex_apply (kc_keyindex_t *self, const kc_batch_t *batch, kc_why_t *why)
{
    size_t count = kc_batch_count (batch);
    if (s_reserve (self, count)) {
        return kc_why (why, "out of memory indexing %zu more keys", count);
    }
    //  Check all first (a batch applies whole or not at all); the keys of
    //  one batch are distinct, so records of this batch never meet
    for (size_t i = 0; i < count; i++) {
        const kc_record_t *record = kc_batch_record (batch, i);
        const kc_record_t *stored = self->slots [s_slot (self, record->key)].record;
        if (kc_record_check_successor (record, stored ? stored->status : 0,
                                       stored ? stored->version : 0, why)) {
            return -1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        const kc_record_t *record = kc_batch_record (batch, i);
        size_t slot = s_slot (self, record->key);
        self->count += self->slots [slot].record == NULL;
        memcpy (&self->slots [slot].tag, record->key, 8);
        self->slots [slot].record = record;
    }
    return 0;
}

size_t
kc_keyindex_size (const kc_keyindex_t *self)
{
    return self->count;
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
    kc_batch_t *big = s_batch (directory, signer, 0, 3000, 5, KC_STATUS_ACTIVE);
    assert (kc_keyindex_apply (index, big, &why) == 0 && kc_keyindex_size (index) == 3000);
    //  The same batch again: refused at its first record, nothing recorded
    assert (kc_keyindex_apply (index, big, &why) == -1 && strstr (why.text, "not above"));
    assert (kc_keyindex_size (index) == 3000);
    //  A higher version and new keys together; then a revocation at version 1
    kc_batch_t *newer = s_batch (directory, signer, 2990, 20, 6, KC_STATUS_ACTIVE);
    assert (kc_keyindex_apply (index, newer, &why) == 0 && kc_keyindex_size (index) == 3010);
    kc_batch_t *revoke = s_batch (directory, signer, 2995, 2, 1, KC_STATUS_REVOKED);
    assert (kc_keyindex_apply (index, revoke, &why) == 0);
    kc_batch_t *again = s_batch (directory, signer, 2996, 1, 99, KC_STATUS_ACTIVE);
    assert (kc_keyindex_apply (index, again, &why) == -1 && strstr (why.text, "terminal"));
    kc_keyindex_destroy (&index);
    kc_keyindex_destroy (&index);
    kc_batch_destroy (&big);
    kc_batch_destroy (&newer);
    kc_batch_destroy (&revoke);
    kc_batch_destroy (&again);
    kc_signer_destroy (&signer);
    if (verbose) {
        printf ("OK\n");
    }
}
