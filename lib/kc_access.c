/*  =========================================================================
    kc_access - operator-signed read requests on the submission channel.
    =========================================================================
*/
#include "kc_access.h"
#include "kc_wire.h"

#include <sodium.h>

//  The signed message for a request's frames (all but the last `skip`).
static void
s_message (zmsg_t *request, size_t skip, const uint8_t server_key [static KC_KEY_BYTES],
           const uint8_t client_key [static KC_KEY_BYTES], uint64_t time_ms, uint8_t message [64],
           size_t *size)
{
    crypto_generichash_state state;
    uint8_t number [8], digest [KC_HASH_BYTES];
    crypto_generichash_init (&state, NULL, 0, KC_HASH_BYTES);
    crypto_generichash_update (&state, server_key, KC_KEY_BYTES);
    crypto_generichash_update (&state, client_key, KC_KEY_BYTES);
    kc_put_u64 (number, time_ms);
    crypto_generichash_update (&state, number, 8);
    size_t frames = zmsg_size (request), index = 0;
    for (zframe_t *frame = zmsg_first (request); frame && index + skip < frames;
         frame = zmsg_next (request), index++) {
        kc_put_u32 (number, (uint32_t) zframe_size (frame));
        crypto_generichash_update (&state, number, 4);
        crypto_generichash_update (&state, zframe_data (frame), zframe_size (frame));
    }
    crypto_generichash_final (&state, digest, KC_HASH_BYTES);
    *size = kc_signed_message (KC_CONTEXT_REQUEST, digest, message);
}

void
kc_access_sign (zmsg_t *request, const kc_signer_t *operator_key,
                const uint8_t server_key [static KC_KEY_BYTES],
                const uint8_t client_key [static KC_KEY_BYTES], uint64_t now_ms)
{
    uint8_t message [64], auth [KC_ACCESS_BYTES];
    size_t size;
    s_message (request, 0, server_key, client_key, now_ms, message, &size);
    memcpy (auth, kc_signer_public_key (operator_key), KC_KEY_BYTES);
    kc_put_u64 (auth + 32, now_ms);
    kc_signer_sign (operator_key, message, size, auth + 40);
    zmsg_addmem (request, auth, sizeof auth);
}

int
kc_access_verify (zmsg_t *request, const kc_root_t *root,
                  const uint8_t server_key [static KC_KEY_BYTES],
                  const uint8_t client_key [static KC_KEY_BYTES], uint64_t now_ms, kc_why_t *why)
{
    zframe_t *frame = zmsg_last (request);
    if (!frame || zframe_size (frame) != KC_ACCESS_BYTES) {
        return kc_why (why, "no operator authorization (%d bytes) at the end of the request",
                       KC_ACCESS_BYTES);
    }
    const uint8_t *auth = zframe_data (frame);
    char fp [KC_FINGERPRINT_CHARS + 1];
    int index = kc_root_operator_index (root, auth);
    if (index < 0) {
        return kc_why (why, "request signed by %s, which is not an operator in root v%llu",
                       kc_fingerprint (auth, fp), (unsigned long long) kc_root_version (root));
    }
    uint64_t time_ms = kc_get_u64 (auth + 32);
    uint64_t skew = time_ms > now_ms ? time_ms - now_ms : now_ms - time_ms;
    if (skew > KC_ACCESS_SKEW_MS) {
        return kc_why (why, "request signed %llu s %s the server's clock (allowed %d s)",
                       (unsigned long long) (skew / 1000), time_ms > now_ms ? "ahead of" : "behind",
                       KC_ACCESS_SKEW_MS / 1000);
    }
    uint8_t message [64];
    size_t size;
    s_message (request, 1, server_key, client_key, time_ms, message, &size);
    if (crypto_sign_verify_detached (auth + 40, message, size, auth)) {
        return kc_why (why, "request signature by operator %s does not verify (for another "
                       "server, connection or request?)", kc_root_operator (root, (size_t) index)->name);
    }
    return index;
}

//  --- Self test -----------------------------------------------------------------

void
kc_access_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_access: ");
    }
    uint8_t seed [32] = { 7 }, fill [32], server [32], client [32], other [32];
    memset (fill, 0x44, 32);
    memset (server, 0x51, 32);
    memset (client, 0x52, 32);
    memset (other, 0x53, 32);
    kc_signer_t *op = kc_signer_new_from_seed (seed, "alice", "keyclone-operator");
    kc_signer_t *stranger = kc_signer_new ("mallory", "keyclone-operator");
    kc_operator_t entry;
    memcpy (entry.key, kc_signer_public_key (op), 32);
    snprintf (entry.name, sizeof entry.name, "alice");
    kc_root_spec_t spec = {
        .version = 1, .created = 1, .expires = 4000000000ULL, .operators = &entry,
        .operator_count = 1, .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1,
        .head_key = fill, .server_key = server,
        .endpoints = { "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3" }
    };
    kc_why_t why;
    kc_root_t *root = kc_root_new (&spec, &why);
    assert (root);
    uint64_t now = 1800000000000ULL;

    zmsg_t *request = zmsg_new ();
    zmsg_addstr (request, "STATUS");
    kc_access_sign (request, op, server, client, now);
    assert (zmsg_size (request) == 2 && zframe_size (zmsg_last (request)) == KC_ACCESS_BYTES);
    assert (kc_access_verify (request, root, server, client, now + 1000, &why) == 0);
    //  Bound to the server, the connection's key and the clock
    assert (kc_access_verify (request, root, other, client, now, &why) == -1
         && strstr (why.text, "does not verify"));
    assert (kc_access_verify (request, root, server, other, now, &why) == -1);
    assert (kc_access_verify (request, root, server, client, now + KC_ACCESS_SKEW_MS + 1, &why) == -1
         && strstr (why.text, "behind"));
    //  Bound to the content: the same authorization on another request
    zmsg_t *query = zmsg_new ();
    zmsg_addstr (query, "QUERY");
    zmsg_addstr (query, "list");
    zmsg_addmem (query, NULL, 0);
    zmsg_addmem (query, "\0\0\0\1", 4);
    zmsg_addmem (query, zframe_data (zmsg_last (request)), KC_ACCESS_BYTES);
    assert (kc_access_verify (query, root, server, client, now, &why) == -1);
    zmsg_destroy (&query);
    zmsg_destroy (&request);
    //  Not an operator; no authorization at all
    request = zmsg_new ();
    zmsg_addstr (request, "STATUS");
    kc_access_sign (request, stranger, server, client, now);
    assert (kc_access_verify (request, root, server, client, now, &why) == -1
         && strstr (why.text, "not an operator"));
    zmsg_destroy (&request);
    request = zmsg_new ();
    zmsg_addstr (request, "STATUS");
    assert (kc_access_verify (request, root, server, client, now, &why) == -1
         && strstr (why.text, "no operator authorization"));
    zmsg_destroy (&request);
    kc_root_destroy (&root);
    kc_signer_destroy (&op);
    kc_signer_destroy (&stranger);
    if (verbose) {
        printf ("OK\n");
    }
}
