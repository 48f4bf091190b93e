/*  fuzz_head - the head decoder and verifier.  */
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
    kc_head_t head;
    kc_why_t why;
    if (kc_head_decode (data, size, &head, &why) == 0) {
        uint8_t key [32] = { 7 };
        int rc = kc_head_verify (&head, head.directory, key, head.time, &why);
        uint8_t again [KC_HEAD_BYTES];
        kc_head_encode (&head, again);
        if (memcmp (again, data, KC_HEAD_BYTES)) {
            abort ();                       //  one encoding per head
        }
        (void) rc;
    }
    return 0;
}
