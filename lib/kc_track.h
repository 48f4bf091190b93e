/*  =========================================================================
    kc_track - which open connection of a libzmq CURVE server socket was
    authenticated with which key, so a connection can be closed when its
    key stops being trusted (revoked, expired) while it is open.

    libzmq tells a ZAP handler the peer's IP but not which connection
    asks, and tells a socket monitor each connection's file descriptor but
    not its key. The tracker reads the monitors of the sockets it watches
    (ACCEPTED, DISCONNECTED, CLOSED) and, when its owner allows a key
    through ZAP, picks the connection from that IP that no key is matched
    to yet and that is waiting for this very answer: on TCP the kernel's
    counters show it has sent exactly the greeting and WELCOME and nothing
    since. When one host has several handshakes waiting at once, the
    answer goes out first and the connection that then sends READY is the
    one; the answer stays pending (settled before each later decision and
    by kc_track_update) and the owner blocks, up to 100 ms, only when a
    request for another key could come from the same connections. Used by
    kc_auth (applications) and keyclone-server (its own readers).

        kc_track_t *track = kc_track_new (keep_fn, arg);
        kc_track_install (socket, endpoint, &why);      //  socket's thread, before bind
        kc_track_watch (track, endpoint, &why);         //  tracker's thread
        ... on a ZAP request allowed for key from address:
        kc_track_ticket_t ticket;
        kc_track_allowing (track, address, key, &ticket);
        send the 200 reply;
        kc_track_allowed (track, &ticket);
        ... when keys may have stopped being trusted:
        kc_track_sweep (track);

    One tracker per thread; all calls from the thread that created it,
    except kc_track_install (the watched socket's thread).
    =========================================================================
*/
#ifndef KC_TRACK_H_INCLUDED
#define KC_TRACK_H_INCLUDED

#include "kc_util.h"
#include <czmq.h>

#define KC_TRACK_CANDIDATES_MAX 64          //  connections one answer can be for
#define KC_TRACK_ENDPOINT_MAX   64          //  inproc endpoint of a monitor

typedef struct _kc_track_t kc_track_t;

//  Decides whether a matched connection may stay open: true to keep it.
//  When it returns false it sets label (up to 80 bytes, e.g. "web-1
//  revoked") for the log line that reports the close.
typedef bool (kc_track_keep_fn) (const uint8_t key [KC_KEY_BYTES], void *arg, char *label,
                                 size_t label_size);

//  The connections an allowed answer may be for (filled by
//  kc_track_allowing, consumed by kc_track_allowed).
typedef struct {
    uint8_t key [KC_KEY_BYTES];
    int fds [KC_TRACK_CANDIDATES_MAX];
    uint64_t serials [KC_TRACK_CANDIDATES_MAX];
    uint64_t sent [KC_TRACK_CANDIDATES_MAX];    //  bytes each had sent at the reply
    size_t count;
    int64_t deadline;                           //  zclock_usecs
} kc_track_ticket_t;

typedef struct {
    uint64_t open;                          //  matched connections now open
    uint64_t closed;                        //  closed because keep said no
    uint64_t unmatched;                     //  allowed, never matched to a connection
    uint64_t watched;                       //  sockets whose monitors are live
} kc_track_stats_t;

//  Creates a tracker; keep decides, on kc_track_sweep, which matched
//  connections stay open.
kc_track_t *
    kc_track_new (kc_track_keep_fn *keep, void *arg);

//  Destroys the tracker. Monitors of sockets that are still open are not
//  left without a reader (libzmq would then block its I/O thread on the
//  next connection): a small thread keeps reading them until each socket
//  is closed or the context terminates, and ends then. Nulls *self_p.
void
    kc_track_destroy (kc_track_t **self_p);

//  Installs a monitor on a CURVE server socket (a zsock_t or libzmq handle)
//  and writes its inproc endpoint into endpoint. Call from the socket's
//  thread, before the socket binds. Returns 0 or -1 with a reason.
int
    kc_track_install (void *socket, char endpoint [static KC_TRACK_ENDPOINT_MAX],
                      kc_why_t *why) KC_WUR;

//  Stops the monitor of a socket (call from the socket's thread), e.g.
//  just before closing it; its reader sees the monitor stop.
void
    kc_track_uninstall (void *socket);

//  Starts reading the monitor at endpoint (from kc_track_install).
//  Returns 0 or -1 with a reason.
int
    kc_track_watch (kc_track_t *self, const char *endpoint, kc_why_t *why) KC_WUR;

//  Before a ZAP 200 reply for key to a peer at address: finds the
//  connections it may be for, waiting (up to 100 ms) only when the match
//  would otherwise be ambiguous.
void
    kc_track_allowing (kc_track_t *self, const char *address,
                       const uint8_t key [static KC_KEY_BYTES], kc_track_ticket_t *ticket);

//  After the reply went out: matches the answer to its connection now, or
//  keeps it pending until the connection sends READY (kc_track_update).
void
    kc_track_allowed (kc_track_t *self, kc_track_ticket_t *ticket);

//  Reads the monitors and settles pending answers. Returns how many
//  answers are still pending: while any are, call again within about
//  10 ms; otherwise only before decisions and sweeps.
size_t
    kc_track_update (kc_track_t *self);

//  Lets the tracker keep its own short timer on loop (the owner's zloop)
//  while answers are pending, so the owner need not call kc_track_update
//  on a timer. Call once, before any request.
void
    kc_track_set_loop (kc_track_t *self, zloop_t *loop);

//  Closes (shutdown(2)) every matched connection whose key keep refuses,
//  logging one line each. Returns how many were closed.
size_t
    kc_track_sweep (kc_track_t *self);

//  The counters.
void
    kc_track_stats (kc_track_t *self, kc_track_stats_t *stats);

//  Self test of this module.
void
    kc_track_test (bool verbose);

#endif
