/*  fuzz_curve_ready - the client's READY parser. Mode 0: the input is what
    the server answers to INITIATE. Mode 1: it replaces the READY box's
    plaintext (the server's metadata), sealed by the server. A READY the
    client accepts leaves a pair that can talk.  */
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
    s_swap_t swap = { "READY box", 0, data + 1, size - 1 };
    if (mode == 1) {
        kc_curve_test_tamper (world.server, s_swap, &swap);
    }
    s_world_step (&world, world.client, NULL, 0);
    if (s_world_pass (&world, world.server) || s_world_pass (&world, world.client)
    ||  s_world_pass (&world, world.server)) {
        abort ();                       //  HELLO, WELCOME, INITIATE are our own
    }
    int rc = mode == 0 ? s_world_step (&world, world.client, data + 1, size - 1)
                       : s_world_pass (&world, world.client);
    if (rc == 0) {
        if (world.command || !kc_curve_peer_metadata (world.client)) {
            abort ();
        }
        s_world_talk (&world);
    }
    else
    if (world.command || !kc_curve_failed (world.client)) {
        abort ();
    }
    s_world_destroy (&world);
    return 0;
}
