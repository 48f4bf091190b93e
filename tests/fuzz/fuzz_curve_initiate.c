/*  fuzz_curve_initiate - the server's INITIATE parser, through the cookie,
    the box, the vouch and the metadata. Mode 0: the input is the INITIATE.
    Mode 1: it replaces the INITIATE box's plaintext (C + vouch + metadata).
    Mode 2: it replaces the vouch box's plaintext (C' + S). Mode 3: it is the
    metadata after a valid C and vouch. The client seals modes 1-3. The
    server answers READY, an ERROR (a client sending X-Deny), or nothing.  */
#include "fuzz_curve.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int mode = data [0] & 3;
    static const char *points [4] = { "", "INITIATE box", "vouch box", "INITIATE box" };
    s_world_t world;
    s_world_new (&world);
    s_swap_t swap = { points [mode], mode == 3 ? 128 : 0, data + 1, size - 1 };
    if (mode) {
        kc_curve_test_tamper (world.client, s_swap, &swap);
    }
    s_world_step (&world, world.client, NULL, 0);
    if (s_world_pass (&world, world.server) || s_world_pass (&world, world.client)) {
        abort ();                       //  HELLO and WELCOME are our own
    }
    int rc = mode == 0 ? s_world_step (&world, world.server, data + 1, size - 1)
                       : s_world_pass (&world, world.server);
    if (rc == 0) {
        if (world.size < KC_CURVE_READY_BYTES || !kc_curve_identity (world.server)) {
            abort ();
        }
        s_world_pass (&world, world.client);
        s_world_talk (&world);
    }
    else
    if (!kc_curve_failed (world.server)
    ||  (world.command && (world.size != 10 || memcmp (world.command, "\x05" "ERROR\x03", 7)))) {
        abort ();                       //  silence, or an ERROR with a status
    }
    s_world_destroy (&world);
    return 0;
}
