/*  =========================================================================
    kc_keyindex - the state a run of verified batches gives each key, in
    memory: a cold sync checks every record against the records before it
    as it arrives (docs/protocol.md 7.2), not only at END, and builds the
    new cache file from the index's final state at END.

    Without it a hostile server can replay one valid, chained batch a
    thousand times in a sync from 0 and make the agent hold every copy until
    END; with it the second copy is refused ("version not above the
    stored version"), so what a sync holds is bounded by the genuine log.

    One 32-byte entry a key (the key's first 8 bytes, the seq, a view of
    the record's encoding and where its name goes in the cache), found through an open-addressing table of
    8-byte slots keyed by a random mix of those 8 bytes. The index points
    into the batches' bytes: the caller keeps them alive as long as the
    index (the kc_batch_t objects themselves may go).
    =========================================================================
*/
#ifndef KC_KEYINDEX_H_INCLUDED
#define KC_KEYINDEX_H_INCLUDED

#include "kc_util.h"
#include "kc_batch.h"

typedef struct _kc_keyindex_t kc_keyindex_t;

typedef struct {
    uint64_t tag;                       //  the key's first 8 bytes, big-endian: orders as the key
    uint64_t seq;                       //  the batch that set the record
    const uint8_t *encoded;             //  the record's encoding (validated), in the caller's bytes
    uint32_t size;                      //  of the encoding
    uint8_t status;                     //  kc_status_t
    uint8_t name_size;                  //  0: no name
    uint16_t name_bucket;               //  kc_bucket_of_name, when named
} kc_keyindex_entry_t;

//  A new, empty index.
kc_keyindex_t *
    kc_keyindex_new (void);

//  Destroys the index (not the batches). Nulls *self_p.
void
    kc_keyindex_destroy (kc_keyindex_t **self_p);

//  Checks every record of batch against the index (revocation terminal,
//  registrations' versions increasing) and, if all pass, records them as
//  set by log sequence seq. Returns 0, or -1 with a reason and nothing
//  recorded (also when memory runs out, and after kc_keyindex_sort: never
//  aborts).
int
    kc_keyindex_apply (kc_keyindex_t *self, const kc_batch_t *batch, uint64_t seq,
                       kc_why_t *why) KC_WUR;

//  The entry of key as the batches applied so far left it, or NULL when
//  the index has none (or is sorted). Owned by the index; valid until the
//  next apply.
const kc_keyindex_entry_t *
    kc_keyindex_find (const kc_keyindex_t *self, const uint8_t key [static KC_KEY_BYTES]);

//  How many keys the index holds, and how many of them are revoked.
size_t
    kc_keyindex_size (const kc_keyindex_t *self);
size_t
    kc_keyindex_revoked (const kc_keyindex_t *self);

//  Ends the run: returns every key's final entry in key order (*count of
//  them), owned by the index. The index takes no more batches after this.
const kc_keyindex_entry_t *
    kc_keyindex_sort (kc_keyindex_t *self, size_t *count);

//  The key of an entry (32 bytes, inside its encoding).
static inline const uint8_t *
kc_keyindex_key (const kc_keyindex_entry_t *entry)
{
    return entry->encoded + KC_RECORD_AT_KEY;
}

//  Self test of this module.
void
    kc_keyindex_test (bool verbose);

#endif
