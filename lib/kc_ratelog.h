/*  =========================================================================
    kc_ratelog - log lines about what peers send, with bounded volume.

    A daemon logs one line per refusal so an operator can see what happened,
    but a peer that sends 100,000 bad requests must not write 100,000 lines.
    Lines are counted per (kind, peer) and per kind in windows of a period:
    each peer may log a few lines of a kind per window, and every peer
    together a few more; the rest are counted and summed up in one line per
    kind when the window ends:

        kc_server: suppressed 99990 similar lines (rejected batch) in 5 s from
        2 peers; the last: rejected batch from 5904ADF9: ...

    Memory is bounded: at most KC_RATELOG_PEERS_MAX peers are tracked one by
    one (beyond that they share the kind's allowance), and idle entries are
    pruned when windows end. Call kc_ratelog_flush from a timer of about a
    second so summaries are not late.
    =========================================================================
*/
#ifndef KC_RATELOG_H_INCLUDED
#define KC_RATELOG_H_INCLUDED

#include "kc_util.h"

#define KC_RATELOG_PEERS_MAX    4096        //  (kind, peer) pairs tracked one by one
#define KC_RATELOG_KINDS_MAX    64          //  kinds tracked

typedef struct _kc_ratelog_t kc_ratelog_t;

//  Levels, as zsys's.
typedef enum { KC_LOG_INFO, KC_LOG_WARNING, KC_LOG_ERROR } kc_log_level_t;

//  Creates a limiter: per period_ms, at most per_peer lines of a kind for
//  each peer and at most per_kind lines of a kind in all. name prefixes the
//  summary lines ("kc_server").
kc_ratelog_t *
    kc_ratelog_new (const char *name, int period_ms, int per_peer, int per_kind);

//  Emits any pending summary, then destroys the limiter. Nulls *self_p.
void
    kc_ratelog_destroy (kc_ratelog_t **self_p);

//  Logs one line (printf style; it is escaped like a reason) about peer
//  (e.g. a key fingerprint or an address) unless this kind has used its
//  allowance; then it is only counted. Returns true if the line was logged.
bool
    kc_ratelog (kc_ratelog_t *self, kc_log_level_t level, const char *kind, const char *peer,
                const char *format, ...) KC_PRINTF (5, 6);

//  Ends the windows that are over: one summary line per kind that
//  suppressed lines, and idle entries pruned.
void
    kc_ratelog_flush (kc_ratelog_t *self);

//  Lines logged and suppressed since creation (for status and tests).
void
    kc_ratelog_counts (kc_ratelog_t *self, uint64_t *logged, uint64_t *suppressed);

//  Self test of this module.
void
    kc_ratelog_test (bool verbose);

#endif
