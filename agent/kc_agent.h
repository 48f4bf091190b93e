/*  =========================================================================
    kc_agent - the per-node clone client: keeps a verified cache of the
    directory in sync with the server (snapshot, then updates, resyncing
    from its last good sequence on any gap), tracks freshness from signed
    heads, and serves lookups, status and an event stream on local ipc
    endpoints (docs/agent.md).
    =========================================================================
*/
#ifndef KC_AGENT_H_INCLUDED
#define KC_AGENT_H_INCLUDED

#include "kc_all.h"

typedef struct _kc_agent_config_t {
    const char *root_path;                  //  the pinned root
    const char *key_path;                   //  this node's CURVE key (secret file)
    const char *cache_path;                 //  sqlite cache
    const char *local_endpoint;             //  lookups and status (ROUTER)
    const char *events_endpoint;            //  event stream (PUB)
    const char *connect [2];                //  snapshot, updates; NULL: the root's
    int stale_after_ms;                     //  stale after this long without a head
    bool fail_closed;                       //  policy when stale
    int check_interval_ms;                  //  cache integrity check; 0 = never
    int credit;                             //  snapshot window (messages)
    int clock_skew_ms;                      //  accepted difference from the server's clock
    int socket_mode;                        //  of the ipc sockets (default 0660)
    long group;                             //  gid of the ipc sockets and the cache; -1: ours
    zhashx_t *zap_policies;                 //  ZAP domain -> required tags; may be NULL
    bool verbose;
    const char *enrol_name;                 //  --enrol: ask to join under this name; NULL: no
    const char *const *enrol_tags;          //  with these tags (--tag)
    size_t enrol_tag_count;
    const char *mirrors;                    //  --mirror: "tcp://HOST:PORT=KEY,..." followed
                                            //  instead of the root's servers (docs/mirror.md)
    const char *witness_path;               //  --witness: cosign heads with this Ed25519 key
                                            //  (one of the root's witnesses); NULL: no
    //  On SIGHUP (kc_agent_reload_wanted): builds the configuration again
    //  from its file and options (0, or -1 having printed why). The agent
    //  applies what it can change running and logs the rest. May be NULL.
    int (*reload) (void *arg, struct _kc_agent_config_t *fresh);
    void *reload_arg;
} kc_agent_config_t;

//  Fills config with the defaults of docs/agent.md.
void
    kc_agent_config_defaults (kc_agent_config_t *config);

//  Asks the running agent to reload its configuration (async-signal-safe:
//  call it from a SIGHUP handler); it does within a second.
void
    kc_agent_reload_wanted (void);

//  Starts the agent and runs it until SIGINT/SIGTERM. Returns 0 after a
//  clean shutdown, 1 if it cannot start (the reason is logged).
int
    kc_agent_run (const kc_agent_config_t *config);

#endif
