/*  =========================================================================
    kc_mirror - an untrusted relay of the log (docs/mirror.md): it follows
    an upstream (a server, a cluster member or another mirror) with
    kc_follow, verifies every entry and keeps the log in its own store
    (kc_keep, as a server would take it), and serves the same snapshot and
    update channels downstream (kc_publish) with the same read policy, from
    its verified state. It signs nothing: the heads it publishes are its
    upstream's, relayed with the witnesses' cosignatures, so a mirror can
    delay an agent, never make it trust a key. Its agents'
    acknowledgements go upstream, so 'keyclone status --server' still shows
    every agent.
    =========================================================================
*/
#ifndef KC_MIRROR_H_INCLUDED
#define KC_MIRROR_H_INCLUDED

#include "kc_all.h"

typedef struct {
    const char *root_path;                  //  the pinned root
    const char *key_path;                   //  the mirror's CURVE key pair (secret file)
    const char *store_path;                 //  its copy of the log (a server's store)
    const char *bind [2];                   //  snapshot, updates endpoints
    const char *upstreams;                  //  "NAME,tcp://HOST:PORT=KEY,...": servers of
                                            //  the root by name, mirrors by endpoint and key
    bool read_any;                          //  read = any (default: members)
    int stale_after_ms;                     //  move to the next upstream after this long
                                            //  without a head to relay (default 5000)
    int sync_idle_ms;                       //  abandon a downstream sync without credit
    bool verbose;
} kc_mirror_config_t;

//  Fills config with the defaults.
void
    kc_mirror_config_defaults (kc_mirror_config_t *config);

//  Asks the running mirror to open its log file again (async-signal-safe:
//  call it from a SIGHUP handler); it does within a second.
void
    kc_mirror_reopen_wanted (void);

//  Runs the mirror until SIGINT/SIGTERM. 0 after a clean shutdown, 1 if it
//  cannot start (the reason is logged).
int
    kc_mirror_run (const kc_mirror_config_t *config);

#endif
