/*  =========================================================================
    kc_cosig - witness cosignatures and the freshness they give.
    =========================================================================
*/
#include "kc_cosig.h"
#include "kc_wire.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "KCWS"
#define BODY_BYTES (KC_COSIG_BYTES - KC_SIGNATURE_BYTES)

static void
s_encode_body (const kc_cosig_t *cosig, uint8_t out [static BODY_BYTES])
{
    memcpy (out, MAGIC, 4);
    out [4] = KC_COSIG_FORMAT;
    memcpy (out + 5, cosig->witness, 32);
    memcpy (out + 37, cosig->directory, 32);
    kc_put_u64 (out + 69, cosig->seq);
    memcpy (out + 77, cosig->chain, 32);
    kc_put_u64 (out + 109, cosig->time);
}

static size_t
s_message (const kc_cosig_t *cosig, uint8_t message [64])
{
    uint8_t body [BODY_BYTES], digest [KC_HASH_BYTES];
    s_encode_body (cosig, body);
    crypto_generichash (digest, KC_HASH_BYTES, body, BODY_BYTES, NULL, 0);
    return kc_signed_message (KC_CONTEXT_COSIG, digest, message);
}

void
kc_cosig_sign (kc_cosig_t *cosig, const kc_signer_t *witness)
{
    memcpy (cosig->witness, kc_signer_public_key (witness), KC_KEY_BYTES);
    uint8_t message [64];
    size_t size = s_message (cosig, message);
    kc_signer_sign (witness, message, size, cosig->signature);
}

void
kc_cosig_encode (const kc_cosig_t *cosig, uint8_t out [static KC_COSIG_BYTES])
{
    s_encode_body (cosig, out);
    memcpy (out + BODY_BYTES, cosig->signature, KC_SIGNATURE_BYTES);
}

int
kc_cosig_decode (const uint8_t *data, size_t size, kc_cosig_t *cosig, kc_why_t *why)
{
    if (size != KC_COSIG_BYTES) {
        return kc_why (why, "cosignature is %zu bytes, expected %d", size, KC_COSIG_BYTES);
    }
    if (memcmp (data, MAGIC, 4)) {
        return kc_why (why, "not a keyclone cosignature (bad magic)");
    }
    if (data [4] != KC_COSIG_FORMAT) {
        return kc_why (why, "unknown cosignature format %u", data [4]);
    }
    memcpy (cosig->witness, data + 5, 32);
    memcpy (cosig->directory, data + 37, 32);
    cosig->seq = kc_get_u64 (data + 69);
    memcpy (cosig->chain, data + 77, 32);
    cosig->time = kc_get_u64 (data + 109);
    memcpy (cosig->signature, data + BODY_BYTES, KC_SIGNATURE_BYTES);
    if (cosig->seq > INT64_MAX || cosig->time > INT64_MAX) {
        return kc_why (why, "cosignature field beyond 2^63-1");
    }
    return 0;
}

//  The index of key among root's witnesses, or -1.
static int
s_witness_index (const kc_root_t *root, const uint8_t key [static KC_KEY_BYTES])
{
    for (size_t i = 0; i < kc_root_witness_count (root); i++) {
        if (memcmp (kc_root_witness (root, i)->key, key, KC_KEY_BYTES) == 0) {
            return (int) i;
        }
    }
    return -1;
}

int
kc_cosig_verify (const kc_cosig_t *cosig, const uint8_t directory [static KC_HASH_BYTES],
                 const kc_root_t *root, size_t *index, kc_why_t *why)
{
    if (memcmp (cosig->directory, directory, KC_HASH_BYTES)) {
        return kc_why (why, "cosignature is for another directory");
    }
    int found = s_witness_index (root, cosig->witness);
    if (found < 0) {
        return kc_why (why, "cosignature by a key that is not a witness of root v%llu",
                       (unsigned long long) kc_root_version (root));
    }
    uint8_t message [64];
    size_t size = s_message (cosig, message);
    if (crypto_sign_verify_detached (cosig->signature, message, size, cosig->witness)) {
        return kc_why (why, "cosignature of witness %s does not verify",
                       kc_root_witness (root, (size_t) found)->name);
    }
    if (index) {
        *index = (size_t) found;
    }
    return 0;
}

//  --- Freshness ---------------------------------------------------------------

typedef struct {
    uint8_t key [KC_KEY_BYTES];
    uint64_t seq, time;                     //  of the newest cosignature counted
    uint8_t last [KC_COSIG_BYTES];          //  its bytes: the server repeats it with
    bool used;                              //  every head until the witness sends another
} s_witness_t;

struct _kc_witness_view_t {
    struct {
        uint64_t seq;
        uint8_t chain [KC_HASH_BYTES];
    } recent [KC_WITNESS_RECENT];
    size_t next, count;                     //  ring: next slot, entries held
    s_witness_t witnesses [KC_ROOT_WITNESSES_MAX];
};

kc_witness_view_t *
kc_witness_view_new (void)
{
    kc_witness_view_t *self = calloc (1, sizeof *self);
    assert (self);
    return self;
}

void
kc_witness_view_destroy (kc_witness_view_t **self_p)
{
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

//  The newest entry of the ring, or NULL.
static size_t
s_newest (const kc_witness_view_t *self)
{
    return (self->next + KC_WITNESS_RECENT - 1) % KC_WITNESS_RECENT;
}

void
kc_witness_view_extend (kc_witness_view_t *self, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES])
{
    if (self->count && self->recent [s_newest (self)].seq >= seq) {
        if (self->recent [s_newest (self)].seq == seq
        &&  memcmp (self->recent [s_newest (self)].chain, chain, KC_HASH_BYTES) == 0) {
            return;                         //  the same place again (a head, a sync's end)
        }
        self->count = 0;                    //  a rebuilt copy: what we held is gone
    }
    self->recent [self->next].seq = seq;
    memcpy (self->recent [self->next].chain, chain, KC_HASH_BYTES);
    self->next = (self->next + 1) % KC_WITNESS_RECENT;
    if (self->count < KC_WITNESS_RECENT) {
        self->count++;
    }
}

void
kc_witness_view_set_root (kc_witness_view_t *self, const kc_root_t *root)
{
    for (size_t i = 0; i < KC_ROOT_WITNESSES_MAX; i++) {
        if (self->witnesses [i].used && s_witness_index (root, self->witnesses [i].key) < 0) {
            memset (&self->witnesses [i], 0, sizeof self->witnesses [i]);
        }
    }
}

static s_witness_t *
s_slot (kc_witness_view_t *self, const uint8_t key [static KC_KEY_BYTES], bool create)
{
    s_witness_t *free_slot = NULL;
    for (size_t i = 0; i < KC_ROOT_WITNESSES_MAX; i++) {
        s_witness_t *slot = &self->witnesses [i];
        if (slot->used && memcmp (slot->key, key, KC_KEY_BYTES) == 0) {
            return slot;
        }
        if (!slot->used && !free_slot) {
            free_slot = slot;
        }
    }
    if (create && free_slot) {
        memset (free_slot, 0, sizeof *free_slot);
        memcpy (free_slot->key, key, KC_KEY_BYTES);
        free_slot->used = true;
        return free_slot;
    }
    return NULL;
}

static const s_witness_t *
s_slot_const (const kc_witness_view_t *self, const uint8_t key [static KC_KEY_BYTES])
{
    return s_slot ((kc_witness_view_t *) self, key, false);
}

kc_cosig_verdict_t
kc_witness_view_add (kc_witness_view_t *self, const uint8_t *data, size_t size, const kc_root_t *root,
                     uint64_t now_ms, uint64_t skew_ms, kc_why_t *why)
{
    kc_cosig_t cosig;
    if (kc_cosig_decode (data, size, &cosig, why)) {
        return KC_COSIG_INVALID;
    }
    //  The server sends the latest of each witness with every head: the
    //  same bytes again tell nothing new and cost no verification
    s_witness_t *slot = s_slot (self, cosig.witness, false);
    if (slot && slot->time && memcmp (slot->last, data, KC_COSIG_BYTES) == 0) {
        return KC_COSIG_KNOWN;
    }
    if (kc_cosig_verify (&cosig, kc_root_directory (root), root, NULL, why)) {
        return KC_COSIG_INVALID;
    }
    if (cosig.time > now_ms + skew_ms) {
        kc_why (why, "cosignature of seq %llu is %llu ms in the future (the witness's clock is ahead by "
                "more than the %llu ms allowed)", (unsigned long long) cosig.seq,
                (unsigned long long) (cosig.time - now_ms), (unsigned long long) skew_ms);
        return KC_COSIG_INVALID;
    }
    if (self->count == 0 || cosig.seq > self->recent [s_newest (self)].seq) {
        return KC_COSIG_AHEAD;
    }
    for (size_t n = 0; n < self->count; n++) {
        size_t i = (s_newest (self) + KC_WITNESS_RECENT - n) % KC_WITNESS_RECENT;
        if (self->recent [i].seq == cosig.seq) {
            if (sodium_memcmp (self->recent [i].chain, cosig.chain, KC_HASH_BYTES)) {
                kc_why (why, "a witness cosigned another chain at seq %llu than the one this copy holds",
                        (unsigned long long) cosig.seq);
                return KC_COSIG_FORK;
            }
            slot = s_slot (self, cosig.witness, true);
            assert (slot);
            //  A witness whose clock runs ahead vouches up to now, no later
            uint64_t time = cosig.time < now_ms ? cosig.time : now_ms;
            if (time > slot->time) {
                slot->time = time;
                slot->seq = cosig.seq;
                memcpy (slot->last, data, KC_COSIG_BYTES);
            }
            return KC_COSIG_COUNTED;
        }
        if (self->recent [i].seq < cosig.seq) {
            break;                          //  a seq inside the ring we never held
        }
    }
    return KC_COSIG_UNKNOWN;
}

//  Times of the root's witnesses that cosigned, newest first; returns how many.
static size_t
s_times (const kc_witness_view_t *self, const kc_root_t *root, uint64_t times [static KC_ROOT_WITNESSES_MAX])
{
    size_t count = 0;
    for (size_t i = 0; i < kc_root_witness_count (root); i++) {
        const s_witness_t *slot = s_slot_const (self, kc_root_witness (root, i)->key);
        if (slot && slot->time) {
            size_t at = count++;
            while (at && times [at - 1] < slot->time) {
                times [at] = times [at - 1];
                at--;
            }
            times [at] = slot->time;
        }
    }
    return count;
}

uint64_t
kc_witness_view_fresh_until (const kc_witness_view_t *self, const kc_root_t *root, uint64_t window_ms)
{
    size_t k = kc_root_witness_threshold (root);
    if (k == 0) {
        return UINT64_MAX;
    }
    uint64_t times [KC_ROOT_WITNESSES_MAX];
    if (s_times (self, root, times) < k) {
        return 0;
    }
    return times [k - 1] + window_ms;
}

size_t
kc_witness_view_count (const kc_witness_view_t *self, const kc_root_t *root, uint64_t now_ms,
                       uint64_t window_ms)
{
    uint64_t times [KC_ROOT_WITNESSES_MAX];
    size_t count = s_times (self, root, times), fresh = 0;
    for (size_t i = 0; i < count; i++) {
        fresh += times [i] + window_ms > now_ms;
    }
    return fresh;
}

const uint8_t *
kc_witness_view_key (const kc_witness_view_t *self, size_t slot)
{
    return self->witnesses [slot].used ? self->witnesses [slot].key : NULL;
}

void
kc_witness_view_get (const kc_witness_view_t *self, size_t index, uint64_t *seq, uint64_t *time)
{
    const s_witness_t *slot = &self->witnesses [index];
    *seq = slot->used ? slot->seq : 0;
    *time = slot->used ? slot->time : 0;
}

//  --- Self test ---------------------------------------------------------------

void
kc_cosig_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_cosig: ");
    }
    kc_why_t why;
    //  A root with three witnesses, threshold 2
    kc_signer_t *op = kc_signer_new ("op1", "keyclone-operator");
    kc_signer_t *witnesses [4];
    kc_witness_t listed [3];
    for (int i = 0; i < 4; i++) {
        char name [16];
        snprintf (name, sizeof name, "w%d", i);
        witnesses [i] = kc_signer_new (name, "keyclone-witness");
        if (i < 3) {
            memset (&listed [i], 0, sizeof listed [i]);
            snprintf (listed [i].name, sizeof listed [i].name, "%s", name);
            memcpy (listed [i].key, kc_signer_public_key (witnesses [i]), KC_KEY_BYTES);
        }
    }
    kc_operator_t operator = { .name = "op1" };
    memcpy (operator.key, kc_signer_public_key (op), KC_KEY_BYTES);
    uint8_t head_key [32] = { 1 }, server_key [32] = { 2 };
    kc_root_spec_t spec = {
        .version = 1, .created = 1000, .expires = 2000, .operators = &operator, .operator_count = 1,
        .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1,
        .head_key = head_key, .server_key = server_key,
        .endpoints = { "tcp://h:1", "tcp://h:2", "tcp://h:3" },
        .witnesses = listed, .witness_count = 3, .witness_threshold = 2
    };
    kc_root_t *root = kc_root_new (&spec, &why);
    assert (root);
    kc_root_sign (root, op);
    const uint8_t *directory = kc_root_directory (root);

    //  Sign, encode, decode, verify; every cut and a changed byte refused
    kc_cosig_t cosig = { .seq = 7, .time = 1000000 };
    memcpy (cosig.directory, directory, 32);
    memset (cosig.chain, 0xc7, 32);
    kc_cosig_sign (&cosig, witnesses [1]);
    uint8_t bytes [KC_COSIG_BYTES];
    kc_cosig_encode (&cosig, bytes);
    kc_cosig_t copy;
    assert (kc_cosig_decode (bytes, sizeof bytes, &copy, &why) == 0 && copy.seq == 7 && copy.time == 1000000);
    size_t index = 99;
    assert (kc_cosig_verify (&copy, directory, root, &index, &why) == 0);
    assert (memcmp (kc_root_witness (root, index)->key, kc_signer_public_key (witnesses [1]), 32) == 0);
    for (size_t cut = 0; cut < sizeof bytes; cut++) {
        assert (kc_cosig_decode (bytes, cut, &copy, &why) == -1);
    }
    for (size_t at = 5; at < sizeof bytes; at += 13) {
        uint8_t bad [KC_COSIG_BYTES];
        memcpy (bad, bytes, sizeof bad);
        bad [at] ^= 1;
        assert (kc_cosig_decode (bad, sizeof bad, &copy, &why) == -1
            ||  kc_cosig_verify (&copy, directory, root, NULL, &why) == -1);
    }
    uint8_t other [32] = { 9 };
    assert (kc_cosig_decode (bytes, sizeof bytes, &copy, &why) == 0);
    assert (kc_cosig_verify (&copy, other, root, NULL, &why) == -1 && strstr (why.text, "another directory"));
    kc_cosig_t stranger = cosig;
    kc_cosig_sign (&stranger, witnesses [3]);
    assert (kc_cosig_verify (&stranger, directory, root, NULL, &why) == -1 && strstr (why.text, "not a witness"));

    //  Freshness: nothing until two witnesses cosign something we hold
    kc_witness_view_t *view = kc_witness_view_new ();
    uint64_t now = 1000500;
    assert (kc_witness_view_fresh_until (view, root, 5000) == 0);
    uint8_t chains [10][32];
    for (int seq = 1; seq < 10; seq++) {
        memset (chains [seq], seq, 32);
        kc_witness_view_extend (view, (uint64_t) seq, chains [seq]);
    }
    kc_cosig_t at7 = { .seq = 7, .time = 1000000 };
    memcpy (at7.directory, directory, 32);
    memcpy (at7.chain, chains [7], 32);
    kc_cosig_sign (&at7, witnesses [0]);
    kc_cosig_encode (&at7, bytes);
    assert (kc_witness_view_add (view, bytes, sizeof bytes, root, now, 0, &why) == KC_COSIG_COUNTED);
    assert (kc_witness_view_add (view, bytes, sizeof bytes, root, now, 0, &why) == KC_COSIG_KNOWN);
    assert (kc_witness_view_fresh_until (view, root, 5000) == 0);
    assert (kc_witness_view_count (view, root, now, 5000) == 1);
    kc_cosig_t at9 = at7;
    at9.seq = 9;
    at9.time = 1000200;
    memcpy (at9.chain, chains [9], 32);
    kc_cosig_sign (&at9, witnesses [2]);
    kc_cosig_encode (&at9, bytes);
    assert (kc_witness_view_add (view, bytes, sizeof bytes, root, now, 0, &why) == KC_COSIG_COUNTED);
    assert (kc_witness_view_fresh_until (view, root, 5000) == 1000000 + 5000);   //  the 2nd newest
    //  Ahead of us, a fork, from the future, a stranger: none counts
    kc_cosig_t ahead = at9;
    ahead.seq = 10;
    kc_cosig_sign (&ahead, witnesses [1]);
    kc_cosig_encode (&ahead, bytes);
    assert (kc_witness_view_add (view, bytes, sizeof bytes, root, now, 0, &why) == KC_COSIG_AHEAD);
    kc_cosig_t fork = at9;
    fork.seq = 8;
    kc_cosig_sign (&fork, witnesses [1]);
    kc_cosig_encode (&fork, bytes);
    assert (kc_witness_view_add (view, bytes, sizeof bytes, root, now, 0, &why) == KC_COSIG_FORK);
    kc_cosig_t future = at9;
    future.time = now + 1000;
    kc_cosig_sign (&future, witnesses [1]);
    kc_cosig_encode (&future, bytes);
    assert (kc_witness_view_add (view, bytes, sizeof bytes, root, now, 999, &why) == KC_COSIG_INVALID);
    assert (kc_witness_view_add (view, bytes, sizeof bytes, root, now, 1000, &why) == KC_COSIG_COUNTED);
    kc_cosig_sign (&future, witnesses [3]);
    kc_cosig_encode (&future, bytes);
    assert (kc_witness_view_add (view, bytes, sizeof bytes, root, now, 1000, &why) == KC_COSIG_INVALID);
    assert (kc_witness_view_count (view, root, now, 5000) == 3);
    //  An older cosignature of a witness does not undo a newer one
    kc_cosig_encode (&at7, bytes);
    kc_cosig_t older = at7;
    older.time = 999000;
    kc_cosig_sign (&older, witnesses [2]);
    kc_cosig_encode (&older, bytes);
    assert (kc_witness_view_add (view, bytes, sizeof bytes, root, now, 0, &why) == KC_COSIG_COUNTED);
    uint64_t seq, time = 0;
    for (size_t slot = 0; slot < KC_ROOT_WITNESSES_MAX; slot++) {
        const uint8_t *key = kc_witness_view_key (view, slot);
        if (key && memcmp (key, kc_signer_public_key (witnesses [2]), 32) == 0) {
            kc_witness_view_get (view, slot, &seq, &time);
        }
    }
    assert (time == 1000200 && seq == 9);
    //  A seq older than the ring remembers is not counted
    for (uint64_t seq2 = 10; seq2 < 10 + KC_WITNESS_RECENT; seq2++) {
        kc_witness_view_extend (view, seq2, chains [9]);
    }
    kc_cosig_encode (&at7, bytes);
    kc_cosig_t old = at7;
    old.time = 1000400;
    kc_cosig_sign (&old, witnesses [0]);
    kc_cosig_encode (&old, bytes);
    assert (kc_witness_view_add (view, bytes, sizeof bytes, root, now, 0, &why) == KC_COSIG_UNKNOWN);
    //  A root with threshold 0 needs nothing
    kc_root_spec_t none = spec;
    none.witness_threshold = 0;
    kc_root_t *open = kc_root_new (&none, &why);
    assert (open && kc_witness_view_fresh_until (view, open, 5000) == UINT64_MAX);
    kc_root_destroy (&open);
    //  A root without witnesses forgets their cosignatures
    none.witness_count = 0;
    open = kc_root_new (&none, &why);
    assert (open);
    kc_witness_view_set_root (view, open);
    assert (kc_witness_view_count (view, root, now, 5000) == 0);
    kc_root_destroy (&open);
    kc_witness_view_destroy (&view);
    kc_witness_view_destroy (&view);

    kc_root_destroy (&root);
    kc_signer_destroy (&op);
    for (int i = 0; i < 4; i++) {
        kc_signer_destroy (&witnesses [i]);
    }
    if (verbose) {
        printf ("OK\n");
    }
}
