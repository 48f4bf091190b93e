/*  =========================================================================
    kc_cosig - a witness's cosignature: "witness W saw the log of directory
    D end at (seq, chain) at time T" (docs/protocol.md section 9), and the
    freshness an agent draws from the cosignatures of its root's witnesses.

    A witness follows the log like an agent, verifies every entry and the
    chain, and cosigns only the head its own verified copy ends at, so it
    never cosigns two chains at one sequence nor an older sequence after a
    newer one. The server publishes the latest cosignature of each witness
    with its heads. An agent whose root names witnesses is fresh only while
    the witness threshold of them cosigned, within its staleness window, a
    (seq, chain) its own copy holds: a server that withholds a revocation
    from it can sign fresh heads, but cannot make witnesses that have seen
    the revocation vouch for the log without it.
    =========================================================================
*/
#ifndef KC_COSIG_H_INCLUDED
#define KC_COSIG_H_INCLUDED

#include "kc_util.h"
#include "kc_keys.h"
#include "kc_root.h"

#define KC_COSIG_FORMAT     1
#define KC_COSIG_BYTES      181             //  4 + 1 + 32 + 32 + 8 + 32 + 8 + 64
                                            //  (KC_PROTO_COSIG_BYTES)
#define KC_CONTEXT_COSIG    "keyclone cosignature v1"

typedef struct {
    uint8_t witness [KC_KEY_BYTES];         //  the witness's Ed25519 key
    uint8_t directory [KC_HASH_BYTES];
    uint64_t seq;
    uint8_t chain [KC_HASH_BYTES];
    uint64_t time;                          //  the witness's clock, ms since the epoch
    uint8_t signature [KC_SIGNATURE_BYTES];
} kc_cosig_t;

//  Fills in the witness key and signs cosig (directory, seq, chain and time
//  set by the caller) with the witness's key.
void
    kc_cosig_sign (kc_cosig_t *cosig, const kc_signer_t *witness);

//  Encodes a signed cosignature into exactly KC_COSIG_BYTES.
void
    kc_cosig_encode (const kc_cosig_t *cosig, uint8_t out [static KC_COSIG_BYTES]);

//  Decodes a cosignature (no signature check). Pure. Returns 0 or -1 with a
//  reason.
int
    kc_cosig_decode (const uint8_t *data, size_t size, kc_cosig_t *cosig, kc_why_t *why) KC_WUR;

//  Checks a decoded cosignature: for directory, by a witness root names (its
//  index in the root's witness list in *index), signature good. Returns 0,
//  or -1 with a reason.
int
    kc_cosig_verify (const kc_cosig_t *cosig, const uint8_t directory [static KC_HASH_BYTES],
                     const kc_root_t *root, size_t *index, kc_why_t *why) KC_WUR;

//  --- Freshness from cosignatures --------------------------------------------
//  What one agent knows: the (seq, chain) pairs its copy of the log ended at
//  lately (a ring: a cosignature names what a witness saw a moment ago, when
//  the agent may have applied more since) and, per witness of the root in
//  force, the newest time it cosigned one of them.

#define KC_WITNESS_RECENT   1024            //  (seq, chain) pairs remembered

typedef struct _kc_witness_view_t kc_witness_view_t;

kc_witness_view_t *
    kc_witness_view_new (void);
void
    kc_witness_view_destroy (kc_witness_view_t **self_p);

//  The copy of the log now ends at (seq, chain): remember it (call it for
//  every entry applied, in order; a lower seq than the last one, after a
//  rebuild, starts the ring over).
void
    kc_witness_view_extend (kc_witness_view_t *self, uint64_t seq,
                            const uint8_t chain [static KC_HASH_BYTES]);

//  The root in force changed (witness keys or threshold): cosignatures of
//  witnesses it no longer names are forgotten.
void
    kc_witness_view_set_root (kc_witness_view_t *self, const kc_root_t *root);

//  What kc_witness_view_add made of a cosignature.
typedef enum {
    KC_COSIG_COUNTED,                       //  names a (seq, chain) we hold: counted
    KC_COSIG_KNOWN,                         //  the same bytes as the last one counted
    KC_COSIG_AHEAD,                         //  names a seq beyond ours (we are behind)
    KC_COSIG_UNKNOWN,                       //  a seq older than we remember (ignored)
    KC_COSIG_FORK,                          //  another chain at a seq we hold: the witness
                                            //  saw a different log from ours
    KC_COSIG_INVALID                        //  malformed, not our witness, bad signature,
                                            //  from the future (why says)
} kc_cosig_verdict_t;

//  Takes one received cosignature (encoded), checked against root (the
//  root in force) at now_ms with skew_ms of clock difference allowed.
kc_cosig_verdict_t
    kc_witness_view_add (kc_witness_view_t *self, const uint8_t *data, size_t size,
                         const kc_root_t *root, uint64_t now_ms, uint64_t skew_ms, kc_why_t *why);

//  The time up to which the witness threshold of root vouches for the copy:
//  the k-th newest cosignature time of distinct witnesses (k the root's
//  witness threshold), plus window_ms. 0 when fewer than k cosigned;
//  UINT64_MAX when the root names no witness threshold (nothing to wait for).
uint64_t
    kc_witness_view_fresh_until (const kc_witness_view_t *self, const kc_root_t *root,
                                 uint64_t window_ms);

//  How many witnesses cosigned within window_ms of now_ms.
size_t
    kc_witness_view_count (const kc_witness_view_t *self, const kc_root_t *root, uint64_t now_ms,
                           uint64_t window_ms);

//  The view's slot (0 .. KC_ROOT_WITNESSES_MAX-1): the witness key it holds
//  (NULL if none), and the seq and time of that witness's newest counted
//  cosignature (0, 0 if none).
const uint8_t *
    kc_witness_view_key (const kc_witness_view_t *self, size_t slot);
void
    kc_witness_view_get (const kc_witness_view_t *self, size_t slot, uint64_t *seq, uint64_t *time);

//  Self test of this module.
void
    kc_cosig_test (bool verbose);

#endif
