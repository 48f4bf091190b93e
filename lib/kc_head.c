/*  =========================================================================
    kc_head - signed heads and the chain hash.
    =========================================================================
*/
#include "kc_head.h"
#include "kc_root.h"
#include "kc_wire.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define MAGIC "KCHD"
#define BODY_BYTES (KC_HEAD_BYTES - KC_SIGNATURE_BYTES)

static void
s_context (crypto_generichash_state *state)
{
    crypto_generichash_init (state, NULL, 0, KC_HASH_BYTES);
    crypto_generichash_update (state, (const uint8_t *) KC_CONTEXT_CHAIN,
                               sizeof KC_CONTEXT_CHAIN);  //  includes the NUL
}

void
kc_chain_genesis (const uint8_t directory [static KC_HASH_BYTES],
                  uint8_t chain [static KC_HASH_BYTES])
{
    crypto_generichash_state state;
    s_context (&state);
    crypto_generichash_update (&state, directory, KC_HASH_BYTES);
    crypto_generichash_final (&state, chain, KC_HASH_BYTES);
}

static void
s_chain_next (const uint8_t previous [static KC_HASH_BYTES], uint64_t seq,
              const uint8_t digest [static KC_HASH_BYTES], const uint8_t *tail, size_t tail_size,
              uint8_t chain [static KC_HASH_BYTES])
{
    uint8_t seq_bytes [8];
    kc_put_u64 (seq_bytes, seq);
    crypto_generichash_state state;
    s_context (&state);
    crypto_generichash_update (&state, previous, KC_HASH_BYTES);
    crypto_generichash_update (&state, seq_bytes, 8);
    crypto_generichash_update (&state, digest, KC_HASH_BYTES);
    crypto_generichash_update (&state, tail, tail_size);
    crypto_generichash_final (&state, chain, KC_HASH_BYTES);
}

void
kc_chain_next_signed (const uint8_t previous [static KC_HASH_BYTES], uint64_t seq,
                      const uint8_t digest [static KC_HASH_BYTES], const uint8_t *tail, size_t tail_size,
                      uint8_t chain [static KC_HASH_BYTES])
{
    s_chain_next (previous, seq, digest, tail, tail_size, chain);
}

void
kc_chain_next (const uint8_t previous [static KC_HASH_BYTES], uint64_t seq,
               const kc_batch_t *batch, uint8_t chain [static KC_HASH_BYTES])
{
    size_t size, body = kc_batch_body_size (batch);
    const uint8_t *data = kc_batch_data (batch, &size);
    s_chain_next (previous, seq, kc_batch_digest (batch), data + body, size - body, chain);
}

void
kc_chain_next_root (const uint8_t previous [static KC_HASH_BYTES], uint64_t seq,
                    const kc_root_t *root, uint8_t chain [static KC_HASH_BYTES])
{
    size_t size, body = kc_root_body_size (root);
    const uint8_t *data = kc_root_data (root, &size);
    s_chain_next (previous, seq, kc_root_digest (root), data + body, size - body, chain);
}

static void
s_encode_body (const kc_head_t *head, uint8_t out [static BODY_BYTES])
{
    memcpy (out, MAGIC, 4);
    out [4] = KC_HEAD_FORMAT;
    memcpy (out + 5, head->directory, 32);
    kc_put_u64 (out + 37, head->seq);
    memcpy (out + 45, head->chain, 32);
    kc_put_u64 (out + 77, head->time);
    kc_put_u64 (out + 85, head->valid_until);
}

static size_t
s_message (const kc_head_t *head, uint8_t message [64])
{
    uint8_t body [BODY_BYTES], digest [KC_HASH_BYTES];
    s_encode_body (head, body);
    crypto_generichash (digest, KC_HASH_BYTES, body, BODY_BYTES, NULL, 0);
    return kc_signed_message (KC_CONTEXT_HEAD, digest, message);
}

void
kc_head_sign (kc_head_t *head, const kc_signer_t *signer)
{
    uint8_t message [64];
    size_t size = s_message (head, message);
    kc_signer_sign (signer, message, size, head->signature);
}

void
kc_head_encode (const kc_head_t *head, uint8_t out [static KC_HEAD_BYTES])
{
    s_encode_body (head, out);
    memcpy (out + BODY_BYTES, head->signature, KC_SIGNATURE_BYTES);
}

int
kc_head_decode (const uint8_t *data, size_t size, kc_head_t *head, kc_why_t *why)
{
    if (size != KC_HEAD_BYTES) {
        return kc_why (why, "head is %zu bytes, expected %d", size, KC_HEAD_BYTES);
    }
    if (memcmp (data, MAGIC, 4)) {
        return kc_why (why, "not a keyclone head (bad magic)");
    }
    if (data [4] != KC_HEAD_FORMAT) {
        return kc_why (why, "unknown head format %u", data [4]);
    }
    memcpy (head->directory, data + 5, 32);
    head->seq = kc_get_u64 (data + 37);
    memcpy (head->chain, data + 45, 32);
    head->time = kc_get_u64 (data + 77);
    head->valid_until = kc_get_u64 (data + 85);
    memcpy (head->signature, data + BODY_BYTES, KC_SIGNATURE_BYTES);
    if (head->seq > INT64_MAX || head->time > INT64_MAX || head->valid_until > INT64_MAX) {
        return kc_why (why, "head field beyond 2^63-1");
    }
    if (head->valid_until <= head->time) {
        return kc_why (why, "head valid-until is not after its time");
    }
    return 0;
}

int
kc_head_verify_signature (const kc_head_t *head, const uint8_t directory [static KC_HASH_BYTES],
                          const uint8_t head_key [static KC_KEY_BYTES], kc_why_t *why)
{
    if (memcmp (head->directory, directory, KC_HASH_BYTES)) {
        return kc_why (why, "head is for another directory");
    }
    uint8_t message [64];
    size_t size = s_message (head, message);
    if (crypto_sign_verify_detached (head->signature, message, size, head_key)) {
        return kc_why (why, "head signature does not verify with the root's head key");
    }
    return 0;
}

const kc_root_server_t *
kc_head_signer (const kc_head_t *head, const kc_root_t *root)
{
    kc_why_t why;
    for (size_t i = 0; i < kc_root_server_count (root); i++) {
        const kc_root_server_t *server = kc_root_server (root, i);
        if (kc_head_verify_signature (head, kc_root_directory (root), server->head_key, &why) == 0) {
            return server;
        }
    }
    return NULL;
}

int
kc_head_check_time (const kc_head_t *head, uint64_t now_ms, uint64_t skew_ms, kc_why_t *why)
{
    if (head->time > now_ms + skew_ms) {
        return kc_why (why, "head for seq %llu is %llu ms in the future (the signer's clock is "
                       "ahead by more than the %llu ms allowed)", (unsigned long long) head->seq,
                       (unsigned long long) (head->time - now_ms), (unsigned long long) skew_ms);
    }
    if (now_ms >= head->valid_until + skew_ms) {
        return kc_why (why, "head for seq %llu expired %llu ms ago", (unsigned long long) head->seq,
                       (unsigned long long) (now_ms - head->valid_until));
    }
    return 0;
}

int
kc_head_verify (const kc_head_t *head, const uint8_t directory [static KC_HASH_BYTES],
                const uint8_t head_key [static KC_KEY_BYTES], uint64_t now_ms, kc_why_t *why)
{
    if (kc_head_verify_signature (head, directory, head_key, why)) {
        return -1;
    }
    return kc_head_check_time (head, now_ms, 0, why);
}

void
kc_head_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_head: ");
    }
    uint8_t seed [32] = { 5 };
    kc_signer_t *signer = kc_signer_new_from_seed (seed, "head", "keyclone-head");
    kc_head_t head = { .seq = 42, .time = 1000, .valid_until = 6000 };
    memset (head.directory, 0xd1, 32);
    kc_chain_genesis (head.directory, head.chain);
    kc_head_sign (&head, signer);
    uint8_t bytes [KC_HEAD_BYTES];
    kc_head_encode (&head, bytes);

    kc_head_t copy;
    kc_why_t why;
    assert (kc_head_decode (bytes, sizeof bytes, &copy, &why) == 0);
    assert (copy.seq == 42 && memcmp (copy.chain, head.chain, 32) == 0);
    assert (kc_head_verify (&copy, head.directory, kc_signer_public_key (signer), 2000, &why) == 0);
    assert (kc_head_verify (&copy, head.directory, kc_signer_public_key (signer), 6000, &why) == -1);
    assert (strstr (why.text, "expired"));
    //  A clock up to skew_ms off either way
    assert (kc_head_check_time (&copy, 6000, 500, &why) == 0);
    assert (kc_head_check_time (&copy, 6500, 500, &why) == -1 && strstr (why.text, "expired"));
    assert (kc_head_check_time (&copy, 500, 500, &why) == 0);
    assert (kc_head_check_time (&copy, 499, 500, &why) == -1 && strstr (why.text, "future"));
    assert (kc_head_check_time (&copy, 999, 0, &why) == -1 && strstr (why.text, "future"));
    uint8_t other [32];
    memset (other, 1, 32);
    assert (kc_head_verify (&copy, other, kc_signer_public_key (signer), 2000, &why) == -1);
    assert (kc_head_verify (&copy, head.directory, other, 2000, &why) == -1);
    assert (strstr (why.text, "signature"));
    //  Any changed byte breaks the signature or the decoder
    for (size_t i = 0; i < KC_HEAD_BYTES; i++) {
        bytes [i] ^= 0x40;
        if (kc_head_decode (bytes, sizeof bytes, &copy, &why) == 0) {
            assert (kc_head_verify (&copy, head.directory, kc_signer_public_key (signer),
                                    2000, &why) == -1);
        }
        bytes [i] ^= 0x40;
    }
    assert (kc_head_decode (bytes, sizeof bytes - 1, &copy, &why) == -1);

    //  Chain: genesis differs per directory, next differs per seq
    uint8_t a [32], b [32];
    kc_chain_genesis (other, a);
    assert (memcmp (a, head.chain, 32) != 0);
    kc_batch_builder_t *builder = kc_batch_builder_new (head.directory, 1);
    uint8_t key [32];
    memset (key, 9, 32);
    kc_record_spec_t spec = { .key = key, .version = 1, .status = KC_STATUS_ACTIVE, .name = "n" };
    assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    kc_batch_t *batch = kc_batch_builder_finish (builder, &signer, 1, &why);
    kc_chain_next (head.chain, 1, batch, a);
    kc_chain_next (head.chain, 2, batch, b);
    assert (memcmp (a, b, 32) != 0);
    kc_batch_destroy (&batch);
    kc_batch_builder_destroy (&builder);
    kc_signer_destroy (&signer);
    if (verbose) {
        printf ("OK\n");
    }
}
