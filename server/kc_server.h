/*  =========================================================================
    kc_server - the clone server: sequences operator-signed batches into a
    durable, chained log and serves it on three CURVE channels
    (docs/protocol.md): snapshot (ROUTER, credit-based), updates (PUB, with
    signed heads as heartbeats) and submissions (ROUTER, group commit). It
    answers ZAP for its own sockets and tracks which head each agent applied.
    =========================================================================
*/
#ifndef KC_SERVER_H_INCLUDED
#define KC_SERVER_H_INCLUDED

#include "kc_all.h"
#include "kc_pending.h"

typedef struct _kc_server_config_t {
    const char *root_path;                  //  the pinned root
    const char *curve_path;                 //  server CURVE cert (secret file)
    const char *head_path;                  //  head-signing key (secret file)
    const char *store_path;                 //  sqlite store
    const char *bind [KC_ENDPOINTS];        //  NULL: the root's endpoints
    bool read_any;                          //  read = any (default: members)
    int heartbeat_ms;                       //  HEAD at least this often
    int head_valid_ms;                      //  a head's valid-until - time
    int sndhwm;                             //  PUB high-water mark
    int sync_idle_ms;                       //  abandon a sync without credit
    uint64_t enrol_expiry_ms;               //  enrolment requests expire (default 24 h)
    int enrol_max;                          //  requests kept at once (default 1000)
    int enrol_rate;                         //  new requests per source a minute (default 10)
    bool verbose;                           //  log every sync and query too
    //  A cluster member (docs/cluster.md): "name=host:port,..." naming every
    //  member (servers of the root) and its Raft address; NULL: one server
    const char *cluster;
    const char *raft_dir;                   //  NULL: "raft" beside the store
    const char *member;                     //  a member joining a cluster: its name (the
                                            //  root in force does not name it yet)
    int election_ms;                        //  Raft election timeout (default 500)
    int raft_heartbeat_ms;                  //  Raft heartbeat (default 50)
    //  On SIGHUP (kc_server_reload_wanted): builds the configuration again
    //  from its file and options (0, or -1 having printed why). The server
    //  applies what it can change running and logs the rest. May be NULL.
    int (*reload) (void *arg, struct _kc_server_config_t *fresh);
    void *reload_arg;
} kc_server_config_t;

//  Fills config with the defaults of docs/operator.md.
void
    kc_server_config_defaults (kc_server_config_t *config);

//  Asks the running server to reload its configuration (async-signal-safe:
//  call it from a SIGHUP handler); it does at its next heartbeat.
void
    kc_server_reload_wanted (void);

//  Starts the server and runs it until SIGINT/SIGTERM. Returns 0 after a
//  clean shutdown, 1 if it cannot start (the reason is logged).
int
    kc_server_run (const kc_server_config_t *config);

#endif
