/*  =========================================================================
    kc_zmtp - ZMTP 3.0/3.1 greeting and framing (ZeroMQ RFC 23 and 37):
    the layer a CurveZMQ codec (kc_curve) needs around it to talk to a
    stock libzmq peer over a plain byte stream. Pure and bounds-checked, no
    sockets: the caller moves the bytes.

        greeting   64 bytes each way: signature FF 00*8 7F, version 3.x,
                   mechanism (20 bytes, NUL-padded), as-server, filler
        frame      flags (MORE 0x01, LONG 0x02, COMMAND 0x04), size in 1
                   byte or (LONG) 8 bytes network order, then the body
        command    a command frame's body: name length (1), name, data

    kc_zmtp_t puts the pieces together around a kc_curve codec: a whole
    ZMTP 3.0 CURVE connection, blob in and blob out like the codec. The
    caller feeds in the bytes it read (kc_zmtp_input), writes out what
    kc_zmtp_output holds, sends and receives message parts, and calls
    kc_zmtp_tick when kc_zmtp_timeout says. Inside: the greeting, the
    handshake in command frames, MESSAGE frames, the peer's socket type
    checked (RFC 23), PINGs answered with PONGs, optional heartbeats of our
    own (ZMTP 3.1 PING with a TTL, libzmq's HEARTBEAT_IVL/TTL/TIMEOUT), and
    the peer's metadata and User-Id as properties.

    docs/curvezmq.md section 10 says how the pieces fit with kc_curve.
    =========================================================================
*/
#ifndef KC_ZMTP_H_INCLUDED
#define KC_ZMTP_H_INCLUDED

#include "kc_util.h"
#include "kc_curve.h"

#define KC_ZMTP_GREETING_BYTES  64
#define KC_ZMTP_SIGNATURE_BYTES 10          //  FF, 8 bytes of padding, 7F
#define KC_ZMTP_MECHANISM_MAX   20          //  bytes of a mechanism name
#define KC_ZMTP_HEADER_MAX      9           //  flags + 8-byte size
#define KC_ZMTP_SHORT_MAX       255         //  largest body of a short frame
#define KC_ZMTP_COMMAND_NAME_MAX 255        //  bytes of a command name

//  Frame flags
#define KC_ZMTP_MORE            0x01
#define KC_ZMTP_LONG            0x02
#define KC_ZMTP_COMMAND         0x04

//  Writes our greeting: version 3.minor, the mechanism (at most
//  KC_ZMTP_MECHANISM_MAX bytes, e.g. "CURVE"), the as-server byte. Send all
//  64 bytes at once: a peer that waits for 11 before answering is never
//  left waiting.
void
    kc_zmtp_greeting (uint8_t greeting [static KC_ZMTP_GREETING_BYTES], const char *mechanism,
                      bool as_server, int minor);

//  Checks the peer's greeting as far as size bytes go: 1 when it is
//  consistent so far but incomplete, 0 when all 64 bytes are there and it
//  is a ZMTP 3.x greeting for mechanism (then *minor is its minor version,
//  *as_server its as-server byte), -1 with a reason otherwise. The
//  as-server byte is reported, never judged: libzmq 4.3.4 sends 0 in both
//  roles.
int
    kc_zmtp_greeting_check (const uint8_t *data, size_t size, const char *mechanism, int *minor,
                            bool *as_server, kc_why_t *why) KC_WUR;

//  Writes a frame header for a body of size bytes (short up to
//  KC_ZMTP_SHORT_MAX, else LONG); flags are MORE and COMMAND. Returns its
//  length (2 or 9).
size_t
    kc_zmtp_frame_header (uint8_t header [static KC_ZMTP_HEADER_MAX], int flags, uint64_t size);

//  A decoded frame: points into the caller's bytes.
typedef struct {
    int flags;                              //  MORE, LONG, COMMAND
    const uint8_t *body;
    size_t size;
} kc_zmtp_frame_t;

//  Decodes the frame at the start of data: 0 with *frame and *consumed (its
//  header and body) when it is all there, 1 when more bytes are needed (and
//  *needed says how many in all, once the header is known, else 0), -1
//  with a reason when the flags set a reserved bit or the body is over max
//  bytes (the caller's limit, which bounds what it must buffer).
int
    kc_zmtp_frame_decode (const uint8_t *data, size_t size, size_t max, kc_zmtp_frame_t *frame,
                          size_t *consumed, size_t *needed, kc_why_t *why) KC_WUR;

//  Splits a command frame's body into its name (copied, NUL-terminated,
//  into name) and data (pointing into body). 0 or -1 with a reason.
int
    kc_zmtp_command (const uint8_t *body, size_t size, char name [static KC_ZMTP_COMMAND_NAME_MAX + 1],
                     const uint8_t **data, size_t *data_size, kc_why_t *why) KC_WUR;

//  --- A connection: kc_curve inside ZMTP 3.0 ---------------------------------

#define KC_ZMTP_MESSAGE_MAX_DEFAULT (1 << 20)   //  largest message part taken by default
#define KC_ZMTP_OUTPUT_MAX      (1 << 22)   //  bytes kc_zmtp_send may leave unsent
#define KC_ZMTP_HANDSHAKE_MS    30000       //  default time for greeting + handshake
#define KC_ZMTP_PING_CONTEXT_MAX 16         //  bytes of a PING's context (RFC 37)
#define KC_ZMTP_TTL_MAX_MS      6553500     //  a PING's TTL: u16 deciseconds

typedef struct _kc_zmtp_t kc_zmtp_t;

//  What a connection has done, for logs and tests.
typedef struct {
    uint64_t pings_sent;                    //  our heartbeats
    uint64_t pongs_received;                //  answers to them
    uint64_t pings_answered;                //  the peer's PINGs, each answered
    uint64_t commands_ignored;              //  other ZMTP 3.1 commands (SUBSCRIBE...)
    uint64_t parts_sent;
    uint64_t parts_received;
} kc_zmtp_stats_t;

//  Makes a connection around *codec_p (a fresh kc_curve client or server,
//  taken over: *codec_p is nulled) for a socket of socket_type ("DEALER",
//  "ROUTER", "REQ", "REP", "PUB", "SUB", "XPUB", "XSUB", "PUSH", "PULL",
//  "PAIR"), which is sent as metadata and checked against the peer's. Our
//  greeting is waiting in kc_zmtp_output at once. Returns NULL with a
//  reason for an unknown socket type (the codec is then destroyed).
kc_zmtp_t *
    kc_zmtp_new (kc_curve_t **codec_p, const char *socket_type, kc_why_t *why);

//  Destroys the connection and its codec (wiping its secrets). Nulls *self_p.
void
    kc_zmtp_destroy (kc_zmtp_t **self_p);

//  Heartbeats like libzmq's ZMQ_HEARTBEAT_IVL, _TTL and _TIMEOUT: once
//  connected, every ivl_ms send a PING that asks the peer to drop us if it
//  hears nothing for ttl_ms (0: no TTL; at most KC_ZMTP_TTL_MAX_MS); fail
//  when nothing at all arrives within timeout_ms of a PING (0: ivl_ms).
//  ivl_ms 0 (the default) sends none. PINGs from the peer are answered
//  whatever this says, and its TTL is kept: silence past it fails us too.
void
    kc_zmtp_set_heartbeat (kc_zmtp_t *self, uint32_t ivl_ms, uint32_t ttl_ms, uint32_t timeout_ms);

//  Time allowed from kc_zmtp_new to a complete handshake (0: no limit);
//  KC_ZMTP_HANDSHAKE_MS by default, like libzmq's ZMQ_HANDSHAKE_IVL.
void
    kc_zmtp_set_handshake_timeout (kc_zmtp_t *self, uint32_t timeout_ms);

//  The largest message part accepted from the peer, in bytes (a bigger
//  frame fails the connection as soon as its header arrives).
void
    kc_zmtp_set_message_max (kc_zmtp_t *self, size_t max);

//  Replaces the monotonic clock (for the connection and its codec).
void
    kc_zmtp_set_clock (kc_zmtp_t *self, kc_curve_clock_fn *clock, void *arg);

//  Takes size bytes read from the peer: the greeting, handshake commands,
//  messages, PINGs. Returns 0, or -1 with a reason when the connection has
//  failed for good (bad bytes, refused, denied): then send what
//  kc_zmtp_output still holds (perhaps an ERROR for the peer) and close.
int
    kc_zmtp_input (kc_zmtp_t *self, const void *data, size_t size, kc_why_t *why) KC_WUR;

//  Bytes waiting to be written to the peer (*size 0 when none); valid until
//  the next call on the connection. Say how many went with kc_zmtp_written.
const uint8_t *
    kc_zmtp_output (kc_zmtp_t *self, size_t *size);

//  The first size bytes of kc_zmtp_output have been written.
void
    kc_zmtp_written (kc_zmtp_t *self, size_t size);

//  Milliseconds until kc_zmtp_tick has work (a PING to send, a deadline to
//  check), for poll; -1 when there is no timer.
int
    kc_zmtp_timeout (kc_zmtp_t *self);

//  Runs what is due: sends a PING, fails the connection when the handshake,
//  a PING's answer or the peer's TTL ran out. Returns 0 or -1 with a reason.
int
    kc_zmtp_tick (kc_zmtp_t *self, kc_why_t *why) KC_WUR;

//  True once the handshake is complete and the peer's socket type fits.
bool
    kc_zmtp_connected (const kc_zmtp_t *self);

//  True once the connection has failed (the reason was returned then).
bool
    kc_zmtp_failed (const kc_zmtp_t *self);

//  Queues one message part (more: another part of this message follows).
//  Returns 0; 1 when more than KC_ZMTP_OUTPUT_MAX bytes wait unsent (write
//  them, then send again); -1 with a reason before the handshake is done,
//  after a failure, or when the codec refuses.
int
    kc_zmtp_send (kc_zmtp_t *self, const void *data, size_t size, bool more, kc_why_t *why) KC_WUR;

//  The next message part received, if any: true with *data (valid until
//  the next kc_zmtp_recv or kc_zmtp_input), *size and *more (another part
//  of this message follows). Drain it after each kc_zmtp_input.
bool
    kc_zmtp_recv (kc_zmtp_t *self, const uint8_t **data, size_t *size, bool *more);

//  A property of the peer, once connected: what it sent as metadata
//  ("Socket-Type", "Identity", ...; any case), and on a server "User-Id",
//  the name its authorizer gave the client. NULL if there is none. The
//  value is NUL-terminated; *size (if not NULL) gets its length.
const char *
    kc_zmtp_property (const kc_zmtp_t *self, const char *name, size_t *size);

//  The codec inside (for kc_curve_identity and the like); still owned here.
kc_curve_t *
    kc_zmtp_codec (kc_zmtp_t *self);

//  Copies the connection's counters into *stats.
void
    kc_zmtp_stats (const kc_zmtp_t *self, kc_zmtp_stats_t *stats);

//  Self test of this module.
void
    kc_zmtp_test (bool verbose);

#endif
