/*  fuzz_zmtp_link - a kc_zmtp_t connection (greeting, frames, the codec
    inside, PING/PONG, heartbeats, limits) in the deterministic world of
    fuzz_curve.h. Byte 0 picks the mode:
        0   the rest is what a peer sends to a fresh server connection:
            greeting, handshake frames, anything (in one input call);
        1   a connected client/server pair, then records: an op byte, a
            length byte, that many bytes. Op bit 0 picks the direction;
            bits 1-3 the kind: 0 the bytes raw into the receiving side;
            1 the bytes sealed by the sender's codec as a ZMTP 3.1 command
            inside MESSAGE (PING, PONG, anything), in a message frame; 2 the
            bytes sent as a part (kc_zmtp_send, bit 4 = more); 3 the clock
            moves by 10 ms times the first byte and both sides tick; 4 the
            sender's output moves in pieces of the first byte's size + 1.
    Every part received must be one that was sent, in order.  */
#include "fuzz_curve.h"

static uint64_t s_now;

static uint64_t
s_clock (void *arg)
{
    (void) arg;
    return s_now;
}

typedef struct {
    kc_zmtp_t *side [2];                    //  client, server
    kc_writer_t sent [2];                   //  parts each side sent, each u64 size + bytes
    size_t checked [2];                     //  how far the other side's receipts match
} s_pair_t;

//  Moves side from's output to the other side, piece bytes at a time, and
//  checks every part the other side received against what from sent.
static void
s_move (s_pair_t *pair, int from, size_t piece)
{
    kc_zmtp_t *sender = pair->side [from], *receiver = pair->side [!from];
    size_t size;
    const uint8_t *data = kc_zmtp_output (sender, &size);
    while (size && !kc_zmtp_failed (receiver)) {
        size_t part = size < piece ? size : piece;
        uint8_t *copy = malloc (part);
        if (!copy) {
            abort ();
        }
        memcpy (copy, data, part);
        kc_zmtp_written (sender, part);
        int rc = kc_zmtp_input (receiver, copy, part, NULL);
        free (copy);
        const uint8_t *got;
        size_t got_size;
        bool more;
        while (kc_zmtp_recv (receiver, &got, &got_size, &more)) {
            kc_writer_t *sent = &pair->sent [from];
            size_t at = pair->checked [from];
            if (at + 8 > sent->size || kc_get_u64 (sent->data + at) != got_size
            ||  at + 8 + got_size > sent->size || memcmp (sent->data + at + 8, got, got_size)) {
                abort ();                   //  received what was never sent
            }
            pair->checked [from] = at + 8 + got_size;
        }
        if (rc) {
            break;
        }
        data = kc_zmtp_output (sender, &size);
    }
}

static kc_zmtp_t *
s_link (kc_curve_t *codec, const char *type)
{
    kc_zmtp_t *link = kc_zmtp_new (&codec, type, NULL);
    if (!link) {
        abort ();
    }
    kc_zmtp_set_clock (link, s_clock, NULL);
    kc_zmtp_set_message_max (link, 4096);
    return link;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    s_world_t world;
    s_world_new (&world);
    s_now = 1000;
    s_pair_t pair;
    memset (&pair, 0, sizeof pair);
    pair.side [0] = s_link (world.client, "DEALER");
    pair.side [1] = s_link (world.server, "ROUTER");
    kc_writer_init (&pair.sent [0]);
    kc_writer_init (&pair.sent [1]);
    if (data [0] == 0) {
        if (kc_zmtp_input (pair.side [1], data + 1, size - 1, NULL) == 0 && kc_zmtp_connected (pair.side [1])) {
            abort ();                       //  no handshake without the client's secret
        }
        size_t pending;
        (void) kc_zmtp_output (pair.side [1], &pending);
    }
    else {
        for (int round = 0; round < 3; round++) {
            s_move (&pair, 0, SIZE_MAX);
            s_move (&pair, 1, SIZE_MAX);
        }
        if (!kc_zmtp_connected (pair.side [0]) || !kc_zmtp_connected (pair.side [1])) {
            abort ();
        }
        kc_zmtp_set_heartbeat (pair.side [0], 100, 1000, 300);
        size_t at = 1;
        while (at + 2 <= size) {
            uint8_t op = data [at];
            size_t length = data [at + 1];
            const uint8_t *bytes = data + at + 2;
            if (at + 2 + length > size) {
                break;
            }
            at += 2 + length;
            int from = op & 1, kind = (op >> 1) & 7;
            kc_zmtp_t *sender = pair.side [from];
            if (kind == 0) {
                if (kc_zmtp_input (pair.side [!from], bytes, length, NULL)) {
                    continue;
                }
            }
            else
            if (kind == 1 && kc_zmtp_connected (sender)) {
                uint8_t frame [KC_ZMTP_HEADER_MAX + 255 + KC_CURVE_MESSAGE_OVERHEAD];
                size_t header = kc_zmtp_frame_header (frame, 0, length + KC_CURVE_MESSAGE_OVERHEAD);
                if (kc_curve_encode (kc_zmtp_codec (sender), bytes, length, KC_CURVE_COMMAND, frame + header,
                                     NULL) == 0) {
                    if (kc_zmtp_input (pair.side [!from], frame, header + length + KC_CURVE_MESSAGE_OVERHEAD,
                                       NULL)) {
                        continue;
                    }
                }
            }
            else
            if (kind == 2 && kc_zmtp_send (sender, bytes, length, (op & 16) != 0, NULL) == 0) {
                kc_write_u64 (&pair.sent [from], length);
                kc_write_bytes (&pair.sent [from], bytes, length);
            }
            else
            if (kind == 3) {
                s_now += 10 * (uint64_t) (length ? bytes [0] : 1);
                for (int i = 0; i < 2; i++) {
                    if (kc_zmtp_tick (pair.side [i], NULL) && !kc_zmtp_failed (pair.side [i])) {
                        abort ();           //  a failure that left it up
                    }
                }
                (void) kc_zmtp_timeout (pair.side [0]);
            }
            else
            if (kind == 4) {
                s_move (&pair, from, (size_t) (length ? bytes [0] : 0) + 1);
            }
        }
    }
    kc_zmtp_destroy (&pair.side [0]);
    kc_zmtp_destroy (&pair.side [1]);
    kc_writer_free (&pair.sent [0]);
    kc_writer_free (&pair.sent [1]);
    free (world.command);
    return 0;
}
