/*  fuzz_curve_error - the client's ERROR parser, where WELCOME (mode 0) or
    READY (mode 1) is due; and a server fed the same bytes where HELLO (mode
    2) or INITIATE (mode 3) is due (a client never sends ERROR). Any of these
    fails the codec without an answer, or is a valid command.  */
#include "fuzz_curve.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int mode = data [0] & 3;
    s_world_t world;
    s_world_new (&world);
    s_world_step (&world, world.client, NULL, 0);
    kc_curve_t *target = world.client;
    if (mode == 0) {
        target = world.client;
    }
    else
    if (mode == 2) {
        target = world.server;
    }
    else {
        if (s_world_pass (&world, world.server)) {
            abort ();
        }
        target = world.server;
        if (mode == 1) {
            if (s_world_pass (&world, world.client) || s_world_pass (&world, world.server)) {
                abort ();
            }
            target = world.client;
        }
    }
    int rc = s_world_step (&world, target, data + 1, size - 1);
    if (rc && (world.command || !kc_curve_failed (target))) {
        abort ();
    }
    s_world_destroy (&world);
    return 0;
}
