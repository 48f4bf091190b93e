/*  fuzz_z85 - strict Z85 decoding: whatever decodes must re-encode to the
    same text (one text per byte string).  */
#include "kc_all.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size > 400) {
        return 0;
    }
    char text [401], again [401];
    memcpy (text, data, size);
    text [size] = 0;
    uint8_t bytes [320];
    size_t length = strlen (text);
    if (length % 5 == 0 && kc_z85_decode (text, bytes, length / 5 * 4) == 0) {
        kc_z85_encode (bytes, length / 5 * 4, again);
        if (strcmp (again, text)) {
            abort ();
        }
    }
    return 0;
}
