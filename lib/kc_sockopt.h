/*  =========================================================================
    kc_sockopt - the libzmq socket options a security property rests on,
    set through libzmq itself and read back.

    czmq's setters cannot be trusted for these: in Debian's czmq 4.2.1,
    zsock_set_zap_enforce_domain compiles to nothing (the option is a DRAFT
    in zmq.h), so a socket meant to refuse everyone when its ZAP handler is
    missing accepted every key instead. Every function here sets an option
    with zmq_setsockopt, reads it back with zmq_getsockopt, and fails with
    a reason naming the option when it did not stick.
    =========================================================================
*/
#ifndef KC_SOCKOPT_H_INCLUDED
#define KC_SOCKOPT_H_INCLUDED

#include "kc_util.h"

//  libzmq's ZMQ_ZAP_ENFORCE_DOMAIN (a DRAFT name in 4.3's zmq.h; the
//  library itself accepts it).
#define KC_SOCKOPT_ZAP_ENFORCE_DOMAIN 93

//  Sets an int option and reads it back. socket is a zsock_t or a libzmq
//  handle. Returns 0, or -1 with a reason.
int
    kc_sockopt_int (void *socket, int option, const char *name, int value, kc_why_t *why) KC_WUR;

//  Gives the socket a ZAP domain with enforcement on, so that a missing or
//  dead handler refuses every peer (libzmq's default would accept any
//  key). Reads both back. Returns 0, or -1 with a reason.
int
    kc_sockopt_zap (void *socket, const char *domain, kc_why_t *why) KC_WUR;

//  Makes socket a CURVE server with this key pair; reads the role and both
//  keys back (the secret compared in constant time, the copy wiped).
int
    kc_sockopt_curve_server (void *socket, const uint8_t public_key [static KC_KEY_BYTES],
                             const uint8_t secret_key [static KC_KEY_BYTES], kc_why_t *why) KC_WUR;

//  Makes socket a CURVE client with this key pair, pinned to server_key;
//  reads all three back.
int
    kc_sockopt_curve_client (void *socket, const uint8_t public_key [static KC_KEY_BYTES],
                             const uint8_t secret_key [static KC_KEY_BYTES],
                             const uint8_t server_key [static KC_KEY_BYTES], kc_why_t *why) KC_WUR;

//  Bounds the size of one incoming message (ZMQ_MAXMSGSIZE); read back.
int
    kc_sockopt_maxmsgsize (void *socket, int64_t bytes, kc_why_t *why) KC_WUR;

//  Self test: every option above, and every czmq setter keyclone uses for
//  a security property, read back through libzmq.
void
    kc_sockopt_test (bool verbose);

#endif
