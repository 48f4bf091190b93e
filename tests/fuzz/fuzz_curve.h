/*  =========================================================================
    fuzz_curve.h - shared by the kc_curve fuzz targets (fuzz_curve_*.c).

    Every input runs in the same deterministic world: libsodium's random
    source is replaced by a counter-driven generator that restarts for each
    input, and the permanent keys are the test keys of reference/curvezmq.md
    section 8. So transient keys, cookie keys and long nonces repeat, a
    recorded valid command (a seed) stays valid, and the fuzzer can mutate
    it past the boxes. Each target drives a real client and server to the
    command under test and hands the fuzz input either raw (replacing the
    whole command) or boxed (replacing a plaintext through the codec's test
    tamper hook, so it is sealed correctly and reaches the checks behind the
    crypto). Input = one mode byte + the data.

    For speed, what repeats identically in every input is done once: X25519
    results are remembered by their whole input, and sodium_malloc is plain
    (ASan-checked) malloc instead of fresh guarded pages; see below. Both
    replace libsodium's functions for the whole target binary.

    Test code: it needs the codec's hooks (KC_FUZZING or KC_TEST_HOOKS).
    =========================================================================
*/
#ifndef FUZZ_CURVE_H_INCLUDED
#define FUZZ_CURVE_H_INCLUDED

#include "kc_all.h"

#include <malloc.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --- Deterministic random source (splitmix64), restarted per input ------

static uint64_t s_random_state;

static void
s_random_restart (void)
{
    s_random_state = 0x6b6579636c6f6e65ULL;         //  "keyclone"
}

static uint64_t
s_random_next (void)
{
    uint64_t z = (s_random_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
s_random_buf (void *buffer, size_t size)
{
    uint8_t *p = buffer;
    while (size) {
        uint64_t value = s_random_next ();
        size_t chunk = size < 8 ? size : 8;
        memcpy (p, &value, chunk);
        p += chunk;
        size -= chunk;
    }
}

static uint32_t
s_random_u32 (void)
{
    return (uint32_t) s_random_next ();
}

static const char *
s_random_name (void)
{
    return "keyclone-fuzz";
}

static randombytes_implementation s_random_implementation = {
    .implementation_name = s_random_name,
    .random = s_random_u32,
    .buf = s_random_buf
};

//  --- X25519 done once per key pair ----------------------------------------
//
//  In this world every input repeats the same X25519 work: two transient
//  key pairs and up to six crypto_box_beforenm per handshake, which took
//  about half the time of an input. These definitions take the place of
//  libsodium's for the library objects linked into a fuzz target, and
//  remember results by their whole input (both keys), so the codec gets
//  the very bytes libsodium gives it; a key the fuzzer made up is simply a
//  miss, computed by libsodium. Test code: the cache keeps secret keys.

#define S_X25519_SETS 64
#define S_X25519_WAYS 4                 //  the handful of fixed pairs never evict each other

typedef struct {
    bool used;
    int rc;
    uint8_t input [64];                 //  public + secret, or the secret
    uint8_t output [32];                //  the shared key, or the public key
} s_x25519_slot_t;

typedef struct {
    s_x25519_slot_t slot [S_X25519_SETS][S_X25519_WAYS];
    unsigned victim;                    //  round robin within a set
} s_x25519_cache_t;

static s_x25519_cache_t s_beforenm_cache;
static s_x25519_cache_t s_keypair_cache;

//  The slot holding input, or NULL and *free_p the one to fill.
static s_x25519_slot_t *
s_x25519_find (s_x25519_cache_t *cache, const uint8_t *input, size_t size,
               s_x25519_slot_t **free_p)
{
    uint32_t hash = 2166136261u;        //  FNV-1a
    for (size_t i = 0; i < size; i++) {
        hash = (hash ^ input [i]) * 16777619u;
    }
    s_x25519_slot_t *set = cache->slot [hash % S_X25519_SETS];
    for (int way = 0; way < S_X25519_WAYS; way++) {
        if (set [way].used && memcmp (set [way].input, input, size) == 0) {
            return &set [way];
        }
    }
    for (int way = 0; way < S_X25519_WAYS; way++) {
        if (!set [way].used) {
            *free_p = &set [way];
            return NULL;
        }
    }
    *free_p = &set [cache->victim++ % S_X25519_WAYS];
    return NULL;
}

int
crypto_box_beforenm (unsigned char *k, const unsigned char *pk, const unsigned char *sk)
{
    uint8_t input [64];
    memcpy (input, pk, 32);
    memcpy (input + 32, sk, 32);
    s_x25519_slot_t *fill = NULL;
    s_x25519_slot_t *slot = s_x25519_find (&s_beforenm_cache, input, 64, &fill);
    if (!slot) {
        slot = fill;
        slot->rc = crypto_box_curve25519xsalsa20poly1305_beforenm (slot->output, pk, sk);
        memcpy (slot->input, input, 64);
        slot->used = true;
    }
    memcpy (k, slot->output, 32);
    return slot->rc;
}

//  A key pair is the next 32 random bytes and their public key; they are
//  read ahead here. A miss asks libsodium, and its answer is remembered only
//  if it drew exactly those bytes.
int
crypto_box_keypair (unsigned char *pk, unsigned char *sk)
{
    uint64_t before = s_random_state;
    uint8_t secret [32];
    s_random_buf (secret, 32);
    uint64_t after = s_random_state;
    s_x25519_slot_t *fill = NULL;
    s_x25519_slot_t *slot = s_x25519_find (&s_keypair_cache, secret, 32, &fill);
    if (slot) {
        memcpy (sk, secret, 32);
        memcpy (pk, slot->output, 32);
        return slot->rc;
    }
    s_random_state = before;
    int rc = crypto_box_curve25519xsalsa20poly1305_keypair (pk, sk);
    if (s_random_state == after && memcmp (sk, secret, 32) == 0) {
        memcpy (fill->input, secret, 32);
        memcpy (fill->output, pk, 32);
        fill->rc = rc;
        fill->used = true;
    }
    return rc;
}

//  --- Secret memory on the ASan heap ---------------------------------------
//
//  Each codec keeps its secrets in sodium_malloc memory: an mmap, mprotect
//  of guard pages, and munmap on free, with a TLB shootdown each time. Per
//  input that cost more than all the codec's own work. Here sodium_malloc
//  is malloc, so ASan's redzones and quarantine check every byte of the
//  block, where guard pages check only past its page; sodium_free still
//  wipes before freeing. Page protection is not emulated: a caller of
//  sodium_mprotect_* stops with a message instead of running unprotected.

void *
sodium_malloc (size_t size)
{
    return malloc (size ? size : 1);
}

void
sodium_free (void *ptr)
{
    if (ptr) {
        sodium_memzero (ptr, malloc_usable_size (ptr));
        free (ptr);
    }
}

static int
s_no_mprotect (const char *name)
{
    fprintf (stderr, "fuzz_curve.h: %s is not available in this harness\n", name);
    abort ();
}

int
sodium_mprotect_noaccess (void *ptr)
{
    (void) ptr;
    return s_no_mprotect ("sodium_mprotect_noaccess");
}

int
sodium_mprotect_readonly (void *ptr)
{
    (void) ptr;
    return s_no_mprotect ("sodium_mprotect_readonly");
}

int
sodium_mprotect_readwrite (void *ptr)
{
    (void) ptr;
    return s_no_mprotect ("sodium_mprotect_readwrite");
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    randombytes_set_implementation (&s_random_implementation);
    if (sodium_init () < 0) {
        abort ();
    }
    return 0;
}

//  --- A client and a server in that world ----------------------------------

typedef struct {
    kc_curve_t *client;
    kc_curve_t *server;
    uint8_t *command;                   //  the last command made (a copy)
    size_t size;
} s_world_t;

//  What a tamper hook puts in a plaintext: keep the first `keep` bytes
//  (SIZE_MAX: all), then the fuzz data.
typedef struct {
    const char *what;
    size_t keep;
    const uint8_t *data;
    size_t size;
} s_swap_t;

static inline void
s_swap (void *arg, const char *what, kc_writer_t *plain)
{
    const s_swap_t *swap = arg;
    if (strcmp (what, swap->what) == 0) {
        if (swap->keep < plain->size) {
            plain->size = swap->keep;
        }
        kc_write_bytes (plain, swap->data, swap->size);
    }
}

static inline int
s_allow (const uint8_t client_key [KC_KEY_BYTES], const kc_meta_t *metadata, void *arg,
         kc_curve_identity_t *identity)
{
    (void) client_key;
    (void) arg;
    //  Deny a client that says so, to reach the ERROR path too
    if (kc_meta_get (metadata, "X-Deny", NULL)) {
        return KC_CURVE_DENY;
    }
    snprintf (identity->name, sizeof identity->name, "fuzz");
    return KC_CURVE_ALLOW;
}

static inline void
s_key (const char *hex, uint8_t key [32])
{
    if (kc_unhex (hex, key, 32)) {
        abort ();
    }
}

//  A fresh world: the random source restarted, a client and a server with
//  the fixed keys; nothing sent yet.
static inline void
s_world_new (s_world_t *world)
{
    s_random_restart ();
    static uint8_t client_public [32], client_secret [32], server_public [32], server_secret [32];
    static bool parsed = false;         //  once: the keys never change
    if (!parsed) {
        s_key ("BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518", client_public);
        s_key ("7BB864B489AFA3671FBE69101F94B38972F24816DFB01B51656B3FEC8DFD0888", client_secret);
        s_key ("54FCBA24E93249969316FB617C872BB0C1D1FF14800427C594CBFACF1BC2D652", server_public);
        s_key ("8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7", server_secret);
        parsed = true;
    }
    world->client = kc_curve_new_client (client_public, client_secret, server_public);
    world->server = kc_curve_new_server (server_public, server_secret);
    kc_curve_set_authorizer (world->server, s_allow, NULL);
    if (kc_curve_set_metadata (world->client, KC_CURVE_SOCKET_TYPE, "DEALER", 6, NULL)
    ||  kc_curve_set_metadata (world->server, KC_CURVE_SOCKET_TYPE, "ROUTER", 6, NULL)) {
        abort ();
    }
    world->command = NULL;
    world->size = 0;
}

//  Feeds input to codec; keeps a copy of its output as the next command.
//  Returns the codec's result.
static inline int
s_world_step (s_world_t *world, kc_curve_t *codec, const uint8_t *input, size_t size)
{
    const uint8_t *output;
    size_t output_size;
    int rc = kc_curve_handshake (codec, input, size, &output, &output_size, NULL);
    free (world->command);
    world->command = NULL;
    world->size = output_size;
    if (output) {
        world->command = malloc (output_size);
        if (!world->command) {
            abort ();
        }
        memcpy (world->command, output, output_size);
    }
    return rc;
}

//  Passes the last command to codec (the peer of whoever made it).
static inline int
s_world_pass (s_world_t *world, kc_curve_t *codec)
{
    uint8_t *command = world->command;
    world->command = NULL;
    int rc = s_world_step (world, codec, command, world->size);
    free (command);
    return rc;
}

//  Exchanges a message each way once both are connected; a decoded
//  payload must be what was sent.
static inline void
s_world_talk (s_world_t *world)
{
    if (!kc_curve_connected (world->client) || !kc_curve_connected (world->server)) {
        return;
    }
    uint8_t command [KC_CURVE_MESSAGE_OVERHEAD + 5], *payload;
    size_t size;
    int flags;
    for (int side = 0; side < 2; side++) {
        kc_curve_t *from = side ? world->server : world->client;
        kc_curve_t *to = side ? world->client : world->server;
        if (kc_curve_encode (from, "Hello", 5, KC_CURVE_MORE, command, NULL)
        ||  kc_curve_decode (to, command, sizeof command, &payload, &size, &flags, NULL)
        ||  size != 5 || memcmp (payload, "Hello", 5) || flags != KC_CURVE_MORE) {
            abort ();                   //  a connected pair must talk
        }
    }
}

static inline void
s_world_destroy (s_world_t *world)
{
    kc_curve_destroy (&world->client);
    kc_curve_destroy (&world->server);
    free (world->command);
    world->command = NULL;
}

#endif
