/*  Tests that live outside lib/ (they read files from tests/).  */
#ifndef KC_SELFTEST_H_INCLUDED
#define KC_SELFTEST_H_INCLUDED
#include <stdbool.h>

//  Golden encodings in tests/vectors: frozen, never edited once committed.
void kc_vectors_test (bool verbose);

//  Every named encoding limit: the limit accepted, the limit + 1 refused.
void kc_limits_test (bool verbose);

//  Randomised lifecycle properties: revocable always, revoked forever.
void kc_properties_test (bool verbose);

#endif
