/*  =========================================================================
    kc_keyindex - the state a run of verified batches gives each key, in
    memory, so a cold sync can check every record against the records
    before it as they arrive (docs/protocol.md 7.2), not only at END.

    Without it a hostile server can replay one valid, chained batch a
    thousand times in a sync from 0 and make the agent hold every copy until
    END; with it the second copy is refused ("version not above the
    stored version"), so what a sync holds is bounded by the genuine log.

    The index points into the batches it was given (16 bytes a key in an
    open-addressing table: the key's first 8 bytes and the record): the
    caller keeps them alive as long as the index.
    =========================================================================
*/
#ifndef KC_KEYINDEX_H_INCLUDED
#define KC_KEYINDEX_H_INCLUDED

#include "kc_util.h"
#include "kc_batch.h"

typedef struct _kc_keyindex_t kc_keyindex_t;

//  A new, empty index.
kc_keyindex_t *
    kc_keyindex_new (void);

//  Destroys the index (not the batches). Nulls *self_p.
void
    kc_keyindex_destroy (kc_keyindex_t **self_p);

//  Checks every record of batch against the index (revocation terminal,
//  registrations' versions increasing) and, if all pass, records them.
//  Returns 0, or -1 with a reason and nothing recorded (also when memory
//  runs out: never aborts).
int
    kc_keyindex_apply (kc_keyindex_t *self, const kc_batch_t *batch, kc_why_t *why) KC_WUR;

//  How many keys the index holds.
size_t
    kc_keyindex_size (const kc_keyindex_t *self);

//  Self test of this module.
void
    kc_keyindex_test (bool verbose);

#endif
