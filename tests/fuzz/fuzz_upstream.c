/*  fuzz_upstream - the upstream parser of keyclone-mirror, keyclone-witness
    and keyclone-agent --mirror (kc_follow_parse_upstream): NAME of a server
    of the root, or tcp://HOST:PORT=KEY.  */
#include "kc_all.h"
#include <sodium.h>

static kc_root_t *s_root;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    if (sodium_init () < 0) {
        return 1;
    }
    uint8_t head_key [32] = { 1 }, server_key [32] = { 2 };
    kc_operator_t operator = { .name = "op1" };
    memset (operator.key, 3, 32);
    kc_root_spec_t spec = {
        .version = 1, .created = 1000, .expires = 2000, .operators = &operator, .operator_count = 1,
        .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1,
        .head_key = head_key, .server_key = server_key,
        .endpoints = { "tcp://h:1", "tcp://h:2", "tcp://h:3" }
    };
    kc_why_t why;
    s_root = kc_root_new (&spec, &why);
    return s_root == NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char text [1024];
    if (size >= sizeof text) {
        return 0;
    }
    memcpy (text, data, size);
    text [size] = 0;
    kc_follow_upstream_t upstream;
    kc_why_t why;
    if (kc_follow_parse_upstream (text, s_root, &upstream, &why) == 0) {
        //  What it made is bounded and terminated
        if (strlen (upstream.snapshot) >= sizeof upstream.snapshot || strlen (upstream.updates) >= sizeof upstream.updates
        ||  strlen (upstream.name) >= sizeof upstream.name) {
            abort ();
        }
    }
    return 0;
}
