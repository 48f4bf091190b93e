/*  =========================================================================
    kc_cosigner - the witness's side of docs/protocol.md section 9: given
    the (seq, chain) its own verified copy of the log ends at each time a
    head names exactly that, it cosigns it with the witness's Ed25519 key
    and sends the cosignature (COSIGN) to every server of the root in
    force. It never cosigns a lower seq, nor another chain at the same
    seq, than the highest it cosigned (its floor, kept in a file over a
    rebuild of the copy and a restart). One job, used by keyclone-witness
    and keyclone-agent --witness.
    =========================================================================
*/
#ifndef KC_COSIGNER_H_INCLUDED
#define KC_COSIGNER_H_INCLUDED

#include "kc_util.h"
#include "kc_root.h"
#include "kc_ratelog.h"
#include <czmq.h>

#define KC_COSIGNER_COSIGN_EVERY_MS  25      //  the same seq cosigned at most this often
#define KC_COSIGNER_BACKOFF_MIN_MS   2000    //  a server refused the witness's connection:
#define KC_COSIGNER_BACKOFF_MAX_MS   60000   //  a new one after this, doubling to this

typedef struct _kc_cosigner_t kc_cosigner_t;

//  Loads the witness key (key_path: PATH or PATH_secret) and the floor file
//  (floor_path, may not exist yet). who names the daemon in logs. NULL with
//  a reason.
kc_cosigner_t *
    kc_cosigner_new (const char *who, const char *key_path, const char *floor_path, kc_ratelog_t *log,
                    kc_why_t *why);

//  Keeps the floor and closes everything. Nulls *self_p.
void
    kc_cosigner_destroy (kc_cosigner_t **self_p);

//  The copy at start: the floor is the higher of it and the floor file.
void
    kc_cosigner_set_copy (kc_cosigner_t *self, uint64_t seq, const uint8_t chain [KC_HASH_BYTES]);

//  (Re)connects a DEALER to the snapshot channel of every server of root,
//  with the CURVE key pair given (override: one server's endpoint replaced,
//  NULL: the root's). Says whether root names this witness.
void
    kc_cosigner_connect (kc_cosigner_t *self, const kc_root_t *root, const uint8_t *public_key,
                        const uint8_t *secret_key, const char *override);

//  A head named exactly the copy's (seq, chain): cosign it and send it.
void
    kc_cosigner_cosign (kc_cosigner_t *self, const uint8_t directory [KC_HASH_BYTES], uint64_t seq,
                       const uint8_t chain [KC_HASH_BYTES]);

//  Writes the floor file now (the copy is about to be rebuilt).
void
    kc_cosigner_keep_floor (kc_cosigner_t *self);

//  What it did: cosignatures sent, the floor's seq, heads not cosigned.
uint64_t
    kc_cosigner_cosigned (const kc_cosigner_t *self);
uint64_t
    kc_cosigner_floor (const kc_cosigner_t *self);
uint64_t
    kc_cosigner_refusals (const kc_cosigner_t *self);
const uint8_t *
    kc_cosigner_key (const kc_cosigner_t *self);

//  Self test of this module.
void
    kc_cosigner_test (bool verbose);

#endif
