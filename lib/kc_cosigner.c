/*  =========================================================================
    kc_cosigner - cosigning the heads a verified copy ends at.
    =========================================================================
*/
#include "kc_cosigner.h"
#include "kc_cosig.h"
#include "kc_file.h"
#include "kc_keys.h"
#include "kc_proto.h"
#include "kc_sockopt.h"
#include "kc_wire.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _kc_cosigner_t {
    char who [32];
    kc_signer_t *signer;
    char *floor_path;
    kc_ratelog_t *log;
    zsock_t *cosign [KC_ROOT_SERVERS_MAX];  //  a DEALER to each server of the root (NULL:
    zsock_t *monitor [KC_ROOT_SERVERS_MAX]; //  refused, again at retry), the handshake
    int64_t retry [KC_ROOT_SERVERS_MAX];    //  events of each
    int64_t backoff [KC_ROOT_SERVERS_MAX];
    char names [KC_ROOT_SERVERS_MAX][KC_ROOT_OPERATOR_NAME_MAX + 1];
    char endpoints [KC_ROOT_SERVERS_MAX][KC_ROOT_ENDPOINT_MAX + 1];
    uint8_t server_keys [KC_ROOT_SERVERS_MAX][KC_KEY_BYTES];
    uint8_t public_key [KC_KEY_BYTES];      //  our CURVE key pair, for reconnections
    uint8_t *secret_key;                    //  (sodium_malloc)
    size_t count;
    uint64_t cosigned, floor_seq, refusals;
    uint8_t floor_chain [KC_HASH_BYTES];    //  never cosign below or beside it
    int64_t cosigned_at;                    //  zclock_mono of the last one
};

kc_cosigner_t *
kc_cosigner_new (const char *who, const char *key_path, const char *floor_path, kc_ratelog_t *log, kc_why_t *why)
{
    kc_signer_t *signer = kc_signer_load (key_path, why);
    if (!signer) {
        return NULL;
    }
    kc_cosigner_t *self = calloc (1, sizeof *self);
    assert (self);
    snprintf (self->who, sizeof self->who, "%s", who);
    self->signer = signer;
    self->floor_path = strdup (floor_path);
    self->log = log;
    self->secret_key = sodium_malloc (KC_KEY_BYTES);
    assert (self->floor_path && self->secret_key);
    return self;
}

static void
s_close_one (kc_cosigner_t *self, size_t i)
{
    if (self->cosign [i]) {
        zmq_socket_monitor (zsock_resolve (self->cosign [i]), NULL, 0);
        zsock_destroy (&self->cosign [i]);
    }
    zsock_destroy (&self->monitor [i]);
}

static void
s_close_all (kc_cosigner_t *self)
{
    for (size_t i = 0; i < self->count; i++) {
        s_close_one (self, i);
    }
    self->count = 0;
}

void
kc_cosigner_destroy (kc_cosigner_t **self_p)
{
    kc_cosigner_t *self = *self_p;
    if (self) {
        kc_cosigner_keep_floor (self);
        s_close_all (self);
        kc_signer_destroy (&self->signer);
        sodium_free (self->secret_key);
        free (self->floor_path);
        free (self);
        *self_p = NULL;
    }
}

void
kc_cosigner_set_copy (kc_cosigner_t *self, uint64_t seq, const uint8_t chain [KC_HASH_BYTES])
{
    self->floor_seq = seq;
    memcpy (self->floor_chain, chain, KC_HASH_BYTES);
    size_t size;
    kc_why_t why;
    uint8_t *floor = kc_file_exists (self->floor_path) ? kc_file_read (self->floor_path, 40, false, &size, &why) : NULL;
    if (floor && size == 8 + KC_HASH_BYTES && kc_get_u64 (floor) > seq) {
        self->floor_seq = kc_get_u64 (floor);
        memcpy (self->floor_chain, floor + 8, KC_HASH_BYTES);
        zsys_info ("%s: witness: this copy is at seq %llu, below seq %llu cosigned before: cosigning again once "
                   "past it", self->who, (unsigned long long) seq, (unsigned long long) self->floor_seq);
    }
    kc_file_free (&floor, false);
}

void
kc_cosigner_keep_floor (kc_cosigner_t *self)
{
    uint8_t floor [8 + KC_HASH_BYTES];
    kc_put_u64 (floor, self->floor_seq);
    memcpy (floor + 8, self->floor_chain, KC_HASH_BYTES);
    kc_why_t why;
    if (kc_file_write_atomic (self->floor_path, floor, sizeof floor, KC_FILE_MODE_PUBLIC, &why)) {
        zsys_error ("%s: witness: cannot keep what it cosigned: %s", self->who, why.text);
    }
}

//  A DEALER to server i, with a monitor of its handshakes: a server that
//  refused this witness's key (not registered there yet: libzmq never tries
//  again after a refusal) gets a new socket later, with back-off.
static void
s_open_one (kc_cosigner_t *self, size_t i)
{
    zsock_t *socket = zsock_new (ZMQ_DEALER);
    assert (socket);
    kc_why_t why = { "invalid endpoint" };
    zsock_set_linger (socket, 0);
    zsock_set_sndtimeo (socket, 0);         //  never block: a cosignature not sent is replaced
    zsock_set_sndhwm (socket, 4);           //  by the next one
    char monitor [64];
    snprintf (monitor, sizeof monitor, "inproc://kc-witness-%p-%zu", (void *) self, i);
    if (kc_sockopt_curve_client (socket, self->public_key, self->secret_key, self->server_keys [i], &why)
    ||  zmq_socket_monitor (zsock_resolve (socket), monitor, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
    ||  !(self->monitor [i] = zsock_new (ZMQ_PAIR))
    ||  zsock_connect (self->monitor [i], "%s", monitor)
    ||  zsock_connect (socket, "%s", self->endpoints [i])) {
        zsys_error ("%s: witness: cannot connect to server %s: %s", self->who, self->names [i], why.text);
        self->cosign [i] = socket;
        s_close_one (self, i);
        return;
    }
    zsock_set_rcvtimeo (self->monitor [i], 0);
    self->cosign [i] = socket;
}

void
kc_cosigner_connect (kc_cosigner_t *self, const kc_root_t *root, const uint8_t *public_key, const uint8_t *secret_key,
                    const char *override)
{
    s_close_all (self);
    memcpy (self->public_key, public_key, KC_KEY_BYTES);
    memcpy (self->secret_key, secret_key, KC_KEY_BYTES);
    bool listed = false;
    for (size_t i = 0; i < kc_root_witness_count (root); i++) {
        listed |= memcmp (kc_root_witness (root, i)->key, kc_signer_public_key (self->signer), KC_KEY_BYTES) == 0;
    }
    char fp [KC_FINGERPRINT_CHARS + 1];
    kc_fingerprint (kc_signer_public_key (self->signer), fp);
    if (listed) {
        zsys_info ("%s: witness %s: cosigning the heads this copy of the log ends at", self->who, fp);
    }
    else {
        zsys_warning ("%s: witness key %s is not a witness of root v%llu: servers and agents refuse its "
                      "cosignatures until a root names it", self->who, fp, (unsigned long long) kc_root_version (root));
    }
    self->count = kc_root_server_count (root);
    for (size_t i = 0; i < self->count; i++) {
        const kc_root_server_t *server = kc_root_server (root, i);
        snprintf (self->names [i], sizeof self->names [i], "%s", server->name);
        snprintf (self->endpoints [i], sizeof self->endpoints [i], "%s",
                  override && self->count == 1 ? override : server->endpoints [0]);
        memcpy (self->server_keys [i], server->server_key, KC_KEY_BYTES);
        self->backoff [i] = KC_COSIGNER_BACKOFF_MIN_MS;
        self->retry [i] = 0;
        s_open_one (self, i);
    }
}

//  Reads the handshake events of each socket: a refusal closes it and
//  schedules another with back-off; a success resets the back-off.
static void
s_check (kc_cosigner_t *self)
{
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < self->count; i++) {
        zmsg_t *event;
        while (self->monitor [i] && (event = zmsg_recv (self->monitor [i]))) {
            zframe_t *first = zmsg_first (event);
            uint16_t type = 0;              //  libzmq writes it in host order
            if (first && zframe_size (first) == 6) {
                memcpy (&type, zframe_data (first), sizeof type);
            }
            zmsg_destroy (&event);
            if (type == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                self->backoff [i] = KC_COSIGNER_BACKOFF_MIN_MS;
            }
            else {
                kc_ratelog (self->log, KC_LOG_WARNING, "witness refused", self->names [i],
                            "%s: witness: server %s refused this node's key; trying again in %lld s", self->who,
                            self->names [i], (long long) self->backoff [i] / 1000);
                s_close_one (self, i);
                self->retry [i] = now + self->backoff [i];
                self->backoff [i] = self->backoff [i] * 2 > KC_COSIGNER_BACKOFF_MAX_MS ? KC_COSIGNER_BACKOFF_MAX_MS
                                                                                     : self->backoff [i] * 2;
            }
        }
        if (!self->cosign [i] && now >= self->retry [i]) {
            s_open_one (self, i);
        }
    }
}

void
kc_cosigner_cosign (kc_cosigner_t *self, const uint8_t directory [KC_HASH_BYTES], uint64_t seq,
                   const uint8_t chain [KC_HASH_BYTES])
{
    //  The copy never goes back, except through a rebuild from scratch,
    //  which must catch up with what was cosigned before it cosigns again
    if (seq < self->floor_seq
    ||  (seq == self->floor_seq && sodium_memcmp (chain, self->floor_chain, KC_HASH_BYTES))) {
        self->refusals++;
        kc_ratelog (self->log, KC_LOG_WARNING, "witness not cosigning", "server",
                    "%s: witness: not cosigning seq %llu: this witness cosigned seq %llu%s before", self->who,
                    (unsigned long long) seq, (unsigned long long) self->floor_seq,
                    seq == self->floor_seq ? " with another chain" : "");
        return;
    }
    int64_t mono = zclock_mono ();
    if (seq == self->floor_seq && self->cosigned && mono - self->cosigned_at < KC_COSIGNER_COSIGN_EVERY_MS) {
        return;
    }
    kc_cosig_t cosig = { .seq = seq, .time = kc_now_ms () };
    memcpy (cosig.directory, directory, KC_HASH_BYTES);
    memcpy (cosig.chain, chain, KC_HASH_BYTES);
    kc_cosig_sign (&cosig, self->signer);
    uint8_t bytes [KC_COSIG_BYTES];
    kc_cosig_encode (&cosig, bytes);
    s_check (self);
    for (size_t i = 0; i < self->count; i++) {
        zmsg_t *msg = kc_proto_cosign (bytes);
        if (!self->cosign [i] || zmsg_send (&msg, self->cosign [i])) {
            zmsg_destroy (&msg);            //  that server is not connected now
        }
    }
    self->cosigned++;
    self->floor_seq = seq;
    memcpy (self->floor_chain, chain, KC_HASH_BYTES);
    self->cosigned_at = mono;
}

uint64_t
kc_cosigner_cosigned (const kc_cosigner_t *self)
{
    return self->cosigned;
}

uint64_t
kc_cosigner_floor (const kc_cosigner_t *self)
{
    return self->floor_seq;
}

uint64_t
kc_cosigner_refusals (const kc_cosigner_t *self)
{
    return self->refusals;
}

const uint8_t *
kc_cosigner_key (const kc_cosigner_t *self)
{
    return kc_signer_public_key (self->signer);
}

//  --- Self test -----------------------------------------------------------------------

void
kc_cosigner_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_cosigner: ");
    }
    char dir [] = "/tmp/kc_cosigner_test.XXXXXX";
    assert (mkdtemp (dir));
    char key [256], floor [256];
    snprintf (key, sizeof key, "%s/w1", dir);
    snprintf (floor, sizeof floor, "%s/floor", dir);
    kc_why_t why;
    assert (kc_cosigner_new ("test", key, floor, NULL, &why) == NULL);
    kc_signer_t *signer = kc_signer_new ("w1", "keyclone-witness");
    assert (kc_signer_save (signer, key, &why) == 0);
    kc_ratelog_t *log = kc_ratelog_new ("test", 1000, 3, 3);
    kc_cosigner_t *witness = kc_cosigner_new ("test", key, floor, log, &why);
    assert (witness && memcmp (kc_cosigner_key (witness), kc_signer_public_key (signer), 32) == 0);
    //  Cosigns the copy (no server: nothing goes out), never below it
    uint8_t directory [32] = { 1 }, chain [32] = { 2 }, other [32] = { 3 };
    kc_cosigner_set_copy (witness, 5, chain);
    kc_cosigner_cosign (witness, directory, 5, chain);
    assert (kc_cosigner_cosigned (witness) == 1 && kc_cosigner_floor (witness) == 5);
    kc_cosigner_cosign (witness, directory, 4, other);
    kc_cosigner_cosign (witness, directory, 5, other);
    assert (kc_cosigner_cosigned (witness) == 1 && kc_cosigner_refusals (witness) == 2);
    kc_cosigner_cosign (witness, directory, 7, other);
    assert (kc_cosigner_cosigned (witness) == 2 && kc_cosigner_floor (witness) == 7);
    kc_cosigner_destroy (&witness);          //  keeps the floor
    //  A rebuilt copy (seq 0) starts from the floor kept
    witness = kc_cosigner_new ("test", key, floor, log, &why);
    kc_cosigner_set_copy (witness, 0, chain);
    assert (kc_cosigner_floor (witness) == 7);
    kc_cosigner_cosign (witness, directory, 6, chain);
    assert (kc_cosigner_cosigned (witness) == 0 && kc_cosigner_refusals (witness) == 1);
    kc_cosigner_destroy (&witness);
    kc_cosigner_destroy (&witness);
    kc_ratelog_destroy (&log);
    kc_signer_destroy (&signer);
    char command [300];
    snprintf (command, sizeof command, "rm -rf %s", dir);
    assert (system (command) == 0);
    if (verbose) {
        printf ("OK\n");
    }
}
