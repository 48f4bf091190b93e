/*  =========================================================================
    kc_curve - CurveZMQ (RFC 26) client and server state machines and the
    MESSAGE codec. Byte layouts: docs/curvezmq.md.

    X25519 work, each Diffie-Hellman computed once (crypto_box_beforenm) and
    reused through the *_afternm calls, 4 operations per side:
        client: keypair C'    beforenm (S, c')   HELLO box, WELCOME open
                              beforenm (S', c)   vouch
                              beforenm (S', c')  INITIATE box, READY, MESSAGE
        server: beforenm (C', s)   HELLO open, WELCOME box
                keypair S'    beforenm (C', s')  INITIATE open, READY, MESSAGE
                              beforenm (C, s')   vouch open

    MESSAGE boxes are XSalsa20-Poly1305 like every box, computed with the
    HSalsa20 step done once per direction: XSalsa20 runs HSalsa20 over the key
    and the first 16 nonce bytes only, and for MESSAGE those are the fixed
    prefix "CurveZMQMESSAGEC" or "...S". So each direction's subkey is made
    when the handshake completes (then the session key is wiped), and each
    MESSAGE costs one Salsa20 keystream call plus Poly1305. The bytes are
    those of crypto_box_easy_afternm; the selftest checks it size by size.
    =========================================================================
*/
#include "kc_curve.h"
#include "kc_record.h"
#include "kc_wire.h"

#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined (KC_TEST_HOOKS) || defined (KC_FUZZING)
#   define KC_CURVE_HOOKS
#endif

typedef enum {
    S_START,                            //  client, before HELLO
    S_EXPECT_WELCOME,                   //  client
    S_EXPECT_READY,                     //  client
    S_EXPECT_HELLO,                     //  server
    S_EXPECT_INITIATE,                  //  server
    S_CONNECTED,
    S_FAILED
} s_state_t;

//  Every secret of one codec, in one slot of sodium_malloc memory (below).
//  Each field is wiped as soon as the handshake no longer needs it; all of
//  it on failure and when the codec is destroyed.
typedef struct {
    uint8_t permanent [32];             //  c or s: until the vouch / HELLO
    uint8_t transient [32];             //  c' or s': until connected
    uint8_t hello [32];                 //  beforenm (S, c') = beforenm (C', s)
    uint8_t vouch [32];                 //  beforenm (S', c) = beforenm (C, s')
    uint8_t session [32];               //  beforenm (S', c') = beforenm (C', s')
    uint8_t send [32];                  //  HSalsa20 (session, our MESSAGE prefix)
    uint8_t receive [32];               //  HSalsa20 (session, the peer's prefix)
    uint8_t cookie [32];                //  server: cookie key K
    uint8_t scratch [64];               //  server: cookie plaintext C' + s'
} s_secrets_t;

_Static_assert (KC_CURVE_NAME_MAX == KC_RECORD_NAME_MAX && KC_CURVE_TAGS_MAX == KC_RECORD_TAGS_MAX
                && KC_CURVE_TAG_MAX == KC_RECORD_TAG_MAX, "kc_curve_identity_t holds a directory record's name and tags");

struct _kc_curve_t {
    const char *last_command;           //  what the last call produced (a literal)
    bool server;                        //  role
    s_state_t state;
    s_secrets_t *secrets;               //  a slot of secret memory
    struct _s_chunk_t *chunk;           //  the chunk that holds it
    uint8_t public_key [32];            //  C or S
    uint8_t server_key [32];            //  S (both roles)
    uint8_t transient_key [32];         //  C' or S'
    uint8_t peer_transient [32];        //  S' or C'
    bool transient_set;                 //  injected by a test
    uint64_t sent_nonce;                //  last short nonce sent
    uint64_t peer_nonce;                //  last short nonce received
    uint8_t send_prefix [16];           //  "CurveZMQMESSAGEC" or ...S
    uint8_t receive_prefix [16];
    bool allow_command;                 //  accept the libzmq COMMAND bit
    bool expired;
    kc_meta_t *metadata;                //  what we send
    kc_meta_t *peer_metadata;           //  what we received, once connected
    kc_curve_identity_t identity;       //  server: the authorised client
    kc_curve_authorize_fn *authorize;
    void *authorize_arg;
    kc_curve_clock_fn *clock;
    void *clock_arg;
    uint64_t welcome_at;                //  clock when K was made
    kc_writer_t output;                 //  the last command made
    bool output_error;                  //  output holds an ERROR to send
#ifdef KC_CURVE_HOOKS
    kc_curve_tamper_fn *tamper;
    void *tamper_arg;
#endif
};

static const uint8_t s_zeros [128];

//  --- Helpers ---------------------------------------------------------------

static uint64_t
s_monotonic_ms (void *arg)
{
    (void) arg;
    return (uint64_t) kc_mono_ms ();
}

//  Short nonce: 16-byte prefix + big-endian counter. Long: 8 + 16 bytes.
static void
s_short_nonce (uint8_t nonce [24], const void *prefix, uint64_t value)
{
    memcpy (nonce, prefix, 16);
    kc_put_u64 (nonce + 16, value);
}

static void
s_long_nonce (uint8_t nonce [24], const char *prefix, const uint8_t *value)
{
    memcpy (nonce, prefix, 8);
    memcpy (nonce + 8, value, 16);
}

static void
s_write_zeros (kc_writer_t *writer, size_t size)
{
    while (size) {
        size_t chunk = size < sizeof s_zeros ? size : sizeof s_zeros;
        kc_write_bytes (writer, s_zeros, chunk);
        size -= chunk;
    }
}

//  Appends Box [plain] (16-byte MAC, then ciphertext) sealed in place.
static void
s_write_box (kc_writer_t *writer, const uint8_t *plain, size_t size,
             const uint8_t nonce [24], const uint8_t key [32])
{
    size_t at = writer->size;
    s_write_zeros (writer, crypto_box_MACBYTES);
    kc_write_bytes (writer, plain, size);
    uint8_t *box = writer->data + at;
    crypto_box_detached_afternm (box + crypto_box_MACBYTES, box, box + crypto_box_MACBYTES,
                                 size, nonce, key);
}

static void
s_tamper (kc_curve_t *self, const char *what, kc_writer_t *data)
{
#ifdef KC_CURVE_HOOKS
    if (self->tamper) {
        self->tamper (self->tamper_arg, what, data);
    }
#else
    (void) self;
    (void) what;
    (void) data;
#endif
}

//  True if the command at data starts with name ("\x05HELLO"...).
static bool
s_is (const uint8_t *data, size_t size, const char *name)
{
    size_t length = 1 + (size_t) (uint8_t) name [0];
    return size >= length && memcmp (data, name, length) == 0;
}

//  Names the command for a reason: "HELLO", or "an unknown command".
static const char *
s_name (const uint8_t *data, size_t size)
{
    static const char *names [] = {
        "\005HELLO", "\007WELCOME", "\010INITIATE", "\005READY", "\007MESSAGE", "\005ERROR"
    };
    for (size_t i = 0; i < sizeof names / sizeof names [0]; i++) {
        if (s_is (data, size, names [i])) {
            return names [i] + 1;
        }
    }
    return "an unknown command";
}

static int
s_next_nonce (kc_curve_t *self, uint64_t *nonce, kc_why_t *why)
{
    if (self->sent_nonce == UINT64_MAX) {
        return kc_why (why, "short nonces exhausted (2^64-1 commands sent)");
    }
    *nonce = ++self->sent_nonce;
    return 0;
}

//  Wipes every secret and refuses all further input.
static void
s_fail (kc_curve_t *self)
{
    sodium_memzero (self->secrets, sizeof *self->secrets);
    self->state = S_FAILED;
}

static bool
s_cookie_expired (kc_curve_t *self)
{
    uint64_t now = self->clock (self->clock_arg);
    return now >= self->welcome_at && now - self->welcome_at >= KC_CURVE_COOKIE_TTL_MS;
}

//  Both sides connected: the MESSAGE subkeys replace the session key.
static void
s_connect (kc_curve_t *self)
{
    s_secrets_t *secrets = self->secrets;
    crypto_core_hsalsa20 (secrets->send, self->send_prefix, secrets->session, NULL);
    crypto_core_hsalsa20 (secrets->receive, self->receive_prefix, secrets->session, NULL);
    sodium_memzero (secrets->session, 32);
    sodium_memzero (secrets->transient, 32);
    sodium_memzero (secrets->scratch, 64);
    self->state = S_CONNECTED;
}


//  --- Secret memory ------------------------------------------------------------
//  A sodium_malloc block per codec costs more than the handshake's own
//  crypto apart from the four X25519 operations: mmap, mprotect for the
//  guard pages, mlock, then munmap with its TLB shootdown on every core. So
//  codecs take their secrets from chunks of S_POOL_SLOTS slots, each chunk
//  one sodium_malloc block (guard pages around it, locked in memory, never
//  swapped): a slot is wiped when it is given back, and a chunk whose slots
//  are all free goes back to the system unless it is the last spare.

#define S_POOL_SLOTS    64              //  slots per chunk (bits of used)

typedef struct _s_chunk_t s_chunk_t;
struct _s_chunk_t {
    s_chunk_t *next;
    s_secrets_t *slots;                 //  sodium_malloc, S_POOL_SLOTS of them
    uint64_t used;                      //  bit i: slots [i] is taken
};

static pthread_mutex_t s_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static s_chunk_t *s_pool;               //  chunks, ones with free slots first

static s_secrets_t *
s_secrets_take (s_chunk_t **chunk_p)
{
    pthread_mutex_lock (&s_pool_lock);
    s_chunk_t *chunk = s_pool;
    while (chunk && chunk->used == UINT64_MAX) {
        chunk = chunk->next;
    }
    if (!chunk) {
        chunk = calloc (1, sizeof *chunk);
        s_secrets_t *slots = sodium_malloc (S_POOL_SLOTS * sizeof *slots);
        if (!chunk || !slots) {
            fprintf (stderr, "kc_curve: out of memory\n");
            abort ();
        }
        sodium_memzero (slots, S_POOL_SLOTS * sizeof *slots);
        chunk->slots = slots;
        chunk->next = s_pool;
        s_pool = chunk;
    }
    int slot = __builtin_ctzll (~chunk->used);
    chunk->used |= 1ULL << slot;
    pthread_mutex_unlock (&s_pool_lock);
    *chunk_p = chunk;
    return &chunk->slots [slot];
}

static void
s_secrets_give (s_secrets_t *secrets, s_chunk_t *chunk)
{
    sodium_memzero (secrets, sizeof *secrets);
    pthread_mutex_lock (&s_pool_lock);
    chunk->used &= ~(1ULL << (secrets - chunk->slots));
    s_chunk_t *spare = NULL;
    if (chunk->used == 0) {
        //  Free it if another chunk has room; else keep it as the spare
        for (s_chunk_t *other = s_pool; other; other = other->next) {
            if (other != chunk && other->used != UINT64_MAX) {
                spare = chunk;
                break;
            }
        }
    }
    if (spare) {
        s_chunk_t **link = &s_pool;
        while (*link != spare) {
            link = &(*link)->next;
        }
        *link = spare->next;
    }
    else
    if (chunk != s_pool) {
        //  A chunk with room moves to the front, where takers look first
        s_chunk_t **link = &s_pool;
        while (*link != chunk) {
            link = &(*link)->next;
        }
        *link = chunk->next;
        chunk->next = s_pool;
        s_pool = chunk;
    }
    pthread_mutex_unlock (&s_pool_lock);
    if (spare) {
        sodium_free (spare->slots);     //  all wiped already; wipes again
        free (spare);
    }
}

//  --- Construction ----------------------------------------------------------

static kc_curve_t *
s_new (bool server, const uint8_t *public_key, const uint8_t *secret_key)
{
    kc_curve_t *self = calloc (1, sizeof *self);
    if (!self) {
        fprintf (stderr, "kc_curve: out of memory\n");
        abort ();
    }
    s_secrets_t *secrets = s_secrets_take (&self->chunk);
    memcpy (secrets->permanent, secret_key, 32);
    self->secrets = secrets;
    self->server = server;
    memcpy (self->public_key, public_key, 32);
    memcpy (self->send_prefix, server ? "CurveZMQMESSAGES" : "CurveZMQMESSAGEC", 16);
    memcpy (self->receive_prefix, server ? "CurveZMQMESSAGEC" : "CurveZMQMESSAGES", 16);
    self->metadata = kc_meta_new ();
    self->clock = s_monotonic_ms;
    kc_writer_init (&self->output);
    return self;
}

kc_curve_t *
kc_curve_new_client (const uint8_t public_key [static KC_KEY_BYTES],
                     const uint8_t secret_key [static KC_KEY_BYTES],
                     const uint8_t server_key [static KC_KEY_BYTES])
{
    kc_curve_t *self = s_new (false, public_key, secret_key);
    memcpy (self->server_key, server_key, 32);
    self->state = S_START;
    return self;
}

kc_curve_t *
kc_curve_new_server (const uint8_t public_key [static KC_KEY_BYTES],
                     const uint8_t secret_key [static KC_KEY_BYTES])
{
    kc_curve_t *self = s_new (true, public_key, secret_key);
    memcpy (self->server_key, public_key, 32);
    self->state = S_EXPECT_HELLO;
    return self;
}

void
kc_curve_destroy (kc_curve_t **self_p)
{
    if (self_p && *self_p) {
        kc_curve_t *self = *self_p;
        s_secrets_give (self->secrets, self->chunk);    //  wiped
        kc_meta_destroy (&self->metadata);
        kc_meta_destroy (&self->peer_metadata);
        kc_writer_free (&self->output);
        sodium_memzero (self, sizeof *self);
        free (self);
        *self_p = NULL;
    }
}

void
kc_curve_set_authorizer (kc_curve_t *self, kc_curve_authorize_fn *authorize, void *arg)
{
    assert (self);
    assert (self->server);
    self->authorize = authorize;
    self->authorize_arg = arg;
}

int
kc_curve_set_metadata (kc_curve_t *self, const char *name, const void *value, size_t size,
                       kc_why_t *why)
{
    assert (self);
    bool early = self->server ? self->state == S_EXPECT_HELLO || self->state == S_EXPECT_INITIATE
                              : self->state == S_START || self->state == S_EXPECT_WELCOME;
    if (!early) {
        return kc_why (why, "too late to set metadata '%.64s': already sent", name);
    }
    return kc_meta_set (self->metadata, name, value, size, why);
}

void
kc_curve_set_clock (kc_curve_t *self, kc_curve_clock_fn *clock, void *arg)
{
    assert (self);
    self->clock = clock ? clock : s_monotonic_ms;
    self->clock_arg = arg;
}

void
kc_curve_set_command_flag (kc_curve_t *self, bool allow)
{
    assert (self);
    self->allow_command = allow;
}

//  --- Client ----------------------------------------------------------------

static int
s_client_hello (kc_curve_t *self, kc_why_t *why)
{
    s_secrets_t *secrets = self->secrets;
    if (!self->transient_set) {
        crypto_box_keypair (self->transient_key, secrets->transient);
    }
    if (crypto_box_beforenm (secrets->hello, self->server_key, secrets->transient)) {
        return kc_why (why, "the server key is a low-order point");
    }
    uint64_t sequence = 0;
    if (s_next_nonce (self, &sequence, why)) {
        return -1;
    }
    kc_writer_t plain;
    kc_writer_init (&plain);
    s_write_zeros (&plain, 64);
    s_tamper (self, "HELLO box", &plain);
    uint8_t nonce [24];
    s_short_nonce (nonce, "CurveZMQHELLO---", sequence);
    kc_writer_t *out = &self->output;
    kc_write_bytes (out, "\x05HELLO\x01\x00", 8);
    s_write_zeros (out, 72);
    kc_write_bytes (out, self->transient_key, 32);
    kc_write_u64 (out, sequence);
    s_write_box (out, plain.data, plain.size, nonce, secrets->hello);
    kc_writer_free (&plain);
    s_tamper (self, "HELLO", out);
    self->state = S_EXPECT_WELCOME;
    return 0;
}

//  A server's ERROR, where WELCOME or READY was due: always a failure.
static int
s_client_error (const uint8_t *input, size_t size, kc_why_t *why)
{
    kc_reader_t reader;
    kc_reader_init (&reader, input, size);
    uint8_t length = 0;
    const uint8_t *text = NULL;
    if (kc_read_bytes (&reader, 6) && kc_read_u8 (&reader, &length) == 0) {
        text = kc_read_bytes (&reader, length);
    }
    if (!text || kc_reader_left (&reader)) {
        return kc_why (why, "malformed ERROR (%zu bytes)", size);
    }
    char reason [KC_CURVE_REASON_MAX + 1];
    for (size_t i = 0; i < length; i++) {
        reason [i] = text [i] >= 0x20 && text [i] <= 0x7e ? (char) text [i] : '?';
    }
    reason [length] = 0;
    return kc_why (why, "server sent ERROR '%s'", reason);
}

//  The vouch: long nonce + Box [C' + S] (C -> S').
static void
s_write_vouch (kc_curve_t *self, kc_writer_t *out)
{
    kc_writer_t plain;
    kc_writer_init (&plain);
    kc_write_bytes (&plain, self->transient_key, 32);
    kc_write_bytes (&plain, self->server_key, 32);
    s_tamper (self, "vouch box", &plain);
    uint8_t value [16], nonce [24];
    randombytes_buf (value, sizeof value);
    s_long_nonce (nonce, "VOUCH---", value);
    kc_write_bytes (out, value, sizeof value);
    s_write_box (out, plain.data, plain.size, nonce, self->secrets->vouch);
    kc_writer_free (&plain);
}

static int
s_client_welcome (kc_curve_t *self, const uint8_t *input, size_t size, kc_why_t *why)
{
    if (s_is (input, size, "\x05" "ERROR")) {
        return s_client_error (input, size, why);
    }
    kc_reader_t reader;
    kc_reader_init (&reader, input, size);
    const uint8_t *name = kc_read_bytes (&reader, 8);
    const uint8_t *long_nonce = kc_read_bytes (&reader, 16);
    const uint8_t *box = kc_read_bytes (&reader, 144);
    if (!box || kc_reader_left (&reader) || memcmp (name, "\x07WELCOME", 8)) {
        return kc_why (why, "expected WELCOME (168 bytes), got %s of %zu bytes",
                       s_name (input, size), size);
    }
    s_secrets_t *secrets = self->secrets;
    uint8_t nonce [24], plain [128];
    s_long_nonce (nonce, "WELCOME-", long_nonce);
    if (crypto_box_open_easy_afternm (plain, box, 144, nonce, secrets->hello)) {
        return kc_why (why, "WELCOME box does not open (wrong server key?)");
    }
    memcpy (self->peer_transient, plain, 32);
    if (crypto_box_beforenm (secrets->session, self->peer_transient, secrets->transient)
    ||  crypto_box_beforenm (secrets->vouch, self->peer_transient, secrets->permanent)) {
        return kc_why (why, "WELCOME: server transient key is a low-order point");
    }
    uint64_t sequence = 0;
    if (s_next_nonce (self, &sequence, why)) {
        return -1;
    }
    kc_writer_t content;                //  C + vouch + metadata
    kc_writer_init (&content);
    kc_write_bytes (&content, self->public_key, 32);
    s_write_vouch (self, &content);
    kc_meta_encode (self->metadata, &content);
    s_tamper (self, "INITIATE box", &content);
    s_short_nonce (nonce, "CurveZMQINITIATE", sequence);
    kc_writer_t *out = &self->output;
    kc_write_bytes (out, "\x08INITIATE", 9);
    kc_write_bytes (out, plain + 32, 96);                       //  the cookie
    kc_write_u64 (out, sequence);
    s_write_box (out, content.data, content.size, nonce, secrets->session);
    kc_writer_free (&content);
    s_tamper (self, "INITIATE", out);
    sodium_memzero (secrets->hello, 32);
    sodium_memzero (secrets->vouch, 32);
    sodium_memzero (secrets->permanent, 32);
    self->state = S_EXPECT_READY;
    return 0;
}

static int
s_client_ready (kc_curve_t *self, const uint8_t *input, size_t size, kc_why_t *why)
{
    if (s_is (input, size, "\x05" "ERROR")) {
        return s_client_error (input, size, why);
    }
    kc_reader_t reader;
    kc_reader_init (&reader, input, size);
    const uint8_t *name = kc_read_bytes (&reader, 6);
    uint64_t sequence = 0;
    if (kc_read_u64 (&reader, &sequence) || kc_reader_left (&reader) < crypto_box_MACBYTES
    ||  memcmp (name, "\x05READY", 6)) {
        return kc_why (why, "expected READY (at least 30 bytes), got %s of %zu bytes",
                       s_name (input, size), size);
    }
    if (size > KC_CURVE_READY_BYTES + KC_CURVE_METADATA_MAX) {
        return kc_why (why, "READY of %zu bytes: metadata exceeds %d bytes",
                       size, KC_CURVE_METADATA_MAX);
    }
    size_t box_size = kc_reader_left (&reader);
    const uint8_t *box = kc_read_bytes (&reader, box_size);
    uint8_t nonce [24];
    s_short_nonce (nonce, "CurveZMQREADY---", sequence);
    size_t plain_size = box_size - crypto_box_MACBYTES;
    uint8_t *plain = malloc (plain_size ? plain_size : 1);
    if (!plain) {
        return kc_why (why, "out of memory opening READY");
    }
    int rc = -1;
    if (crypto_box_open_easy_afternm (plain, box, box_size, nonce, self->secrets->session)) {
        kc_why (why, "READY box does not open");
        goto cleanup;
    }
    self->peer_metadata = kc_meta_decode (plain, plain_size, why);
    if (!self->peer_metadata) {
        kc_why_prefix (why, "READY");
        goto cleanup;
    }
    self->peer_nonce = sequence;
    s_connect (self);
    rc = 0;
cleanup:
    free (plain);
    return rc;
}

//  --- Server ----------------------------------------------------------------

//  WELCOME: Box [S' + cookie] (S -> C'), cookie = secretbox [C' + s'] (K).
static void
s_server_welcome (kc_curve_t *self)
{
    s_secrets_t *secrets = self->secrets;
    uint8_t nonce [24];
    if (!self->transient_set) {
        crypto_box_keypair (self->transient_key, secrets->transient);
    }
    randombytes_buf (secrets->cookie, 32);
    memcpy (secrets->scratch, self->peer_transient, 32);
    memcpy (secrets->scratch + 32, secrets->transient, 32);
    uint8_t value [16];
    randombytes_buf (value, sizeof value);
    s_long_nonce (nonce, "COOKIE--", value);
    kc_writer_t plain;
    kc_writer_init (&plain);
    kc_write_bytes (&plain, self->transient_key, 32);
    kc_write_bytes (&plain, value, sizeof value);
    size_t at = plain.size;
    s_write_zeros (&plain, crypto_secretbox_MACBYTES + 64);
    crypto_secretbox_easy (plain.data + at, secrets->scratch, 64, nonce, secrets->cookie);
    s_tamper (self, "WELCOME box", &plain);
    randombytes_buf (value, sizeof value);
    s_long_nonce (nonce, "WELCOME-", value);
    kc_writer_t *out = &self->output;
    kc_write_bytes (out, "\x07WELCOME", 8);
    kc_write_bytes (out, value, sizeof value);
    s_write_box (out, plain.data, plain.size, nonce, secrets->hello);
    kc_writer_free (&plain);
    s_tamper (self, "WELCOME", out);
    sodium_memzero (secrets->hello, 32);
    sodium_memzero (secrets->permanent, 32);
    sodium_memzero (secrets->scratch, 64);
    self->welcome_at = self->clock (self->clock_arg);
    self->state = S_EXPECT_INITIATE;
}

static int
s_server_hello (kc_curve_t *self, const uint8_t *input, size_t size, kc_why_t *why)
{
    kc_reader_t reader;
    kc_reader_init (&reader, input, size);
    const uint8_t *name = kc_read_bytes (&reader, 6);
    const uint8_t *version = kc_read_bytes (&reader, 2);
    const uint8_t *padding = kc_read_bytes (&reader, 72);
    const uint8_t *client_key = kc_read_bytes (&reader, 32);
    uint64_t sequence = 0;
    int short_read = kc_read_u64 (&reader, &sequence);
    const uint8_t *box = kc_read_bytes (&reader, 80);
    if (short_read || !box || kc_reader_left (&reader) || memcmp (name, "\x05HELLO", 6)) {
        return kc_why (why, "expected HELLO (200 bytes), got %s of %zu bytes",
                       s_name (input, size), size);
    }
    if (version [0] != 1 || version [1] != 0) {
        return kc_why (why, "HELLO: version %u.%u is not 1.0", version [0], version [1]);
    }
    if (!sodium_is_zero (padding, 72)) {
        return kc_why (why, "HELLO: anti-amplification padding is not all zero");
    }
    s_secrets_t *secrets = self->secrets;
    memcpy (self->peer_transient, client_key, 32);
    if (crypto_box_beforenm (secrets->hello, self->peer_transient, secrets->permanent)) {
        return kc_why (why, "HELLO: client transient key is a low-order point");
    }
    uint8_t nonce [24], signature [64];
    s_short_nonce (nonce, "CurveZMQHELLO---", sequence);
    if (crypto_box_open_easy_afternm (signature, box, 80, nonce, secrets->hello)) {
        return kc_why (why, "HELLO: signature box does not open");
    }
    if (!sodium_is_zero (signature, sizeof signature)) {
        return kc_why (why, "HELLO: signature box does not hold 64 zero bytes");
    }
    self->peer_nonce = sequence;

    s_server_welcome (self);
    return 0;
}

//  Opens the cookie with K (then wipes K) and checks it is this handshake's.
static int
s_server_cookie (kc_curve_t *self, const uint8_t *cookie, kc_why_t *why)
{
    s_secrets_t *secrets = self->secrets;
    uint8_t nonce [24];
    s_long_nonce (nonce, "COOKIE--", cookie);
    int rc = crypto_secretbox_open_easy (secrets->scratch, cookie + 16, 80, nonce,
                                         secrets->cookie);
    sodium_memzero (secrets->cookie, 32);
    if (rc) {
        return kc_why (why, "INITIATE: cookie does not open");
    }
    if (sodium_memcmp (secrets->scratch, self->peer_transient, 32)
    ||  sodium_memcmp (secrets->scratch + 32, secrets->transient, 32)) {
        return kc_why (why, "INITIATE: cookie is not from this handshake");
    }
    return 0;
}

//  Opens the vouch (C -> S') and checks it names C' and this server's S.
static int
s_server_vouch (kc_curve_t *self, const uint8_t *client_key, const uint8_t *vouch,
                const char *who, kc_why_t *why)
{
    s_secrets_t *secrets = self->secrets;
    if (crypto_box_beforenm (secrets->vouch, client_key, secrets->transient)) {
        return kc_why (why, "INITIATE from %s: client key is a low-order point", who);
    }
    uint8_t nonce [24], plain [64];
    s_long_nonce (nonce, "VOUCH---", vouch);
    int rc = crypto_box_open_easy_afternm (plain, vouch + 16, 80, nonce, secrets->vouch);
    sodium_memzero (secrets->vouch, 32);
    if (rc) {
        return kc_why (why, "INITIATE from %s: vouch does not open", who);
    }
    if (sodium_memcmp (plain, self->peer_transient, 32)) {
        return kc_why (why, "INITIATE from %s: vouch is for another transient key", who);
    }
    if (sodium_memcmp (plain + 32, self->public_key, 32)) {
        return kc_why (why, "INITIATE from %s: vouch names another server", who);
    }
    return 0;
}

//  Asks the authorizer; returns 0 to proceed, or -1 (output holds ERROR if
//  the client is to be told).
static int
s_server_authorize (kc_curve_t *self, const uint8_t *client_key, const char *who,
                    kc_why_t *why)
{
    kc_curve_identity_t *identity = &self->identity;
    memset (identity, 0, sizeof *identity);
    memcpy (identity->key, client_key, 32);
    int status = KC_CURVE_DENY;         //  no authorizer: fail closed
    if (self->authorize) {
        status = self->authorize (client_key, self->peer_metadata, self->authorize_arg,
                                  identity);
    }
    //  Whatever the callback did, the identity stays well formed
    memcpy (identity->key, client_key, 32);
    identity->name [KC_CURVE_NAME_MAX] = 0;
    if (identity->tag_count > KC_CURVE_TAGS_MAX) {
        identity->tag_count = KC_CURVE_TAGS_MAX;
    }
    for (size_t i = 0; i < KC_CURVE_TAGS_MAX; i++) {
        identity->tags [i][KC_CURVE_TAG_MAX] = 0;
    }
    if (status == KC_CURVE_ALLOW) {
        return 0;
    }
    if (status == KC_CURVE_RETRY) {
        return kc_why (why, "client %s: authorizer said retry later (300)", who);
    }
    const char *code = status == KC_CURVE_DENY ? "400" : "500";
    kc_write_bytes (&self->output, "\x05" "ERROR\x03", 7);
    kc_write_bytes (&self->output, code, 3);
    self->output_error = true;
    return kc_why (why, "client %s: %s (%s)", who,
                   status == KC_CURVE_DENY ? "not authorised" : "authorizer failed", code);
}

static void
s_server_ready (kc_curve_t *self, uint64_t sequence)
{
    kc_writer_t plain;
    kc_writer_init (&plain);
    kc_meta_encode (self->metadata, &plain);
    s_tamper (self, "READY box", &plain);
    uint8_t nonce [24];
    s_short_nonce (nonce, "CurveZMQREADY---", sequence);
    kc_writer_t *out = &self->output;
    kc_write_bytes (out, "\x05READY", 6);
    kc_write_u64 (out, sequence);
    s_write_box (out, plain.data, plain.size, nonce, self->secrets->session);
    kc_writer_free (&plain);
    s_tamper (self, "READY", out);
}

//  Opens the INITIATE box (C + vouch + metadata), checks the vouch, parses
//  the metadata, asks the authorizer and makes READY.
static int
s_server_accept (kc_curve_t *self, const uint8_t *box, size_t box_size, uint64_t sequence,
                 kc_why_t *why)
{
    uint8_t nonce [24];
    s_short_nonce (nonce, "CurveZMQINITIATE", sequence);
    size_t plain_size = box_size - crypto_box_MACBYTES;        //  >= 128
    uint8_t *plain = malloc (plain_size);
    if (!plain) {
        return kc_why (why, "out of memory opening INITIATE");
    }
    int rc = -1;
    uint64_t ready_nonce = 0;
    char who [KC_FINGERPRINT_CHARS + 1];
    if (crypto_box_open_easy_afternm (plain, box, box_size, nonce, self->secrets->session)) {
        kc_why (why, "INITIATE: box does not open");
        goto cleanup;
    }
    kc_fingerprint (plain, who);
    if (s_server_vouch (self, plain, plain + 32, who, why)) {
        goto cleanup;
    }
    self->peer_metadata = kc_meta_decode (plain + 128, plain_size - 128, why);
    if (!self->peer_metadata) {
        kc_why_prefix (why, "INITIATE from %s", who);
        goto cleanup;
    }
    self->peer_nonce = sequence;
    if (s_server_authorize (self, plain, who, why) || s_next_nonce (self, &ready_nonce, why)) {
        goto cleanup;
    }
    s_server_ready (self, ready_nonce);
    s_connect (self);
    rc = 0;
cleanup:
    free (plain);
    return rc;
}

static int
s_server_initiate (kc_curve_t *self, const uint8_t *input, size_t size, kc_why_t *why)
{
    if (s_cookie_expired (self)) {
        self->expired = true;
        return kc_why (why, "INITIATE: cookie key expired (%d s after WELCOME)",
                       KC_CURVE_COOKIE_TTL_MS / 1000);
    }
    kc_reader_t reader;
    kc_reader_init (&reader, input, size);
    const uint8_t *name = kc_read_bytes (&reader, 9);
    const uint8_t *cookie = kc_read_bytes (&reader, 96);
    uint64_t sequence = 0;
    if (kc_read_u64 (&reader, &sequence) || kc_reader_left (&reader) < 144
    ||  memcmp (name, "\x08INITIATE", 9)) {
        return kc_why (why, "expected INITIATE (at least 257 bytes), got %s of %zu bytes",
                       s_name (input, size), size);
    }
    if (size > KC_CURVE_COMMAND_MAX) {
        return kc_why (why, "INITIATE of %zu bytes: metadata exceeds %d bytes",
                       size, KC_CURVE_METADATA_MAX);
    }
    size_t box_size = kc_reader_left (&reader);
    const uint8_t *box = kc_read_bytes (&reader, box_size);
    if (s_server_cookie (self, cookie, why)) {
        return -1;
    }
    if (sequence <= self->peer_nonce) {
        return kc_why (why, "INITIATE: nonce %llu is not above HELLO's %llu",
                       (unsigned long long) sequence, (unsigned long long) self->peer_nonce);
    }
    if (crypto_box_beforenm (self->secrets->session, self->peer_transient,
                             self->secrets->transient)) {
        return kc_why (why, "INITIATE: client transient key is a low-order point");
    }
    return s_server_accept (self, box, box_size, sequence, why);
}

//  --- Handshake -------------------------------------------------------------

//  The name of a command this codec made (its first byte is the name's
//  length), as a literal.
static const char *
s_command_name (const uint8_t *command, size_t size)
{
    static const char *names [] = { "HELLO", "WELCOME", "INITIATE", "READY", "ERROR", "MESSAGE" };
    for (size_t i = 0; i < sizeof names / sizeof names [0]; i++) {
        size_t length = strlen (names [i]);
        if (size > length && command [0] == length && memcmp (command + 1, names [i], length) == 0) {
            return names [i];
        }
    }
    return NULL;
}

int
kc_curve_handshake (kc_curve_t *self, const uint8_t *input, size_t input_size,
                    const uint8_t **output, size_t *output_size, kc_why_t *why)
{
    assert (self);
    assert (output && output_size);
    *output = NULL;
    *output_size = 0;
    self->output.size = 0;
    self->output_error = false;
    self->last_command = NULL;
    if (!input) {
        input_size = 0;
    }
    int rc = -1;
    switch (self->state) {
        case S_START:
            if (input) {
                return kc_why (why, "a client starts with no input (to make HELLO)");
            }
            rc = s_client_hello (self, why);
            break;
        case S_EXPECT_WELCOME:
            rc = s_client_welcome (self, input, input_size, why);
            break;
        case S_EXPECT_READY:
            rc = s_client_ready (self, input, input_size, why);
            break;
        case S_EXPECT_HELLO:
            rc = s_server_hello (self, input, input_size, why);
            break;
        case S_EXPECT_INITIATE:
            rc = s_server_initiate (self, input, input_size, why);
            break;
        case S_CONNECTED:
            return kc_why (why, "the handshake is already complete");
        case S_FAILED:
            return kc_why (why, "the handshake has failed");
    }
    if (rc) {
        s_fail (self);
        if (!self->output_error) {
            self->output.size = 0;
        }
    }
    if (self->output.size) {
        *output = self->output.data;
        *output_size = self->output.size;
        self->last_command = s_command_name (self->output.data, self->output.size);
    }
    return rc;
}

const char *
kc_curve_last_command (const kc_curve_t *self)
{
    assert (self);
    return self->last_command;
}

bool
kc_curve_is_server (const kc_curve_t *self)
{
    assert (self);
    return self->server;
}

bool
kc_curve_connected (const kc_curve_t *self)
{
    assert (self);
    return self->state == S_CONNECTED;
}

bool
kc_curve_failed (const kc_curve_t *self)
{
    assert (self);
    return self->state == S_FAILED;
}

bool
kc_curve_expired (kc_curve_t *self)
{
    assert (self);
    if (self->state == S_EXPECT_INITIATE && s_cookie_expired (self)) {
        self->expired = true;
        s_fail (self);
    }
    return self->expired;
}

const kc_curve_identity_t *
kc_curve_identity (const kc_curve_t *self)
{
    assert (self);
    return self->server && self->state == S_CONNECTED ? &self->identity : NULL;
}

const kc_meta_t *
kc_curve_peer_metadata (const kc_curve_t *self)
{
    assert (self);
    return self->state == S_CONNECTED ? self->peer_metadata : NULL;
}

//  --- MESSAGE ---------------------------------------------------------------

#define S_HEAD_BYTES    224             //  plaintext covered by the first keystream call

//  Seals size bytes at plain into text (may be plain) and mac, with Salsa20
//  under subkey and the 8-byte counter as nonce: keystream bytes 0-31 key
//  Poly1305, the rest encrypt.
static void
s_seal (uint8_t *mac, uint8_t *text, const uint8_t *plain, size_t size,
        const uint8_t counter [8], const uint8_t subkey [32])
{
    uint8_t stream [32 + S_HEAD_BYTES];
    size_t head = size < S_HEAD_BYTES ? size : S_HEAD_BYTES;
    crypto_stream_salsa20 (stream, 32 + head, counter, subkey);
    for (size_t i = 0; i < head; i++) {
        text [i] = plain [i] ^ stream [32 + i];
    }
    if (size > head) {
        crypto_stream_salsa20_xor_ic (text + head, plain + head, size - head, counter,
                                      (32 + S_HEAD_BYTES) / 64, subkey);
    }
    crypto_onetimeauth_poly1305 (mac, text, size, stream);
    sodium_memzero (stream, 32 + head);
}

//  Checks mac over size bytes at text, then decrypts them into plain (may
//  be text). Returns 0, or -1 with plain untouched.
static int
s_open (uint8_t *plain, const uint8_t *text, const uint8_t *mac, size_t size,
        const uint8_t counter [8], const uint8_t subkey [32])
{
    uint8_t stream [32 + S_HEAD_BYTES];
    size_t head = size < S_HEAD_BYTES ? size : S_HEAD_BYTES;
    crypto_stream_salsa20 (stream, 32 + head, counter, subkey);
    int rc = crypto_onetimeauth_poly1305_verify (mac, text, size, stream);
    if (rc == 0) {
        for (size_t i = 0; i < head; i++) {
            plain [i] = text [i] ^ stream [32 + i];
        }
        if (size > head) {
            crypto_stream_salsa20_xor_ic (plain + head, text + head, size - head, counter,
                                          (32 + S_HEAD_BYTES) / 64, subkey);
        }
    }
    sodium_memzero (stream, 32 + head);
    return rc;
}

static void
s_seal_message (kc_curve_t *self, uint64_t sequence, uint8_t flags, const void *payload,
                size_t size, uint8_t *command)
{
    uint8_t *plain = command + KC_CURVE_MESSAGE_OVERHEAD - 1;
    if (size && payload != plain + 1) {
        memmove (plain + 1, payload, size);
    }
    plain [0] = flags;
    memcpy (command, "\x07MESSAGE", 8);
    kc_put_u64 (command + 8, sequence);
    s_seal (command + 16, plain, plain, size + 1, command + 8, self->secrets->send);
}

int
kc_curve_encode (kc_curve_t *self, const void *payload, size_t size, int flags,
                 uint8_t *command, kc_why_t *why)
{
    assert (self);
    assert (command);
    assert (payload || size == 0);
    if (self->state != S_CONNECTED) {
        return kc_why (why, "cannot send MESSAGE: %s", self->state == S_FAILED
                       ? "the codec has failed" : "the handshake is not complete");
    }
    int allowed = KC_CURVE_MORE | (self->allow_command ? KC_CURVE_COMMAND : 0);
    if (flags & ~allowed) {
        return kc_why (why, "cannot send MESSAGE flags 0x%02x", (unsigned) flags);
    }
    if (size > SIZE_MAX - KC_CURVE_MESSAGE_OVERHEAD) {
        return kc_why (why, "cannot send MESSAGE of %zu bytes", size);
    }
    uint64_t sequence = 0;
    if (s_next_nonce (self, &sequence, why)) {
        s_fail (self);
        return -1;
    }
    s_seal_message (self, sequence, (uint8_t) flags, payload, size, command);
    self->last_command = "MESSAGE";
    return 0;
}

int
kc_curve_decode (kc_curve_t *self, uint8_t *command, size_t size, uint8_t **payload,
                 size_t *payload_size, int *flags, kc_why_t *why)
{
    assert (self);
    assert (payload && payload_size && flags);
    if (self->state == S_FAILED) {
        return kc_why (why, "the codec has failed");
    }
    int rc = -1;
    if (self->state != S_CONNECTED) {
        kc_why (why, "%s before the handshake completed", s_name (command, command ? size : 0));
        goto cleanup;
    }
    if (!command || size < KC_CURVE_MESSAGE_OVERHEAD || !s_is (command, size, "\x07MESSAGE")) {
        kc_why (why, "expected MESSAGE (at least 33 bytes), got %s of %zu bytes",
                s_name (command, command ? size : 0), size);
        goto cleanup;
    }
    uint64_t sequence = kc_get_u64 (command + 8);
    if (sequence <= self->peer_nonce) {
        kc_why (why, "MESSAGE nonce %llu is not above %llu (replayed or reordered)",
                (unsigned long long) sequence, (unsigned long long) self->peer_nonce);
        goto cleanup;
    }
    uint8_t *plain = command + KC_CURVE_MESSAGE_OVERHEAD - 1;
    if (s_open (plain, plain, command + 16, size - 32, command + 8, self->secrets->receive)) {
        kc_why (why, "MESSAGE box does not open");
        goto cleanup;
    }
    int allowed = KC_CURVE_MORE | (self->allow_command ? KC_CURVE_COMMAND : 0);
    if (plain [0] & ~(KC_CURVE_MORE | KC_CURVE_COMMAND)) {
        kc_why (why, "MESSAGE flags 0x%02x set reserved bits (7-2)", plain [0]);
        goto cleanup;
    }
    if (plain [0] & ~allowed) {
        kc_why (why, "MESSAGE flags 0x%02x: a ZMTP 3.1 command (PING, PONG, SUBSCRIBE, CANCEL) inside MESSAGE, "
                "which this codec was not set to take (kc_curve_set_command_flag)", plain [0]);
        goto cleanup;
    }
    self->peer_nonce = sequence;
    *payload = plain + 1;
    *payload_size = size - KC_CURVE_MESSAGE_OVERHEAD;
    *flags = plain [0];
    rc = 0;
cleanup:
    if (rc) {
        s_fail (self);
    }
    return rc;
}

//  --- Test hooks ------------------------------------------------------------

#ifdef KC_CURVE_HOOKS
void
kc_curve_test_transient (kc_curve_t *self, const uint8_t public_key [static KC_KEY_BYTES],
                         const uint8_t secret_key [static KC_KEY_BYTES])
{
    assert (self);
    memcpy (self->transient_key, public_key, 32);
    memcpy (self->secrets->transient, secret_key, 32);
    self->transient_set = true;
}

void
kc_curve_test_tamper (kc_curve_t *self, kc_curve_tamper_fn *tamper, void *arg)
{
    assert (self);
    self->tamper = tamper;
    self->tamper_arg = arg;
}

void
kc_curve_test_nonce (kc_curve_t *self, uint64_t nonce)
{
    assert (self);
    self->sent_nonce = nonce;
}

void
kc_curve_test_message (kc_curve_t *self, uint64_t nonce, uint8_t flags,
                       const uint8_t *payload, size_t size, uint8_t *command)
{
    assert (self);
    assert (self->state == S_CONNECTED);
    s_seal_message (self, nonce, flags, payload, size, command);
}
#endif

//  --- Self test -------------------------------------------------------------
//  Known answers from reference/curvezmq.md section 8 (libsodium 1.0.18,
//  cross-checked with tweetnacl-js), then every refusal the server and the
//  client owe, each on a fresh codec pair.

#ifdef KC_TEST_HOOKS
typedef struct {
    kc_curve_t *client;
    kc_curve_t *server;
    uint8_t client_public [32], client_secret [32];
    uint8_t server_public [32], server_secret [32];
    int status;                         //  what the authorizer answers
    int calls;                          //  authorizer calls
} s_pair_t;

typedef struct {
    const char *what;                   //  which tamper point
    size_t offset;                      //  byte to flip...
    uint8_t mask;                       //  ...with this mask, if non-zero
    const void *append;                 //  bytes to add at the end
    size_t append_size;
    size_t cut;                         //  bytes to drop from the end
} s_tamper_t;

static int
s_test_authorize (const uint8_t client_key [KC_KEY_BYTES], const kc_meta_t *metadata,
                  void *arg, kc_curve_identity_t *identity)
{
    s_pair_t *pair = arg;
    pair->calls++;
    assert (memcmp (client_key, pair->client_public, 32) == 0);
    assert (memcmp (identity->key, client_key, 32) == 0);
    const uint8_t *type = kc_meta_get (metadata, KC_CURVE_SOCKET_TYPE, NULL);
    assert (type && KC_STREQ ((const char *) type, "DEALER"));
    snprintf (identity->name, sizeof identity->name, "db-1.example");
    snprintf (identity->tags [0], sizeof identity->tags [0], "role=db");
    identity->tag_count = 1;
    memset (identity->key, 0xee, 32);           //  the codec must restore it
    return pair->status;
}

static void
s_test_tamper (void *arg, const char *what, kc_writer_t *data)
{
    s_tamper_t *tamper = arg;
    if (!KC_STREQ (what, tamper->what)) {
        return;
    }
    if (tamper->mask && tamper->offset < data->size) {
        data->data [tamper->offset] ^= tamper->mask;
    }
    if (tamper->append_size) {
        kc_write_bytes (data, tamper->append, tamper->append_size);
    }
    data->size -= tamper->cut < data->size ? tamper->cut : data->size;
}

static void
s_pair_new (s_pair_t *pair)
{
    memset (pair, 0, sizeof *pair);
    crypto_box_keypair (pair->client_public, pair->client_secret);
    crypto_box_keypair (pair->server_public, pair->server_secret);
    pair->client = kc_curve_new_client (pair->client_public, pair->client_secret,
                                        pair->server_public);
    pair->server = kc_curve_new_server (pair->server_public, pair->server_secret);
    pair->status = KC_CURVE_ALLOW;
    kc_curve_set_authorizer (pair->server, s_test_authorize, pair);
    kc_why_t why;
    assert (kc_curve_set_metadata (pair->client, KC_CURVE_SOCKET_TYPE, "DEALER", 6, &why) == 0);
    assert (kc_curve_set_metadata (pair->server, KC_CURVE_SOCKET_TYPE, "ROUTER", 6, &why) == 0);
}

static void
s_pair_destroy (s_pair_t *pair)
{
    kc_curve_destroy (&pair->client);
    kc_curve_destroy (&pair->server);
}

//  One step; returns a malloc'd copy of the output (or NULL) in *out.
static int
s_step (kc_curve_t *codec, const uint8_t *input, size_t size, uint8_t **out, size_t *out_size,
        kc_why_t *why)
{
    const uint8_t *output;
    int rc = kc_curve_handshake (codec, input, size, &output, out_size, why);
    *out = NULL;
    if (output) {
        *out = malloc (*out_size);
        assert (*out);
        memcpy (*out, output, *out_size);
    }
    return rc;
}

//  Runs the whole handshake; 0 once both are connected, or -1 at the
//  first failure.
static int
s_pair_run (s_pair_t *pair, kc_why_t *why)
{
    uint8_t *command = NULL, *reply = NULL;
    size_t size = 0, reply_size = 0;
    int rc = s_step (pair->client, NULL, 0, &command, &size, why);
    for (int turn = 0; rc == 0 && command && turn < 4; turn++) {
        kc_curve_t *codec = turn % 2 == 0 ? pair->server : pair->client;
        rc = s_step (codec, command, size, &reply, &reply_size, why);
        free (command);
        command = reply;
        size = reply_size;
    }
    free (command);
    if (rc == 0 && !(kc_curve_connected (pair->client) && kc_curve_connected (pair->server))) {
        rc = kc_why (why, "handshake did not complete");
    }
    return rc;
}

//  Runs the handshake until the client has made INITIATE (a malloc'd copy).
static uint8_t *
s_pair_initiate (s_pair_t *pair, size_t *size)
{
    kc_why_t why;
    uint8_t *hello, *welcome, *initiate;
    size_t hello_size, welcome_size;
    assert (s_step (pair->client, NULL, 0, &hello, &hello_size, &why) == 0);
    assert (s_step (pair->server, hello, hello_size, &welcome, &welcome_size, &why) == 0);
    assert (s_step (pair->client, welcome, welcome_size, &initiate, size, &why) == 0);
    free (hello);
    free (welcome);
    return initiate;
}

static bool
s_wiped (const kc_curve_t *codec)
{
    return sodium_is_zero ((const uint8_t *) codec->secrets, sizeof *codec->secrets);
}

//  Feeds input to codec and expects a final failure whose reason contains
//  text, with no output (or the ERROR in error, if given).
static void
s_expect_fail (kc_curve_t *codec, const uint8_t *input, size_t size, const char *text,
               const char *error)
{
    kc_why_t why;
    kc_why_clear (&why);
    const uint8_t *output;
    size_t output_size;
    int rc = kc_curve_handshake (codec, input, size, &output, &output_size, &why);
    if (rc != -1 || !strstr (why.text, text)) {
        fprintf (stderr, "kc_curve: expected failure '%s', got rc=%d '%s'\n", text, rc, why.text);
        assert (false);
    }
    if (error) {
        assert (output && output_size == strlen (error) && memcmp (output, error, output_size) == 0);
        assert (KC_STREQ (kc_curve_last_command (codec), "ERROR"));
    }
    else {
        assert (output == NULL && output_size == 0 && kc_curve_last_command (codec) == NULL);
    }
    assert (kc_curve_failed (codec) && s_wiped (codec));
    //  A failed codec refuses everything after
    assert (kc_curve_handshake (codec, input, size, &output, &output_size, &why) == -1);
    uint8_t message [KC_CURVE_MESSAGE_OVERHEAD];
    assert (kc_curve_encode (codec, NULL, 0, 0, message, &why) == -1);
}

//  A fresh pair whose step-th command is tampered with; expects the peer to
//  refuse it with a reason containing text.
static void
s_expect_tampered (s_tamper_t tamper, const char *text)
{
    s_pair_t pair;
    s_pair_new (&pair);
    bool server_side = strstr ("HELLO box|HELLO|INITIATE box|INITIATE|vouch box", tamper.what)
                    != NULL;
    kc_curve_test_tamper (server_side ? pair.client : pair.server, s_test_tamper, &tamper);
    kc_why_t why;
    kc_why_clear (&why);
    assert (s_pair_run (&pair, &why) == -1);
    if (!strstr (why.text, text)) {
        fprintf (stderr, "kc_curve: tampered %s: expected '%s', got '%s'\n",
                 tamper.what, text, why.text);
        assert (false);
    }
    assert (kc_curve_failed (server_side ? pair.server : pair.client));
    assert (s_wiped (server_side ? pair.server : pair.client));
    s_pair_destroy (&pair);
}

static uint64_t
s_fake_clock (void *arg)
{
    return *(uint64_t *) arg;
}

static void
s_test_known_answers (void)
{
    uint8_t client_public [32], client_secret [32], server_public [32], server_secret [32];
    uint8_t expected [80], digest [32];
    assert (kc_unhex ("BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518",
                      client_public, 32) == 0);
    assert (kc_unhex ("7BB864B489AFA3671FBE69101F94B38972F24816DFB01B51656B3FEC8DFD0888",
                      client_secret, 32) == 0);
    assert (kc_unhex ("54FCBA24E93249969316FB617C872BB0C1D1FF14800427C594CBFACF1BC2D652",
                      server_public, 32) == 0);
    assert (kc_unhex ("8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7",
                      server_secret, 32) == 0);
    uint8_t key [32];
    assert (crypto_box_beforenm (key, server_public, client_secret) == 0);
    assert (kc_unhex ("0e8790cb0dc8703af2533cc8594eecfbf62ca560a66ebee1259cc0a30435c6f3",
                      expected, 32) == 0);
    assert (memcmp (key, expected, 32) == 0);

    //  The test keys serve as transient keys on both sides (KAT only)
    s_pair_t pair;
    s_pair_new (&pair);
    kc_curve_destroy (&pair.client);
    kc_curve_destroy (&pair.server);
    memcpy (pair.server_public, server_public, 32);
    memcpy (pair.server_secret, server_secret, 32);
    pair.client = kc_curve_new_client (pair.client_public, pair.client_secret, server_public);
    pair.server = kc_curve_new_server (server_public, server_secret);
    kc_curve_set_authorizer (pair.server, s_test_authorize, &pair);
    kc_curve_test_transient (pair.client, client_public, client_secret);
    kc_curve_test_transient (pair.server, server_public, server_secret);
    kc_why_t why;
    assert (kc_curve_set_metadata (pair.client, KC_CURVE_SOCKET_TYPE, "DEALER", 6, &why) == 0);

    const uint8_t *hello;
    size_t size;
    assert (kc_curve_handshake (pair.client, NULL, 0, &hello, &size, &why) == 0);
    assert (size == KC_CURVE_HELLO_BYTES);
    assert (kc_unhex ("3fc780d97ca169864dd85deee9599a695b6a48ab29f486181e07d0ce626ea1d2"
                      "f7413adb9692fbe1327a7ea60c93d4d355ab4f765756b3787193af9155f64666"
                      "68fa6cabb8f0123fb4a112499c31de7a", expected, 80) == 0);
    assert (memcmp (hello + 120, expected, 80) == 0);
    crypto_hash_sha256 (digest, hello, size);
    assert (kc_unhex ("597ad35429e4685bc02d97bf8ee2ba5bb42add416ca7ee26d323154c86bead2d",
                      expected, 32) == 0);
    assert (memcmp (digest, expected, 32) == 0);
    //  Finish the handshake from this HELLO, then the first client MESSAGE
    uint8_t *welcome, *initiate, *ready;
    size_t welcome_size, initiate_size, ready_size;
    assert (kc_curve_last_command (pair.client) && KC_STREQ (kc_curve_last_command (pair.client), "HELLO"));
    assert (s_step (pair.server, hello, size, &welcome, &welcome_size, &why) == 0);
    assert (KC_STREQ (kc_curve_last_command (pair.server), "WELCOME"));
    assert (s_step (pair.client, welcome, welcome_size, &initiate, &initiate_size, &why) == 0);
    assert (KC_STREQ (kc_curve_last_command (pair.client), "INITIATE"));
    assert (s_step (pair.server, initiate, initiate_size, &ready, &ready_size, &why) == 0);
    assert (KC_STREQ (kc_curve_last_command (pair.server), "READY"));
    free (welcome);
    assert (s_step (pair.client, ready, ready_size, &welcome, &welcome_size, &why) == 0);
    assert (welcome == NULL && kc_curve_connected (pair.client) && kc_curve_last_command (pair.client) == NULL);
    uint8_t message [KC_CURVE_MESSAGE_OVERHEAD + 5];
    assert (kc_curve_encode (pair.client, "Hello", 5, 0, message, &why) == 0);
    assert (KC_STREQ (kc_curve_last_command (pair.client), "MESSAGE"));
    assert (memcmp (message, "\x07MESSAGE\0\0\0\0\0\0\0\x03", 16) == 0);
    assert (kc_unhex ("e11befc295ceaecf842823ce538eb32aa4317ce5c449", expected, 22) == 0);
    assert (memcmp (message + 16, expected, 22) == 0);

    //  The subkey path makes exactly crypto_box_easy_afternm's bytes, both
    //  ways, at every size around the keystream boundaries
    uint8_t *plain = malloc (70000), *box = malloc (70000 + 16);
    uint8_t *command = malloc (70000 + KC_CURVE_MESSAGE_OVERHEAD), *payload;
    assert (plain && box && command);
    randombytes_buf (plain, 70000);
    uint64_t counters [2] = { 3, 1 };                   //  last sent by client, server
    for (size_t length = 0; length < 70000; length = length < 300 ? length + 1 : length * 2 + 1) {
        for (int side = 0; side < 2; side++) {
            kc_curve_t *from = side ? pair.server : pair.client;
            kc_curve_t *to = side ? pair.client : pair.server;
            int flags = length % 2 ? KC_CURVE_MORE : 0;
            assert (kc_curve_encode (from, plain + 1, length, flags, command, &why) == 0);
            uint8_t nonce [24];
            s_short_nonce (nonce, side ? "CurveZMQMESSAGES" : "CurveZMQMESSAGEC", ++counters [side]);
            plain [0] = (uint8_t) flags;
            crypto_box_easy_afternm (box, plain, length + 1, nonce, key);
            assert (memcmp (command + 8, nonce + 16, 8) == 0);
            assert (memcmp (command + 16, box, length + 17) == 0);
            size_t payload_size;
            int got;
            assert (kc_curve_decode (to, command, length + KC_CURVE_MESSAGE_OVERHEAD, &payload,
                                     &payload_size, &got, &why) == 0);
            assert (payload_size == length && memcmp (payload, plain + 1, length) == 0);
            assert (got == flags);
        }
    }
    free (plain);
    free (box);
    free (command);
    free (initiate);
    free (ready);
    s_pair_destroy (&pair);
}

static void
s_test_round_trip (void)
{
    s_pair_t pair;
    s_pair_new (&pair);
    kc_why_t why;
    uint8_t head [32];
    memset (head, 0xab, sizeof head);
    assert (kc_curve_set_metadata (pair.client, KC_CURVE_IDENTITY, "", 0, &why) == 0);
    assert (kc_curve_set_metadata (pair.server, KC_CURVE_HEAD, head, 32, &why) == 0);
    assert (kc_curve_set_metadata (pair.client, "bad name", "", 0, &why) == -1);
    assert (kc_curve_identity (pair.server) == NULL && kc_curve_peer_metadata (pair.server) == NULL);
    assert (s_pair_run (&pair, &why) == 0);
    assert (pair.calls == 1);
    assert (kc_curve_set_metadata (pair.client, "X-Late", "", 0, &why) == -1);

    //  Who connected, and what each side told the other
    const kc_curve_identity_t *identity = kc_curve_identity (pair.server);
    assert (identity && memcmp (identity->key, pair.client_public, 32) == 0);
    assert (KC_STREQ (identity->name, "db-1.example"));
    assert (identity->tag_count == 1 && KC_STREQ (identity->tags [0], "role=db"));
    assert (kc_curve_identity (pair.client) == NULL);
    size_t size;
    const uint8_t *value = kc_meta_get (kc_curve_peer_metadata (pair.client), KC_CURVE_HEAD, &size);
    assert (value && size == 32 && memcmp (value, head, 32) == 0);
    value = kc_meta_get (kc_curve_peer_metadata (pair.server), KC_CURVE_IDENTITY, &size);
    assert (value && size == 0);

    //  Only the two MESSAGE subkeys survive the handshake
    for (int side = 0; side < 2; side++) {
        const s_secrets_t *secrets = (side ? pair.server : pair.client)->secrets;
        assert (sodium_is_zero (secrets->permanent, 32) && sodium_is_zero (secrets->transient, 32));
        assert (sodium_is_zero (secrets->hello, 32) && sodium_is_zero (secrets->vouch, 32));
        assert (sodium_is_zero (secrets->cookie, 32) && sodium_is_zero (secrets->scratch, 64));
        assert (sodium_is_zero (secrets->session, 32));
        assert (!sodium_is_zero (secrets->send, 32) && !sodium_is_zero (secrets->receive, 32));
    }
    assert (memcmp (pair.client->secrets->send, pair.server->secrets->receive, 32) == 0);
    assert (memcmp (pair.client->secrets->receive, pair.server->secrets->send, 32) == 0);

    //  Multipart both ways, empty parts, and a 64 KiB part sealed in place
    size_t big = 65536;
    uint8_t *command = malloc (big + KC_CURVE_MESSAGE_OVERHEAD);
    assert (command);
    for (int round = 0; round < 3; round++) {
        kc_curve_t *from = round % 2 ? pair.server : pair.client;
        kc_curve_t *to = round % 2 ? pair.client : pair.server;
        const char *parts [3] = { "Hello", "", "World" };
        for (int i = 0; i < 3; i++) {
            size_t length = strlen (parts [i]);
            int flags = i < 2 ? KC_CURVE_MORE : 0;
            assert (kc_curve_encode (from, parts [i], length, flags, command, &why) == 0);
            uint8_t *payload;
            size_t payload_size;
            int got;
            assert (kc_curve_decode (to, command, length + KC_CURVE_MESSAGE_OVERHEAD,
                                     &payload, &payload_size, &got, &why) == 0);
            assert (payload_size == length && memcmp (payload, parts [i], length) == 0);
            assert (got == flags);
        }
    }
    for (size_t i = 0; i < big; i++) {
        command [KC_CURVE_MESSAGE_OVERHEAD + i] = (uint8_t) (i * 7);
    }
    assert (kc_curve_encode (pair.server, command + KC_CURVE_MESSAGE_OVERHEAD, big, 0,
                             command, &why) == 0);
    uint8_t *payload;
    size_t payload_size;
    int flags;
    assert (kc_curve_decode (pair.client, command, big + KC_CURVE_MESSAGE_OVERHEAD, &payload,
                             &payload_size, &flags, &why) == 0);
    assert (payload_size == big && payload [1000] == (uint8_t) 7000 && flags == 0);
    free (command);
    s_pair_destroy (&pair);
}

static void
s_test_authorizer (void)
{
    static const struct {
        int status;
        const char *error;              //  NULL: close without ERROR
        const char *reason;
    } cases [] = {
        { KC_CURVE_DENY, "\x05" "ERROR\x03" "400", "not authorised (400)" },
        { KC_CURVE_FAILURE, "\x05" "ERROR\x03" "500", "authorizer failed (500)" },
        { 123, "\x05" "ERROR\x03" "500", "(500)" },
        { KC_CURVE_RETRY, NULL, "retry later (300)" },
        { -1, "\x05" "ERROR\x03" "400", "not authorised (400)" }     //  no authorizer
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        s_pair_t pair;
        s_pair_new (&pair);
        pair.status = cases [i].status;
        if (cases [i].status == -1) {
            kc_curve_set_authorizer (pair.server, NULL, NULL);
        }
        size_t size;
        uint8_t *initiate = s_pair_initiate (&pair, &size);
        s_expect_fail (pair.server, initiate, size, cases [i].reason, cases [i].error);
        assert (kc_curve_identity (pair.server) == NULL);
        if (cases [i].error) {
            //  The client reports the server's reason
            char expected [32];
            snprintf (expected, sizeof expected, "ERROR '%s'", cases [i].error + 7);
            s_expect_fail (pair.client, (const uint8_t *) cases [i].error,
                           strlen (cases [i].error), expected, NULL);
        }
        free (initiate);
        s_pair_destroy (&pair);
    }
}

static void
s_test_hello (void)
{
    s_pair_t pair;
    s_pair_new (&pair);
    kc_why_t why;
    const uint8_t *output;
    size_t size;
    assert (kc_curve_handshake (pair.client, NULL, 0, &output, &size, &why) == 0);
    uint8_t hello [KC_CURVE_HELLO_BYTES + 1];
    memcpy (hello, output, KC_CURVE_HELLO_BYTES);
    hello [KC_CURVE_HELLO_BYTES] = 0;
    //  A client starts with no input; a server does not take one
    assert (kc_curve_handshake (pair.client, hello, 10, &output, &size, &why) == -1);
    s_pair_destroy (&pair);

    struct {
        size_t offset;                  //  byte to flip, or the size to feed
        uint8_t mask;
        const char *reason;
    } cases [] = {
        { 199, 0, "got HELLO of 199 bytes" },
        { 201, 0, "got HELLO of 201 bytes" },
        { 5, 0x01, "got an unknown command" },              //  "HELLN"
        { 0, 0x01, "got an unknown command" },              //  name length
        { 6, 0x03, "version 2.0" },
        { 7, 0x01, "version 1.1" },
        { 8, 0x01, "padding is not all zero" },
        { 79, 0x80, "padding is not all zero" },
        { 85, 0x01, "signature box does not open" },        //  C'
        { 113, 0x01, "signature box does not open" },       //  nonce
        { 150, 0x01, "signature box does not open" }        //  box
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        s_pair_new (&pair);
        assert (kc_curve_handshake (pair.client, NULL, 0, &output, &size, &why) == 0);
        uint8_t copy [KC_CURVE_HELLO_BYTES + 1] = { 0 };
        memcpy (copy, output, size);
        size_t feed = KC_CURVE_HELLO_BYTES;
        if (cases [i].mask) {
            copy [cases [i].offset] ^= cases [i].mask;
        }
        else {
            feed = cases [i].offset;
        }
        s_expect_fail (pair.server, copy, feed, cases [i].reason, NULL);
        s_pair_destroy (&pair);
    }
    //  Every truncation, and nothing at all
    for (size_t cut = 0; cut < KC_CURVE_HELLO_BYTES; cut++) {
        s_pair_new (&pair);
        assert (kc_curve_handshake (pair.client, NULL, 0, &output, &size, &why) == 0);
        uint8_t *exact = malloc (cut ? cut : 1);
        memcpy (exact, output, cut);
        s_expect_fail (pair.server, cut ? exact : NULL, cut, "expected HELLO", NULL);
        free (exact);
        s_pair_destroy (&pair);
    }
    //  A low-order C' (all zero) with a well-formed HELLO around it
    s_pair_new (&pair);
    uint8_t zero [KC_CURVE_HELLO_BYTES] = "\x05HELLO\x01\x00";
    s_expect_fail (pair.server, zero, sizeof zero, "low-order point", NULL);
    s_pair_destroy (&pair);
    //  A box that opens but does not hold 64 zeros
    s_expect_tampered ((s_tamper_t) { .what = "HELLO box", .offset = 3, .mask = 1 },
                       "does not hold 64 zero bytes");
    //  A second HELLO where INITIATE is due
    s_pair_new (&pair);
    assert (kc_curve_handshake (pair.client, NULL, 0, &output, &size, &why) == 0);
    memcpy (hello, output, size);
    assert (kc_curve_handshake (pair.server, hello, size, &output, &size, &why) == 0);
    s_expect_fail (pair.server, hello, KC_CURVE_HELLO_BYTES, "expected INITIATE", NULL);
    s_pair_destroy (&pair);
}

static void
s_test_welcome (void)
{
    s_expect_tampered ((s_tamper_t) { .what = "WELCOME", .offset = 1, .mask = 1 },
                       "expected WELCOME");
    s_expect_tampered ((s_tamper_t) { .what = "WELCOME", .cut = 1 }, "of 167 bytes");
    s_expect_tampered ((s_tamper_t) { .what = "WELCOME", .append = "", .append_size = 1 },
                       "of 169 bytes");
    s_expect_tampered ((s_tamper_t) { .what = "WELCOME", .offset = 10, .mask = 1 },
                       "WELCOME box does not open");
    s_expect_tampered ((s_tamper_t) { .what = "WELCOME", .offset = 100, .mask = 1 },
                       "WELCOME box does not open");
    //  A well-boxed WELCOME carrying a low-order S'
    static uint8_t zeros [32];
    s_pair_t pair;
    s_pair_new (&pair);
    kc_curve_test_transient (pair.server, zeros, zeros);
    kc_why_t why;
    assert (s_pair_run (&pair, &why) == -1 && strstr (why.text, "low-order point"));
    assert (kc_curve_failed (pair.client) && s_wiped (pair.client));
    s_pair_destroy (&pair);
    //  A client talking to the wrong server key never gets past HELLO
    s_pair_new (&pair);
    pair.server_public [0] ^= 1;
    kc_curve_destroy (&pair.client);
    pair.client = kc_curve_new_client (pair.client_public, pair.client_secret,
                                       pair.server_public);
    assert (s_pair_run (&pair, &why) == -1 && strstr (why.text, "signature box does not open"));
    s_pair_destroy (&pair);
    //  ERROR where WELCOME is due, well-formed and not
    const char *errors [] = { "\x05" "ERROR\x00", "\x05" "ERROR\x04" "400", "\x05" "ERROR" };
    const char *reasons [] = { "ERROR ''", "malformed ERROR", "malformed ERROR" };
    for (int i = 0; i < 3; i++) {
        s_pair_new (&pair);
        const uint8_t *output;
        size_t size;
        assert (kc_curve_handshake (pair.client, NULL, 0, &output, &size, &why) == 0);
        s_expect_fail (pair.client, (const uint8_t *) errors [i], i == 0 ? 7 : strlen (errors [i]),
                       reasons [i], NULL);
        s_pair_destroy (&pair);
    }
}

static void
s_test_initiate (void)
{
    static const uint8_t overflow [] = "\x01" "a\x7f\xff\xff\xff" "xy";
    struct {
        size_t offset;
        uint8_t mask;
        const char *reason;
    } flips [] = {
        { 3, 0x01, "expected INITIATE" },                   //  name
        { 9, 0x01, "cookie does not open" },                //  cookie nonce
        { 60, 0x01, "cookie does not open" },               //  cookie box
        { 112, 0x01, "box does not open" },                 //  nonce
        { 200, 0x01, "box does not open" }                  //  box
    };
    for (size_t i = 0; i < sizeof flips / sizeof flips [0]; i++) {
        s_pair_t pair;
        s_pair_new (&pair);
        size_t size;
        uint8_t *initiate = s_pair_initiate (&pair, &size);
        initiate [flips [i].offset] ^= flips [i].mask;
        s_expect_fail (pair.server, initiate, size, flips [i].reason, NULL);
        free (initiate);
        s_pair_destroy (&pair);
    }
    //  Every truncation
    for (size_t cut = 0; cut < KC_CURVE_INITIATE_BYTES + 2; cut++) {
        s_pair_t pair;
        s_pair_new (&pair);
        size_t size;
        uint8_t *initiate = s_pair_initiate (&pair, &size);
        assert (size == KC_CURVE_INITIATE_BYTES + 22);     //  Socket-Type DEALER
        uint8_t *exact = malloc (cut ? cut : 1);
        memcpy (exact, initiate, cut);
        s_expect_fail (pair.server, exact, cut,
                       cut < KC_CURVE_INITIATE_BYTES ? "expected INITIATE" : "box does not open",
                       NULL);
        free (exact);
        free (initiate);
        s_pair_destroy (&pair);
    }
    //  A cookie from another handshake with the same server key
    s_pair_t one, two;
    s_pair_new (&one);
    s_pair_new (&two);
    kc_curve_destroy (&two.server);
    two.server = kc_curve_new_server (one.server_public, one.server_secret);
    kc_curve_destroy (&two.client);
    two.client = kc_curve_new_client (two.client_public, two.client_secret, one.server_public);
    size_t size_one, size_two;
    uint8_t *initiate_one = s_pair_initiate (&one, &size_one);
    uint8_t *initiate_two = s_pair_initiate (&two, &size_two);
    s_expect_fail (two.server, initiate_one, size_one, "cookie does not open", NULL);
    //  A cookie under this K that holds another C' (only K's owner can make one)
    uint8_t plain [64], nonce [24];
    memcpy (plain, two.client->transient_key, 32);
    memcpy (plain + 32, one.server->secrets->transient, 32);
    s_long_nonce (nonce, "COOKIE--", initiate_one + 9);
    crypto_secretbox_easy (initiate_one + 25, plain, 64, nonce, one.server->secrets->cookie);
    s_expect_fail (one.server, initiate_one, size_one, "cookie is not from this handshake", NULL);
    free (initiate_one);
    free (initiate_two);
    s_pair_destroy (&one);
    s_pair_destroy (&two);

    //  Inside the box: vouch, metadata, nonce order
    s_expect_tampered ((s_tamper_t) { .what = "vouch box", .offset = 40, .mask = 1 },
                       "vouch names another server");
    s_expect_tampered ((s_tamper_t) { .what = "vouch box", .offset = 0, .mask = 1 },
                       "vouch is for another transient key");
    s_expect_tampered ((s_tamper_t) { .what = "INITIATE box", .offset = 40, .mask = 1 },
                       "vouch does not open");
    s_expect_tampered ((s_tamper_t) { .what = "INITIATE box", .offset = 2, .mask = 1 },
                       "vouch does not open");                         //  another C
    s_expect_tampered ((s_tamper_t) { .what = "INITIATE box", .cut = 30 },
                       "of 249 bytes");                                //  box under 144
    s_expect_tampered ((s_tamper_t) { .what = "INITIATE box", .append = overflow,
                                      .append_size = sizeof overflow - 1 }, "exceeds");
    s_expect_tampered ((s_tamper_t) { .what = "INITIATE box", .append = "\x01",
                                      .append_size = 1 }, "runs past");
    s_expect_tampered ((s_tamper_t) { .what = "INITIATE box", .append = "\x0bSocket-Type\0\0\0\0",
                                      .append_size = 16 }, "appears twice");
    uint8_t *huge = calloc (1, KC_CURVE_METADATA_MAX + 1);
    assert (huge);
    s_expect_tampered ((s_tamper_t) { .what = "INITIATE box", .append = huge,
                                      .append_size = KC_CURVE_METADATA_MAX }, "exceeds");
    free (huge);
    s_pair_t pair;
    s_pair_new (&pair);
    kc_why_t why;
    const uint8_t *output;
    size_t size;
    assert (kc_curve_handshake (pair.client, NULL, 0, &output, &size, &why) == 0);
    uint8_t *welcome;
    assert (s_step (pair.server, output, size, &welcome, &size, &why) == 0);
    kc_curve_test_nonce (pair.client, 0);                //  INITIATE reuses HELLO's 1
    assert (kc_curve_handshake (pair.client, welcome, size, &output, &size, &why) == 0);
    s_expect_fail (pair.server, output, size, "nonce 1 is not above HELLO's 1", NULL);
    free (welcome);
    s_pair_destroy (&pair);

    //  Large metadata within the limit is fine (heap, exact size)
    s_pair_new (&pair);
    uint8_t *large = calloc (1, 60000);
    assert (large);
    assert (kc_curve_set_metadata (pair.client, "X-Large", large, 60000, &why) == 0);
    assert (s_pair_run (&pair, &why) == 0);
    assert (kc_meta_get (kc_curve_peer_metadata (pair.server), "x-large", &size) && size == 60000);
    free (large);
    s_pair_destroy (&pair);

    //  The cookie key lives 60 s after WELCOME, then the handshake is dead
    for (int late = 0; late < 3; late++) {
        uint64_t now = 1000;
        s_pair_new (&pair);
        kc_curve_set_clock (pair.server, s_fake_clock, &now);
        uint8_t *initiate = s_pair_initiate (&pair, &size);
        now += KC_CURVE_COOKIE_TTL_MS - (late ? 0 : 1);
        if (late == 0) {
            assert (!kc_curve_expired (pair.server));
            assert (s_step (pair.server, initiate, size, &welcome, &size, &why) == 0);
            free (welcome);
            assert (!kc_curve_expired (pair.server));
        }
        else
        if (late == 1) {
            s_expect_fail (pair.server, initiate, size, "cookie key expired", NULL);
            assert (kc_curve_expired (pair.server));
        }
        else {
            assert (kc_curve_expired (pair.server));
            assert (kc_curve_failed (pair.server) && s_wiped (pair.server));
        }
        free (initiate);
        s_pair_destroy (&pair);
    }
}

static void
s_test_ready (void)
{
    s_expect_tampered ((s_tamper_t) { .what = "READY", .offset = 2, .mask = 1 },
                       "expected READY");
    s_expect_tampered ((s_tamper_t) { .what = "READY", .cut = 23 }, "READY of 29 bytes");
    s_expect_tampered ((s_tamper_t) { .what = "READY", .offset = 20, .mask = 1 },
                       "READY box does not open");
    s_expect_tampered ((s_tamper_t) { .what = "READY", .offset = 13, .mask = 1 },
                       "READY box does not open");
    s_expect_tampered ((s_tamper_t) { .what = "READY box", .append = "\x01", .append_size = 1 },
                       "READY: metadata");
    uint8_t *huge = calloc (1, KC_CURVE_METADATA_MAX + 1);
    assert (huge);
    s_expect_tampered ((s_tamper_t) { .what = "READY box", .append = huge,
                                      .append_size = KC_CURVE_METADATA_MAX + 1 }, "exceeds");
    free (huge);
    s_expect_tampered ((s_tamper_t) { .what = "READY", .offset = 0, .mask = 0x07 },
                       "expected READY");                              //  ERROR-sized name
}

static void
s_test_message (void)
{
    s_pair_t pair;
    s_pair_new (&pair);
    kc_why_t why;
    uint8_t command [64], copy [64], *payload;
    size_t size;
    int flags;
    //  Nothing before the handshake: encode refuses (no harm), decode fails
    assert (kc_curve_encode (pair.client, "x", 1, 0, command, &why) == -1);
    assert (!kc_curve_failed (pair.client));
    memset (command, 0, sizeof command);
    memcpy (command, "\x07MESSAGE", 8);
    assert (kc_curve_decode (pair.server, command, 40, &payload, &size, &flags, &why) == -1);
    assert (strstr (why.text, "MESSAGE before the handshake") && s_wiped (pair.server));
    s_pair_destroy (&pair);
    //  MESSAGE where READY is due
    s_pair_new (&pair);
    size_t initiate_size;
    uint8_t *initiate = s_pair_initiate (&pair, &initiate_size);
    const uint8_t *ready;
    assert (kc_curve_handshake (pair.server, initiate, initiate_size, &ready, &size, &why) == 0);
    assert (kc_curve_encode (pair.server, "early", 5, 0, command, &why) == 0);
    s_expect_fail (pair.client, command, 38, "expected READY", NULL);
    free (initiate);
    s_pair_destroy (&pair);

    struct {
        int mode;                       //  0 flip a byte, 1 size, 2 forge nonce+flags
        size_t at;
        uint64_t nonce;
        uint8_t flags;
        const char *reason;             //  NULL: accepted
    } cases [] = {
        { 0, 0, 0, 0, "expected MESSAGE" },
        { 0, 7, 0, 0, "expected MESSAGE" },
        { 0, 15, 0, 0, "box does not open" },               //  nonce
        { 0, 16, 0, 0, "box does not open" },               //  MAC
        { 0, 35, 0, 0, "box does not open" },               //  payload
        { 1, 32, 0, 0, "got MESSAGE of 32 bytes" },
        { 1, 0, 0, 0, "got an unknown command of 0 bytes" },
        { 2, 0, 1, 0, "nonce 1 is not above 1" },           //  equal to READY's
        { 2, 0, 2, 0, NULL },
        { 2, 0, 9, KC_CURVE_MORE, NULL },                   //  gaps are fine
        { 2, 0, 2, 0, "nonce 2 is not above 9" },           //  lower
        { 2, 0, 10, 0x04, "reserved bits" },
        { 2, 0, 11, 0x80, "reserved bits" },
        { 2, 0, 12, KC_CURVE_COMMAND, "not set to take" }   //  strict by default
    };
    s_pair_new (&pair);
    assert (s_pair_run (&pair, &why) == 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        if (kc_curve_failed (pair.client)) {
            s_pair_destroy (&pair);
            s_pair_new (&pair);
            assert (s_pair_run (&pair, &why) == 0);
            kc_curve_test_nonce (pair.server, 9);
        }
        size_t command_size = 3 + KC_CURVE_MESSAGE_OVERHEAD;
        if (cases [i].mode == 2) {
            kc_curve_test_message (pair.server, cases [i].nonce, cases [i].flags,
                                   (const uint8_t *) "abc", 3, command);
        }
        else {
            assert (kc_curve_encode (pair.server, "abc", 3, 0, command, &why) == 0);
            if (cases [i].mode == 0) {
                command [cases [i].at] ^= 1;
            }
            else {
                command_size = cases [i].at;
            }
        }
        int rc = kc_curve_decode (pair.client, command, command_size, &payload, &size,
                                  &flags, &why);
        if (cases [i].reason) {
            if (rc != -1 || !strstr (why.text, cases [i].reason)) {
                fprintf (stderr, "kc_curve: MESSAGE case %zu: '%s'\n", i, why.text);
                assert (false);
            }
            assert (kc_curve_failed (pair.client) && s_wiped (pair.client));
        }
        else {
            assert (rc == 0 && size == 3 && memcmp (payload, "abc", 3) == 0);
            assert (flags == cases [i].flags);
        }
    }
    s_pair_destroy (&pair);

    //  A replayed command (the same bytes twice)
    s_pair_new (&pair);
    assert (s_pair_run (&pair, &why) == 0);
    assert (kc_curve_encode (pair.client, "abc", 3, 0, command, &why) == 0);
    memcpy (copy, command, sizeof copy);
    assert (kc_curve_decode (pair.server, command, 36, &payload, &size, &flags, &why) == 0);
    assert (kc_curve_decode (pair.server, copy, 36, &payload, &size, &flags, &why) == -1);
    assert (strstr (why.text, "replayed"));
    //  The client direction is unaffected by the server's failure
    assert (kc_curve_encode (pair.client, "abc", 3, 0, command, &why) == 0);
    assert (kc_curve_encode (pair.server, "abc", 3, 0, command, &why) == -1);
    s_pair_destroy (&pair);

    //  The libzmq COMMAND bit, when allowed, both ways; bits 7-2 never
    s_pair_new (&pair);
    assert (s_pair_run (&pair, &why) == 0);
    assert (kc_curve_encode (pair.client, "", 0, KC_CURVE_COMMAND, command, &why) == -1);
    assert (kc_curve_encode (pair.client, "", 0, 0x04, command, &why) == -1);
    assert (!kc_curve_failed (pair.client));
    kc_curve_set_command_flag (pair.client, true);
    kc_curve_set_command_flag (pair.server, true);
    assert (kc_curve_encode (pair.client, "\x04PING", 5, KC_CURVE_COMMAND, command, &why) == 0);
    assert (kc_curve_decode (pair.server, command, 38, &payload, &size, &flags, &why) == 0);
    assert (flags == KC_CURVE_COMMAND && size == 5);
    kc_curve_test_message (pair.client, 100, 0x06, NULL, 0, command);
    assert (kc_curve_decode (pair.server, command, 33, &payload, &size, &flags, &why) == -1);
    s_pair_destroy (&pair);

    //  Nonces run out at 2^64-1: the last one is used, then the codec stops
    s_pair_new (&pair);
    assert (s_pair_run (&pair, &why) == 0);
    kc_curve_test_nonce (pair.client, UINT64_MAX - 1);
    assert (kc_curve_encode (pair.client, "a", 1, 0, command, &why) == 0);
    assert (kc_curve_decode (pair.server, command, 34, &payload, &size, &flags, &why) == 0);
    assert (kc_curve_encode (pair.client, "a", 1, 0, command, &why) == -1);
    assert (strstr (why.text, "exhausted") && kc_curve_failed (pair.client));
    s_pair_destroy (&pair);
}
//  Secret memory: slots are distinct, wiped when given back, reused; chunks
//  come and go as codecs do.
static void
s_test_secret_pool (void)
{
    enum { COUNT = 3 * S_POOL_SLOTS + 5 };
    static kc_curve_t *codecs [COUNT];
    uint8_t key [32];
    memset (key, 0x5a, sizeof key);
    for (int i = 0; i < COUNT; i++) {
        codecs [i] = kc_curve_new_server (key, key);
        assert (memcmp (codecs [i]->secrets->permanent, key, 32) == 0);
        for (int j = 0; j < i; j++) {
            assert (codecs [j]->secrets != codecs [i]->secrets);
        }
    }
    //  Every other codec goes: its slot (still mapped: its chunk has other
    //  codecs) is all zero
    for (int i = 0; i < COUNT; i += 2) {
        s_secrets_t *slot = codecs [i]->secrets;
        kc_curve_destroy (&codecs [i]);
        assert (sodium_is_zero ((const uint8_t *) slot, sizeof *slot));
    }
    //  New codecs take the freed slots before any new chunk
    size_t chunks = 0;
    for (s_chunk_t *chunk = s_pool; chunk; chunk = chunk->next) {
        chunks++;
    }
    for (int i = 0; i < COUNT; i += 2) {
        codecs [i] = kc_curve_new_server (key, key);
    }
    size_t after = 0;
    for (s_chunk_t *chunk = s_pool; chunk; chunk = chunk->next) {
        after++;
    }
    assert (after == chunks && chunks >= 4);
    for (int i = 0; i < COUNT; i++) {
        kc_curve_destroy (&codecs [i]);
    }
    //  All gone: one spare chunk stays, empty
    assert (s_pool && !s_pool->next && s_pool->used == 0);
}

#endif


void
kc_curve_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_curve: ");
    }
#ifdef KC_TEST_HOOKS
    s_test_known_answers ();
    s_test_round_trip ();
    s_test_authorizer ();
    s_test_hello ();
    s_test_welcome ();
    s_test_initiate ();
    s_test_ready ();
    s_test_message ();
    s_test_secret_pool ();
    //  Destroy takes NULL and nulls the pointer
    kc_curve_t *none = NULL;
    kc_curve_destroy (&none);
    kc_curve_destroy (NULL);
#else
    if (verbose) {
        printf ("(skipped: needs -DKC_TEST_HOOKS) ");
    }
#endif
    if (verbose) {
        printf ("OK\n");
    }
}
