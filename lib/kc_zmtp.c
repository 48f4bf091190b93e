/*  =========================================================================
    kc_zmtp - ZMTP 3.0/3.1 greeting and framing. See kc_zmtp.h.
    =========================================================================
*/
#include "kc_zmtp.h"
#include "kc_wire.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>

#define S_MAJOR_AT      10
#define S_MINOR_AT      11
#define S_MECHANISM_AT  12
#define S_AS_SERVER_AT  32

static uint64_t
s_default_clock (void *arg)
{
    (void) arg;
    return (uint64_t) kc_mono_ms ();
}

void
kc_zmtp_greeting (uint8_t greeting [static KC_ZMTP_GREETING_BYTES], const char *mechanism, bool as_server,
                  int minor)
{
    assert (mechanism && strlen (mechanism) <= KC_ZMTP_MECHANISM_MAX);
    memset (greeting, 0, KC_ZMTP_GREETING_BYTES);
    greeting [0] = 0xff;
    greeting [9] = 0x7f;
    greeting [S_MAJOR_AT] = 3;
    greeting [S_MINOR_AT] = (uint8_t) minor;
    memcpy (greeting + S_MECHANISM_AT, mechanism, strlen (mechanism));
    greeting [S_AS_SERVER_AT] = as_server;
}

int
kc_zmtp_greeting_check (const uint8_t *data, size_t size, const char *mechanism, int *minor, bool *as_server,
                        kc_why_t *why)
{
    assert (mechanism && strlen (mechanism) <= KC_ZMTP_MECHANISM_MAX);
    if (size >= 1 && data [0] != 0xff) {
        return kc_why (why, "ZMTP greeting starts with 0x%02x, not 0xff", data [0]);
    }
    //  Bit 0 of the signature's last byte set: ZMTP 2.0 or later (what
    //  libzmq checks; RFC 23 writes 0x7f)
    if (size >= KC_ZMTP_SIGNATURE_BYTES && !(data [9] & 0x01)) {
        return kc_why (why, "ZMTP greeting signature ends with 0x%02x: a ZMTP 1.0 peer", data [9]);
    }
    if (size > S_MAJOR_AT && data [S_MAJOR_AT] < 3) {
        return kc_why (why, "ZMTP version %u.x, not 3.x", data [S_MAJOR_AT]);
    }
    if (size < KC_ZMTP_GREETING_BYTES) {
        return 1;
    }
    char name [KC_ZMTP_MECHANISM_MAX + 1];
    memcpy (name, data + S_MECHANISM_AT, KC_ZMTP_MECHANISM_MAX);
    name [KC_ZMTP_MECHANISM_MAX] = 0;
    size_t length = strlen (name);
    for (size_t i = length; i < KC_ZMTP_MECHANISM_MAX; i++) {
        if (data [S_MECHANISM_AT + i]) {
            return kc_why (why, "ZMTP mechanism field is not a NUL-padded name");
        }
    }
    if (!KC_STREQ (name, mechanism)) {
        char shown [KC_WHY_BYTES / 2];
        kc_escape (name, length, shown, sizeof shown, 0);
        return kc_why (why, "ZMTP mechanism '%s', expected '%s'", shown, mechanism);
    }
    if (minor) {
        *minor = data [S_MINOR_AT];
    }
    if (as_server) {
        *as_server = data [S_AS_SERVER_AT] != 0;
    }
    return 0;
}

size_t
kc_zmtp_frame_header (uint8_t header [static KC_ZMTP_HEADER_MAX], int flags, uint64_t size)
{
    assert (!(flags & ~(KC_ZMTP_MORE | KC_ZMTP_COMMAND)));
    if (size <= KC_ZMTP_SHORT_MAX) {
        header [0] = (uint8_t) flags;
        header [1] = (uint8_t) size;
        return 2;
    }
    header [0] = (uint8_t) (flags | KC_ZMTP_LONG);
    kc_put_u64 (header + 1, size);
    return KC_ZMTP_HEADER_MAX;
}

int
kc_zmtp_frame_decode (const uint8_t *data, size_t size, size_t max, kc_zmtp_frame_t *frame, size_t *consumed,
                      size_t *needed, kc_why_t *why)
{
    *consumed = 0;
    *needed = 0;
    if (size < 1) {
        return 1;
    }
    int flags = data [0];
    if (flags & ~(KC_ZMTP_MORE | KC_ZMTP_LONG | KC_ZMTP_COMMAND)) {
        return kc_why (why, "ZMTP frame flags 0x%02x set reserved bits", (unsigned) flags);
    }
    if ((flags & KC_ZMTP_COMMAND) && (flags & KC_ZMTP_MORE)) {
        return kc_why (why, "ZMTP command frame with MORE set");
    }
    size_t header = flags & KC_ZMTP_LONG ? KC_ZMTP_HEADER_MAX : 2;
    if (size < header) {
        return 1;
    }
    uint64_t body = flags & KC_ZMTP_LONG ? kc_get_u64 (data + 1) : data [1];
    if (body > max) {
        return kc_why (why, "ZMTP frame of %llu bytes (at most %zu)", (unsigned long long) body, max);
    }
    *needed = header + (size_t) body;
    if (size - header < body) {
        return 1;
    }
    frame->flags = flags;
    frame->body = data + header;
    frame->size = (size_t) body;
    *consumed = *needed;
    return 0;
}

int
kc_zmtp_command (const uint8_t *body, size_t size, char name [static KC_ZMTP_COMMAND_NAME_MAX + 1],
                 const uint8_t **data, size_t *data_size, kc_why_t *why)
{
    if (size < 1 || body [0] == 0 || (size_t) body [0] + 1 > size) {
        return kc_why (why, "ZMTP command of %zu bytes has no whole name", size);
    }
    for (size_t i = 1; i <= body [0]; i++) {
        //  Command names are letters (RFC 37); anything else is refused
        if (!((body [i] >= 'A' && body [i] <= 'Z') || (body [i] >= 'a' && body [i] <= 'z'))) {
            return kc_why (why, "ZMTP command name holds byte 0x%02x", body [i]);
        }
    }
    memcpy (name, body + 1, body [0]);
    name [body [0]] = 0;
    *data = body + 1 + body [0];
    *data_size = size - 1 - body [0];
    return 0;
}

//  --- A connection: kc_curve inside ZMTP 3.0 ---------------------------------

typedef enum {
    S_GREETING,                             //  waiting for the peer's greeting
    S_HANDSHAKE,                            //  CurveZMQ commands in command frames
    S_CONNECTED,                            //  MESSAGE frames
    S_FAILED
} s_link_state_t;

struct _kc_zmtp_t {
    kc_curve_t *codec;
    s_link_state_t state;
    char socket_type [8];                   //  ours
    kc_writer_t input;                      //  bytes read, not yet a whole frame
    kc_writer_t output;                     //  bytes to write, from output_at
    size_t output_at;
    kc_writer_t received;                   //  parts: u8 more, u64 size, bytes
    size_t received_at;
    size_t message_max;
    uint32_t ivl_ms, ttl_ms, timeout_ms, handshake_ms;
    uint64_t created_at;
    uint64_t ping_at;                       //  when our next PING is due (0: none)
    uint64_t answer_by;                     //  a PING's answer deadline (0: none)
    uint64_t peer_ttl_at;                   //  the peer's PING TTL runs out (0: none)
    uint32_t peer_ttl_ms;
    kc_curve_clock_fn *clock;
    void *clock_arg;
    kc_zmtp_stats_t stats;
};

//  Socket types and the peer types each may talk to (RFC 23, 28, 29, 30, 31)
static const struct {
    const char *type;
    const char *peers;
} s_socket_types [] = {
    { "REQ",    " REP ROUTER " },
    { "REP",    " REQ DEALER " },
    { "DEALER", " REP DEALER ROUTER " },
    { "ROUTER", " REQ DEALER ROUTER " },
    { "PUB",    " SUB XSUB " },
    { "XPUB",   " SUB XSUB " },
    { "SUB",    " PUB XPUB " },
    { "XSUB",   " PUB XPUB " },
    { "PUSH",   " PULL " },
    { "PULL",   " PUSH " },
    { "PAIR",   " PAIR " },
};

static const char *
s_peer_types (const char *type)
{
    for (size_t i = 0; i < sizeof s_socket_types / sizeof s_socket_types [0]; i++) {
        if (KC_STREQ (type, s_socket_types [i].type)) {
            return s_socket_types [i].peers;
        }
    }
    return NULL;
}

static uint64_t
s_now (const kc_zmtp_t *self)
{
    return self->clock (self->clock_arg);
}

static int
s_fail (kc_zmtp_t *self)
{
    self->state = S_FAILED;
    self->ping_at = self->answer_by = self->peer_ttl_at = 0;
    return -1;
}

//  Appends a frame holding size bytes of body (copied unless NULL) and
//  returns where the body goes.
static uint8_t *
s_put_frame (kc_zmtp_t *self, int flags, const void *body, size_t size)
{
    uint8_t header [KC_ZMTP_HEADER_MAX];
    kc_write_bytes (&self->output, header, kc_zmtp_frame_header (header, flags, size));
    uint8_t *space = kc_write_space (&self->output, size);
    if (body && size) {
        memcpy (space, body, size);
    }
    return space;
}

//  Encodes a part (or with command set a ZMTP 3.1 command, the libzmq way:
//  inside MESSAGE with the inner COMMAND bit) into a message frame.
static int
s_put_message (kc_zmtp_t *self, const void *data, size_t size, int flags, kc_why_t *why)
{
    size_t before = self->output.size;
    uint8_t *command = s_put_frame (self, 0, NULL, size + KC_CURVE_MESSAGE_OVERHEAD);
    if (kc_curve_encode (self->codec, data, size, flags, command, why)) {
        self->output.size = before;
        return -1;
    }
    return 0;
}

kc_zmtp_t *
kc_zmtp_new (kc_curve_t **codec_p, const char *socket_type, kc_why_t *why)
{
    assert (codec_p && *codec_p && socket_type);
    if (!s_peer_types (socket_type)) {
        kc_curve_destroy (codec_p);
        return kc_why (why, "'%.20s' is not a ZMTP socket type", socket_type), NULL;
    }
    kc_zmtp_t *self = calloc (1, sizeof *self);
    assert (self);
    self->codec = *codec_p;
    *codec_p = NULL;
    snprintf (self->socket_type, sizeof self->socket_type, "%s", socket_type);
    self->message_max = KC_ZMTP_MESSAGE_MAX_DEFAULT;
    self->handshake_ms = KC_ZMTP_HANDSHAKE_MS;
    self->clock = s_default_clock;
    self->created_at = s_now (self);
    kc_curve_set_command_flag (self->codec, true);
    //  libzmq wants the socket type, and an Identity from the four
    //  request-reply types
    bool identity = strstr (" REQ REP DEALER ROUTER ", socket_type) != NULL;
    if (kc_curve_set_metadata (self->codec, KC_CURVE_SOCKET_TYPE, socket_type, strlen (socket_type), why)
    ||  (identity && kc_curve_set_metadata (self->codec, KC_CURVE_IDENTITY, "", 0, why))) {
        kc_zmtp_destroy (&self);
        return NULL;
    }
    uint8_t greeting [KC_ZMTP_GREETING_BYTES];
    kc_zmtp_greeting (greeting, "CURVE", kc_curve_is_server (self->codec), 0);
    kc_write_bytes (&self->output, greeting, sizeof greeting);
    return self;
}

void
kc_zmtp_destroy (kc_zmtp_t **self_p)
{
    assert (self_p);
    kc_zmtp_t *self = *self_p;
    if (self) {
        kc_curve_destroy (&self->codec);
        kc_writer_free (&self->input);
        kc_writer_free (&self->output);
        kc_writer_free (&self->received);
        free (self);
        *self_p = NULL;
    }
}

void
kc_zmtp_set_heartbeat (kc_zmtp_t *self, uint32_t ivl_ms, uint32_t ttl_ms, uint32_t timeout_ms)
{
    assert (self);
    self->ivl_ms = ivl_ms;
    self->ttl_ms = ttl_ms < KC_ZMTP_TTL_MAX_MS ? ttl_ms : KC_ZMTP_TTL_MAX_MS;
    self->timeout_ms = timeout_ms ? timeout_ms : ivl_ms;
    if (self->state == S_CONNECTED) {
        self->ping_at = ivl_ms ? s_now (self) + ivl_ms : 0;
    }
}

void
kc_zmtp_set_handshake_timeout (kc_zmtp_t *self, uint32_t timeout_ms)
{
    assert (self);
    self->handshake_ms = timeout_ms;
}

void
kc_zmtp_set_message_max (kc_zmtp_t *self, size_t max)
{
    assert (self);
    self->message_max = max;
}

void
kc_zmtp_set_clock (kc_zmtp_t *self, kc_curve_clock_fn *clock, void *arg)
{
    assert (self && clock);
    self->clock = clock;
    self->clock_arg = arg;
    self->created_at = s_now (self);
    kc_curve_set_clock (self->codec, clock, arg);
}

//  Handshake done: check the peer's socket type and start heartbeats.
static int
s_connected (kc_zmtp_t *self, kc_why_t *why)
{
    const kc_meta_t *metadata = kc_curve_peer_metadata (self->codec);
    size_t size = 0;
    const char *type = (const char *) kc_meta_get (metadata, KC_CURVE_SOCKET_TYPE, &size);
    char padded [16];
    if (!type || size == 0 || size > 6 || strlen (type) != size) {
        return kc_why (why, "the peer sent no usable Socket-Type");
    }
    snprintf (padded, sizeof padded, " %s ", type);
    if (!strstr (s_peer_types (self->socket_type), padded)) {
        return kc_why (why, "a %s socket cannot talk to a peer of type %s", self->socket_type, type);
    }
    self->state = S_CONNECTED;
    self->ping_at = self->ivl_ms ? s_now (self) + self->ivl_ms : 0;
    return 0;
}

//  One handshake step with the peer's command (NULL for the client's first).
static int
s_handshake (kc_zmtp_t *self, const uint8_t *command, size_t size, kc_why_t *why)
{
    const uint8_t *output;
    size_t output_size;
    int rc = kc_curve_handshake (self->codec, command, size, &output, &output_size, why);
    if (output) {
        s_put_frame (self, KC_ZMTP_COMMAND, output, output_size);
    }
    if (rc == 0 && kc_curve_connected (self->codec)) {
        rc = s_connected (self, why);
    }
    return rc;
}

//  A ZMTP 3.1 command that came inside MESSAGE.
static int
s_command (kc_zmtp_t *self, const uint8_t *body, size_t size, kc_why_t *why)
{
    char name [KC_ZMTP_COMMAND_NAME_MAX + 1];
    const uint8_t *data;
    size_t data_size;
    if (kc_zmtp_command (body, size, name, &data, &data_size, why)) {
        return -1;
    }
    if (KC_STREQ (name, "PING")) {
        if (data_size < 2 || data_size - 2 > KC_ZMTP_PING_CONTEXT_MAX) {
            return kc_why (why, "ZMTP PING of %zu bytes (2 to %d)", data_size, 2 + KC_ZMTP_PING_CONTEXT_MAX);
        }
        uint32_t ttl_ms = (uint32_t) ((data [0] << 8) | data [1]) * 100;
        if (ttl_ms) {
            self->peer_ttl_ms = ttl_ms;
            self->peer_ttl_at = s_now (self) + ttl_ms;
        }
        uint8_t pong [1 + 4 + KC_ZMTP_PING_CONTEXT_MAX] = "\x04PONG";
        memcpy (pong + 5, data + 2, data_size - 2);
        if (s_put_message (self, pong, 5 + data_size - 2, KC_CURVE_COMMAND, why)) {
            return -1;
        }
        self->stats.pings_answered++;
        return 0;
    }
    if (KC_STREQ (name, "PONG")) {
        self->stats.pongs_received++;
    }
    else {
        self->stats.commands_ignored++;     //  SUBSCRIBE, CANCEL: not ZMTP 3.0's
    }
    return 0;
}

//  One whole frame from the peer; its body may be rewritten (decrypted).
static int
s_frame (kc_zmtp_t *self, kc_zmtp_frame_t *frame, uint8_t *body, kc_why_t *why)
{
    //  Anything from the peer answers our PING and resets its TTL
    self->answer_by = 0;
    self->peer_ttl_at = 0;
    bool command = (frame->flags & KC_ZMTP_COMMAND) != 0;
    if (self->state == S_HANDSHAKE) {
        if (!command) {
            return kc_why (why, "a message frame during the handshake");
        }
        return s_handshake (self, body, frame->size, why);
    }
    if (command || (frame->flags & KC_ZMTP_MORE)) {
        return kc_why (why, "ZMTP frame flags 0x%02x after the handshake (MESSAGE frames have 0)",
                       (unsigned) frame->flags);
    }
    uint8_t *payload;
    size_t payload_size;
    int flags;
    if (kc_curve_decode (self->codec, body, frame->size, &payload, &payload_size, &flags, why)) {
        return -1;
    }
    if (flags & KC_CURVE_COMMAND) {
        return s_command (self, payload, payload_size, why);
    }
    kc_write_u8 (&self->received, flags & KC_CURVE_MORE ? 1 : 0);
    kc_write_u64 (&self->received, payload_size);
    kc_write_bytes (&self->received, payload, payload_size);
    self->stats.parts_received++;
    return 0;
}

int
kc_zmtp_input (kc_zmtp_t *self, const void *data, size_t size, kc_why_t *why)
{
    assert (self);
    if (self->state == S_FAILED) {
        return kc_why (why, "the connection has failed");
    }
    //  Parts the caller has taken go; those it has not stay in order
    if (self->received_at) {
        memmove (self->received.data, self->received.data + self->received_at,
                 self->received.size - self->received_at);
        self->received.size -= self->received_at;
        self->received_at = 0;
    }
    kc_write_bytes (&self->input, data, size);
    if (self->input.size == 0) {
        return 0;
    }
    size_t at = 0;
    int rc = 0;
    while (rc == 0 && self->state != S_FAILED) {
        uint8_t *bytes = self->input.data + at;
        size_t have = self->input.size - at;
        if (self->state == S_GREETING) {
            size_t part = have < KC_ZMTP_GREETING_BYTES ? have : KC_ZMTP_GREETING_BYTES;
            rc = kc_zmtp_greeting_check (bytes, part, "CURVE", NULL, NULL, why);
            if (rc == 0) {
                at += KC_ZMTP_GREETING_BYTES;
                self->state = S_HANDSHAKE;
                if (!kc_curve_is_server (self->codec)) {
                    rc = s_handshake (self, NULL, 0, why);
                }
            }
            continue;
        }
        size_t max = self->state == S_HANDSHAKE ? KC_CURVE_COMMAND_MAX
                                                : self->message_max + KC_CURVE_MESSAGE_OVERHEAD;
        kc_zmtp_frame_t frame;
        size_t consumed, needed;
        rc = kc_zmtp_frame_decode (bytes, have, max, &frame, &consumed, &needed, why);
        if (rc == 0) {
            rc = s_frame (self, &frame, bytes + (frame.body - bytes), why);
            at += consumed;
        }
    }
    memmove (self->input.data, self->input.data + at, self->input.size - at);
    self->input.size -= at;
    return rc == -1 ? s_fail (self) : 0;
}

const uint8_t *
kc_zmtp_output (kc_zmtp_t *self, size_t *size)
{
    assert (self && size);
    *size = self->output.size - self->output_at;
    return self->output.data + self->output_at;
}

void
kc_zmtp_written (kc_zmtp_t *self, size_t size)
{
    assert (self && size <= self->output.size - self->output_at);
    self->output_at += size;
    if (self->output_at == self->output.size) {
        self->output.size = self->output_at = 0;
    }
}

int
kc_zmtp_timeout (kc_zmtp_t *self)
{
    assert (self);
    uint64_t due = 0;
    uint64_t deadlines [] = {
        self->state < S_CONNECTED && self->handshake_ms ? self->created_at + self->handshake_ms : 0,
        self->ping_at, self->answer_by, self->peer_ttl_at
    };
    for (size_t i = 0; i < sizeof deadlines / sizeof deadlines [0]; i++) {
        if (deadlines [i] && (!due || deadlines [i] < due)) {
            due = deadlines [i];
        }
    }
    if (!due || self->state == S_FAILED) {
        return -1;
    }
    uint64_t now = s_now (self);
    return due <= now ? 0 : due - now > INT32_MAX ? INT32_MAX : (int) (due - now);
}

int
kc_zmtp_tick (kc_zmtp_t *self, kc_why_t *why)
{
    assert (self);
    if (self->state == S_FAILED) {
        return kc_why (why, "the connection has failed");
    }
    uint64_t now = s_now (self);
    if (self->state < S_CONNECTED && self->handshake_ms && now >= self->created_at + self->handshake_ms) {
        kc_why (why, "no CURVE handshake within %u ms", self->handshake_ms);
        return s_fail (self);
    }
    if (self->answer_by && now >= self->answer_by) {
        kc_why (why, "nothing from the peer within %u ms of our PING", self->timeout_ms);
        return s_fail (self);
    }
    if (self->peer_ttl_at && now >= self->peer_ttl_at) {
        kc_why (why, "nothing from the peer within the %u ms TTL of its PING", self->peer_ttl_ms);
        return s_fail (self);
    }
    if (self->ping_at && now >= self->ping_at) {
        uint32_t ttl = (self->ttl_ms + 99) / 100;
        uint8_t ping [] = { 4, 'P', 'I', 'N', 'G', (uint8_t) (ttl >> 8), (uint8_t) ttl };
        if (s_put_message (self, ping, sizeof ping, KC_CURVE_COMMAND, why)) {
            return s_fail (self);
        }
        self->stats.pings_sent++;
        self->ping_at = now + self->ivl_ms;
        if (!self->answer_by) {
            self->answer_by = now + self->timeout_ms;
        }
    }
    return 0;
}

bool
kc_zmtp_connected (const kc_zmtp_t *self)
{
    assert (self);
    return self->state == S_CONNECTED;
}

bool
kc_zmtp_failed (const kc_zmtp_t *self)
{
    assert (self);
    return self->state == S_FAILED;
}

int
kc_zmtp_send (kc_zmtp_t *self, const void *data, size_t size, bool more, kc_why_t *why)
{
    assert (self);
    if (self->state != S_CONNECTED) {
        return kc_why (why, self->state == S_FAILED ? "the connection has failed"
                                                    : "the CURVE handshake is not complete");
    }
    if (self->output.size - self->output_at >= KC_ZMTP_OUTPUT_MAX) {
        return 1;
    }
    if (s_put_message (self, data, size, more ? KC_CURVE_MORE : 0, why)) {
        return kc_curve_failed (self->codec) ? s_fail (self) : -1;
    }
    self->stats.parts_sent++;
    return 0;
}

bool
kc_zmtp_recv (kc_zmtp_t *self, const uint8_t **data, size_t *size, bool *more)
{
    assert (self && data && size);
    if (self->received_at >= self->received.size) {
        self->received.size = self->received_at = 0;
        return false;
    }
    const uint8_t *at = self->received.data + self->received_at;
    if (more) {
        *more = at [0] != 0;
    }
    *size = (size_t) kc_get_u64 (at + 1);
    *data = at + 9;
    self->received_at += 9 + *size;
    return true;
}

const char *
kc_zmtp_property (const kc_zmtp_t *self, const char *name, size_t *size)
{
    assert (self && name);
    if (self->state != S_CONNECTED) {
        return NULL;
    }
    if (strcasecmp (name, "User-Id") == 0) {
        const kc_curve_identity_t *identity = kc_curve_identity (self->codec);
        if (identity && *identity->name) {
            if (size) {
                *size = strlen (identity->name);
            }
            return identity->name;
        }
        return NULL;
    }
    size_t length = 0;
    const char *value = (const char *) kc_meta_get (kc_curve_peer_metadata (self->codec), name, &length);
    if (value && size) {
        *size = length;
    }
    return value;
}

kc_curve_t *
kc_zmtp_codec (kc_zmtp_t *self)
{
    assert (self);
    return self->codec;
}

void
kc_zmtp_stats (const kc_zmtp_t *self, kc_zmtp_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
}

//  --- Self test -----

//  The connection's self test: two ends in memory on a fake clock.

static uint64_t s_test_now;

static uint64_t
s_test_clock (void *arg)
{
    (void) arg;
    return s_test_now;
}

static int
s_test_allow (const uint8_t client_key [KC_KEY_BYTES], const kc_meta_t *metadata, void *arg,
              kc_curve_identity_t *identity)
{
    (void) metadata;
    if (memcmp (client_key, arg, KC_KEY_BYTES)) {
        return KC_CURVE_DENY;
    }
    snprintf (identity->name, sizeof identity->name, "client-1");
    return KC_CURVE_ALLOW;
}

//  Moves what from holds into to, at most chunk bytes per input call.
static int
s_test_move (kc_zmtp_t *from, kc_zmtp_t *to, size_t chunk, kc_why_t *why)
{
    size_t size;
    const uint8_t *data = kc_zmtp_output (from, &size);
    while (size) {
        size_t part = size < chunk ? size : chunk;
        uint8_t copy [4096];
        assert (part <= sizeof copy);
        memcpy (copy, data, part);
        kc_zmtp_written (from, part);
        if (kc_zmtp_input (to, copy, part, why)) {
            return -1;
        }
        data = kc_zmtp_output (from, &size);
    }
    return 0;
}

//  Makes a client (of client_type) and a server (ROUTER) on the test clock.
static void
s_test_pair (const uint8_t *client_key, const char *client_type, kc_zmtp_t **client, kc_zmtp_t **server)
{
    static uint8_t cp [32], cs [32], sp [32], ss [32];
    static bool made;
    if (!made) {
        crypto_box_keypair (cp, cs);
        crypto_box_keypair (sp, ss);
        made = true;
    }
    kc_why_t why;
    kc_curve_t *c = kc_curve_new_client (cp, cs, sp), *s = kc_curve_new_server (sp, ss);
    static uint8_t allowed [32];
    memcpy (allowed, client_key ? client_key : cp, 32);
    kc_curve_set_authorizer (s, s_test_allow, allowed);
    *client = kc_zmtp_new (&c, client_type, &why);
    *server = kc_zmtp_new (&s, "ROUTER", &why);
    assert (*client && *server && !c && !s);
    kc_zmtp_set_clock (*client, s_test_clock, NULL);
    kc_zmtp_set_clock (*server, s_test_clock, NULL);
}

static void
s_test_connection (void)
{
    kc_why_t why;
    kc_zmtp_t *client, *server;
    s_test_now = 1000;
    s_test_pair (NULL, "DEALER", &client, &server);
    assert (kc_zmtp_timeout (client) == KC_ZMTP_HANDSHAKE_MS);
    //  One byte at a time through greeting and handshake, then in bulk
    for (int round = 0; round < 4; round++) {
        assert (s_test_move (client, server, 1, &why) == 0);
        assert (s_test_move (server, client, 1, &why) == 0);
    }
    assert (kc_zmtp_connected (client) && kc_zmtp_connected (server));
    assert (KC_STREQ (kc_zmtp_property (server, "socket-type", NULL), "DEALER"));
    assert (KC_STREQ (kc_zmtp_property (client, "Socket-Type", NULL), "ROUTER"));
    size_t size;
    assert (KC_STREQ (kc_zmtp_property (server, "User-Id", &size), "client-1") && size == 8);
    assert (kc_zmtp_property (client, "User-Id", NULL) == NULL);
    assert (kc_zmtp_property (server, "X-None", NULL) == NULL);

    //  A two-part message, and a big one (LONG frames)
    static uint8_t big [70000];
    memset (big, 0x5a, sizeof big);
    assert (kc_zmtp_send (client, "a", 1, true, &why) == 0);
    assert (kc_zmtp_send (client, "bc", 2, false, &why) == 0);
    assert (kc_zmtp_send (client, big, sizeof big, false, &why) == 0);
    assert (s_test_move (client, server, 4096, &why) == 0);
    const uint8_t *data;
    bool more;
    assert (kc_zmtp_recv (server, &data, &size, &more) && size == 1 && *data == 'a' && more);
    assert (kc_zmtp_recv (server, &data, &size, &more) && size == 2 && !memcmp (data, "bc", 2) && !more);
    assert (kc_zmtp_recv (server, &data, &size, &more) && size == sizeof big && !memcmp (data, big, size));
    assert (!kc_zmtp_recv (server, &data, &size, &more));

    //  Heartbeats: the client PINGs every 100 ms with a 1 s TTL, the server
    //  answers; nothing else flows for 2 s and both stay up
    kc_zmtp_set_heartbeat (client, 100, 1000, 300);
    assert (kc_zmtp_timeout (client) == 100);
    for (int i = 0; i < 20; i++) {
        s_test_now += 100;
        assert (kc_zmtp_tick (client, &why) == 0 && kc_zmtp_tick (server, &why) == 0);
        assert (s_test_move (client, server, 4096, &why) == 0);
        assert (s_test_move (server, client, 4096, &why) == 0);
    }
    kc_zmtp_stats_t stats;
    kc_zmtp_stats (client, &stats);
    assert (stats.pings_sent == 20 && stats.pongs_received == 20 && stats.parts_sent == 3);
    kc_zmtp_stats (server, &stats);
    assert (stats.pings_answered == 20 && stats.parts_received == 3);
    assert (!kc_zmtp_recv (server, &data, &size, &more));
    //  The server hears nothing past the client's TTL: it gives up
    s_test_now += 999;
    assert (kc_zmtp_tick (server, &why) == 0);
    assert (kc_zmtp_timeout (server) == 1);
    s_test_now += 1;
    assert (kc_zmtp_tick (server, &why) == -1 && strstr (why.text, "1000 ms TTL"));
    assert (kc_zmtp_failed (server) && kc_zmtp_timeout (server) == -1);
    assert (kc_zmtp_send (server, "x", 1, false, &why) == -1 && strstr (why.text, "failed"));
    //  The client's PING goes unanswered: it gives up after 300 ms
    assert (kc_zmtp_tick (client, &why) == 0);          //  sends a PING
    s_test_now += 299;
    assert (kc_zmtp_tick (client, &why) == 0);
    s_test_now += 1;
    assert (kc_zmtp_tick (client, &why) == -1 && strstr (why.text, "within 300 ms of our PING"));
    kc_zmtp_destroy (&client);
    kc_zmtp_destroy (&server);

    //  A denied client gets the server's ERROR, with its reason
    uint8_t other [32] = { 1 };
    s_test_pair (other, "DEALER", &client, &server);
    assert (s_test_move (client, server, 4096, &why) == 0);     //  greeting
    assert (s_test_move (server, client, 4096, &why) == 0);     //  greeting -> HELLO
    assert (s_test_move (client, server, 4096, &why) == 0);     //  HELLO -> WELCOME
    assert (s_test_move (server, client, 4096, &why) == 0);     //  -> INITIATE
    assert (s_test_move (client, server, 4096, &why) == -1 && kc_zmtp_failed (server));
    assert (s_test_move (server, client, 4096, &why) == -1 && strstr (why.text, "400"));
    kc_zmtp_destroy (&client);
    kc_zmtp_destroy (&server);

    //  A PUB may not talk to a ROUTER: both ends refuse once connected
    s_test_pair (NULL, "PUB", &client, &server);
    int rc = 0;
    for (int round = 0; round < 4 && rc == 0; round++) {
        rc = s_test_move (client, server, 4096, &why);
        if (rc == 0) {
            rc = s_test_move (server, client, 4096, &why);
        }
    }
    assert (rc == -1 && strstr (why.text, "cannot talk to a peer of type"));
    kc_zmtp_destroy (&client);
    kc_zmtp_destroy (&server);

    //  A silent peer: the handshake times out; a frame over the limit is
    //  refused from its header; a bad greeting at its first byte
    s_test_pair (NULL, "DEALER", &client, &server);
    s_test_now += KC_ZMTP_HANDSHAKE_MS;
    assert (kc_zmtp_tick (server, &why) == -1 && strstr (why.text, "no CURVE handshake"));
    kc_zmtp_destroy (&client);
    kc_zmtp_destroy (&server);
    s_test_pair (NULL, "DEALER", &client, &server);
    for (int round = 0; round < 3; round++) {
        assert (s_test_move (client, server, 4096, &why) == 0);
        assert (s_test_move (server, client, 4096, &why) == 0);
    }
    assert (kc_zmtp_connected (server));
    kc_zmtp_set_message_max (server, 100);
    uint8_t header [KC_ZMTP_HEADER_MAX];
    size_t header_size = kc_zmtp_frame_header (header, 0, 101 + KC_CURVE_MESSAGE_OVERHEAD);
    assert (kc_zmtp_input (server, header, header_size, &why) == -1 && strstr (why.text, "at most 133"));
    assert (kc_zmtp_input (server, "", 0, &why) == -1);
    assert (kc_zmtp_send (server, "x", 1, false, &why) == -1);
    kc_zmtp_destroy (&client);
    kc_zmtp_destroy (&server);
    s_test_pair (NULL, "DEALER", &client, &server);
    assert (kc_zmtp_input (server, "\x01", 1, &why) == -1 && strstr (why.text, "0x01"));
    assert (kc_zmtp_send (client, "x", 1, false, &why) == -1 && strstr (why.text, "not complete"));
    kc_zmtp_destroy (&client);
    kc_zmtp_destroy (&server);
    kc_curve_t *codec = kc_curve_new_server (other, other);
    assert (kc_zmtp_new (&codec, "STREAM", &why) == NULL && !codec && strstr (why.text, "STREAM"));
}

void
kc_zmtp_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_zmtp: ");
    }
    kc_why_t why;
    uint8_t greeting [KC_ZMTP_GREETING_BYTES];
    int minor = -1;
    bool as_server = true;
    kc_zmtp_greeting (greeting, "CURVE", false, 1);
    //  Every prefix is consistent so far; the whole is accepted
    for (size_t size = 0; size < KC_ZMTP_GREETING_BYTES; size++) {
        assert (kc_zmtp_greeting_check (greeting, size, "CURVE", &minor, &as_server, &why) == 1);
    }
    assert (kc_zmtp_greeting_check (greeting, 64, "CURVE", &minor, &as_server, &why) == 0);
    assert (minor == 1 && !as_server);
    //  The as-server byte is reported, not judged; padding is anything
    greeting [32] = 1;
    greeting [3] = 0x55;
    assert (kc_zmtp_greeting_check (greeting, 64, "CURVE", &minor, &as_server, &why) == 0 && as_server);
    assert (kc_zmtp_greeting_check (greeting, 64, "NULL", NULL, NULL, &why) == -1 && strstr (why.text, "'CURVE'"));
    uint8_t bad [KC_ZMTP_GREETING_BYTES];
    memcpy (bad, greeting, sizeof bad);
    bad [0] = 0x01;
    assert (kc_zmtp_greeting_check (bad, 1, "CURVE", NULL, NULL, &why) == -1);
    memcpy (bad, greeting, sizeof bad);
    bad [9] = 0x7e;
    assert (kc_zmtp_greeting_check (bad, 10, "CURVE", NULL, NULL, &why) == -1 && strstr (why.text, "1.0"));
    memcpy (bad, greeting, sizeof bad);
    bad [10] = 2;
    assert (kc_zmtp_greeting_check (bad, 11, "CURVE", NULL, NULL, &why) == -1 && strstr (why.text, "2.x"));
    memcpy (bad, greeting, sizeof bad);
    bad [12 + 6] = 'X';                     //  after "CURVE\0"
    assert (kc_zmtp_greeting_check (bad, 64, "CURVE", NULL, NULL, &why) == -1 && strstr (why.text, "NUL-padded"));

    //  Frames: short up to 255, long above; every prefix asks for more
    static uint8_t stream [KC_ZMTP_HEADER_MAX + 300];
    static const size_t sizes [] = { 0, 1, 255, 256, 300 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes [0]; s++) {
        size_t header = kc_zmtp_frame_header (stream, KC_ZMTP_MORE, sizes [s]);
        assert (header == (sizes [s] <= 255 ? 2u : 9u));
        memset (stream + header, 0xab, sizes [s]);
        kc_zmtp_frame_t frame;
        size_t consumed, needed;
        for (size_t cut = 0; cut < header + sizes [s]; cut++) {
            assert (kc_zmtp_frame_decode (stream, cut, 1000, &frame, &consumed, &needed, &why) == 1);
            assert (consumed == 0 && (cut < header || needed == header + sizes [s]));
        }
        assert (kc_zmtp_frame_decode (stream, header + sizes [s], 1000, &frame, &consumed, &needed, &why) == 0);
        assert (consumed == header + sizes [s] && frame.size == sizes [s] && frame.body == stream + header);
        assert ((frame.flags & KC_ZMTP_MORE) && ((frame.flags & KC_ZMTP_LONG) != 0) == (sizes [s] > 255));
        assert (kc_zmtp_frame_decode (stream, header + sizes [s], sizes [s] ? sizes [s] - 1 : 0, &frame, &consumed,
                                      &needed, &why) == (sizes [s] ? -1 : 0));
    }
    kc_zmtp_frame_t frame;
    size_t consumed, needed;
    const uint8_t reserved [] = { 0x08, 0 }, command_more [] = { 0x05, 0 };
    assert (kc_zmtp_frame_decode (reserved, 2, 10, &frame, &consumed, &needed, &why) == -1);
    assert (kc_zmtp_frame_decode (command_more, 2, 10, &frame, &consumed, &needed, &why) == -1);
    //  A long frame claiming 2^64-1 bytes is refused, not awaited
    uint8_t huge [KC_ZMTP_HEADER_MAX] = { KC_ZMTP_LONG, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    assert (kc_zmtp_frame_decode (huge, sizeof huge, 1 << 20, &frame, &consumed, &needed, &why) == -1);

    //  Commands: name and data
    char name [KC_ZMTP_COMMAND_NAME_MAX + 1];
    const uint8_t *data;
    size_t data_size;
    const uint8_t ping [] = "\x04PING\x00\x64" "ctx";
    assert (kc_zmtp_command (ping, sizeof ping - 1, name, &data, &data_size, &why) == 0);
    assert (KC_STREQ (name, "PING") && data_size == 5 && data == ping + 5);
    assert (kc_zmtp_command (ping, 4, name, &data, &data_size, &why) == -1);
    assert (kc_zmtp_command ((const uint8_t *) "\x02P\x01", 3, name, &data, &data_size, &why) == -1);
    assert (kc_zmtp_command ((const uint8_t *) "", 0, name, &data, &data_size, &why) == -1);
    s_test_connection ();
    if (verbose) {
        printf ("OK\n");
    }
}
