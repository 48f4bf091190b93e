/*  =========================================================================
    kc_json - safe JSON string output.
    =========================================================================
*/
#include "kc_json.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void
kc_json_string (FILE *out, const char *text, size_t size)
{
    fputc ('"', out);
    for (size_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char) text [i];
        if (c == '"' || c == '\\') {
            fputc ('\\', out);
            fputc (c, out);
        }
        else
        if (c == '\n') {
            fputs ("\\n", out);
        }
        else
        if (c < 0x20 || c >= 0x7f) {
            fprintf (out, "\\u%04x", c);
        }
        else {
            fputc (c, out);
        }
    }
    fputc ('"', out);
}

void
kc_json_cstr (FILE *out, const char *text)
{
    kc_json_string (out, text, strlen (text));
}

void
kc_json_field_str (FILE *out, bool first, const char *name, const char *value)
{
    fprintf (out, "%s\"%s\": ", first ? "" : ", ", name);
    kc_json_cstr (out, value);
}

void
kc_json_field_u64 (FILE *out, bool first, const char *name, uint64_t value)
{
    fprintf (out, "%s\"%s\": %llu", first ? "" : ", ", name, (unsigned long long) value);
}

void
kc_json_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_json: ");
    }
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    kc_json_string (out, "a\"b\\c\n\x01\xff", 8);
    fputc (' ', out);
    kc_json_field_str (out, true, "k", "v");
    kc_json_field_u64 (out, false, "n", 18446744073709551615ULL);
    fclose (out);
    assert (KC_STREQ (text, "\"a\\\"b\\\\c\\n\\u0001\\u00ff\" \"k\": \"v\", \"n\": 18446744073709551615"));
    free (text);
    if (verbose) {
        printf ("OK\n");
    }
}
