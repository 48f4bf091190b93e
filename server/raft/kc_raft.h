/*  =========================================================================
    kc_raft - one cluster member's consensus engine: libraft 0.15 on its own
    libuv loop in its own thread, its traffic over kc_raft_transport (CURVE
    between the members' keys), driven from the owner's thread (the server's
    zloop) without ever sharing an event loop:

        owner -> engine   kc_raft_apply (tag, bytes): propose an entry
                          kc_raft_ask_status (): ask for a STATUS event
                          kc_raft_applied (index, ok): an ENTRY is in the store
        engine -> owner   events on kc_raft_events (a PAIR socket the owner
                          reads in its own thread), one zmsg each (u64s big-endian):
            "ENTRY" index(u64) bytes
                A committed entry, in log order, on every member. The engine
                waits until the owner calls kc_raft_applied for it: libraft
                counts an entry applied when its apply function returns.
            "DONE" tag(u64) status(i32 in native order: 0 or a RAFT_* code) index(u64)
                   leader-id(u64) leader-address reason
                What became of kc_raft_apply (tag): applied at index here,
                or not (RAFT_NOTLEADER with the leader as this member knows
                it, RAFT_LEADERSHIPLOST, ...).
            "STATUS" state ("follower", "candidate", "leader",
                   "unavailable") leader-id(u64) leader-address term(u64)
                   last-index(u64) last-applied(u64) refused(u64)
                When asked, and by itself whenever the role, the leader or
                the term changed (checked at every libraft tick).
    The owner must never wait for the engine: the engine may be waiting for
    it (an ENTRY). Entries are padded to 8 bytes inside (docs/cluster.md 3).
    =========================================================================
*/
#ifndef KC_RAFT_H_INCLUDED
#define KC_RAFT_H_INCLUDED

#include "kc_raft_transport.h"

#define KC_RAFT_ENTRY_MAX       (64u << 20)     //  bytes of one entry

typedef struct {
    raft_id id;                         //  this member
    const char *dir;                    //  its Raft directory (made if missing)
    const kc_cert_t *cert;              //  its CURVE key pair
    const kc_raft_member_t *members;    //  every member, itself included
    size_t count;
    const kc_raft_member_t *voters;     //  a first start's configuration (NULL: members)
    size_t voter_count;
    bool join;                          //  no first configuration: a leader adds this member
    unsigned election_ms;               //  0: libraft's 1000
    unsigned heartbeat_ms;              //  0: libraft's 100
} kc_raft_config_t;

typedef struct _kc_raft_t kc_raft_t;

//  Starts the member: its thread, libraft (bootstrapping the configuration
//  on a pristine directory), the transport. NULL with a reason if any of
//  it fails (the directory, the address, libraft's own errors).
kc_raft_t *
    kc_raft_new (const kc_raft_config_t *config, kc_why_t *why);

//  Stops the member cleanly (raft_close, the transport, the thread) and
//  frees it. Nulls *self_p. Call it from the owner's thread.
void
    kc_raft_destroy (kc_raft_t **self_p);

//  The socket the owner reads events from (in its own thread only).
zsock_t *
    kc_raft_events (kc_raft_t *self);

//  Proposes size bytes as an entry (copied); the answer is a DONE event
//  with tag. Returns 0, or -1 with a reason (too big, stopping).
int
    kc_raft_apply (kc_raft_t *self, uint64_t tag, const void *data, size_t size, kc_why_t *why) KC_WUR;

//  Answers the ENTRY event for index: ok once the owner has stored it,
//  false when it could not (libraft then stops this member: a member that
//  cannot apply a committed entry must not go on).
void
    kc_raft_applied (kc_raft_t *self, uint64_t index, bool ok);

//  The members now (a membership change): the transport lets in their
//  keys alone, and the leader, whichever member it is, brings libraft's
//  configuration to them, one change at a time (added, made voters,
//  removed).
void
    kc_raft_set_members (kc_raft_t *self, const kc_raft_member_t *members, size_t count);

//  Asks for a STATUS event.
void
    kc_raft_ask_status (kc_raft_t *self);

#endif
