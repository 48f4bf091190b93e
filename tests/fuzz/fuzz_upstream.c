/*  fuzz_upstream - the upstream parser of keyclone-mirror, keyclone-witness
    and keyclone-agent --mirror (kc_follow_parse_upstream): NAME of a server
    of the root, or tcp://HOST:PORT=KEY.  */
#include "fuzz_fixture.h"

static kc_root_t *s_root;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    s_root = fuzz_fixture_root (NULL, 0, 0);
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
