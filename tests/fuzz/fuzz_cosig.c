/*  fuzz_cosig - the cosignature decoder, its verifier and the freshness
    an agent draws from cosignatures (kc_witness_view).  */
#include "fuzz_fixture.h"

static kc_root_t *s_root;
static kc_witness_view_t *s_view;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    //  A root naming one witness whose key is all 7s (as the seeds use)
    kc_witness_t witness = { .name = "w1" };
    memset (witness.key, 7, 32);
    s_root = fuzz_fixture_root (&witness, 1, 1);
    s_view = kc_witness_view_new ();
    uint8_t chain [32] = { 0 };
    kc_witness_view_extend (s_view, 1, chain);
    return s_root == NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    kc_cosig_t cosig;
    kc_why_t why;
    if (kc_cosig_decode (data, size, &cosig, &why) == 0) {
        uint8_t again [KC_COSIG_BYTES];
        kc_cosig_encode (&cosig, again);
        if (memcmp (again, data, KC_COSIG_BYTES)) {
            abort ();                       //  one encoding per cosignature
        }
        size_t index;
        if (kc_cosig_verify (&cosig, cosig.directory, s_root, &index, &why) == 0 && index > 0) {
            abort ();                       //  the root names one witness
        }
    }
    (void) kc_witness_view_add (s_view, data, size, s_root, 1000000, 1000, &why);
    (void) kc_witness_view_fresh_until (s_view, s_root, 5000);
    return 0;
}
