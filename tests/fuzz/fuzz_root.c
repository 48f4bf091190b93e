/*  fuzz_root - the root decoder and verifiers. Decoding must never crash;
    a decoded root is verified on its own and as a successor of itself.  */
#include "kc_all.h"
#include <sodium.h>

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return sodium_init () < 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    kc_why_t why;
    kc_root_t *root = kc_root_decode (data, size, &why);
    if (root) {
        if (kc_root_verify (root, 1800000000, &why) == 0) {
            //  A valid root cannot succeed itself (same version)
            if (kc_root_verify_successor (root, root, 1800000000, &why) == 0) {
                __builtin_trap ();
            }
        }
        //  What a root change shows an operator never crashes either
        char diff [2048];
        kc_root_diff (root, root, diff, sizeof diff);
        kc_root_destroy (&root);
    }
    return 0;
}
