/*  =========================================================================
    kc_raft_transport - libraft's transport (struct raft_uv_transport) over
    CurveZMQ: every Raft connection between two cluster members is a TCP
    connection carrying ZMTP 3.0 with CURVE (kc_zmtp_t around kc_curve), so
    only the members named in the configuration, each proving its CURVE key,
    can speak Raft to each other, and nobody else can read or change it.
    libraft's own TCP transport is plaintext and unauthenticated.

    A member listens on its Raft address; to reach member N it connects to
    N's address and must find N's key there (a CURVE client knows its
    server's key). A connecting member is let in only if its key is one of
    the members' (ERROR "400" otherwise, which libzmq reports as
    HANDSHAKE_FAILED_AUTH 400), and libraft learns its id and address from
    that key, not from anything the peer says. Between the encrypted TCP
    stream and libraft sits a socketpair per connection: libraft reads and
    writes plaintext on its end, the transport moves it through the codec.
    Everything runs on the libuv loop libraft runs on; no thread of its own.
    The process must ignore SIGPIPE (as libraft's own transport needs too):
    a member that goes away mid-write is an error on that connection.
    =========================================================================
*/
#ifndef KC_RAFT_TRANSPORT_H_INCLUDED
#define KC_RAFT_TRANSPORT_H_INCLUDED

#include "kc_all.h"
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#define KC_RAFT_MEMBERS_MAX     9           //  members a transport knows
#define KC_RAFT_ADDRESS_MAX     255         //  bytes of "host:port"

//  One cluster member as the transport knows it
typedef struct {
    raft_id id;
    char address [KC_RAFT_ADDRESS_MAX + 1];     //  "host:port", IPv4 or IPv6 literal
    uint8_t key [KC_KEY_BYTES];                 //  its CURVE public key
} kc_raft_member_t;

//  Sets up t (zeroed by the caller) as a CURVE transport on loop for the
//  member whose CURVE key pair is cert (copied), among count members.
//  Returns 0, or -1 with a reason (too many members, a bad address).
int
    kc_raft_transport_init (struct raft_uv_transport *t, uv_loop_t *loop, const kc_cert_t *cert,
                            const kc_raft_member_t *members, size_t count, kc_why_t *why) KC_WUR;

//  Frees what kc_raft_transport_init made, once libraft has closed the
//  transport (after raft_close's callback).
void
    kc_raft_transport_close (struct raft_uv_transport *t);

//  Replaces the member list (a membership change): connections already
//  made stay; new ones are checked against the new list. In the loop's
//  thread. 0, or -1 with a reason (nothing changed).
int
    kc_raft_transport_set_members (struct raft_uv_transport *t, const kc_raft_member_t *members, size_t count,
                                   kc_why_t *why) KC_WUR;

//  Connections refused so far: peers that were not members, failed
//  handshakes, bad bytes (for logs and tests).
uint64_t
    kc_raft_transport_refused (const struct raft_uv_transport *t);

#endif
