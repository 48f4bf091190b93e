/*  fuzz_grant - the grant and grant use decoders (kc_grant.h). Any input
    must be refused or decode to an object that decodes again to itself,
    whose checks run without reading outside it.  */
#include "kc_all.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    kc_grant_t *grant = kc_grant_decode (data, size, NULL);
    if (grant) {
        kc_grant_t *again = kc_grant_decode (grant->data, grant->size, NULL);
        if (!again || again->size != size || memcmp (again->digest, grant->digest, KC_HASH_BYTES)) {
            abort ();
        }
        kc_grant_destroy (&again);
    }
    kc_grant_use_t *use = kc_grant_use_decode (data, size, NULL);
    if (use) {
        if (use->body_size + KC_SIGNATURE_BYTES != size) {
            abort ();
        }
        if (grant) {
            abort ();                       //  one magic or the other
        }
        kc_why_t why;
        if (kc_grant_use_check (use, NULL, 0, &why) == 0) {
            abort ();                       //  no grant: never allowed
        }
        kc_batch_t *batch = kc_grant_use_batch (use);
        kc_batch_destroy (&batch);
        kc_grant_use_destroy (&use);
    }
    kc_grant_destroy (&grant);
    return 0;
}
