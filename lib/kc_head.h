/*  =========================================================================
    kc_head - the server's signed head (directory, sequence, chain, time,
    valid-until) and the chain hash that binds every batch of the log in order
    (docs/protocol.md section 2).
    =========================================================================
*/
#ifndef KC_HEAD_H_INCLUDED
#define KC_HEAD_H_INCLUDED

#include "kc_util.h"
#include "kc_batch.h"
#include "kc_keys.h"

#define KC_HEAD_FORMAT      1
#define KC_HEAD_BYTES       157             //  4 + 1 + 32 + 8 + 32 + 8 + 8 + 64
#define KC_CONTEXT_CHAIN    "keyclone chain v1"

typedef struct {
    uint8_t directory [KC_HASH_BYTES];
    uint64_t seq;
    uint8_t chain [KC_HASH_BYTES];
    uint64_t time;                          //  ms since the epoch
    uint64_t valid_until;                   //  ms since the epoch
    uint8_t signature [KC_SIGNATURE_BYTES];
} kc_head_t;

//  chain(0) for a directory.
void
    kc_chain_genesis (const uint8_t directory [static KC_HASH_BYTES],
                      uint8_t chain [static KC_HASH_BYTES]);

//  chain(seq) from chain(seq-1) and the batch at seq (its full encoding).
void
    kc_chain_next (const uint8_t previous [static KC_HASH_BYTES], uint64_t seq,
                   const kc_batch_t *batch, uint8_t chain [static KC_HASH_BYTES]);

//  The same for a root change at seq: its digest, then the bytes after its
//  signed body (docs/protocol.md 2.1 and 2.3).
void
    kc_chain_next_root (const uint8_t previous [static KC_HASH_BYTES], uint64_t seq,
                        const kc_root_t *root, uint8_t chain [static KC_HASH_BYTES]);

//  The same for any signed object at seq: its digest, then the bytes after
//  its signed body (grants and grant uses, docs/records.md section 8).
void
    kc_chain_next_signed (const uint8_t previous [static KC_HASH_BYTES], uint64_t seq,
                          const uint8_t digest [static KC_HASH_BYTES], const uint8_t *tail,
                          size_t tail_size, uint8_t chain [static KC_HASH_BYTES]);

//  Signs head (fills head->signature) with the head key.
void
    kc_head_sign (kc_head_t *head, const kc_signer_t *signer);

//  Encodes a signed head into exactly KC_HEAD_BYTES.
void
    kc_head_encode (const kc_head_t *head, uint8_t out [static KC_HEAD_BYTES]);

//  Decodes a head (no signature check). Returns 0 or -1 with a reason.
int
    kc_head_decode (const uint8_t *data, size_t size, kc_head_t *head, kc_why_t *why) KC_WUR;

//  Checks a decoded head: directory and signature by head_key, and that it
//  is valid at now_ms (kc_head_check_time with no skew allowed). Returns 0
//  or -1 with a reason.
int
    kc_head_verify (const kc_head_t *head, const uint8_t directory [static KC_HASH_BYTES],
                    const uint8_t head_key [static KC_KEY_BYTES], uint64_t now_ms,
                    kc_why_t *why) KC_WUR;

//  The directory and signature checks of kc_head_verify alone.
int
    kc_head_verify_signature (const kc_head_t *head, const uint8_t directory [static KC_HASH_BYTES],
                              const uint8_t head_key [static KC_KEY_BYTES], kc_why_t *why) KC_WUR;

//  The server of root whose head key signed head (for root's directory),
//  or NULL: what a mirror relays may come from any server of the root.
const kc_root_server_t *
    kc_head_signer (const kc_head_t *head, const kc_root_t *root);

//  Checks a head's times against a clock that may differ from the signer's
//  by up to skew_ms: refused when its time is more than skew_ms after
//  now_ms (from the future) or when now_ms is skew_ms or more past its
//  valid-until (expired). Returns 0 or -1 with a reason.
int
    kc_head_check_time (const kc_head_t *head, uint64_t now_ms, uint64_t skew_ms,
                        kc_why_t *why) KC_WUR;

//  Self test of this module.
void
    kc_head_test (bool verbose);

#endif
