/*  =========================================================================
    kc_auth - keyclone's ZAP handler: an actor that serves
    inproc://zeromq.zap.01 for the application's (czmq) context, answers
    ZAP from the agent's cache (kc_lookup, kc_zap), and closes connections
    whose key stops being trusted (revoked, expired) while they are open.

        zactor_t *auth = kc_auth_new (&config, &why);
        zsock_t *server = zsock_new (ZMQ_ROUTER);
        zsock_set_curve_server (server, 1);
        kc_cert_apply (server_cert, server);
        kc_auth_protect (auth, server, "db", &why);     //  before bind
        zsock_bind (server, "tcp://0.0.0.0:9000");

    kc_auth_protect sets a ZAP domain with enforcement on (through libzmq,
    read back: czmq 4.2.1's setter for it does nothing), so a missing or
    dead handler denies instead of allowing (libzmq's default would accept
    any key), and watches the socket's connections.

    Order: the handler may be destroyed before or after the sockets it
    protects. Destroyed first, it leaves their monitors to a small thread
    that reads them until each socket closes (a monitor nobody reads would
    block libzmq's I/O thread), and the sockets, whose ZAP handler is gone,
    refuse every new peer at once. Do not destroy it from one thread while
    another is closing a protected socket.

    Live revocation: when the agent applies a revocation (its event stream
    wakes the actor, or the next refresh finds it), each open connection
    authenticated with that key is shut down; the peer's reconnection then
    meets the handler again and is refused. Messages the application reads
    after that point all come from connections authenticated with trusted
    keys. docs/zap.md explains how connections are matched to keys, and the
    limits.
    =========================================================================
*/
#ifndef KC_AUTH_H_INCLUDED
#define KC_AUTH_H_INCLUDED

#include "kc_util.h"
#include "kc_curve.h"
#include "kc_lookup.h"
#include <czmq.h>

typedef struct {
    const char *agent_dir;                  //  keyclone-agent's --dir: sets the two
    const char *cache_path;                 //  below to DIR/agent.db and
    const char *events_endpoint;            //  ipc://DIR/events.ipc unless set; NULL: none
    bool fail_closed;                       //  deny new peers when stale
    int stale_after_ms;                     //  stale after this long without a head
    int refresh_ms;                         //  without events: check the cache this often
    bool verbose;                           //  log every decision
} kc_auth_config_t;

//  Fills config with the defaults (serve, 5000 ms, 100 ms).
void
    kc_auth_config_defaults (kc_auth_config_t *config);

//  Starts the handler. Returns the actor, or NULL with a reason (another ZAP
//  handler is bound in this context). The cache may appear later: until it
//  can be read, every request is denied.
zactor_t *
    kc_auth_new (const kc_auth_config_t *config, kc_why_t *why);

//  Requires tags (comma-separated, all of them) for a ZAP domain.
int
    kc_auth_policy (zactor_t *self, const char *domain, const char *tags) KC_WUR;

//  Protects a CURVE server socket: ZAP domain with enforcement, and
//  connection tracking for live revocation. Call from the socket's thread,
//  before it binds. Returns 0 or -1 with a reason.
int
    kc_auth_protect (zactor_t *self, zsock_t *socket, const char *domain, kc_why_t *why) KC_WUR;

//  Counters: requests allowed and denied, connections closed because their
//  key stopped being trusted, allowed connections that could not be matched
//  to a file descriptor.
typedef struct {
    uint64_t allowed, denied, malformed, closed, unmatched, open;
} kc_auth_stats_t;

int
    kc_auth_stats (zactor_t *self, kc_auth_stats_t *stats) KC_WUR;

//  Refreshes from the cache and closes untrusted connections now (normally
//  done on agent events and every refresh interval).
void
    kc_auth_check (zactor_t *self);

//  The actor function (use kc_auth_new).
void
    kc_auth (zsock_t *pipe, void *args);

//  An authorizer for kc_curve server codecs, answering from a kc_lookup
//  handle (arg): trusted keys are allowed with their name and tags, every
//  other key is denied.
int
    kc_auth_curve_authorizer (const uint8_t client_key [KC_KEY_BYTES], const kc_meta_t *metadata,
                              void *arg, kc_curve_identity_t *identity);

//  Self test of this module.
void
    kc_auth_test (bool verbose);

#endif
