/*  fuzz_curve_message - the MESSAGE decoder, both roles, over a sequence of
    commands on one connected pair. The input is a list of records: an op
    byte, a length byte, then that many bytes. Op bit 0 picks the direction
    (client to server, or back), bits 1-2 the kind: 0 a real MESSAGE of the
    bytes (bit 3 = MORE), 1 the bytes as the command, 2 a MESSAGE forged
    with any nonce (8 bytes) and flags (1 byte), 3 a real MESSAGE with one
    byte flipped. A decoded payload must be what was sealed.  */
#include "fuzz_curve.h"

//  Seals (or copies) one record into an exact-size heap command, so a
//  read past its end is caught.
static uint8_t *
s_command (kc_curve_t *from, int kind, const uint8_t *bytes, size_t size, int flags,
           size_t *command_size)
{
    size_t payload_size = kind == 2 ? size - 9 : size;
    *command_size = kind == 1 ? size : payload_size + KC_CURVE_MESSAGE_OVERHEAD;
    uint8_t *command = malloc (*command_size ? *command_size : 1);
    if (!command) {
        abort ();
    }
    if (kind == 1) {
        memcpy (command, bytes, size);
    }
    else
    if (kind == 2) {
        kc_curve_test_message (from, kc_get_u64 (bytes), bytes [8], bytes + 9, payload_size,
                               command);
    }
    else
    if (kc_curve_encode (from, bytes, size, flags, command, NULL)) {
        free (command);                 //  the sender has failed
        return NULL;
    }
    else
    if (kind == 3 && size) {
        command [bytes [0] % *command_size] ^= 1 + (bytes [size - 1] & 0x7f);
    }
    return command;
}

static void
s_record (s_world_t *world, uint8_t op, const uint8_t *bytes, size_t size)
{
    kc_curve_t *from = op & 1 ? world->server : world->client;
    kc_curve_t *to = op & 1 ? world->client : world->server;
    int kind = (op >> 1) & 3;
    int flags = op & 8 ? KC_CURVE_MORE : 0;
    if (kind == 2 && (size < 9 || !kc_curve_connected (from))) {
        return;
    }
    size_t command_size;
    uint8_t *command = s_command (from, kind, bytes, size, flags, &command_size);
    if (!command) {
        return;
    }
    const uint8_t *sealed = kind == 2 ? bytes + 9 : bytes;
    size_t sealed_size = kind == 2 ? size - 9 : size;
    int expected = kind == 2 ? bytes [8] : flags;
    uint8_t *payload;
    size_t payload_size;
    int got;
    int rc = kc_curve_decode (to, command, command_size, &payload, &payload_size, &got, NULL);
    if (rc && !kc_curve_failed (to)) {
        abort ();                       //  a bad MESSAGE is final
    }
    if (rc == 0 && kind == 3 && size) {
        abort ();                       //  a flipped byte must never pass
    }
    if (rc == 0 && kind != 1 && (payload_size != sealed_size || got != expected
                                 || memcmp (payload, sealed, sealed_size))) {
        abort ();
    }
    free (command);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_world_t world;
    s_world_new (&world);
    s_world_step (&world, world.client, NULL, 0);
    if (s_world_pass (&world, world.server) || s_world_pass (&world, world.client)
    ||  s_world_pass (&world, world.server) || s_world_pass (&world, world.client)) {
        abort ();
    }
    size_t at = 0;
    while (at + 2 <= size) {
        uint8_t op = data [at], length = data [at + 1];
        at += 2;
        if (length > size - at) {
            length = (uint8_t) (size - at);
        }
        //  An exact-size copy, so a read past the record is caught
        uint8_t *bytes = malloc (length ? length : 1);
        memcpy (bytes, data + at, length);
        s_record (&world, op, bytes, length);
        free (bytes);
        at += length;
    }
    s_world_destroy (&world);
    return 0;
}
