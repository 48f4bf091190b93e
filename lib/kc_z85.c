/*  =========================================================================
    kc_z85 - Z85 text encoding of binary keys (ZeroMQ RFC 32), strict.
    =========================================================================
*/
#include "kc_z85.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static const char s_alphabet [86] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

//  Value of each character, or -1; indexed by (unsigned char).
static int
s_value (unsigned char c)
{
    const char *at = (c && c < 128) ? memchr (s_alphabet, c, 85) : NULL;
    return at ? (int) (at - s_alphabet) : -1;
}

char *
kc_z85_encode (const uint8_t *data, size_t size, char *text)
{
    if (size % 4) {
        return NULL;
    }
    size_t out = 0;
    for (size_t i = 0; i < size; i += 4) {
        uint32_t value = (uint32_t) data [i] << 24 | (uint32_t) data [i + 1] << 16
                       | (uint32_t) data [i + 2] << 8 | data [i + 3];
        for (int j = 4; j >= 0; j--) {
            text [out + (size_t) j] = s_alphabet [value % 85];
            value /= 85;
        }
        out += 5;
    }
    text [out] = 0;
    return text;
}

int
kc_z85_decode (const char *text, uint8_t *data, size_t size)
{
    size_t length = strnlen (text, size * 5 / 4 + 1);
    if (size % 4 || length != size * 5 / 4) {
        return -1;
    }
    for (size_t i = 0, out = 0; i < length; i += 5, out += 4) {
        uint64_t value = 0;
        for (size_t j = 0; j < 5; j++) {
            int digit = s_value ((unsigned char) text [i + j]);
            if (digit < 0) {
                return -1;
            }
            value = value * 85 + (uint64_t) digit;
        }
        if (value > UINT32_MAX) {
            return -1;
        }
        data [out] = (uint8_t) (value >> 24);
        data [out + 1] = (uint8_t) (value >> 16);
        data [out + 2] = (uint8_t) (value >> 8);
        data [out + 3] = (uint8_t) value;
    }
    return 0;
}

int
kc_z85_key (const char *text, uint8_t key [static KC_KEY_BYTES], kc_why_t *why)
{
    if (strnlen (text, KC_Z85_KEY_CHARS + 1) != KC_Z85_KEY_CHARS) {
        return kc_why (why, "'%.60s' is not a key: a Z85 key is exactly 40 characters", text);
    }
    if (kc_z85_decode (text, key, KC_KEY_BYTES)) {
        return kc_why (why, "'%s' is not a key: invalid Z85 text", text);
    }
    return 0;
}

void
kc_z85_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_z85: ");
    }
    //  RFC 32 test vector
    const uint8_t hello [8] = { 0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B };
    char text [41];
    assert (KC_STREQ (kc_z85_encode (hello, 8, text), "HelloWorld"));
    uint8_t back [8];
    assert (kc_z85_decode ("HelloWorld", back, 8) == 0);
    assert (memcmp (back, hello, 8) == 0);
    assert (kc_z85_encode (hello, 7, text) == NULL);

    //  libzmq's documented test key (reference/curvezmq.md section 8)
    uint8_t key [32];
    kc_why_t why;
    assert (kc_z85_key ("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", key, &why) == 0);
    assert (key [0] == 0xBB && key [1] == 0x88 && key [31] == 0x18);
    assert (KC_STREQ (kc_z85_encode (key, 32, text), "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"));

    //  Round trip of every byte value
    uint8_t all [256], again [256];
    char long_text [321];
    for (int i = 0; i < 256; i++) {
        all [i] = (uint8_t) i;
    }
    kc_z85_encode (all, 256, long_text);
    assert (kc_z85_decode (long_text, again, 256) == 0);
    assert (memcmp (all, again, 256) == 0);

    //  Strictness: length, alphabet, overflow
    assert (kc_z85_decode ("HelloWorl", back, 8) == -1);
    assert (kc_z85_decode ("HelloWorld!", back, 8) == -1);
    assert (kc_z85_decode ("Hello Wrld", back, 8) == -1);
    assert (kc_z85_decode ("Hello\"orld", back, 8) == -1);
    assert (kc_z85_decode ("%nSc0", back, 4) == 0);     //  0xFFFFFFFF
    assert (back [0] == 0xff && back [3] == 0xff);
    assert (kc_z85_decode ("%nSc1", back, 4) == -1);    //  2^32
    assert (kc_z85_decode ("#####", back, 4) == -1);    //  85^5 - 1
    assert (kc_z85_key ("short", key, &why) == -1);
    assert (strstr (why.text, "40 characters"));
    if (verbose) {
        printf ("OK\n");
    }
}
