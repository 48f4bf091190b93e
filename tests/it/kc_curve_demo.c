/*  =========================================================================
    kc_curve_demo - the seed's Hello World: a client and a server speak
    CurveZMQ through kc_curve over plain (NULL-security) DEALER and ROUTER
    sockets, printing each command as it goes.

        C:HELLO ... S:WELCOME ... C:INITIATE ... S:READY ...
        C:MESSAGE 'Hello' ... S:MESSAGE 'World'
        -> 'Hello World' test successful

    The codec has no sockets inside: each side hands the peer's command to
    kc_curve_handshake or kc_curve_decode and sends back what it returns.
    One thread drives both ends so the transcript prints in order. Run by
    `make demo`; tests/it/test_curve_demo.py checks the transcript. It
    does not call sodium_init: the library must not need it.
    =========================================================================
*/
#include "kc_all.h"

#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define TIMEOUT_MS  5000

//  The server's authorizer: one known client key, named "demo-client".
static int
s_authorize (const uint8_t client_key [KC_KEY_BYTES], const kc_meta_t *metadata, void *arg,
             kc_curve_identity_t *identity)
{
    (void) metadata;
    if (memcmp (client_key, arg, KC_KEY_BYTES)) {
        return KC_CURVE_DENY;
    }
    snprintf (identity->name, sizeof identity->name, "demo-client");
    return KC_CURVE_ALLOW;
}

//  Names a handshake command by its first bytes.
static const char *
s_command (const uint8_t *data, size_t size)
{
    static const char *names [] = { "HELLO", "WELCOME", "INITIATE", "READY", "ERROR" };
    for (size_t i = 0; i < sizeof names / sizeof names [0]; i++) {
        size_t length = strlen (names [i]);
        if (size > length && data [0] == length && memcmp (data + 1, names [i], length) == 0) {
            return names [i];
        }
    }
    return "?";
}

//  Sends one command; the server addresses the client by routing id.
static int
s_send (zsock_t *sock, zframe_t *routing_id, const uint8_t *data, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    if (routing_id) {
        zmsg_append (msg, &(zframe_t *) { zframe_dup (routing_id) });
    }
    zmsg_addmem (msg, data, size);
    return zmsg_send (&msg, sock);
}

//  Receives one command as a frame (and the routing id on the server).
static zframe_t *
s_recv (zsock_t *sock, zframe_t **routing_id)
{
    zmsg_t *msg = zmsg_recv (sock);
    if (!msg) {
        return NULL;
    }
    if (routing_id) {
        zframe_destroy (routing_id);
        *routing_id = zmsg_pop (msg);
    }
    zframe_t *frame = zmsg_pop (msg);
    zmsg_destroy (&msg);
    return frame;
}

//  Moves one handshake command from one side to the other and prints it.
static int
s_hop (const char *side, const uint8_t *output, size_t size, zsock_t *from, zsock_t *to,
       zframe_t *from_id, zframe_t **to_id, zframe_t **received)
{
    printf ("%s:%s (%zu bytes)\n", side, s_command (output, size), size);
    if (s_send (from, from_id, output, size)) {
        return -1;
    }
    *received = s_recv (to, to_id);
    return *received ? 0 : -1;
}

//  Encrypts text on one side, carries it over, decrypts and prints it.
static int
s_message (const char *side, kc_curve_t *sender, kc_curve_t *receiver, const char *text,
           zsock_t *from, zsock_t *to, zframe_t *from_id, zframe_t **to_id)
{
    size_t size = strlen (text);
    uint8_t command [64];
    kc_why_t why;
    if (kc_curve_encode (sender, text, size, 0, command, &why)) {
        printf ("%s: cannot encode: %s\n", side, why.text);
        return -1;
    }
    zframe_t *frame = NULL;
    if (s_send (from, from_id, command, size + KC_CURVE_MESSAGE_OVERHEAD)
    ||  !(frame = s_recv (to, to_id))) {
        return -1;
    }
    uint8_t *payload;
    size_t payload_size;
    int flags;
    int rc = kc_curve_decode (receiver, zframe_data (frame), zframe_size (frame), &payload,
                              &payload_size, &flags, &why);
    if (rc == 0) {
        printf ("%s:MESSAGE '%.*s' (%zu bytes)\n", side, (int) payload_size, payload,
                zframe_size (frame));
        rc = payload_size == size && memcmp (payload, text, size) == 0 ? 0 : -1;
    }
    else {
        printf ("%s: cannot decode: %s\n", side, why.text);
    }
    zframe_destroy (&frame);
    return rc;
}

int
main (void)
{
    //  No sodium_init here: libkeyclone initialises libsodium itself
    zsys_init ();
    zsys_set_linger (0);
    setvbuf (stdout, NULL, _IOLBF, 0);
    uint8_t server_public [32], server_secret [32], client_public [32], client_secret [32];
    crypto_box_keypair (server_public, server_secret);
    crypto_box_keypair (client_public, client_secret);

    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_rcvtimeo (router, TIMEOUT_MS);
    zsock_set_rcvtimeo (dealer, TIMEOUT_MS);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    if (port < 0 || zsock_connect (dealer, "tcp://127.0.0.1:%d", port)) {
        fprintf (stderr, "kc_curve_demo: cannot bind or connect\n");
        return 1;
    }
    printf ("ROUTER on tcp://127.0.0.1:%d, DEALER connected; both NULL security, "
            "CurveZMQ runs in the messages\n", port);
    kc_curve_t *client = kc_curve_new_client (client_public, client_secret, server_public);
    kc_curve_t *server = kc_curve_new_server (server_public, server_secret);
    kc_curve_set_authorizer (server, s_authorize, client_public);

    int rc = -1;
    kc_why_t why;
    kc_why_clear (&why);
    zframe_t *client_id = NULL, *frame = NULL;
    const uint8_t *output;
    size_t size;
    //  The client speaks first; each side answers what it receives
    if (kc_curve_handshake (client, NULL, 0, &output, &size, &why)
    ||  s_hop ("C", output, size, dealer, router, NULL, &client_id, &frame)) {
        goto cleanup;
    }
    while (frame) {
        //  The server answers HELLO with WELCOME, INITIATE with READY
        int step = kc_curve_handshake (server, zframe_data (frame), zframe_size (frame),
                                       &output, &size, &why);
        zframe_destroy (&frame);
        if (output && s_hop ("S", output, size, router, dealer, client_id, NULL, &frame)) {
            goto cleanup;
        }
        if (step) {
            printf ("S: handshake failed: %s\n", why.text);
            goto cleanup;
        }
        //  The client answers WELCOME with INITIATE, and READY with nothing
        step = kc_curve_handshake (client, zframe_data (frame), zframe_size (frame),
                                   &output, &size, &why);
        zframe_destroy (&frame);
        if (step) {
            printf ("C: handshake failed: %s\n", why.text);
            goto cleanup;
        }
        if (output && s_hop ("C", output, size, dealer, router, NULL, &client_id, &frame)) {
            goto cleanup;
        }
    }
    if (!kc_curve_connected (client) || !kc_curve_connected (server)) {
        goto cleanup;
    }
    char fingerprint [KC_FINGERPRINT_CHARS + 1];
    const kc_curve_identity_t *identity = kc_curve_identity (server);
    printf ("S: client %s authorised as '%s'; both sides hold the session key\n",
            kc_fingerprint (identity->key, fingerprint), identity->name);
    if (s_message ("C", client, server, "Hello", dealer, router, NULL, &client_id)
    ||  s_message ("S", server, client, "World", router, dealer, client_id, NULL)) {
        goto cleanup;
    }
    printf ("-> 'Hello World' test successful\n");
    rc = 0;
cleanup:
    if (rc) {
        printf ("-> 'Hello World' test FAILED %s\n", why.text);
    }
    zframe_destroy (&frame);
    zframe_destroy (&client_id);
    kc_curve_destroy (&client);
    kc_curve_destroy (&server);
    zsock_destroy (&dealer);
    zsock_destroy (&router);
    return rc ? 1 : 0;
}
