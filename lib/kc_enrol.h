/*  =========================================================================
    kc_enrol - enrolment requests as the server keeps them and sends them
    (docs/protocol.md section 6.4): the canonical encoding of one request
    with a pure, bounds-checked decoder, and the comparison code a node
    prints and an operator checks before approving.
    =========================================================================
*/
#ifndef KC_ENROL_H_INCLUDED
#define KC_ENROL_H_INCLUDED

#include "kc_util.h"
#include "kc_record.h"

#define KC_ENROL_SOURCE_MAX     255         //  bytes of a source address
#define KC_ENROL_CODE_CHARS     9           //  "XXXX-XXXX"
#define KC_ENROL_OVERLAP_MAX    (366 * 86400ULL)  //  seconds a rotated key stays valid
#define KC_ENROL_BYTES_MAX      (KC_KEY_BYTES + 1 + 8 + 8 + 8 + KC_KEY_BYTES + 8 + 1 + KC_RECORD_NAME_MAX + 1 \
                                 + KC_RECORD_TAGS_MAX * (1 + KC_RECORD_TAG_MAX) \
                                 + 1 + KC_ENROL_SOURCE_MAX + 1 + KC_RECORD_REASON_MAX)

typedef enum {
    KC_ENROL_PENDING = 1,                   //  waiting for an operator
    KC_ENROL_REJECTED = 2,                  //  an operator said no (reason)
    KC_ENROL_REGISTERED = 3                 //  the key is a member (seq)
} kc_enrol_state_t;

typedef struct {
    uint8_t key [KC_KEY_BYTES];             //  the node's CURVE public key
    uint8_t state;                          //  kc_enrol_state_t
    uint64_t requested;                     //  unix ms
    uint64_t expires;                       //  unix ms; 0 when registered
    uint64_t seq;                           //  registered: the log entry; else 0
    uint8_t replaces [KC_KEY_BYTES];        //  a rotation: the member key it replaces
    bool rotation;                          //  (replaces set; zero bytes on the wire if not)
    uint64_t overlap;                       //  a rotation: seconds the old key stays valid
    char name [KC_RECORD_NAME_MAX + 1];
    char tags [KC_RECORD_TAGS_MAX][KC_RECORD_TAG_MAX + 1];  //  strictly ascending
    size_t tag_count;
    char source [KC_ENROL_SOURCE_MAX + 1];  //  where the request came from (printable)
    char reason [KC_RECORD_REASON_MAX + 1]; //  rejected: why (printable)
} kc_enrolment_t;

//  Sets name and tags from a request's parts, checking them as records do
//  (name charset, tag charset and sizes, at most 16 tags, no duplicate) and
//  sorting the tags. Returns 0, or -1 with a reason.
int
    kc_enrolment_set (kc_enrolment_t *self, const char *name, size_t name_size,
                      const char *const *tags, const size_t *tag_sizes, size_t tag_count,
                      kc_why_t *why) KC_WUR;

//  The canonical encoding (malloc'd; *size set).
uint8_t *
    kc_enrolment_encode (const kc_enrolment_t *self, size_t *size);

//  Decodes the canonical encoding of a request into out. Pure. Returns 0, or
//  -1 with a reason for anything that is not a canonical encoding.
int
    kc_enrolment_decode (const uint8_t *data, size_t size, kc_enrolment_t *out,
                         kc_why_t *why) KC_WUR;

//  The comparison code of a request: what the node prints and the operator
//  checks ("7KQ2-M9XD"), from the key, the name and the tags.
char *
    kc_enrol_code (const uint8_t key [static KC_KEY_BYTES], const char *name,
                   const char (*tags) [KC_RECORD_TAG_MAX + 1], size_t tag_count,
                   char code [static KC_ENROL_CODE_CHARS + 1]);

//  Normalizes a code a person typed (case, missing or extra dash, O/I/L)
//  into code. Returns 0, or -1 if it cannot be a code.
int
    kc_enrol_code_parse (const char *text, char code [static KC_ENROL_CODE_CHARS + 1]);

//  "pending", "rejected", "registered", or "?".
const char *
    kc_enrol_state_name (uint8_t state);

//  Self test of this module.
void
    kc_enrol_test (bool verbose);

#endif
