/*  =========================================================================
    kc_group - a cluster's Raft entry: a group of log entries the leader
    accepted together, at the sequences and with the chain it computed, on
    top of the log head it saw (docs/cluster.md section 3).

        "KCR1" base-seq(u64) base-chain(32) time-ms(u64) count(u16)
        count x ( seq(u64) chain(32) flags(u8) [submitter(32)] size(u32) data )

    flags bit 0: a submitter key follows. Item i has seq base-seq + 1 + i.
    Integers are big-endian; nothing may follow the last item. Decoding is
    pure: a kc_group_t points into the bytes it was decoded from.
    =========================================================================
*/
#ifndef KC_GROUP_H_INCLUDED
#define KC_GROUP_H_INCLUDED

#include "kc_util.h"
#include "kc_keys.h"

#define KC_GROUP_MAGIC          "KCR1"
#define KC_GROUP_ITEMS_MAX      256                 //  log entries in one Raft entry
#define KC_GROUP_ITEM_MAX       (32u << 20)         //  bytes of one (a batch at most)
#define KC_GROUP_BYTES_MAX      (64u << 20)         //  bytes of the whole encoding
#define KC_GROUP_FLAG_SUBMITTER 0x01

typedef struct {
    uint64_t seq;
    const uint8_t *chain;                   //  32 bytes
    const uint8_t *submitter;               //  32 bytes, or NULL
    const uint8_t *data;                    //  the log entry's bytes
    size_t size;
} kc_group_item_t;

typedef struct {
    uint64_t base_seq;                      //  the log head the leader decided on
    const uint8_t *base_chain;              //  32 bytes
    uint64_t time_ms;                       //  accepted time of every item
    size_t count;
    kc_group_item_t items [KC_GROUP_ITEMS_MAX];
} kc_group_t;

//  Decodes a group (pointers into data). 0, or -1 with a reason on any
//  malformed, over-limit or non-canonical input.
int
    kc_group_decode (const uint8_t *data, size_t size, kc_group_t *group, kc_why_t *why) KC_WUR;

//  Encodes group (its items' seqs must follow base_seq); returns the bytes
//  (caller frees) and their size, or NULL with a reason when over a limit.
uint8_t *
    kc_group_encode (const kc_group_t *group, size_t *size, kc_why_t *why);

//  Self test of this module.
void
    kc_group_test (bool verbose);

#endif
