/*  fuzz_zpl - the key-file (ZPL) parser and the key lookups made on it.  */
#include "kc_all.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static kc_zpl_t zpl;
    if (kc_zpl_parse (&zpl, (const char *) data, size, NULL) == 0) {
        static const char *paths [] = { "curve/public-key", "curve/secret-key",
            "ed25519/public-key", "ed25519/secret-key", "metadata/name", NULL };
        for (int i = 0; paths [i]; i++) {
            const kc_zpl_entry_t *entry = kc_zpl_get (&zpl, paths [i]);
            if (entry && entry->value_size == KC_Z85_KEY_CHARS) {
                char text [KC_Z85_KEY_CHARS + 1];
                uint8_t key [KC_KEY_BYTES];
                memcpy (text, entry->value, KC_Z85_KEY_CHARS);
                text [KC_Z85_KEY_CHARS] = 0;
                int rc = kc_z85_decode (text, key, sizeof key);
                (void) rc;
            }
        }
    }
    return 0;
}
