/*  =========================================================================
    kc_client - synchronous clients: the server's submission channel (submit
    batches, query records, server status) over CURVE with the root's server
    key, and the local agent's service (lookups, status) over ipc.
    =========================================================================
*/
#ifndef KC_CLIENT_H_INCLUDED
#define KC_CLIENT_H_INCLUDED

#include "kc_util.h"
#include "kc_batch.h"
#include "kc_root.h"
#include "kc_keys.h"
#include "kc_proto.h"
#include "kc_enrol.h"

typedef struct _kc_client_t kc_client_t;

//  Called for each record a query returns; return 0 to go on, -1 to stop.
typedef int (kc_client_record_fn) (uint64_t seq, const kc_record_t *record, void *arg);

//  A client of the submission channel at endpoint (NULL: the root's), with
//  the root's server key pinned; it connects at the first request, with a
//  fresh CURVE key pair unless kc_client_set_key gave one. Replies must come
//  within timeout_ms. Returns the client (never fails to create).
kc_client_t *
    kc_client_new (const kc_root_t *root, const char *endpoint, int timeout_ms);

#define KC_CLIENT_SERVER_KEYS   4           //  server keys a client may try

//  Another CURVE key the server may answer to (after a server key rotation,
//  docs/protocol.md 2.3): keys are tried in the order given, the root's
//  first, moving on when libzmq reports a failed handshake. Before the
//  first request; keys past KC_CLIENT_SERVER_KEYS are ignored.
void
    kc_client_add_server_key (kc_client_t *self, const uint8_t key [static KC_KEY_BYTES]);

//  The server key in use (after the first request: the one that answered).
const uint8_t *
    kc_client_server_key (kc_client_t *self);

//  A client of a local agent's service (ipc, no CURVE) for the requests an
//  agent answers as the server does: kc_client_root (the root changes the
//  node accepted) and kc_client_log (its audit history).
kc_client_t *
    kc_client_new_agent (const char *endpoint, int timeout_ms);

//  Authenticates with this key pair (not owned; keep it alive) instead of
//  a throw-away one: a registered member's key may read (QUERY, STATUS)
//  from a server whose read policy is "members". Before the first request.
void
    kc_client_set_key (kc_client_t *self, const kc_cert_t *cert);

//  Signs every QUERY and STATUS with this operator key (not owned), which
//  a "members" server accepts from any connection (kc_access.h).
void
    kc_client_set_operator (kc_client_t *self, const kc_signer_t *signer);

//  Closes the client. Nulls *self_p.
void
    kc_client_destroy (kc_client_t **self_p);

//  Submits a batch; on success returns 0 with its seq and whether it was a
//  duplicate of an accepted batch. -1 with the server's reason or a timeout.
int
    kc_client_submit (kc_client_t *self, const kc_batch_t *batch, uint64_t *seq,
                      bool *duplicate, kc_why_t *why) KC_WUR;

//  The same for a root change (kc_root_t) or for encoded bytes of either.
int
    kc_client_submit_root (kc_client_t *self, const kc_root_t *root, uint64_t *seq,
                           bool *duplicate, kc_why_t *why) KC_WUR;
int
    kc_client_submit_data (kc_client_t *self, const uint8_t *data, size_t size, uint64_t *seq,
                           bool *duplicate, kc_why_t *why) KC_WUR;

//  The root in force at the server: the server's root changes (ROOTS)
//  followed from pinned, each checked as the successor of the one before
//  (the server is not trusted for them). fn, when given, is called for
//  each step (from, to). Returns the root (caller destroys) or NULL with a
//  reason.
typedef void (kc_client_root_fn) (const kc_root_t *from, const kc_root_t *to, uint64_t seq,
                                   void *arg);
kc_root_t *
    kc_client_root (kc_client_t *self, const kc_root_t *pinned, kc_client_root_fn *fn, void *arg,
                    kc_why_t *why);

//  The server's log after seq after (LOG, read like QUERY): calls fn for
//  each entry (a batch or a root change, with when it was accepted and who
//  submitted it), in order, until fn returns non-zero or the log ends.
//  Returns how many entries fn took, or -1 with a reason.
typedef int (kc_client_log_fn) (const kc_entry_t *entry, void *arg);
int
    kc_client_log (kc_client_t *self, uint64_t after, kc_client_log_fn *fn, void *arg,
                   kc_why_t *why);

//  Queries records: kind "key" (32-byte argument), "name", or "list" (all,
//  in key order, paged internally; with an argument, the keys after it). Returns the number given to fn, or -1.
int
    kc_client_query (kc_client_t *self, const char *kind, const uint8_t *argument,
                     size_t size, kc_client_record_fn *fn, void *arg, kc_why_t *why);

//  Enrolment (docs/protocol.md 6.4). enrol asks the server to let this
//  client's key (kc_client_set_key) join as name with tags, or asks again
//  where the request stands: 0 with *out, or -1 with the server's reason.
//  pending calls fn with each request kept (read like QUERY); returns how
//  many, or -1. reject refuses one (needs kc_client_set_operator).
int
    kc_client_enrol (kc_client_t *self, const char *name, const char *const *tags, size_t tag_count,
                     kc_enrolment_t *out, kc_why_t *why) KC_WUR;
//  rotate asks, with this client's key (a member's), for key to replace it,
//  the old key staying valid overlap seconds after the approval.
int
    kc_client_rotate (kc_client_t *self, const uint8_t key [static KC_KEY_BYTES], uint64_t overlap,
                      kc_enrolment_t *out, kc_why_t *why) KC_WUR;
typedef int (kc_client_enrolment_fn) (const kc_enrolment_t *enrolment, void *arg);
int
    kc_client_pending (kc_client_t *self, kc_client_enrolment_fn *fn, void *arg, kc_why_t *why);
int
    kc_client_reject (kc_client_t *self, const uint8_t key [static KC_KEY_BYTES], const char *reason,
                      kc_enrolment_t *out, kc_why_t *why) KC_WUR;

//  The server's status: JSON, or the text rendering (caller frees), or NULL
//  with a reason.
char *
    kc_client_status (kc_client_t *self, bool json, kc_why_t *why);

//  The same, both: returns the JSON and sets *text_p to the text rendering
//  (caller frees both; both NULL on failure).
char *
    kc_client_status_both (kc_client_t *self, char **text_p, kc_why_t *why);

//  The server's metrics (Prometheus text, in *text_p; read like STATUS):
//  returns a small JSON object naming the format, or NULL with a reason.
char *
    kc_client_metrics (kc_client_t *self, char **text_p, kc_why_t *why);

//  Sends a request to the agent's local service at endpoint: a command and
//  an optional argument (binary). Returns the reply's JSON, or its text
//  rendering (caller frees), or NULL with the agent's reason or a timeout.
char *
    kc_agent_request (const char *endpoint, int timeout_ms, const char *command,
                      const uint8_t *argument, size_t size, bool json, kc_why_t *why);

//  The same, both: returns the JSON and sets *text_p to the text rendering
//  (caller frees both; both NULL on failure).
char *
    kc_agent_request_both (const char *endpoint, int timeout_ms, const char *command,
                           const uint8_t *argument, size_t size, char **text_p, kc_why_t *why);

#endif
