/*  =========================================================================
    kc_z85 - Z85 text encoding of binary keys (ZeroMQ RFC 32), strict.

    The decoder rejects any character outside the alphabet, any length that is
    not a multiple of 5 and any 5-character group whose value exceeds 2^32-1,
    so every byte string has exactly one accepted text.
    =========================================================================
*/
#ifndef KC_Z85_H_INCLUDED
#define KC_Z85_H_INCLUDED

#include "kc_util.h"

//  Encodes size bytes (a multiple of 4) as 5*size/4 characters plus a NUL.
//  Returns text, or NULL when size is not a multiple of 4.
char *
    kc_z85_encode (const uint8_t *data, size_t size, char *text);

//  Decodes text (length a multiple of 5) into exactly size bytes. Returns 0,
//  or -1 for bad length, character or value.
int
    kc_z85_decode (const char *text, uint8_t *data, size_t size) KC_WUR;

//  Decodes a 40-character Z85 public key; returns 0 or -1 with a reason.
int
    kc_z85_key (const char *text, uint8_t key [static KC_KEY_BYTES], kc_why_t *why) KC_WUR;

//  Self test of this module.
void
    kc_z85_test (bool verbose);

#endif
