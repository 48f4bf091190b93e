/*  fuzz_curve_hello - the server's HELLO parser. Mode 0: the input is the
    HELLO. Mode 1: the input replaces the HELLO signature box's plaintext (64
    zero bytes), sealed by the client. A HELLO the server accepts must lead
    to a WELCOME the client accepts.  */
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
    s_swap_t swap = { "HELLO box", 0, data + 1, size - 1 };
    if (mode == 1) {
        kc_curve_test_tamper (world.client, s_swap, &swap);
    }
    s_world_step (&world, world.client, NULL, 0);
    int rc = mode == 0 ? s_world_step (&world, world.server, data + 1, size - 1)
                       : s_world_pass (&world, world.server);
    if (rc == 0) {
        if (world.size != KC_CURVE_WELCOME_BYTES) {
            abort ();
        }
        //  Our client accepts it only if the HELLO was its own
        if (s_world_pass (&world, world.client) == 0 && s_world_pass (&world, world.server) == 0) {
            s_world_pass (&world, world.client);
            s_world_talk (&world);
        }
    }
    else
    if (world.command || !kc_curve_failed (world.server)) {
        abort ();                       //  a refused HELLO gets silence
    }
    s_world_destroy (&world);
    return 0;
}
