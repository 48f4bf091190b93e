/*  fuzz_enrolment - the enrolment decoder (kc_enrol.h). Any input must be
    refused or decode to a request whose canonical re-encoding is exactly the
    input (one encoding), and whose comparison code can be computed.  */
#include "kc_all.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    kc_enrolment_t enrolment;
    if (kc_enrolment_decode (data, size, &enrolment, NULL)) {
        return 0;
    }
    size_t again_size;
    uint8_t *again = kc_enrolment_encode (&enrolment, &again_size);
    if (again_size != size || memcmp (again, data, size)) {
        abort ();
    }
    free (again);
    char code [KC_ENROL_CODE_CHARS + 1];
    kc_enrol_code (enrolment.key, enrolment.name, (const char (*)[KC_RECORD_TAG_MAX + 1]) enrolment.tags,
                   enrolment.tag_count, code);
    return 0;
}
