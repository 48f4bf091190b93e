/*  =========================================================================
    kc_witnessd - keyclone-witness (docs/witness.md): follows an upstream
    (a server, a cluster member or a mirror) with kc_follow, verifies every
    entry and keeps its own copy of the log in a store (kc_keep, as a server
    would take it), and cosigns with kc_cosigner each head that names
    exactly the (seq, chain) its copy ends at, sending the cosignature to
    every server of the root in force. It serves nothing.
    =========================================================================
*/
#ifndef KC_WITNESSD_H_INCLUDED
#define KC_WITNESSD_H_INCLUDED

#include "kc_all.h"

typedef struct {
    const char *root_path;                  //  the pinned root
    const char *key_path;                   //  its CURVE key pair (to read the log; secret file)
    const char *witness_path;               //  its witness key (Ed25519, named in the root)
    const char *store_path;                 //  its copy of the log
    const char *upstreams;                  //  as kc_follow_set_upstreams takes them
    int stale_after_ms;                     //  next upstream after this long without news
} kc_witnessd_config_t;

//  Asks the running witness to open its log file again (async-signal-safe).
void
    kc_witnessd_reopen_wanted (void);

//  Runs until SIGINT/SIGTERM. 0 after a clean shutdown, 1 if it cannot
//  start (the reason is logged).
int
    kc_witnessd_run (const kc_witnessd_config_t *config);

#endif
