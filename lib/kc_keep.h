/*  =========================================================================
    kc_keep - the log keeper: decides one log entry (a batch, a root
    change, a grant or a grant use, told apart by their first four bytes)
    against a kc_store and appends it: the rules of docs/protocol.md 2.3
    and 7 that a server applies to a submission, a cluster member to a
    committed entry, and a mirror to what its upstream sends. One job, used
    by keyclone-server and keyclone-mirror.

        kc_store_begin (store, &why);
        kc_keep_entry_t entry = { .data = data, .size = size };
        if (kc_keep_decode (&entry, &why) == 0
        &&  kc_keep_append (store, &entry, &root, now, &why) == 0) ...
        kc_store_commit (store, &why);
        kc_keep_entry_reset (&entry);       //  once root (if it moved) is no longer used

    It checks what anyone can check from the log alone; a daemon adds its
    own rules (a server refuses a root that does not name it).
    =========================================================================
*/
#ifndef KC_KEEP_H_INCLUDED
#define KC_KEEP_H_INCLUDED

#include "kc_util.h"
#include "kc_batch.h"
#include "kc_grant.h"
#include "kc_root.h"
#include "kc_store.h"
#include "kc_proto.h"

typedef struct {
    const uint8_t *data;                    //  in: the entry as the log holds it
    size_t size;
    kc_batch_t *batch;                      //  out (kc_keep_decode): exactly one of these
    kc_root_t *root;
    kc_grant_t *grant;
    kc_grant_use_t *use;
    const uint8_t *digest;                  //  its digest (duplicates are found by it)
    uint64_t seq;                           //  out (kc_keep_append): where it was stored,
    uint8_t chain [KC_HASH_BYTES];          //  and the chain after it
    bool revokes;                           //  a batch revoking a key
} kc_keep_entry_t;

//  Decodes entry->data by its kind. Pure. 0, or -1 with a reason.
int
    kc_keep_decode (kc_keep_entry_t *entry, kc_why_t *why) KC_WUR;

//  Checks a decoded entry against the store inside an open group at time
//  now (seconds), with *root the root in force (a root change is checked as
//  its successor, and *root then points at entry->root: keep the entry
//  until the group is done with it), and appends it: 0 with entry->seq and
//  entry->chain, or -1 with a reason (the caller rolls the group back, or
//  goes on without it).
int
    kc_keep_append (kc_store_t *store, kc_keep_entry_t *entry, const kc_root_t **root, uint64_t now,
                    kc_why_t *why) KC_WUR;

//  A follower's group (a BATCHES or UPDATE message from an upstream): the
//  entries after the store's seq, verified and stored all or nothing, each
//  at its seq and with its chain, accepted time and submitter as the
//  upstream sent them (the chain must come out the same). A root change
//  among them replaces *root (the root in force) once committed. Returns
//  how many were stored, or -1 with a reason (nothing stored); *revoked
//  says whether a stored batch revoked a key.
int
    kc_keep_follow (kc_store_t *store, const kc_proto_msg_t *msg, kc_root_t **root, bool *revoked,
                    kc_why_t *why) KC_WUR;

//  Opens a copy of the log: the pinned root at root_path (checked as of its
//  own creation: it may have expired since and been renewed in the log),
//  the store at store_path for its directory (created if missing), and the
//  root in force after the whole log, followed from the pinned root.
//  0 with *store and *root (the caller destroys them), or -1 with a reason.
int
    kc_keep_open (const char *root_path, const char *store_path, kc_store_t **store, kc_root_t **root,
                  kc_why_t *why) KC_WUR;

//  Frees what kc_keep_decode made and clears the outputs.
void
    kc_keep_entry_reset (kc_keep_entry_t *entry);

#endif
