/*  fuzz_curve_welcome - the client's WELCOME parser. Mode 0: the input is
    what the server answers to HELLO. Mode 1: the input replaces the WELCOME
    box's plaintext (S' + cookie), sealed by the server. A WELCOME the client
    accepts must give a 257+ byte INITIATE.  */
#include "fuzz_curve.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int mode = data [0] & 1;
    s_world_t world;
    s_world_new (&world);
    s_swap_t swap = { "WELCOME box", 0, data + 1, size - 1 };
    if (mode == 1) {
        kc_curve_test_tamper (world.server, s_swap, &swap);
    }
    s_world_step (&world, world.client, NULL, 0);
    if (s_world_pass (&world, world.server)) {
        abort ();                       //  our own HELLO
    }
    int rc = mode == 0 ? s_world_step (&world, world.client, data + 1, size - 1)
                       : s_world_pass (&world, world.client);
    if (rc == 0) {
        if (world.size < KC_CURVE_INITIATE_BYTES) {
            abort ();
        }
        if (s_world_pass (&world, world.server) == 0) {
            s_world_pass (&world, world.client);
            s_world_talk (&world);
        }
    }
    else
    if (world.command || !kc_curve_failed (world.client)) {
        abort ();                       //  a client never answers a bad WELCOME
    }
    s_world_destroy (&world);
    return 0;
}
