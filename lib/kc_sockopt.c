/*  =========================================================================
    kc_sockopt - security-relevant libzmq socket options, set and read back.
    =========================================================================
*/
#include "kc_sockopt.h"

#include <czmq.h>
#include <sodium.h>

//  The libzmq handle of a zsock_t, a zactor_t or a raw socket.
static void *
s_handle (void *socket)
{
    return zsock_resolve (socket);
}

int
kc_sockopt_int (void *socket, int option, const char *name, int value, kc_why_t *why)
{
    void *handle = s_handle (socket);
    if (zmq_setsockopt (handle, option, &value, sizeof value)) {
        return kc_why (why, "cannot set %s: %s", name, zmq_strerror (zmq_errno ()));
    }
    int read = -1;
    size_t size = sizeof read;
    if (zmq_getsockopt (handle, option, &read, &size) || size != sizeof read || read != value) {
        return kc_why (why, "%s did not stick: set %d, read back %d", name, value, read);
    }
    return 0;
}

int
kc_sockopt_zap (void *socket, const char *domain, kc_why_t *why)
{
    void *handle = s_handle (socket);
    size_t length = domain ? strlen (domain) : 0;
    if (length == 0 || length > 254) {
        return kc_why (why, "a ZAP domain of 1 to 254 bytes is required");
    }
    if (zmq_setsockopt (handle, ZMQ_ZAP_DOMAIN, domain, length)) {
        return kc_why (why, "cannot set the ZAP domain: %s", zmq_strerror (zmq_errno ()));
    }
    char read [256];
    size_t size = sizeof read;
    if (zmq_getsockopt (handle, ZMQ_ZAP_DOMAIN, read, &size)
    ||  size != length + 1 || memcmp (read, domain, length)) {
        return kc_why (why, "the ZAP domain did not stick");
    }
    return kc_sockopt_int (handle, KC_SOCKOPT_ZAP_ENFORCE_DOMAIN, "ZMQ_ZAP_ENFORCE_DOMAIN", 1, why);
}

//  Sets a 32-byte key option and compares it back in constant time.
static int
s_key (void *handle, int option, const char *name, const uint8_t key [static KC_KEY_BYTES],
       kc_why_t *why)
{
    if (zmq_setsockopt (handle, option, key, KC_KEY_BYTES)) {
        return kc_why (why, "cannot set %s: %s", name, zmq_strerror (zmq_errno ()));
    }
    uint8_t read [KC_KEY_BYTES];
    size_t size = sizeof read;
    int rc = zmq_getsockopt (handle, option, read, &size) == 0 && size == KC_KEY_BYTES
          && sodium_memcmp (read, key, KC_KEY_BYTES) == 0 ? 0 : -1;
    sodium_memzero (read, sizeof read);
    return rc ? kc_why (why, "%s did not stick", name) : 0;
}

int
kc_sockopt_curve_server (void *socket, const uint8_t public_key [static KC_KEY_BYTES],
                         const uint8_t secret_key [static KC_KEY_BYTES], kc_why_t *why)
{
    void *handle = s_handle (socket);
    if (kc_sockopt_int (handle, ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", 1, why)
    ||  s_key (handle, ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", public_key, why)
    ||  s_key (handle, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", secret_key, why)) {
        return -1;
    }
    //  The keys are set after the role: read the role again
    return kc_sockopt_int (handle, ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", 1, why);
}

int
kc_sockopt_curve_client (void *socket, const uint8_t public_key [static KC_KEY_BYTES],
                         const uint8_t secret_key [static KC_KEY_BYTES],
                         const uint8_t server_key [static KC_KEY_BYTES], kc_why_t *why)
{
    void *handle = s_handle (socket);
    if (s_key (handle, ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", public_key, why)
    ||  s_key (handle, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", secret_key, why)
    ||  s_key (handle, ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", server_key, why)) {
        return -1;
    }
    int mechanism = 0;
    size_t size = sizeof mechanism;
    if (zmq_getsockopt (handle, ZMQ_MECHANISM, &mechanism, &size) || mechanism != ZMQ_CURVE) {
        return kc_why (why, "the socket's mechanism is not CURVE");
    }
    return 0;
}

int
kc_sockopt_maxmsgsize (void *socket, int64_t bytes, kc_why_t *why)
{
    void *handle = s_handle (socket);
    if (zmq_setsockopt (handle, ZMQ_MAXMSGSIZE, &bytes, sizeof bytes)) {
        return kc_why (why, "cannot set ZMQ_MAXMSGSIZE: %s", zmq_strerror (zmq_errno ()));
    }
    int64_t read = 0;
    size_t size = sizeof read;
    if (zmq_getsockopt (handle, ZMQ_MAXMSGSIZE, &read, &size) || read != bytes) {
        return kc_why (why, "ZMQ_MAXMSGSIZE did not stick");
    }
    return 0;
}

//  --- Self test -----------------------------------------------------------------

static int
s_get_int (zsock_t *socket, int option)
{
    int value = -1;
    size_t size = sizeof value;
    assert (zmq_getsockopt (zsock_resolve (socket), option, &value, &size) == 0);
    return value;
}

static bool
s_get_key (zsock_t *socket, int option, const uint8_t *expected)
{
    uint8_t read [KC_KEY_BYTES];
    size_t size = sizeof read;
    assert (zmq_getsockopt (zsock_resolve (socket), option, read, &size) == 0);
    return size == KC_KEY_BYTES && memcmp (read, expected, KC_KEY_BYTES) == 0;
}

void
kc_sockopt_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_sockopt: ");
    }
    uint8_t public_key [32], secret_key [32], server_key [32];
    crypto_box_keypair (public_key, secret_key);
    randombytes_buf (server_key, sizeof server_key);
    kc_why_t why;

    //  The czmq setters keyclone uses for a security property, read back
    //  through libzmq. zsock_set_zap_enforce_domain is the one known not to
    //  work in czmq 4.2.1: it must not be used (kc_sockopt_zap instead).
    zsock_t *server = zsock_new (ZMQ_ROUTER);
    zsock_set_curve_server (server, 1);
    zsock_set_curve_publickey_bin (server, public_key);
    zsock_set_curve_secretkey_bin (server, secret_key);
    zsock_set_zap_domain (server, "kc-test");
    zsock_set_maxmsgsize (server, 4096);
    zsock_set_router_mandatory (server, 1);
    assert (s_get_int (server, ZMQ_CURVE_SERVER) == 1);
    assert (s_get_int (server, ZMQ_MECHANISM) == ZMQ_CURVE);
    assert (s_get_key (server, ZMQ_CURVE_PUBLICKEY, public_key));
    assert (s_get_key (server, ZMQ_CURVE_SECRETKEY, secret_key));
    assert (zsock_maxmsgsize (server) == 4096);
    char *domain = zsock_zap_domain (server);
    assert (domain && KC_STREQ (domain, "kc-test"));
    zstr_free (&domain);
    zsock_set_zap_enforce_domain (server, 1);
    if (verbose && s_get_int (server, KC_SOCKOPT_ZAP_ENFORCE_DOMAIN) == 0) {
        printf ("(czmq's zsock_set_zap_enforce_domain is a no-op here, as expected) ");
    }
    zsock_destroy (&server);

    zsock_t *client = zsock_new (ZMQ_DEALER);
    zsock_set_curve_serverkey_bin (client, server_key);
    assert (s_get_key (client, ZMQ_CURVE_SERVERKEY, server_key));
    zsock_destroy (&client);

    //  Ours: set and read back
    server = zsock_new (ZMQ_ROUTER);
    assert (s_get_int (server, KC_SOCKOPT_ZAP_ENFORCE_DOMAIN) == 0);
    assert (kc_sockopt_zap (server, "", &why) == -1 && strstr (why.text, "ZAP domain"));
    assert (kc_sockopt_zap (server, "app", &why) == 0);
    assert (s_get_int (server, KC_SOCKOPT_ZAP_ENFORCE_DOMAIN) == 1);
    assert (kc_sockopt_curve_server (server, public_key, secret_key, &why) == 0);
    assert (s_get_int (server, ZMQ_CURVE_SERVER) == 1);
    assert (kc_sockopt_maxmsgsize (server, 1 << 20, &why) == 0);
    assert (zsock_maxmsgsize (server) == 1 << 20);
    assert (kc_sockopt_int (server, ZMQ_LINGER, "ZMQ_LINGER", 0, &why) == 0);
    //  An option libzmq refuses is reported by name
    assert (kc_sockopt_int (server, 123456, "ZMQ_NONSENSE", 1, &why) == -1
         && strstr (why.text, "ZMQ_NONSENSE"));
    zsock_destroy (&server);

    client = zsock_new (ZMQ_DEALER);
    assert (kc_sockopt_curve_client (client, public_key, secret_key, server_key, &why) == 0);
    assert (s_get_key (client, ZMQ_CURVE_SERVERKEY, server_key));
    assert (s_get_int (client, ZMQ_CURVE_SERVER) == 0);
    zsock_destroy (&client);
    sodium_memzero (secret_key, sizeof secret_key);
    if (verbose) {
        printf ("OK\n");
    }
}
