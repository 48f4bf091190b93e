/*  =========================================================================
    kc_nodekey - a node's key files through a rotation (docs/operator.md
    section 4, design.md 5a). Beside the node's key pair KEY, KEY_secret:

        KEY.next, KEY.next_secret   the new pair 'keyclone rotate' made, kept
                                    until it is registered and swapped in
        KEY.old, KEY.old_secret     the pair it replaced, kept until the
        KEY.old.until               overlap ends (unix seconds, one line)
        KEY.lock                    taken (flock) while the files change

    The swap and the removal run under KEY.lock, so 'keyclone rotate' and the
    node's agent, which both swap, never interleave; each file is replaced
    by a rename, so a reader sees the old pair or the new one, never a mix.
    =========================================================================
*/
#ifndef KC_NODEKEY_H_INCLUDED
#define KC_NODEKEY_H_INCLUDED

#include "kc_util.h"

//  KEY from path: path itself, or without its "_secret" suffix. Returns
//  base, or NULL if it does not fit.
char *
    kc_nodekey_base (const char *path, char *base, size_t size);

//  The public key of KEY.next: 1 with key set, 0 when there is no KEY.next
//  (no rotation under way), -1 with a reason when it cannot be read.
int
    kc_nodekey_next (const char *path, uint8_t key [static KC_KEY_BYTES], kc_why_t *why);

//  What kc_nodekey_next_seen remembers of KEY.next between calls (zero it
//  before the first).
typedef struct {
    bool known;
    uint64_t device, inode, size;
    int64_t changed_ns;
    uint8_t key [KC_KEY_BYTES];
} kc_nodekey_seen_t;

//  kc_nodekey_next for a caller that asks often (the agent, after every
//  commit): one stat, and the file is read again only when it is another
//  file or has changed since *seen was filled.
int
    kc_nodekey_next_seen (const char *path, kc_nodekey_seen_t *seen, uint8_t key [static KC_KEY_BYTES],
                          kc_why_t *why);

//  Puts KEY.next in place of KEY if its public key is expected: KEY and
//  KEY_secret are kept as KEY.old (until the unix time until, written to
//  KEY.old.until; 0: no end known, the old pair is kept), then replaced by
//  renames. Returns 0 when swapped, 1 when there was nothing to swap (no
//  KEY.next, or one holding another key: someone else swapped, or a new
//  rotation began), -1 with a reason.
int
    kc_nodekey_swap (const char *path, const uint8_t expected [static KC_KEY_BYTES], uint64_t until,
                     kc_why_t *why) KC_WUR;

//  The end of the old pair's overlap: 1 with *until, 0 when no old pair
//  waits for one.
int
    kc_nodekey_old_until (const char *path, uint64_t *until);

//  Removes KEY.old, KEY.old_secret and KEY.old.until once now (unix
//  seconds) has reached KEY.old.until. Returns 1 when removed, 0 when not
//  yet or there is nothing to remove (*until says when, 0: never), -1 with
//  a reason.
int
    kc_nodekey_forget_old (const char *path, uint64_t now, uint64_t *until, kc_why_t *why);

//  Self test of this module.
void
    kc_nodekey_test (bool verbose);

#endif
