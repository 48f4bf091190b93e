/*  fuzz_curve_meta - the ZMTP metadata decoder (kc_meta) that INITIATE and
    READY use. Any input must be refused or decode to a list whose encoding
    is exactly the input.  */
#include "kc_all.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    kc_meta_t *meta = kc_meta_decode (data, size, NULL);
    if (!meta) {
        return 0;
    }
    kc_writer_t writer;
    kc_writer_init (&writer);
    kc_meta_encode (meta, &writer);
    if (writer.size != size || kc_meta_encoded_size (meta) != size
    ||  (size && memcmp (writer.data, data, size))) {
        abort ();                       //  decoded but does not re-encode: a bug
    }
    for (size_t i = 0; i < kc_meta_count (meta); i++) {
        size_t value_size;
        const char *name = kc_meta_name (meta, i);
        const uint8_t *value = kc_meta_value (meta, i, &value_size);
        size_t found_size;
        if (kc_meta_get (meta, name, &found_size) != value || found_size != value_size) {
            abort ();
        }
    }
    kc_writer_free (&writer);
    kc_meta_destroy (&meta);
    return 0;
}
