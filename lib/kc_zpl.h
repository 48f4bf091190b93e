/*  =========================================================================
    kc_zpl - a strict, zero-copy parser for the ZPL subset that czmq writes
    (ZeroMQ RFC 4): certificate and key files.

    Values are slices of the caller's text, never copied, so a secret key file
    read into sodium_malloc memory is parsed without the secret leaving it.
    Daemon configuration uses czmq's zconfig; this parser exists because key
    files hold secrets.
    =========================================================================
*/
#ifndef KC_ZPL_H_INCLUDED
#define KC_ZPL_H_INCLUDED

#include "kc_util.h"

#define KC_ZPL_TEXT_MAX     65536       //  bytes of text accepted
#define KC_ZPL_ENTRIES_MAX  64          //  names (sections and values)
#define KC_ZPL_DEPTH_MAX    8           //  nesting levels
#define KC_ZPL_NAME_MAX     64          //  characters of one name
#define KC_ZPL_PATH_MAX     128         //  characters of "a/b/c"
#define KC_ZPL_VALUE_MAX    4096        //  characters of one value

typedef struct {
    char path [KC_ZPL_PATH_MAX + 1];    //  "curve/public-key"
    const char *value;                  //  slice of the input, NOT terminated
    size_t value_size;
    bool has_value;                     //  false for a section header
} kc_zpl_entry_t;

typedef struct {
    kc_zpl_entry_t entries [KC_ZPL_ENTRIES_MAX];
    size_t count;
} kc_zpl_t;

//  Parses size bytes of ZPL text into self. Pure; returns 0, or -1 with a
//  reason naming the line.
int
    kc_zpl_parse (kc_zpl_t *self, const char *text, size_t size, kc_why_t *why) KC_WUR;

//  Returns the entry with this path and a value, or NULL.
const kc_zpl_entry_t *
    kc_zpl_get (const kc_zpl_t *self, const char *path);

//  Self test of this module.
void
    kc_zpl_test (bool verbose);

#endif
