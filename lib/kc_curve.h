/*  =========================================================================
    kc_curve - the CurveZMQ (ZeroMQ RFC 26) handshake and MESSAGE codec.

    Client and server state machines with no sockets inside: the caller feeds
    in each command the peer sent and gets back the command to send, like a
    SASL mechanism, so the same codec runs over DEALER/ROUTER, REQ/REP, raw
    TCP or anything that moves blobs. Command bodies are byte-identical to
    libzmq's ZMTP-CURVE (the profile is docs/curvezmq.md), so wrapped in ZMTP
    frames they handshake with a stock libzmq CURVE socket.

        client                                  server
        kc_curve_handshake (c, NULL) -> HELLO   -> kc_curve_handshake (s, HELLO)
        kc_curve_handshake (c, WELCOME)      <- WELCOME
                                -> INITIATE     -> kc_curve_handshake (s, INITIATE)
        kc_curve_handshake (c, READY)        <- READY (or ERROR)
        kc_curve_encode / kc_curve_decode both ways (MESSAGE)

    It checks everything RFC 26 asks, including what libzmq skips (HELLO
    padding, the vouch's server key, handshake nonce order), costs 4 X25519
    operations per side, keeps every secret in sodium_malloc memory and wipes
    it on destroy, once the handshake no longer needs it, and on every failure.
    Any failure of a received command is final: the codec wipes its keys and
    refuses everything after, and the caller closes the connection.
    =========================================================================
*/
#ifndef KC_CURVE_H_INCLUDED
#define KC_CURVE_H_INCLUDED

#include "kc_util.h"
#include "kc_meta.h"

#define KC_CURVE_HELLO_BYTES        200     //  exact
#define KC_CURVE_WELCOME_BYTES      168     //  exact
#define KC_CURVE_INITIATE_BYTES     257     //  minimum, plus metadata
#define KC_CURVE_READY_BYTES        30      //  minimum, plus metadata
#define KC_CURVE_ERROR_BYTES        7       //  minimum, plus reason
#define KC_CURVE_MESSAGE_OVERHEAD   33      //  MESSAGE command = payload + this
#define KC_CURVE_METADATA_MAX       KC_META_BYTES_MAX   //  INITIATE or READY metadata
#define KC_CURVE_COMMAND_MAX        (KC_CURVE_INITIATE_BYTES + KC_CURVE_METADATA_MAX)
#define KC_CURVE_COOKIE_TTL_MS      60000   //  cookie key lifetime after WELCOME
#define KC_CURVE_REASON_MAX         255     //  ERROR reason text

//  MESSAGE flags (the first byte of the MESSAGE plaintext)
#define KC_CURVE_MORE               0x01    //  another part of this message follows
#define KC_CURVE_COMMAND            0x02    //  libzmq: a ZMTP 3.1 command rides in
                                            //  this MESSAGE; see kc_curve_set_command_flag

//  Authorisation results, as ZAP (RFC 27) status codes
#define KC_CURVE_ALLOW              200     //  READY
#define KC_CURVE_RETRY              300     //  temporary failure: close, no ERROR
#define KC_CURVE_DENY               400     //  ERROR "400"; libzmq reports AUTH failure
#define KC_CURVE_FAILURE            500     //  internal error: ERROR "500"

//  Property names libzmq reads (case-sensitively) and keyclone's own
#define KC_CURVE_SOCKET_TYPE        "Socket-Type"
#define KC_CURVE_IDENTITY           "Identity"
#define KC_CURVE_HEAD               "X-Keyclone-Head"   //  peer's directory head

//  The identity's bounds: a directory record's (kc_record.h checks they agree)
#define KC_CURVE_NAME_MAX           255     //  bytes of a node name
#define KC_CURVE_TAGS_MAX           16      //  tags per key
#define KC_CURVE_TAG_MAX            64      //  bytes of one tag

typedef struct _kc_curve_t kc_curve_t;

//  Who the server let in: the client's permanent key, plus the name and tags
//  the authorizer found for it (the directory record).
typedef struct {
    uint8_t key [KC_KEY_BYTES];                             //  client key C
    char name [KC_CURVE_NAME_MAX + 1];                      //  "" if unnamed
    char tags [KC_CURVE_TAGS_MAX][KC_CURVE_TAG_MAX + 1];
    size_t tag_count;
} kc_curve_identity_t;

//  Decides whether the client whose permanent key is client_key (vouched for,
//  so it holds the secret key) may connect. metadata is what the client sent
//  in INITIATE (already parsed). identity comes zeroed with its key set; the
//  callback may fill name and tags. Returns KC_CURVE_ALLOW, RETRY, DENY or
//  FAILURE; any other value counts as FAILURE. Runs inside
//  kc_curve_handshake, in the caller's thread.
typedef int (kc_curve_authorize_fn) (const uint8_t client_key [KC_KEY_BYTES],
                                     const kc_meta_t *metadata, void *arg,
                                     kc_curve_identity_t *identity);

//  A monotonic clock in milliseconds (the default reads CLOCK_MONOTONIC).
typedef uint64_t (kc_curve_clock_fn) (void *arg);

//  Makes a client codec with the client's permanent key pair and the
//  server's permanent public key. The secret is copied into secure memory.
kc_curve_t *
    kc_curve_new_client (const uint8_t public_key [static KC_KEY_BYTES],
                         const uint8_t secret_key [static KC_KEY_BYTES],
                         const uint8_t server_key [static KC_KEY_BYTES]);

//  Makes a server codec (one per connection) with the server's permanent
//  key pair. Without kc_curve_set_authorizer every client is denied.
kc_curve_t *
    kc_curve_new_server (const uint8_t public_key [static KC_KEY_BYTES],
                         const uint8_t secret_key [static KC_KEY_BYTES]);

//  Destroys the codec and wipes its secrets. Nulls *self_p.
void
    kc_curve_destroy (kc_curve_t **self_p);

//  Server: sets the authorizer and its argument (fail closed without one).
void
    kc_curve_set_authorizer (kc_curve_t *self, kc_curve_authorize_fn *authorize, void *arg);

//  Sets a property of the metadata this side sends (client: INITIATE,
//  server: READY), before that command is made. Libzmq peers need
//  KC_CURVE_SOCKET_TYPE ("DEALER", "ROUTER", "REQ", "REP", ...) and, for
//  those four types, KC_CURVE_IDENTITY (may be empty). Returns 0 or -1 with
//  a reason (bad name, limits, too late).
int
    kc_curve_set_metadata (kc_curve_t *self, const char *name, const void *value, size_t size,
                           kc_why_t *why) KC_WUR;

//  Replaces the clock used to expire the cookie key (tests, event loops).
void
    kc_curve_set_clock (kc_curve_t *self, kc_curve_clock_fn *clock, void *arg);

//  Accepts (and lets kc_curve_encode send) the KC_CURVE_COMMAND flag bit that
//  libzmq 4.3 uses for ZMTP 3.1 commands inside MESSAGE. Off by default: RFC
//  26 says bits 7-1 MUST be zero. Turn it on only when the codec is wrapped in
//  ZMTP 3.1 to talk to libzmq; bits 7-2 are always refused.
void
    kc_curve_set_command_flag (kc_curve_t *self, bool allow);

//  Runs one handshake step. input is the command the peer sent (a client's
//  first call passes NULL, 0 to make HELLO). On return *output and
//  *output_size hold the command to send next, or NULL and 0 when there is
//  none; the buffer is owned by the codec and valid until its next call.
//  Returns 0 (keep going, or done once kc_curve_connected) or -1 with a
//  reason: the handshake failed for good, secrets are wiped, and if *output
//  is set (an ERROR command) the caller sends it before closing.
int
    kc_curve_handshake (kc_curve_t *self, const uint8_t *input, size_t input_size,
                        const uint8_t **output, size_t *output_size, kc_why_t *why) KC_WUR;

//  True for a server codec, false for a client.
bool
    kc_curve_is_server (const kc_curve_t *self);

//  True once the handshake is complete: MESSAGE commands may flow.
bool
    kc_curve_connected (const kc_curve_t *self);

//  True once the codec has failed (bad input, denial, expiry).
bool
    kc_curve_failed (const kc_curve_t *self);

//  Server: true (and the codec fails, wiping its keys) if the cookie key has
//  outlived KC_CURVE_COOKIE_TTL_MS without a valid INITIATE. Call it from a
//  timer to drop half-open handshakes; kc_curve_handshake checks it too.
bool
    kc_curve_expired (kc_curve_t *self);

//  Encodes size bytes of payload with flags (KC_CURVE_MORE, and
//  KC_CURVE_COMMAND if allowed) as one MESSAGE command into command, which
//  must hold size + KC_CURVE_MESSAGE_OVERHEAD bytes. payload may already sit
//  at command + KC_CURVE_MESSAGE_OVERHEAD (then it is not copied). Returns 0,
//  or -1 with a reason (not connected, bad flags, nonces exhausted).
int
    kc_curve_encode (kc_curve_t *self, const void *payload, size_t size, int flags,
                     uint8_t *command, kc_why_t *why) KC_WUR;

//  Decodes one MESSAGE command of size bytes in place: on success *payload
//  points into command (at KC_CURVE_MESSAGE_OVERHEAD), *payload_size is
//  size - KC_CURVE_MESSAGE_OVERHEAD and *flags holds the flags. The nonce
//  must be above the last one received. Returns 0, or -1 with a reason: the
//  codec has failed (RFC 26: disconnect, never answer with ERROR).
int
    kc_curve_decode (kc_curve_t *self, uint8_t *command, size_t size, uint8_t **payload,
                     size_t *payload_size, int *flags, kc_why_t *why) KC_WUR;

//  The command the last kc_curve_handshake or kc_curve_encode produced:
//  "HELLO", "WELCOME", "INITIATE", "READY", "ERROR" or "MESSAGE"; NULL when
//  that call produced none (a step with nothing to send, or a failure with
//  no ERROR to send). For a ZMTP framer: a handshake command goes in a
//  command frame, a MESSAGE in a message frame.
const char *
    kc_curve_last_command (const kc_curve_t *self);

//  Server, once connected: the authorised client; NULL before, and always on
//  a client. Owned by the codec.
const kc_curve_identity_t *
    kc_curve_identity (const kc_curve_t *self);

//  Once connected: the metadata the peer sent (INITIATE or READY); NULL
//  before. Owned by the codec.
const kc_meta_t *
    kc_curve_peer_metadata (const kc_curve_t *self);

#if defined (KC_TEST_HOOKS) || defined (KC_FUZZING)
//  --- Test and fuzz builds only: never in the installed library ------------

//  Sees and may rewrite (in place, any size) what the codec is about to seal
//  or send: what is "HELLO", "WELCOME", "INITIATE", "READY" (whole
//  commands) or "HELLO box", "WELCOME box", "vouch box", "INITIATE box",
//  "READY box" (plaintexts, before boxing).
typedef void (kc_curve_tamper_fn) (void *arg, const char *what, kc_writer_t *data);

//  Uses this transient key pair instead of a fresh one (known-answer tests).
void
    kc_curve_test_transient (kc_curve_t *self, const uint8_t public_key [static KC_KEY_BYTES],
                             const uint8_t secret_key [static KC_KEY_BYTES]);

//  Installs a tamper hook (NULL removes it).
void
    kc_curve_test_tamper (kc_curve_t *self, kc_curve_tamper_fn *tamper, void *arg);

//  Sets the last short nonce sent, so the next command uses nonce + 1.
void
    kc_curve_test_nonce (kc_curve_t *self, uint64_t nonce);

//  Makes a MESSAGE with any nonce and flags (no checks, no state change)
//  into command (size + KC_CURVE_MESSAGE_OVERHEAD bytes). The codec must be
//  connected.
void
    kc_curve_test_message (kc_curve_t *self, uint64_t nonce, uint8_t flags,
                           const uint8_t *payload, size_t size, uint8_t *command);
#endif

//  Self test of this module.
void
    kc_curve_test (bool verbose);

#endif
