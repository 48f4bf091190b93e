/*  =========================================================================
    kc_bucket - the blobs the agent cache stores (docs/agent.md section 4):
    key buckets and name buckets. Pure, bounds-checked functions over bytes.

    A key bucket holds every key whose first two bytes are its number
    (0..65535), sorted by key, each entry being

        u16 size | u64 seq | record (docs/records.md section 3)

    where size counts the seq and record, and seq is the log sequence of the
    batch that set it. The record is stored exactly as operators signed it.

    A name bucket holds (name, key) pairs for every named key whose name
    hashes (FNV-1a 64, low 16 bits) to its number, in no particular order
    (a lookup scans the whole bucket), each pair at most once:

        u8 name size | name | key (32 bytes)

    Grouping keys into 65,536 rows lets a cold sync write a million keys as
    65,536 rows instead of a million, the difference between 0.2 s and 2 s.
    =========================================================================
*/
#ifndef KC_BUCKET_H_INCLUDED
#define KC_BUCKET_H_INCLUDED

#include "kc_util.h"
#include "kc_record.h"
#include "kc_wire.h"

#define KC_BUCKETS              65536
#define KC_BUCKET_ENTRY_MIN     (8 + KC_RECORD_FIXED_BYTES)
#define KC_BUCKET_ENTRY_MAX     (8 + KC_RECORD_BYTES_MAX)
#define KC_BUCKET_BYTES_MAX     (64 * 1024 * 1024)     //  one bucket blob
#define KC_NAME_ENTRY_MIN       (1 + 1 + KC_KEY_BYTES)

typedef struct {
    uint64_t seq;
    kc_record_t record;                 //  view into the bucket bytes
    size_t offset;                      //  where the entry starts
    size_t size;                        //  whole entry, with its u16 size
} kc_bucket_entry_t;

//  The bucket of a key and of a name.
static inline uint32_t
kc_bucket_of_key (const uint8_t *key)
{
    return (uint32_t) key [0] << 8 | key [1];
}

uint32_t
    kc_bucket_of_name (const char *name, size_t size);

//  Reads the entry at *offset and advances *offset. Returns 1 and the entry,
//  0 at the end, -1 with a reason if the bytes are malformed.
int
    kc_bucket_next (const uint8_t *data, size_t size, size_t *offset,
                    kc_bucket_entry_t *entry, kc_why_t *why);

//  Finds key in a bucket. Returns 1 (found, entry set), 0 (absent), -1.
int
    kc_bucket_find (const uint8_t *data, size_t size, const uint8_t key [static KC_KEY_BYTES],
                    kc_bucket_entry_t *entry, kc_why_t *why);

//  Checks a whole key bucket: every entry well-formed, every key in this
//  bucket, keys strictly ascending, every record of this directory. 0 or -1.
int
    kc_bucket_validate (const uint8_t *data, size_t size, uint32_t bucket,
                        const uint8_t directory [static KC_HASH_BYTES], kc_why_t *why) KC_WUR;

//  Appends one entry to out (callers append in key order).
void
    kc_bucket_write (kc_writer_t *out, uint64_t seq, const kc_record_t *record);

//  The same from a validated record encoding of size bytes.
void
    kc_bucket_write_encoded (kc_writer_t *out, uint64_t seq, const uint8_t *encoded, size_t size);

//  Writes to out the bucket data with record set for its key (replacing the
//  old entry or inserting in order). 0 or -1 if data is malformed.
int
    kc_bucket_put (kc_writer_t *out, const uint8_t *data, size_t size, uint64_t seq,
                   const kc_record_t *record, kc_why_t *why) KC_WUR;

//  --- Name buckets -------------------------------------------------------------

//  Reads the name entry at *offset. Returns 1, 0 at the end, or -1.
int
    kc_names_next (const uint8_t *data, size_t size, size_t *offset, const char **name,
                   size_t *name_size, const uint8_t **key, kc_why_t *why);

//  Appends one (name, key) entry to out (callers append in order).
void
    kc_names_write (kc_writer_t *out, const char *name, size_t name_size,
                    const uint8_t key [static KC_KEY_BYTES]);

//  Writes to out the name bucket with (name, key) added (add, appended if
//  absent) or removed. 0 or -1 if data is malformed.
int
    kc_names_update (kc_writer_t *out, const uint8_t *data, size_t size, const char *name,
                     size_t name_size, const uint8_t key [static KC_KEY_BYTES], bool add,
                     kc_why_t *why) KC_WUR;

//  Self test of this module.
void
    kc_bucket_test (bool verbose);

#endif
