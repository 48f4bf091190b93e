/*  =========================================================================
    kc_record - one node key record: the canonical v1 encoding (docs/records.md
    section 3), its validation, and a zero-copy decoded view.

    A record says "in directory D, CURVE key K belongs to node N, at version V,
    with status active or revoked, valid from not-before to not-after, with
    these tags". Records are never signed alone: they travel in batches
    (kc_batch), whose signatures cover them.
    =========================================================================
*/
#ifndef KC_RECORD_H_INCLUDED
#define KC_RECORD_H_INCLUDED

#include "kc_util.h"
#include "kc_wire.h"

#define KC_RECORD_FORMAT        1           //  encoding version byte
#define KC_RECORD_NAME_MAX      255         //  bytes of a node name
#define KC_RECORD_TAGS_MAX      16          //  tags per record
#define KC_RECORD_TAG_MAX       64          //  bytes of one tag
#define KC_RECORD_REASON_MAX    255         //  bytes of a revocation reason
#define KC_RECORD_VERSION_MAX   INT64_MAX   //  versions are 1..this
#define KC_RECORD_TIME_MAX      INT64_MAX   //  not-before / not-after bound
#define KC_RECORD_FIXED_BYTES   (1 + 32 + 32 + 8 + 1 + 8 + 8 + 1 + 1 + 1)
//  Where fixed fields sit in an encoding (after its format byte and the
//  32-byte directory): for readers of records already validated by decode
#define KC_RECORD_AT_KEY        (1 + 32)
#define KC_RECORD_AT_VERSION    (KC_RECORD_AT_KEY + 32)
#define KC_RECORD_AT_STATUS     (KC_RECORD_AT_VERSION + 8)
#define KC_RECORD_AT_NAME_SIZE  (KC_RECORD_AT_STATUS + 1 + 8 + 8)
#define KC_RECORD_AT_NAME       (KC_RECORD_AT_NAME_SIZE + 1)
#define KC_RECORD_BYTES_MAX     (KC_RECORD_FIXED_BYTES + KC_RECORD_NAME_MAX \
                                 + KC_RECORD_TAGS_MAX * (1 + KC_RECORD_TAG_MAX) \
                                 + KC_RECORD_REASON_MAX)

typedef enum {
    KC_STATUS_ACTIVE = 1,
    KC_STATUS_REVOKED = 2
} kc_status_t;

//  What a caller fills in to build a record. Strings are C strings.
typedef struct {
    const uint8_t *directory;           //  32 bytes
    const uint8_t *key;                 //  32 bytes, CURVE public key
    uint64_t version;                   //  1..KC_RECORD_VERSION_MAX
    kc_status_t status;
    uint64_t not_before;                //  seconds; 0 = no lower bound
    uint64_t not_after;                 //  seconds; 0 = no expiry
    const char *name;                   //  required when active
    const char *const *tags;            //  tag_count C strings, any order
    size_t tag_count;
    const char *reason;                 //  revoked only; may be NULL
} kc_record_spec_t;

//  A decoded record: pointers into the encoded bytes, which must outlive it.
typedef struct {
    const uint8_t *directory;           //  32 bytes
    const uint8_t *key;                 //  32 bytes
    uint64_t version;
    uint64_t not_before;
    uint64_t not_after;
    uint8_t status;                     //  kc_status_t
    uint8_t name_size;
    uint8_t tag_count;
    uint8_t reason_size;
    const char *name;                   //  name_size bytes, not terminated
    const uint8_t *tags;                //  tag_count x (u8 size, bytes)
    const char *reason;                 //  reason_size bytes, not terminated
    const uint8_t *encoded;             //  the whole record encoding
    size_t encoded_size;
} kc_record_t;

//  Validates spec and appends its canonical encoding to writer (tags are
//  sorted). Returns 0, or -1 with a reason; nothing is written on failure.
int
    kc_record_encode (const kc_record_spec_t *spec, kc_writer_t *writer, kc_why_t *why) KC_WUR;

//  Decodes one record from reader into record (a view into the reader's
//  bytes). Rejects unknown format, over-limit fields, bad characters and any
//  non-canonical form. Returns 0 or -1 with a reason.
int
    kc_record_decode (kc_reader_t *reader, kc_record_t *record, kc_why_t *why) KC_WUR;

//  Copies the name into text (KC_RECORD_NAME_MAX + 1 bytes) with a NUL.
char *
    kc_record_name (const kc_record_t *self, char *text);

//  Joins the tags with sep into text (capacity bytes, NUL-terminated);
//  returns text. KC_RECORD_TAGS_TEXT_MAX bytes always suffice.
#define KC_RECORD_TAGS_TEXT_MAX (KC_RECORD_TAGS_MAX * (KC_RECORD_TAG_MAX + 1) + 1)
char *
    kc_record_tags (const kc_record_t *self, char sep, char *text, size_t capacity);

//  True if the record carries this exact tag.
bool
    kc_record_has_tag (const kc_record_t *self, const char *tag);

//  True if a record's name is valid (non-empty, charset of docs/records.md).
bool
    kc_record_name_valid (const char *name, size_t size);

//  True if a tag is valid (1..64 bytes of the tag charset of docs/records.md).
bool
    kc_record_tag_valid (const char *tag, size_t size);

//  True if a revocation reason is valid (0..255 bytes of printable ASCII).
bool
    kc_record_reason_valid (const char *reason, size_t size);

//  Is the record in force at time now (active, not_before <= now, and
//  not_after == 0 or now < not_after)?
bool
    kc_record_in_force (const kc_record_t *self, uint64_t now);

//  The rules for a record against the stored state of its key, used by the
//  server on submission and by every agent before applying: a revoked key
//  stays revoked; a registration's version is above the stored one; a
//  revocation is accepted whatever its version (versions order
//  registrations only, so every unrevoked key stays revocable). stored_status is 0 when the key
//  has no stored record. Returns 0 or -1 with a reason naming the key.
int
    kc_record_check_successor (const kc_record_t *record, uint8_t stored_status,
                               uint64_t stored_version, kc_why_t *why) KC_WUR;

//  Self test of this module.
void
    kc_record_test (bool verbose);

#endif
