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

    docs/curvezmq.md section 10 says how the pieces fit with kc_curve.
    =========================================================================
*/
#ifndef KC_ZMTP_H_INCLUDED
#define KC_ZMTP_H_INCLUDED

#include "kc_util.h"

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

//  Self test of this module.
void
    kc_zmtp_test (bool verbose);

#endif
