/*  fuzz_fixture - what the targets that need a root share: a root v1 with
    one operator (key all 3s), head key all 1s, server key all 2s, endpoints
    tcp://h:1-3, and the witnesses given (the seeds are made with it).  */
#ifndef FUZZ_FIXTURE_H_INCLUDED
#define FUZZ_FIXTURE_H_INCLUDED

#include "kc_all.h"
#include <sodium.h>

//  The root, or NULL (libsodium or the root could not be made).
static inline kc_root_t *
fuzz_fixture_root (const kc_witness_t *witnesses, size_t witness_count, int witness_threshold)
{
    if (sodium_init () < 0) {
        return NULL;
    }
    uint8_t head_key [32] = { 1 }, server_key [32] = { 2 };
    kc_operator_t operator = { .name = "op1" };
    memset (operator.key, 3, 32);
    kc_root_spec_t spec = {
        .version = 1, .created = 1000, .expires = 2000, .operators = &operator, .operator_count = 1,
        .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1,
        .head_key = head_key, .server_key = server_key,
        .endpoints = { "tcp://h:1", "tcp://h:2", "tcp://h:3" },
        .witnesses = witnesses, .witness_count = witness_count, .witness_threshold = witness_threshold
    };
    kc_why_t why;
    return kc_root_new (&spec, &why);
}

#endif
