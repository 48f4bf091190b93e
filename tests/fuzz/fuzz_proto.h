/*  fuzz_proto - shared body of the protocol decoder targets. An input is a
    sequence of frames, each a big-endian u16 length and that many bytes;
    the decoder for one channel direction must refuse or decode it, and a
    decoded message's parts are all touched (ASan checks every read).  */
#ifndef FUZZ_PROTO_H_INCLUDED
#define FUZZ_PROTO_H_INCLUDED

#include "kc_all.h"
#include <sodium.h>

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return sodium_init () < 0;
}

static inline zmsg_t *
s_frames (const uint8_t *data, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    size_t at = 0;
    while (at + 2 <= size && zmsg_size (msg) < 4096) {
        size_t length = (size_t) data [at] << 8 | data [at + 1];
        at += 2;
        if (length > size - at) {
            length = size - at;
        }
        zmsg_addmem (msg, data + at, length);
        at += length;
    }
    return msg;
}

static inline int
s_fuzz_channel (const uint8_t *data, size_t size, kc_channel_t channel)
{
    zmsg_t *msg = s_frames (data, size);
    kc_proto_msg_t decoded;
    kc_why_t why;
    if (kc_proto_decode (msg, channel, &decoded, &why) == 0) {
        uint8_t sum = 0;
        for (size_t i = 0; i < decoded.entry_count; i++) {
            const kc_entry_t *entry = &decoded.entries [i];
            for (size_t j = 0; j < entry->size; j++) {
                sum ^= entry->data [j];
            }
            if (entry->chain) {
                sum ^= entry->chain [31];
            }
        }
        for (size_t j = 0; j < decoded.text_size; j++) {
            sum ^= (uint8_t) decoded.text [j];
        }
        for (size_t j = 0; j < decoded.argument_size; j++) {
            sum ^= decoded.argument [j];
        }
        if (decoded.type == KC_MSG_END || decoded.type == KC_MSG_HEAD) {
            uint8_t key [32] = { 1 };
            int rc = kc_head_verify (&decoded.head, decoded.head.directory, key, 0, &why);
            (void) rc;
        }
        (void) sum;
        kc_proto_msg_reset (&decoded);
    }
    zmsg_destroy (&msg);
    return 0;
}

#endif
