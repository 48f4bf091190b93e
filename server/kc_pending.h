/*  =========================================================================
    kc_pending - the server's enrolment requests (docs/protocol.md 6.4):
    persisted in the store's database, bounded in number, rate-limited per
    source address, expiring. Nothing here is ever trusted: a pending key
    is not a member until operators sign its registration.
    =========================================================================
*/
#ifndef KC_PENDING_H_INCLUDED
#define KC_PENDING_H_INCLUDED

#include "kc_enrol.h"
#include "kc_batch.h"
#include <sqlite3.h>

#define KC_PENDING_SOURCES_MAX  4096        //  source addresses the rate limit tracks

typedef struct {
    uint64_t expiry_ms;                     //  a request lives this long (default 24 h)
    size_t max;                             //  requests kept at once (default 1000)
    uint32_t per_minute;                    //  new requests per source a minute (default 10)
} kc_pending_config_t;

typedef struct _kc_pending_t kc_pending_t;

//  Prepares the enrolment table of db (the store's, schema 0005) and counts
//  what it holds. NULL with a reason on failure.
kc_pending_t *
    kc_pending_new (sqlite3 *db, const kc_pending_config_t *config, kc_why_t *why);

void
    kc_pending_destroy (kc_pending_t **self_p);

//  New limits (SIGHUP); requests already kept keep their expiry.
void
    kc_pending_configure (kc_pending_t *self, const kc_pending_config_t *config);

//  A node asks (asked: key, name, tags, source). If a request from the key
//  is kept, returns it when it asks the same (a node waiting asks again),
//  and refuses another name or tags while it is pending. Else a new pending
//  request, if the source is within its rate and the list has room.
//  Returns 0 with *out, or -1 with a reason starting "refused:".
int
    kc_pending_request (kc_pending_t *self, const kc_enrolment_t *asked, uint64_t now_ms,
                        kc_enrolment_t *out, kc_why_t *why) KC_WUR;

//  The request kept for key: 1 with *out, 0 if none, -1 on a failure.
int
    kc_pending_get (kc_pending_t *self, const uint8_t key [static KC_KEY_BYTES], uint64_t now_ms,
                    kc_enrolment_t *out, kc_why_t *why) KC_WUR;

//  An operator's refusal: the request is kept as rejected, with the
//  reason, until it expires (so the node learns why). 0 with *out, or -1.
int
    kc_pending_reject (kc_pending_t *self, const uint8_t key [static KC_KEY_BYTES],
                       const char *reason, uint64_t now_ms, kc_enrolment_t *out, kc_why_t *why) KC_WUR;

//  The keys of a batch just accepted are registered: their requests are
//  done, in one transaction. No disk access when none is kept.
void
    kc_pending_forget (kc_pending_t *self, const kc_batch_t *batch);

typedef int (kc_pending_fn) (const uint8_t *data, size_t size, void *arg);

//  Calls fn with each kept request's encoding, oldest first, after dropping
//  the expired. Returns the count or -1.
int
    kc_pending_list (kc_pending_t *self, uint64_t now_ms, kc_pending_fn *fn, void *arg,
                     kc_why_t *why);

//  Deletes expired requests when one is due (no disk access otherwise).
//  Returns how many were removed.
size_t
    kc_pending_expire (kc_pending_t *self, uint64_t now_ms);

//  Requests kept (pending or rejected), and refusals since the start.
size_t
    kc_pending_count (const kc_pending_t *self);
uint64_t
    kc_pending_refused (const kc_pending_t *self);

#endif
