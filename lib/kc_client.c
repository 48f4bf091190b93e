/*  =========================================================================
    kc_client - synchronous submission and local-agent clients.
    =========================================================================
*/
#include "kc_client.h"
#include "kc_keys.h"
#include "kc_proto.h"
#include "kc_sockopt.h"
#include "kc_access.h"

#include <errno.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>


#define PAUSE_MAX_MS        100     //  between submissions during an election: 100-200 ms
#define HANDSHAKE_WAIT_MS   1000    //  for a cluster member's CURVE handshake

struct _kc_client_t {
    zsock_t *socket;                        //  connected at the first request
    kc_cert_t *cert;                        //  a throw-away key pair, unless set
    const kc_cert_t *member;                //  the caller's key pair, not owned
    const kc_signer_t *operator_key;        //  signs QUERY and STATUS, not owned
    uint8_t server_key [KC_KEY_BYTES];      //  the key in use, one of:
    uint8_t server_keys [KC_CLIENT_SERVER_KEYS][KC_KEY_BYTES];
    size_t key_count, key_index;
    char endpoint [KC_ROOT_ENDPOINT_MAX + 1];
    int timeout_ms;
    bool agent;                             //  a local agent's service: plain ipc
    char failure [KC_WHY_BYTES];            //  the socket could not be secured
    //  The root's servers, for a cluster (docs/cluster.md 4): a submission
    //  goes on to the leader a member names, or to the next member when
    //  one cannot be reached
    kc_root_server_t members [KC_ROOT_SERVERS_MAX];
    size_t member_count, member_index;
    int wait_ms;                            //  for one member's answer to a submission
    int attempt_ms;                         //  for the answer to the request being sent
    bool unreachable;                       //  the last connection was refused, or lost
    bool sign_next;                         //  s_authorize: sign the next request
    bool pinned;                            //  an endpoint was given: reads ask it alone
    bool submitting;                        //  a submission: it goes to the leader
    zactor_t *monitor;                      //  in a cluster: the connection's, to learn
                                            //  at once that a member went away
};

static int
    s_check_ipc (const char *endpoint, kc_why_t *why);

kc_client_t *
kc_client_new (const kc_root_t *root, const char *endpoint, int timeout_ms)
{
    kc_client_t *self = calloc (1, sizeof *self);
    assert (self);
    snprintf (self->endpoint, sizeof self->endpoint, "%s",
              endpoint ? endpoint : kc_root_endpoint (root, KC_ENDPOINT_SUBMIT));
    self->timeout_ms = timeout_ms;
    memcpy (self->server_key, kc_root_server_key (root), KC_KEY_BYTES);
    memcpy (self->server_keys [0], self->server_key, KC_KEY_BYTES);
    self->key_count = 1;
    self->wait_ms = self->attempt_ms = timeout_ms;
    self->pinned = endpoint != NULL;
    for (size_t i = 0; i < kc_root_server_count (root) && i < KC_ROOT_SERVERS_MAX; i++) {
        self->members [self->member_count++] = *kc_root_server (root, i);
        if (KC_STREQ (self->endpoint, kc_root_server (root, i)->endpoints [KC_ENDPOINT_SUBMIT])) {
            self->member_index = i;         //  --server names a member: its key
            memcpy (self->server_key, kc_root_server (root, i)->server_key, KC_KEY_BYTES);
            memcpy (self->server_keys [0], self->server_key, KC_KEY_BYTES);
        }
    }
    if (self->member_count > 1) {
        //  A member that does not answer is left for the next well before
        //  the whole timeout
        int share = timeout_ms / (int) self->member_count, floor = timeout_ms < 1000 ? timeout_ms : 1000;
        self->wait_ms = share > floor ? share : floor;
    }
    return self;
}

kc_client_t *
kc_client_new_agent (const char *endpoint, int timeout_ms)
{
    kc_client_t *self = calloc (1, sizeof *self);
    assert (self);
    snprintf (self->endpoint, sizeof self->endpoint, "%s", endpoint);
    self->timeout_ms = self->attempt_ms = timeout_ms;
    self->agent = true;
    return self;
}

void
kc_client_add_server_key (kc_client_t *self, const uint8_t key [static KC_KEY_BYTES])
{
    assert (!self->socket);
    for (size_t i = 0; i < self->key_count; i++) {
        if (memcmp (self->server_keys [i], key, KC_KEY_BYTES) == 0) {
            return;
        }
    }
    if (self->key_count < KC_CLIENT_SERVER_KEYS) {
        memcpy (self->server_keys [self->key_count++], key, KC_KEY_BYTES);
    }
}

const uint8_t *
kc_client_server_key (kc_client_t *self)
{
    return self->server_key;
}

void
kc_client_set_key (kc_client_t *self, const kc_cert_t *cert)
{
    assert (!self->socket);
    self->member = cert;
}

void
kc_client_set_operator (kc_client_t *self, const kc_signer_t *signer)
{
    self->operator_key = signer;
}

void
kc_client_destroy (kc_client_t **self_p)
{
    if (self_p && *self_p) {
        zactor_destroy (&(*self_p)->monitor);
        zsock_destroy (&(*self_p)->socket);
        kc_cert_destroy (&(*self_p)->cert);
        free (*self_p);
        *self_p = NULL;
    }
}

//  The key pair this client authenticates with.
static const kc_cert_t *
s_cert (kc_client_t *self)
{
    if (!self->member && !self->cert) {
        self->cert = kc_cert_new (NULL);
    }
    return self->member ? self->member : self->cert;
}

//  Connects with the server key in use; with a monitor of the handshake
//  when asked. Returns 0 or -1 with a reason.
static int
s_connect_key (kc_client_t *self, zactor_t **monitor_p, kc_why_t *why)
{
    const kc_cert_t *cert = s_cert (self);
    memcpy (self->server_key, self->server_keys [self->key_index], KC_KEY_BYTES);
    self->socket = zsock_new (ZMQ_DEALER);
    assert (self->socket);
    zsock_set_linger (self->socket, 0);
    //  Never talk to the server unauthenticated: no connection at all
    if (kc_sockopt_curve_client (self->socket, kc_cert_public_key (cert), kc_cert_secret_key (cert),
                                 self->server_key, why)
    ||  kc_sockopt_maxmsgsize (self->socket, KC_PROTO_MESSAGE_MAX, why)) {
        snprintf (self->failure, sizeof self->failure, "%s", why->text);
        return -1;
    }
    if (monitor_p) {
        *monitor_p = zactor_new (zmonitor, self->socket);
        zstr_sendx (*monitor_p, "LISTEN", "HANDSHAKE_SUCCEEDED", "HANDSHAKE_FAILED_NO_DETAIL",
                    "HANDSHAKE_FAILED_PROTOCOL", "HANDSHAKE_FAILED_AUTH", NULL);
        if (self->member_count > 1) {
            //  A member that is down is passed over at once (cluster)
            zstr_sendx (*monitor_p, "LISTEN", "CONNECTED", "CONNECT_RETRIED", "DISCONNECTED", NULL);
        }
        zstr_sendx (*monitor_p, "START", NULL);
        zsock_wait (*monitor_p);
    }
    if (zsock_connect (self->socket, "%s", self->endpoint)) {
        snprintf (self->failure, sizeof self->failure, "invalid endpoint '%.200s'", self->endpoint);
        return kc_why (why, "%s", self->failure);
    }
    return 0;
}

//  Finds the server key the server answers to (several are known after a
//  CURVE key rotation, docs/protocol.md 2.3): libzmq reports a failed
//  handshake at once when the server cannot open our HELLO. A key fails
//  after two failed handshakes (libzmq reconnects in between: one may be a
//  server restarting); each key is tried in turn within the timeout, and a
//  wrong key is reported at once, not as a silent server.
static int
s_connect_probing (kc_client_t *self, kc_why_t *why)
{
    //  In a cluster a member that does not complete a handshake soon is
    //  passed for the next (a stopped process: TCP still connects)
    int wait_ms = self->member_count > 1 && self->attempt_ms > HANDSHAKE_WAIT_MS ? HANDSHAKE_WAIT_MS
                                                                               : self->attempt_ms;
    int64_t deadline = zclock_mono () + wait_ms;
    size_t tried = 0;
    self->unreachable = false;
    char event_seen [64] = "";
    while (true) {
        zactor_t *monitor = NULL;
        if (s_connect_key (self, &monitor, why)) {
            zactor_destroy (&monitor);
            return -1;
        }
        char *event = NULL;
        int failures = 0;
        bool disconnected = false;
        zpoller_t *poller = zpoller_new (monitor, NULL);
        int64_t left = deadline - zclock_mono ();
        while (!event && left > 0 && zpoller_wait (poller, (int) left)) {
            char *value = NULL, *endpoint = NULL;
            zstr_recvx (monitor, &event, &value, &endpoint, NULL);
            zstr_free (&value);
            zstr_free (&endpoint);
            if (event && KC_STREQ (event, "HANDSHAKE_FAILED_NO_DETAIL") && ++failures < 2) {
                zstr_free (&event);
            }
            //  libzmq schedules a reconnection after a connection ends
            //  (DISCONNECTED, CONNECT_RETRIED) and after a refused one
            //  (CONNECT_RETRIED alone): only the second ends the wait
            bool after_end = disconnected;
            disconnected = event && KC_STREQ (event, "DISCONNECTED");
            if (event && (KC_STREQ (event, "CONNECTED") || disconnected
                      || (KC_STREQ (event, "CONNECT_RETRIED") && after_end))) {
                zstr_free (&event);
            }
            left = deadline - zclock_mono ();
        }
        bool interrupted = zpoller_terminated (poller);
        zpoller_destroy (&poller);
        if (self->member_count > 1 && event && KC_STREQ (event, "HANDSHAKE_SUCCEEDED")) {
            self->monitor = monitor;        //  kept while the connection is in use
            monitor = NULL;
        }
        zactor_destroy (&monitor);
        if (event && KC_STREQ (event, "CONNECT_RETRIED")) {
            zstr_free (&event);
            zsock_destroy (&self->socket);
            self->unreachable = true;
            return kc_why (why, "cannot connect to %s (connection refused)", self->endpoint);
        }
        if (!event) {
            zsock_destroy (&self->socket);
            return kc_why (why, interrupted ? "interrupted" :
                           "no answer from %s within %d ms (is keyclone-server running there?)%s%s",
                           self->endpoint, wait_ms, *event_seen ? "; " : "", event_seen);
        }
        bool failed = strncmp (event, "HANDSHAKE_FAILED", 16) == 0
                   && !KC_STREQ (event, "HANDSHAKE_FAILED_AUTH");
        snprintf (event_seen, sizeof event_seen, "%s", event);
        zstr_free (&event);
        if (!failed) {
            return 0;                       //  in, or refused with the right key
        }
        zsock_destroy (&self->socket);
        if (++tried == self->key_count) {
            char fp [KC_FINGERPRINT_CHARS + 1];
            return kc_why (why, "the server at %s did not complete a CURVE handshake with %s server "
                           "key%s known (last %s): is it this directory's server? After a server key "
                           "rotation this client did not see, copy the root in force (keyclone root "
                           "show --out) to ROOT.followed beside the pinned root", self->endpoint,
                           self->key_count == 1 ? "the" : "any of the", self->key_count == 1 ? "" : "s",
                           kc_fingerprint (self->server_key, fp));
        }
        self->key_index = (self->key_index + 1) % self->key_count;
    }
}

//  Connects at the first request. Returns 0 or -1 with a reason.
static int
s_connect (kc_client_t *self, kc_why_t *why)
{
    if (self->socket) {
        return 0;
    }
    if (self->agent) {
        if (s_check_ipc (self->endpoint, why)) {
            snprintf (self->failure, sizeof self->failure, "%s", why->text);
            return -1;
        }
        self->socket = zsock_new (ZMQ_DEALER);
        assert (self->socket);
        zsock_set_linger (self->socket, 0);
        if (zsock_connect (self->socket, "%s", self->endpoint)) {
            snprintf (self->failure, sizeof self->failure, "invalid agent endpoint '%.200s'", self->endpoint);
            return kc_why (why, "%s", self->failure);
        }
        return 0;
    }
    //  Once: a server that did not answer within the timeout is not probed
    //  again by the same client
    if (s_connect_probing (self, why)) {
        snprintf (self->failure, sizeof self->failure, "%s", why->text);
        return -1;
    }
    return 0;
}

//  Signs a read request when an operator key was given.
//  The next request is signed when an operator key was given: by s_call,
//  once connected, for the server key in use (another member's, when the
//  request goes to another).
static zmsg_t *
s_authorize (kc_client_t *self, zmsg_t *request)
{
    self->sign_next = self->operator_key != NULL;
    return request;
}

//  Sends a request to the server in use and waits for a decoded reply.
static int
s_call_once (kc_client_t *self, zmsg_t **request_p, bool sign, zmsg_t **reply_p, kc_proto_msg_t *decoded,
             kc_why_t *why)
{
    if (*self->failure || s_connect (self, why)) {
        zmsg_destroy (request_p);
        return kc_why (why, "%s", self->failure);
    }
    if (sign) {
        kc_access_sign (*request_p, self->operator_key, self->server_key, kc_cert_public_key (s_cert (self)),
                        kc_now_ms ());
    }
    if (zmsg_send (request_p, self->socket)) {
        zmsg_destroy (request_p);
        return kc_why (why, "cannot send to %s", self->endpoint);
    }
    zpoller_t *poller = zpoller_new (self->socket, NULL);
    if (self->monitor) {
        zpoller_add (poller, self->monitor);
    }
    int64_t deadline = zclock_mono () + self->attempt_ms;
    void *ready = NULL;
    while (!ready && zclock_mono () < deadline) {
        ready = zpoller_wait (poller, (int) (deadline - zclock_mono ()));
        if (ready && ready == self->monitor) {
            char *event = NULL;
            zstr_recvx (self->monitor, &event, NULL);
            bool lost = event && KC_STREQ (event, "DISCONNECTED");
            zstr_free (&event);
            ready = NULL;
            if (lost) {
                //  The member went away with the request (a cluster's
                //  leader killed): the caller goes on to another
                zpoller_destroy (&poller);
                zactor_destroy (&self->monitor);
                zsock_destroy (&self->socket);
                self->unreachable = true;
                return kc_why (why, "the connection to %s was lost", self->endpoint);
            }
        }
        if (zpoller_terminated (poller)) {
            break;
        }
    }
    bool interrupted = zpoller_terminated (poller);
    zpoller_destroy (&poller);
    if (!ready) {
        return kc_why (why, interrupted ? "interrupted" : "no reply from %s within %d ms (is %s running?)",
                       self->endpoint, self->attempt_ms, self->agent ? "keyclone-agent" : "keyclone-server");
    }
    *reply_p = zmsg_recv (self->socket);
    if (!*reply_p || kc_proto_decode (*reply_p, KC_CHANNEL_SUBMIT_CLIENT, decoded, why)) {
        zmsg_destroy (reply_p);
        return kc_why_prefix (why, "bad reply from %s", self->endpoint);
    }
    if (decoded->type == KC_MSG_ERROR) {
        kc_why (why, "%.*s", (int) decoded->text_size, decoded->text);
        kc_proto_msg_reset (decoded);
        zmsg_destroy (reply_p);
        return -1;
    }
    return 0;
}

//  Another member of the root's servers for the requests that follow.
static void
s_use_member (kc_client_t *self, size_t index)
{
    zactor_destroy (&self->monitor);
    zsock_destroy (&self->socket);
    self->failure [0] = 0;
    self->member_index = index;
    snprintf (self->endpoint, sizeof self->endpoint, "%s", self->members [index].endpoints [KC_ENDPOINT_SUBMIT]);
    memcpy (self->server_keys [0], self->members [index].server_key, KC_KEY_BYTES);
    self->key_count = 1;
    self->key_index = 0;
}

//  Waits *pause_ms with up to as much again of jitter, then doubles it up
//  to PAUSE_MAX_MS: clients trying again do not come back all at once.
static void
s_pause (int *pause_ms)
{
    zclock_sleep (*pause_ms + (int) randombytes_uniform ((uint32_t) *pause_ms));
    *pause_ms = *pause_ms < PAUSE_MAX_MS ? *pause_ms * 2 : *pause_ms;
}

//  Sends a request and waits for a decoded reply. To a cluster (the root
//  names several servers, docs/cluster.md 4), a request goes on to the next
//  member when one cannot be reached or does not answer, and a submission
//  to the leader a member names; with no leader for now (an election) it is
//  sent again after a short wait, growing, with jitter. Sending again is
//  safe: a batch already in the log is answered as a duplicate. Gives up
//  at the client's timeout with the last reason.
static int
s_call (kc_client_t *self, zmsg_t **request_p, zmsg_t **reply_p, kc_proto_msg_t *decoded, kc_why_t *why)
{
    bool sign = self->sign_next;
    self->sign_next = false;
    bool submitting = self->submitting;
    self->submitting = false;
    if (self->member_count < 2 || self->agent || (self->pinned && !submitting)) {
        return s_call_once (self, request_p, sign, reply_p, decoded, why);
    }
    int64_t deadline = zclock_mono () + self->timeout_ms;
    zmsg_t *copy = zmsg_dup (*request_p);
    int pause_ms = 50, rc;
    size_t passed = 0;                      //  members that could not be reached in a row
    bool followed = false;                  //  the member in use was named as the leader
    self->attempt_ms = self->wait_ms;
    while (true) {
        rc = s_call_once (self, request_p, sign, reply_p, decoded, why);
        if (rc == 0 || zclock_mono () >= deadline || zsys_interrupted) {
            break;
        }
        size_t named = self->member_count, length = strlen (KC_NOT_LEADER);
        bool not_leader = strncmp (why->text, KC_NOT_LEADER, length) == 0;
        if (not_leader) {
            for (size_t i = 0; i < self->member_count; i++) {
                named = KC_STREQ (self->members [i].name, why->text + length) ? i : named;
            }
        }
        bool unreachable = self->unreachable || strncmp (why->text, "no reply from ", 14) == 0
                        || strncmp (why->text, "no answer from ", 15) == 0;
        passed = unreachable ? passed + 1 : 0;
        if (unreachable && followed) {
            //  A member named a leader that is gone (it does not know yet)
            s_pause (&pause_ms);
        }
        followed = named < self->member_count && named != self->member_index;
        if (followed) {
            s_use_member (self, named);     //  at once: the leader is known
        }
        else
        if (strncmp (why->text, KC_NO_LEADER, strlen (KC_NO_LEADER)) == 0 || not_leader
        ||  strncmp (why->text, "not acknowledged: ", 18) == 0) {
            //  An election is on (or the member names a leader this client
            //  does not know: one just removed): wait for it here
            s_pause (&pause_ms);
        }
        else
        if (unreachable) {
            if (passed >= self->member_count) {
                s_pause (&pause_ms);
            }
            s_use_member (self, (self->member_index + 1) % self->member_count);
        }
        else {
            break;                          //  a refusal on the merits
        }
        *request_p = zmsg_dup (copy);
    }
    zmsg_destroy (&copy);
    self->attempt_ms = self->timeout_ms;
    return rc;
}

int
kc_client_submit (kc_client_t *self, const kc_batch_t *batch, uint64_t *seq, bool *duplicate,
                  kc_why_t *why)
{
    size_t size;
    const uint8_t *data = kc_batch_data (batch, &size);
    return kc_client_submit_data (self, data, size, seq, duplicate, why);
}

int
kc_client_submit_root (kc_client_t *self, const kc_root_t *root, uint64_t *seq, bool *duplicate,
                       kc_why_t *why)
{
    size_t size;
    const uint8_t *data = kc_root_data (root, &size);
    return kc_client_submit_data (self, data, size, seq, duplicate, why);
}

kc_root_t *
kc_client_root (kc_client_t *self, const kc_root_t *pinned, kc_client_root_fn *fn, void *arg,
                kc_why_t *why)
{
    zmsg_t *request = kc_proto_roots_request (), *reply = NULL;
    kc_proto_msg_t decoded;
    if (s_call (self, &request, &reply, &decoded, why)) {
        return NULL;
    }
    kc_root_t *current = NULL;
    if (decoded.type != KC_MSG_ROOTS) {
        kc_why (why, "unexpected %s reply", kc_proto_name (decoded.type));
    }
    else {
        //  The server is not trusted for this: each root change must follow
        //  the one before, from our pinned root, as the agents check it
        current = kc_root_dup (pinned);
        uint64_t previous = 0;
        for (size_t i = 0; current && i < decoded.entry_count; i++) {
            if (decoded.entries [i].seq <= previous) {
                kc_why (why, "the server's root changes are not in log order");
                kc_root_destroy (&current);
                break;
            }
            previous = decoded.entries [i].seq;
            const kc_root_t *before = current;
            kc_root_t *kept = fn ? kc_root_dup (current) : NULL;
            if (kc_root_follow (&current, decoded.entries [i].data, decoded.entries [i].size, why)) {
                kc_why_prefix (why, "the server's root change at seq %llu",
                               (unsigned long long) decoded.entries [i].seq);
                kc_root_destroy (&kept);
                kc_root_destroy (&current);
                break;
            }
            if (fn && current != before) {
                fn (kept, current, decoded.entries [i].seq, arg);
            }
            kc_root_destroy (&kept);
        }
    }
    kc_proto_msg_reset (&decoded);
    zmsg_destroy (&reply);
    return current;
}

int
kc_client_log (kc_client_t *self, uint64_t after, kc_client_log_fn *fn, void *arg, kc_why_t *why)
{
    int total = 0;
    while (true) {
        zmsg_t *request = s_authorize (self, kc_proto_log_request (after, KC_PROTO_LOG_MAX));
        zmsg_t *reply = NULL;
        kc_proto_msg_t decoded;
        if (s_call (self, &request, &reply, &decoded, why)) {
            return -1;
        }
        int rc = 0;
        if (decoded.type != KC_MSG_LOG) {
            rc = kc_why (why, "unexpected %s reply", kc_proto_name (decoded.type));
        }
        for (size_t i = 0; rc == 0 && i < decoded.entry_count; i++) {
            const kc_entry_t *entry = &decoded.entries [i];
            if (entry->seq <= after) {
                rc = kc_why (why, "the server's log is not in order");
            }
            else
            if (fn (entry, arg)) {
                rc = 1;
            }
            else {
                after = entry->seq;
                total++;
            }
        }
        size_t count = decoded.entry_count;
        kc_proto_msg_reset (&decoded);
        zmsg_destroy (&reply);
        if (rc < 0) {
            return -1;
        }
        if (rc > 0 || count == 0) {
            return total;
        }
    }
}

//  The one enrolment of an ENROLMENT reply.
static int
s_enrolment_reply (zmsg_t **request_p, kc_client_t *self, kc_enrolment_t *out, kc_why_t *why)
{
    zmsg_t *reply = NULL;
    kc_proto_msg_t decoded;
    if (s_call (self, request_p, &reply, &decoded, why)) {
        return -1;
    }
    int rc = decoded.type == KC_MSG_ENROLMENT
           ? kc_enrolment_decode (decoded.entries [0].data, decoded.entries [0].size, out, why)
           : kc_why (why, "unexpected %s reply", kc_proto_name (decoded.type));
    kc_proto_msg_reset (&decoded);
    zmsg_destroy (&reply);
    return rc;
}

int
kc_client_enrol (kc_client_t *self, const char *name, const char *const *tags, size_t tag_count,
                 kc_enrolment_t *out, kc_why_t *why)
{
    zmsg_t *request = kc_proto_enrol (name, tags, tag_count);
    return s_enrolment_reply (&request, self, out, why);
}

int
kc_client_rotate (kc_client_t *self, const uint8_t key [static KC_KEY_BYTES], uint64_t overlap,
                  kc_enrolment_t *out, kc_why_t *why)
{
    zmsg_t *request = kc_proto_rotate (key, overlap);
    return s_enrolment_reply (&request, self, out, why);
}

int
kc_client_reject (kc_client_t *self, const uint8_t key [static KC_KEY_BYTES], const char *reason,
                  kc_enrolment_t *out, kc_why_t *why)
{
    if (!self->operator_key) {
        return kc_why (why, "rejecting a request takes an operator key");
    }
    zmsg_t *request = s_authorize (self, kc_proto_reject (key, reason));
    return s_enrolment_reply (&request, self, out, why);
}

int
kc_client_pending (kc_client_t *self, kc_client_enrolment_fn *fn, void *arg, kc_why_t *why)
{
    zmsg_t *request = s_authorize (self, kc_proto_pending_request ()), *reply = NULL;
    kc_proto_msg_t decoded;
    if (s_call (self, &request, &reply, &decoded, why)) {
        return -1;
    }
    int rc = 0;
    if (decoded.type != KC_MSG_PENDING) {
        rc = kc_why (why, "unexpected %s reply", kc_proto_name (decoded.type));
    }
    for (size_t i = 0; rc >= 0 && i < decoded.entry_count; i++) {
        kc_enrolment_t enrolment;
        if (kc_enrolment_decode (decoded.entries [i].data, decoded.entries [i].size, &enrolment, why)) {
            rc = -1;
        }
        else
        if (fn (&enrolment, arg)) {
            break;
        }
        else {
            rc++;
        }
    }
    kc_proto_msg_reset (&decoded);
    zmsg_destroy (&reply);
    return rc;
}

int
kc_client_submit_data (kc_client_t *self, const uint8_t *data, size_t size, uint64_t *seq,
                       bool *duplicate, kc_why_t *why)
{
    zmsg_t *request = kc_proto_submit (data, size), *reply = NULL;
    kc_proto_msg_t decoded;
    self->submitting = true;
    if (s_call (self, &request, &reply, &decoded, why)) {
        return -1;
    }
    int rc = 0;
    if (decoded.type == KC_MSG_OK) {
        *seq = decoded.seq;
        *duplicate = decoded.text_size == 9 && memcmp (decoded.text, "duplicate", 9) == 0;
    }
    else {
        rc = kc_why (why, "unexpected %s reply", kc_proto_name (decoded.type));
    }
    kc_proto_msg_reset (&decoded);
    zmsg_destroy (&reply);
    return rc;
}

//  Gives each record of a RECORDS reply to fn; returns how many, or -1.
static int
s_records (const kc_proto_msg_t *decoded, kc_client_record_fn *fn, void *arg, bool *stop,
           kc_why_t *why)
{
    int given = 0;
    for (size_t i = 0; i < decoded->entry_count && !*stop; i++) {
        kc_reader_t reader;
        kc_record_t record;
        kc_reader_init (&reader, decoded->entries [i].data, decoded->entries [i].size);
        if (kc_record_decode (&reader, &record, why) || kc_reader_left (&reader)) {
            return kc_why_prefix (why, "server sent a bad record");
        }
        given++;
        *stop = fn (decoded->entries [i].seq, &record, arg) != 0;
    }
    return given;
}

int
kc_client_query (kc_client_t *self, const char *kind, const uint8_t *argument, size_t size,
                 kc_client_record_fn *fn, void *arg, kc_why_t *why)
{
    uint8_t cursor [KC_PROTO_ARGUMENT_MAX];
    size_t cursor_size = 0;
    bool list = KC_STREQ (kind, "list"), stop = false;
    if (list && argument && size <= sizeof cursor) {
        memcpy (cursor, argument, size);    //  from the first key after it
        cursor_size = size;
    }
    int total = 0;
    do {
        zmsg_t *request = s_authorize (self, list
                        ? kc_proto_query (kind, cursor, cursor_size, KC_PROTO_RECORDS_MAX)
                        : kc_proto_query (kind, argument, size, KC_PROTO_RECORDS_MAX));
        zmsg_t *reply = NULL;
        kc_proto_msg_t decoded;
        if (s_call (self, &request, &reply, &decoded, why)) {
            return -1;
        }
        int given = decoded.type == KC_MSG_RECORDS ? s_records (&decoded, fn, arg, &stop, why)
                  : kc_why (why, "unexpected %s reply", kc_proto_name (decoded.type));
        cursor_size = decoded.argument_size;
        if (cursor_size) {
            memcpy (cursor, decoded.argument, cursor_size);
        }
        kc_proto_msg_reset (&decoded);
        zmsg_destroy (&reply);
        if (given < 0) {
            return -1;
        }
        total += given;
    } while (list && cursor_size && !stop);
    return total;
}

char *
kc_client_status (kc_client_t *self, bool want_json, kc_why_t *why)
{
    char *text = NULL;
    char *json = kc_client_status_both (self, &text, why);
    if (want_json) {
        free (text);
        return json;
    }
    free (json);
    return text;
}

static char *
s_strndup (const char *text, size_t size)
{
    char *copy = malloc (size + 1);
    assert (copy);
    memcpy (copy, text, size);
    copy [size] = 0;
    return copy;
}

//  A STATUS-shaped reply (STATUS, METRICS) to request: its JSON, and its
//  text in *text_p.
static char *
s_status_reply (kc_client_t *self, zmsg_t *request, char **text_p, kc_why_t *why)
{
    *text_p = NULL;
    zmsg_t *reply = NULL;
    request = s_authorize (self, request);
    kc_proto_msg_t decoded;
    if (s_call (self, &request, &reply, &decoded, why)) {
        return NULL;
    }
    char *json = NULL;
    if (decoded.type == KC_MSG_STATUS) {
        json = s_strndup (decoded.text, decoded.text_size);
        *text_p = s_strndup (decoded.rendering, decoded.rendering_size);
    }
    else {
        kc_why (why, "unexpected %s reply", kc_proto_name (decoded.type));
    }
    kc_proto_msg_reset (&decoded);
    zmsg_destroy (&reply);
    return json;
}

char *
kc_client_status_both (kc_client_t *self, char **text_p, kc_why_t *why)
{
    return s_status_reply (self, kc_proto_status_request (), text_p, why);
}

char *
kc_client_metrics (kc_client_t *self, char **text_p, kc_why_t *why)
{
    return s_status_reply (self, kc_proto_metrics_request (), text_p, why);
}

//  libzmq retries an ipc connect it cannot make, silently, so a missing or
//  forbidden socket would look like a silent agent until the timeout: try
//  the socket first and say at once what is wrong. Returns 0 or -1.
static int
s_check_ipc (const char *endpoint, kc_why_t *why)
{
    if (strncmp (endpoint, "ipc://", 6) || endpoint [6] == '@') {
        return 0;
    }
    const char *path = endpoint + 6;
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    if (strlen (path) >= sizeof address.sun_path) {
        return kc_why (why, "the agent's socket path '%s' is too long", path);
    }
    memcpy (address.sun_path, path, strlen (path) + 1);
    int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return kc_why (why, "cannot make a socket: %s", strerror (errno));
    }
    int rc = connect (fd, (struct sockaddr *) &address, sizeof address);
    int error = errno;
    close (fd);
    if (rc == 0) {
        return 0;
    }
    struct stat info;
    if (error == ENOENT) {
        return kc_why (why, "no agent at %s: no such socket (is keyclone-agent running with that "
                       "--dir? set --agent or KEYCLONE_AGENT)", endpoint);
    }
    if (error == EACCES && stat (path, &info) == 0) {
        return kc_why (why, "not allowed to connect to the agent at %s: the socket is mode %04o, "
                       "uid %u, gid %u (run as a member of its group, or see the agent's --group "
                       "and --socket-mode)", endpoint, (unsigned) (info.st_mode & 07777),
                       (unsigned) info.st_uid, (unsigned) info.st_gid);
    }
    if (error == ECONNREFUSED) {
        return kc_why (why, "no agent at %s: the socket is there but nothing listens (the agent "
                       "stopped?)", endpoint);
    }
    return kc_why (why, "cannot connect to the agent at %s: %s", endpoint, strerror (error));
}

char *
kc_agent_request (const char *endpoint, int timeout_ms, const char *command,
                  const uint8_t *argument, size_t size, bool want_json, kc_why_t *why)
{
    char *text = NULL;
    char *json = kc_agent_request_both (endpoint, timeout_ms, command, argument, size, &text, why);
    if (want_json) {
        free (text);
        return json;
    }
    free (json);
    return text;
}

char *
kc_agent_request_both (const char *endpoint, int timeout_ms, const char *command,
                       const uint8_t *argument, size_t size, char **text_p, kc_why_t *why)
{
    *text_p = NULL;
    if (s_check_ipc (endpoint, why)) {
        return NULL;
    }
    zsock_t *socket = zsock_new (ZMQ_DEALER);
    assert (socket);
    zsock_set_linger (socket, 0);
    if (zsock_connect (socket, "%s", endpoint)) {
        kc_why (why, "invalid agent endpoint '%s'", endpoint);
        zsock_destroy (&socket);
        return NULL;
    }
    zmsg_t *request = zmsg_new ();
    zmsg_addstr (request, command);
    if (argument) {
        zmsg_addmem (request, argument, size);
    }
    zmsg_send (&request, socket);
    char *result = NULL;
    zpoller_t *poller = zpoller_new (socket, NULL);
    if (zpoller_wait (poller, timeout_ms)) {
        zmsg_t *reply = zmsg_recv (socket);
        char *verdict = reply ? zmsg_popstr (reply) : NULL;
        char *json = reply ? zmsg_popstr (reply) : NULL;
        char *text = reply ? zmsg_popstr (reply) : NULL;
        if (verdict && json && KC_STREQ (verdict, "OK") && text) {
            result = json;
            *text_p = text;
            json = text = NULL;
        }
        else {
            kc_why (why, "%s", json && verdict && KC_STREQ (verdict, "ERROR") ? json
                               : "malformed reply from the agent");
        }
        zstr_free (&verdict);
        zstr_free (&json);
        zstr_free (&text);
        zmsg_destroy (&reply);
    }
    else {
        kc_why (why, "no reply from the agent at %s within %d ms (is keyclone-agent running?)",
                endpoint, timeout_ms);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&socket);
    return result;
}
