/*  =========================================================================
    kc_json - writing JSON text safely: string escaping and a few helpers,
    for the --json output of the CLI and the daemons' status replies.
    =========================================================================
*/
#ifndef KC_JSON_H_INCLUDED
#define KC_JSON_H_INCLUDED

#include "kc_util.h"
#include <stdio.h>

//  Writes size bytes as a quoted JSON string, escaping quotes, backslashes
//  and control characters; bytes >= 0x80 are written as \u00XX so the output
//  is always valid JSON whatever the input.
void
    kc_json_string (FILE *out, const char *text, size_t size);

//  Writes a C string as a JSON string.
void
    kc_json_cstr (FILE *out, const char *text);

//  Writes "name": and a JSON string value; a leading comma unless first.
void
    kc_json_field_str (FILE *out, bool first, const char *name, const char *value);

//  Writes "name": and an unsigned integer; a leading comma unless first.
void
    kc_json_field_u64 (FILE *out, bool first, const char *name, uint64_t value);

//  Self test of this module.
void
    kc_json_test (bool verbose);

#endif
