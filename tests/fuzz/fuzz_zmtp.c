/*  fuzz_zmtp - the ZMTP greeting check and frame decoder (kc_zmtp): the
    first input byte chooses. 0: the rest is a peer's greeting, checked at
    every length. Otherwise: the rest is a byte stream of frames, decoded
    one after another with a limit of 1 KiB per body, each command frame's
    name and data split; everything decoded must lie inside the input and
    re-encode to the same header.  */
#include "kc_all.h"
#include <stdlib.h>
#include <string.h>

#define BODY_MAX 1024

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    kc_why_t why;
    const uint8_t *input = data + 1;
    size_t length = size - 1;
    if (data [0] == 0) {
        for (size_t cut = 0; cut <= length && cut <= KC_ZMTP_GREETING_BYTES; cut++) {
            int minor;
            bool as_server;
            int rc = kc_zmtp_greeting_check (input, cut, "CURVE", &minor, &as_server, &why);
            if (rc == 0 && (cut != KC_ZMTP_GREETING_BYTES || minor != input [11])) {
                abort ();
            }
            if (rc == -1) {
                break;
            }
        }
        return 0;
    }
    while (length) {
        kc_zmtp_frame_t frame;
        size_t consumed, needed;
        int rc = kc_zmtp_frame_decode (input, length, BODY_MAX, &frame, &consumed, &needed, &why);
        if (rc) {
            if (rc == 1 && needed && needed <= length) {
                abort ();                   //  asked for more than it lacked
            }
            break;
        }
        if (consumed > length || frame.body < input || frame.body + frame.size > input + length
        ||  frame.size > BODY_MAX) {
            abort ();
        }
        uint8_t header [KC_ZMTP_HEADER_MAX];
        size_t header_size = kc_zmtp_frame_header (header, frame.flags & (KC_ZMTP_MORE | KC_ZMTP_COMMAND),
                                                   frame.size);
        //  A short size written long is legal on the wire; ours is canonical
        if (!(frame.flags & KC_ZMTP_LONG) && (header_size != 2 || memcmp (header, input, 2))) {
            abort ();
        }
        if (frame.flags & KC_ZMTP_COMMAND) {
            char name [KC_ZMTP_COMMAND_NAME_MAX + 1];
            const uint8_t *body;
            size_t body_size;
            if (kc_zmtp_command (frame.body, frame.size, name, &body, &body_size, &why) == 0
            &&  (body + body_size != frame.body + frame.size || strlen (name) + 1 + body_size != frame.size)) {
                abort ();
            }
        }
        input += consumed;
        length -= consumed;
    }
    return 0;
}
