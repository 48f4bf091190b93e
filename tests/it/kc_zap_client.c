/*  =========================================================================
    kc_zap_client - a client for the ZAP and live-revocation tests.

    zap mode (default): a libzmq CURVE DEALER with this node's key; sends
    one message and prints the reply ("reply: ...", exit 0) or the
    authentication failure ("denied", exit 3).
    codec mode (--codec): a NULL DEALER carrying a kc_curve client session.
    With --cache DB (the agent's cache) it sends its agent's head in
    INITIATE's metadata and checks the server's in READY's: a conflict (two
    chains at one seq, both signed by a server of the root) is printed as
    "conflict: ..." and refused (exit 5) (docs/protocol.md 9.4).

    With --watch it then keeps sending a message every 20 ms and prints
    "closed at MS" (wall clock, ms) when the connection (zap mode) or the
    session (codec mode: no echo for 200 ms) is gone, and any reply that
    still arrives after that as "late reply: ...".

    Usage: kc_zap_client --key SECRET --server-key Z85 --connect EP
                         [--codec [--cache DB]] [--message TEXT] [--watch SECONDS]
    =========================================================================
*/
#include "kc_all.h"

#include <getopt.h>
#include <sodium.h>

static int64_t
s_wall_ms (void)
{
    return (int64_t) kc_now_ms ();
}

//  zap mode: libzmq CURVE
static int
s_zap (kc_cert_t *cert, const uint8_t *server_key, const char *endpoint, const char *text,
       int watch)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_linger (dealer, 0);
    kc_cert_apply (cert, dealer);
    zsock_set_curve_serverkey_bin (dealer, server_key);
    zactor_t *monitor = zactor_new (zmonitor, dealer);
    zstr_sendx (monitor, "LISTEN", "HANDSHAKE_FAILED_AUTH", "HANDSHAKE_FAILED_PROTOCOL",
                "HANDSHAKE_FAILED_NO_DETAIL", "DISCONNECTED", NULL);
    zstr_sendx (monitor, "START", NULL);
    zsock_wait (monitor);
    zsock_connect (dealer, "%s", endpoint);
    zstr_send (dealer, text);
    zpoller_t *poller = zpoller_new (dealer, monitor, NULL);
    int rc = 4;
    int64_t deadline = zclock_mono () + 3000;
    while (rc == 4 && zclock_mono () < deadline) {
        void *which = zpoller_wait (poller, 100);
        if (which == dealer) {
            char *reply = zstr_recv (dealer);
            printf ("reply: %s\n", reply);
            zstr_free (&reply);
            rc = 0;
        }
        else
        if (which == monitor) {
            char *event = NULL, *value = NULL, *address = NULL;
            zstr_recvx (monitor, &event, &value, &address, NULL);
            if (event && strncmp (event, "HANDSHAKE_FAILED", 16) == 0) {
                printf ("denied: %s %s\n", event, value ? value : "");
                rc = 3;
            }
            zstr_free (&event);
            zstr_free (&value);
            zstr_free (&address);
        }
    }
    fflush (stdout);
    //  Watch: the connection should be closed by the server at some point.
    //  Once it is, the DEALER has no peer: sends must not block
    zsock_set_sndtimeo (dealer, 0);
    int64_t until = zclock_mono () + watch * 1000;
    bool closed = false;
    while (rc == 0 && zclock_mono () < until) {
        void *which = zpoller_wait (poller, 20);
        if (which == monitor) {
            char *event = NULL, *value = NULL, *address = NULL;
            zstr_recvx (monitor, &event, &value, &address, NULL);
            if (event && KC_STREQ (event, "DISCONNECTED") && !closed) {
                printf ("closed at %lld\n", (long long) s_wall_ms ());
                closed = true;
            }
            zstr_free (&event);
            zstr_free (&value);
            zstr_free (&address);
        }
        else
        if (which == dealer) {
            char *reply = zstr_recv (dealer);
            if (closed) {
                printf ("late reply: %s\n", reply);
            }
            zstr_free (&reply);
        }
        else {
            zstr_send (dealer, text);
        }
        fflush (stdout);
    }
    zpoller_destroy (&poller);
    zactor_destroy (&monitor);
    zsock_destroy (&dealer);
    return rc;
}

//  codec mode: RFC 26 over NULL DEALER
static int
s_codec_exchange (zsock_t *dealer, kc_curve_t *codec, const char *text, int timeout_ms)
{
    size_t size = strlen (text);
    uint8_t *command = malloc (size + KC_CURVE_MESSAGE_OVERHEAD);
    kc_why_t why;
    if (kc_curve_encode (codec, text, size, 0, command, &why)) {
        free (command);
        return -1;
    }
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, command, size + KC_CURVE_MESSAGE_OVERHEAD);
    zmsg_send (&msg, dealer);
    free (command);
    zpoller_t *poller = zpoller_new (dealer, NULL);
    int rc = -1;
    if (zpoller_wait (poller, timeout_ms)) {
        zframe_t *frame = zframe_recv (dealer);
        uint8_t *payload;
        size_t payload_size;
        int flags;
        if (kc_curve_decode (codec, zframe_data (frame), zframe_size (frame), &payload,
                             &payload_size, &flags, &why) == 0) {
            printf ("%.*s\n", (int) payload_size, payload);
            rc = 0;
        }
        zframe_destroy (&frame);
    }
    zpoller_destroy (&poller);
    return rc;
}

static int
s_codec (kc_cert_t *cert, const uint8_t *server_key, const char *endpoint, const char *text,
         int watch, kc_lookup_t *lookup)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_linger (dealer, 0);
    zsock_connect (dealer, "%s", endpoint);
    kc_curve_t *codec = kc_curve_new_client (kc_cert_public_key (cert), kc_cert_secret_key (cert),
                                             server_key);
    kc_why_t why;
    uint8_t head [KC_HEAD_BYTES];
    if (lookup && kc_lookup_head (lookup, head) == 0
    &&  kc_curve_set_metadata (codec, KC_CURVE_HEAD, head, KC_HEAD_BYTES, &why)) {
        printf ("cannot send our head: %s\n", why.text);
    }
    const uint8_t *out;
    size_t out_size;
    zframe_t *in = NULL;
    int rc = 3;
    while (kc_curve_handshake (codec, in ? zframe_data (in) : NULL, in ? zframe_size (in) : 0,
                               &out, &out_size, &why) == 0) {
        zframe_destroy (&in);
        if (kc_curve_connected (codec)) {
            rc = 0;
            break;
        }
        if (out) {
            zframe_t *frame = zframe_new (out, out_size);
            zframe_send (&frame, dealer, 0);
        }
        zpoller_t *poller = zpoller_new (dealer, NULL);
        void *ready = zpoller_wait (poller, 3000);
        zpoller_destroy (&poller);
        if (!ready) {
            kc_why (&why, "no answer");
            break;
        }
        in = zframe_recv (dealer);
    }
    zframe_destroy (&in);
    size_t size;
    const uint8_t *theirs = rc == 0 && lookup
                          ? kc_meta_get (kc_curve_peer_metadata (codec), KC_CURVE_HEAD, &size) : NULL;
    uint8_t proof [2 * KC_HEAD_BYTES];
    int conflict = theirs ? kc_lookup_check_head (lookup, theirs, size, proof, &why) : 0;
    if (conflict > 0) {
        printf ("conflict: %s\n", why.text);
        rc = 5;
    }
    else
    if (conflict < 0) {
        printf ("bad peer head: %s\n", why.text);
    }
    if (rc == 3) {
        printf ("denied: %s\n", why.text);
    }
    else
    if (rc == 0) {
        printf ("reply: ");
        rc = s_codec_exchange (dealer, codec, text, 3000) ? 4 : 0;
    }
    fflush (stdout);
    int64_t until = zclock_mono () + watch * 1000;
    while (rc == 0 && zclock_mono () < until) {
        if (s_codec_exchange (dealer, codec, text, 200)) {
            printf ("closed at %lld\n", (long long) s_wall_ms () - 200);
            fflush (stdout);
            break;
        }
        zclock_sleep (20);
    }
    kc_curve_destroy (&codec);
    zsock_destroy (&dealer);
    return rc;
}

int
main (int argc, char *argv [])
{
    static const struct option longs [] = {
        { "key", required_argument, NULL, 'k' }, { "server-key", required_argument, NULL, 's' },
        { "connect", required_argument, NULL, 'c' }, { "codec", no_argument, NULL, 'x' },
        { "message", required_argument, NULL, 'm' }, { "watch", required_argument, NULL, 'w' },
        { "cache", required_argument, NULL, 'C' }, { NULL, 0, NULL, 0 }
    };
    const char *key_path = NULL, *server_z85 = NULL, *endpoint = NULL, *text = "hello", *cache = NULL;
    bool codec = false;
    int watch = 0, c;
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'k': key_path = optarg; break;
            case 's': server_z85 = optarg; break;
            case 'c': endpoint = optarg; break;
            case 'x': codec = true; break;
            case 'm': text = optarg; break;
            case 'w': watch = atoi (optarg); break;
            case 'C': cache = optarg; break;
            default: return 2;
        }
    }
    uint8_t server_key [32];
    kc_why_t why;
    if (!key_path || !server_z85 || !endpoint || sodium_init () < 0
    ||  kc_z85_key (server_z85, server_key, &why)) {
        fprintf (stderr, "kc_zap_client: --key, --server-key and --connect are required\n");
        return 2;
    }
    kc_cert_t *cert = kc_cert_load_secret (key_path, &why);
    if (!cert) {
        fprintf (stderr, "kc_zap_client: %s\n", why.text);
        return 1;
    }
    kc_lookup_t *lookup = cache ? kc_lookup_new (cache, &why) : NULL;
    if (cache && !lookup) {
        fprintf (stderr, "kc_zap_client: %s\n", why.text);
        kc_cert_destroy (&cert);
        return 1;
    }
    int rc = codec ? s_codec (cert, server_key, endpoint, text, watch, lookup)
                   : s_zap (cert, server_key, endpoint, text, watch);
    kc_lookup_destroy (&lookup);
    kc_cert_destroy (&cert);
    return rc;
}
