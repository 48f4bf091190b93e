/*  =========================================================================
    kc_nosodium - an embedder that never calls sodium_init nor any czmq
    function first (czmq's zsys_init would initialise libsodium): makes a
    CURVE key pair, a client and a server codec, and runs a handshake and a
    message through them in memory. libkeyclone must initialise libsodium
    itself; before it did, kc_curve_new_server aborted in sodium_malloc.
    Prints "ok" and exits 0.
    =========================================================================
*/
#include "kc_all.h"

#include <stdio.h>
#include <string.h>

static int
s_allow (const uint8_t client_key [KC_KEY_BYTES], const kc_meta_t *metadata, void *arg,
         kc_curve_identity_t *identity)
{
    (void) client_key;
    (void) metadata;
    (void) arg;
    snprintf (identity->name, sizeof identity->name, "anyone");
    return KC_CURVE_ALLOW;
}

int
main (void)
{
    kc_cert_t *server = kc_cert_new ("server"), *client = kc_cert_new ("client");
    kc_curve_t *s = kc_curve_new_server (kc_cert_public_key (server), kc_cert_secret_key (server));
    kc_curve_t *c = kc_curve_new_client (kc_cert_public_key (client), kc_cert_secret_key (client),
                                         kc_cert_public_key (server));
    kc_curve_set_authorizer (s, s_allow, NULL);
    kc_why_t why;
    const uint8_t *out = NULL;
    size_t size = 0;
    kc_curve_t *sides [2] = { c, s };
    //  C:HELLO, S:WELCOME, C:INITIATE, S:READY, C:(connected)
    for (int step = 0; step < 5; step++) {
        uint8_t input [4096];
        size_t input_size = size;
        if (out) {
            memcpy (input, out, size);
        }
        if (kc_curve_handshake (sides [step % 2], step ? input : NULL, input_size, &out, &size, &why)) {
            fprintf (stderr, "kc_nosodium: handshake step %d: %s\n", step, why.text);
            return 1;
        }
    }
    int rc = kc_curve_connected (c) && kc_curve_connected (s) ? 0 : 1;
    printf ("%s\n", rc ? "not connected" : "ok");
    kc_curve_destroy (&c);
    kc_curve_destroy (&s);
    kc_cert_destroy (&client);
    kc_cert_destroy (&server);
    return rc;
}
