/*  =========================================================================
    kc_util - small shared pieces: failure reasons, fingerprints, hex, time,
    durations.
    =========================================================================
*/
#include "kc_util.h"
#include "kc_all.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

//  libkeyclone initialises libsodium itself when it is loaded, so no caller
//  has to call sodium_init before using it (sodium_malloc in the codec and
//  key classes aborts otherwise). sodium_init is idempotent and thread-safe;
//  the daemons still call it and stop when it fails.
__attribute__ ((constructor)) static void
s_initialise_libsodium (void)
{
    if (sodium_init () < 0) {
        fprintf (stderr, "libkeyclone: libsodium failed to initialise\n");
    }
}

char *
kc_escape (const void *data, size_t size, char *out, size_t out_size, int flags)
{
    static const char digits [] = "0123456789abcdef";
    const unsigned char *bytes = data;
    size_t at = 0;
    assert (out_size > 0);
    for (size_t i = 0; i < size; i++) {
        unsigned char c = bytes [i];
        bool plain = (c >= 0x20 && c < 0x7f) || (c == '\n' && (flags & KC_ESCAPE_NEWLINES));
        size_t need = plain ? 1 : 4;
        if (at + need >= out_size) {
            break;
        }
        if (plain) {
            out [at++] = (char) c;
        }
        else {
            out [at++] = '\\';
            out [at++] = 'x';
            out [at++] = digits [c >> 4];
            out [at++] = digits [c & 15];
        }
    }
    out [at] = 0;
    return out;
}

char *
kc_escape_dup (const void *data, size_t size, int flags)
{
    char *out = malloc (size * 4 + 1);
    assert (out);
    return kc_escape (data, size, out, size * 4 + 1, flags);
}

int
kc_why (kc_why_t *why, const char *format, ...)
{
    if (why) {
        char raw [KC_WHY_BYTES];
        va_list args;
        va_start (args, format);
        int n = vsnprintf (raw, sizeof raw, format, args);
        va_end (args);
        kc_escape (raw, n < 0 ? 0 : (size_t) n < sizeof raw ? (size_t) n : sizeof raw - 1,
                   why->text, sizeof why->text, 0);
    }
    return -1;
}

int
kc_why_prefix (kc_why_t *why, const char *format, ...)
{
    if (why) {
        char old [KC_WHY_BYTES], raw [KC_WHY_BYTES];
        memcpy (old, why->text, sizeof old);
        va_list args;
        va_start (args, format);
        int n = vsnprintf (raw, sizeof raw, format, args);
        va_end (args);
        kc_escape (raw, n < 0 ? 0 : (size_t) n < sizeof raw ? (size_t) n : sizeof raw - 1,
                   why->text, sizeof why->text, 0);
        n = (int) strlen (why->text);
        if (n >= 0 && (size_t) n < sizeof why->text) {
            size_t at = (size_t) n;
            size_t left = sizeof why->text - at;
            size_t old_size = strnlen (old, sizeof old - 1);
            if (left > 2) {
                why->text [at++] = ':';
                why->text [at++] = ' ';
                left -= 2;
                size_t copy = old_size < left - 1 ? old_size : left - 1;
                memcpy (why->text + at, old, copy);
                why->text [at + copy] = 0;
            }
        }
    }
    return -1;
}

void
kc_why_clear (kc_why_t *why)
{
    if (why) {
        why->text [0] = 0;
    }
}

char *
kc_hex (const uint8_t *data, size_t size, char *text)
{
    static const char digits [] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        text [2 * i] = digits [data [i] >> 4];
        text [2 * i + 1] = digits [data [i] & 15];
    }
    text [2 * size] = 0;
    return text;
}

char *
kc_fingerprint (const uint8_t key [static KC_KEY_BYTES],
                char text [static KC_FINGERPRINT_CHARS + 1])
{
    static const char digits [] = "0123456789ABCDEF";
    for (int i = 0; i < 4; i++) {
        text [2 * i] = digits [key [i] >> 4];
        text [2 * i + 1] = digits [key [i] & 15];
    }
    text [KC_FINGERPRINT_CHARS] = 0;
    return text;
}

static int
s_hex_digit (char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int
kc_unhex (const char *text, uint8_t *data, size_t size)
{
    if (strlen (text) != 2 * size) {
        return -1;
    }
    for (size_t i = 0; i < size; i++) {
        int high = s_hex_digit (text [2 * i]);
        int low = s_hex_digit (text [2 * i + 1]);
        if (high < 0 || low < 0) {
            return -1;
        }
        data [i] = (uint8_t) (high << 4 | low);
    }
    return 0;
}

int
kc_unhex_prefix (const char *text, size_t length, uint8_t *data, size_t size)
{
    if (length > 2 * size) {
        return -1;
    }
    for (size_t i = 0; i < length; i++) {
        int digit = s_hex_digit (text [i]);
        if (digit < 0) {
            return -1;
        }
        data [i / 2] = i % 2 ? (uint8_t) ((data [i / 2] & 0xf0) | digit) : (uint8_t) (digit << 4);
    }
    return 0;
}

uint64_t
kc_now (void)
{
    return (uint64_t) time (NULL);
}

#define S_STRING(x)  #x
#define S_VERSION(a, b, c)  S_STRING (a) "." S_STRING (b) "." S_STRING (c)
#define KC_VERSION  S_VERSION (KEYCLONE_VERSION_MAJOR, KEYCLONE_VERSION_MINOR, KEYCLONE_VERSION_PATCH)

const char *
kc_version (void)
{
    return KC_VERSION;
}

char *
kc_version_text (const char *program, char *text, size_t size)
{
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    snprintf (text, size, "%s %s (libzmq %d.%d.%d, czmq %d.%d.%d, libsodium %s, sqlite %s)", program,
              KC_VERSION, major, minor, patch, CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR, CZMQ_VERSION_PATCH,
              sodium_version_string (), sqlite3_libversion ());
    return text;
}

uint64_t
kc_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

int64_t
kc_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
kc_duration_parse (const char *text, uint64_t *seconds, kc_why_t *why)
{
    const char *p = text;
    uint64_t value = 0;
    if (*p < '0' || *p > '9') {
        return kc_why (why, "invalid duration '%s' (expected e.g. 90s, 15m, 12h, 30d, 1y)", text);
    }
    while (*p >= '0' && *p <= '9') {
        if (value > (UINT64_MAX - 9) / 10) {
            return kc_why (why, "duration '%s' is too large", text);
        }
        value = value * 10 + (uint64_t) (*p++ - '0');
    }
    uint64_t unit = 1;
    switch (*p) {
        case 0:   unit = 1; break;
        case 's': unit = 1; p++; break;
        case 'm': unit = 60; p++; break;
        case 'h': unit = 3600; p++; break;
        case 'd': unit = 86400; p++; break;
        case 'w': unit = 7 * 86400; p++; break;
        case 'y': unit = 365 * 86400; p++; break;
        default:  unit = 0; break;
    }
    if (unit == 0 || *p) {
        return kc_why (why, "invalid duration '%s' (expected e.g. 90s, 15m, 12h, 30d, 1y)", text);
    }
    if (value > (uint64_t) INT32_MAX * 1000 / unit) {
        return kc_why (why, "duration '%s' is too large", text);
    }
    *seconds = value * unit;
    return 0;
}

char *
kc_time_format (uint64_t seconds, char text [static 32])
{
    if (seconds == 0) {
        snprintf (text, 32, "never");
        return text;
    }
    time_t when = (time_t) seconds;
    struct tm tm;
    if (seconds > (uint64_t) 253402300799ULL || !gmtime_r (&when, &tm)) {
        snprintf (text, 32, "@%llu", (unsigned long long) seconds);
    }
    else {
        strftime (text, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    return text;
}

char *
kc_time_relative (uint64_t seconds, uint64_t now, char text [static 40])
{
    uint64_t span = seconds > now ? seconds - now : now - seconds;
    static const struct { uint64_t unit; const char *name; } units [] = {
        { 86400, "days" }, { 3600, "hours" }, { 60, "minutes" }, { 1, "seconds" }
    };
    size_t i = 0;
    while (units [i].unit > 1 && span < 2 * units [i].unit) {
        i++;
    }
    snprintf (text, 40, seconds > now ? "in %llu %s" : "%llu %s ago",
              (unsigned long long) (span / units [i].unit), units [i].name);
    return text;
}

char *
kc_time_when (uint64_t seconds, uint64_t now, char text [static KC_TIME_WHEN_BYTES])
{
    char date [32], relative [40];
    kc_time_format (seconds, date);
    if (seconds == 0) {
        snprintf (text, KC_TIME_WHEN_BYTES, "%s", date);
    }
    else {
        snprintf (text, KC_TIME_WHEN_BYTES, "%s (%s)", date, kc_time_relative (seconds, now, relative));
    }
    return text;
}

#define BIG_PAGE    (2 * 1024 * 1024)

static void
s_advise_huge (void *data, size_t size)
{
    //  Only a hint: without huge pages the mapping works the same
    if (size >= BIG_PAGE) {
        madvise (data, size, MADV_HUGEPAGE);
    }
}

void *
kc_big_alloc (size_t size)
{
    void *data = mmap (NULL, size ? size : 1, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) {
        return NULL;
    }
    s_advise_huge (data, size);
    return data;
}

void *
kc_big_grow (void *data, size_t size, size_t new_size)
{
    if (!data) {
        return kc_big_alloc (new_size);
    }
    void *grown = mremap (data, size ? size : 1, new_size, MREMAP_MAYMOVE);
    if (grown == MAP_FAILED) {
        return NULL;
    }
    s_advise_huge (grown, new_size);
    return grown;
}

void
kc_big_free (void *data, size_t size)
{
    if (data) {
        munmap (data, size ? size : 1);
    }
}

#define ARENA_CHUNK (32 * 1024 * 1024)

typedef struct _s_chunk_t {
    struct _s_chunk_t *next;
    size_t size, used;                      //  used counts this header
} s_chunk_t;

struct _kc_arena_t {
    s_chunk_t *chunks;                      //  newest first
    size_t held;
};

kc_arena_t *
kc_arena_new (void)
{
    kc_arena_t *self = calloc (1, sizeof *self);
    assert (self);
    return self;
}

void *
kc_arena_copy (kc_arena_t *self, const void *data, size_t size)
{
    size_t need = (size + 15) & ~(size_t) 15;
    s_chunk_t *chunk = self->chunks;
    if (!chunk || chunk->size - chunk->used < need) {
        size_t chunk_size = sizeof (s_chunk_t) + need > ARENA_CHUNK ? sizeof (s_chunk_t) + need : ARENA_CHUNK;
        chunk = kc_big_alloc (chunk_size);
        if (!chunk) {
            return NULL;
        }
        chunk->size = chunk_size;
        chunk->used = (sizeof (s_chunk_t) + 15) & ~(size_t) 15;
        chunk->next = self->chunks;
        self->chunks = chunk;
    }
    uint8_t *copy = (uint8_t *) chunk + chunk->used;
    if (size) {
        memcpy (copy, data, size);
    }
    chunk->used += need;
    self->held += size;
    return copy;
}

size_t
kc_arena_size (const kc_arena_t *self)
{
    return self->held;
}

void
kc_arena_destroy (kc_arena_t **self_p)
{
    if (self_p && *self_p) {
        s_chunk_t *chunk = (*self_p)->chunks;
        while (chunk) {
            s_chunk_t *next = chunk->next;
            kc_big_free (chunk, chunk->size);
            chunk = next;
        }
        free (*self_p);
        *self_p = NULL;
    }
}

void
kc_malloc_tune (void)
{
    mallopt (M_MMAP_THRESHOLD, KC_MALLOC_MMAP_MAX);
    mallopt (M_TRIM_THRESHOLD, KC_MALLOC_TRIM_MAX);
}

void
kc_util_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_util: ");
    }
    kc_why_t why;
    assert (kc_why (&why, "bad %s", "thing") == -1);
    assert (KC_STREQ (why.text, "bad thing"));
    kc_why_prefix (&why, "record %d", 3);
    assert (KC_STREQ (why.text, "record 3: bad thing"));
    assert (kc_why (NULL, "ignored") == -1);

    //  Escaping: control bytes, DEL and non-ASCII as \xNN, idempotent
    char escaped [64];
    kc_why (&why, "name '%s'", "a\nE: forged\x1b]0;t\x07\xff");
    assert (KC_STREQ (why.text, "name 'a\\x0aE: forged\\x1b]0;t\\x07\\xff'"));
    kc_escape (why.text, strlen (why.text), escaped, sizeof escaped, 0);
    assert (KC_STREQ (escaped, why.text));
    kc_escape ("a\nb\r", 4, escaped, sizeof escaped, KC_ESCAPE_NEWLINES);
    assert (KC_STREQ (escaped, "a\nb\\x0d"));
    kc_escape ("\x01\x02", 2, escaped, 6, 0);     //  room for one escape only
    assert (KC_STREQ (escaped, "\\x01"));
    kc_why_prefix (&why, "from \x1b[2J");
    assert (strncmp (why.text, "from \\x1b[2J: name", 18) == 0);
    char *dup = kc_escape_dup ("\x7f", 1, 0);
    assert (KC_STREQ (dup, "\\x7f"));
    free (dup);

    uint8_t key [32] = { 0x3f, 0x2a, 0x9c, 0x1e };
    char fp [9];
    assert (KC_STREQ (kc_fingerprint (key, fp), "3F2A9C1E"));

    uint8_t bytes [3];
    char hex [7];
    assert (kc_unhex ("00ff7A", bytes, 3) == 0);
    assert (bytes [0] == 0 && bytes [1] == 255 && bytes [2] == 0x7a);
    assert (KC_STREQ (kc_hex (bytes, 3, hex), "00ff7a"));
    assert (kc_unhex ("00ff7", bytes, 3) == -1);
    assert (kc_unhex ("00ffzz", bytes, 3) == -1);

    uint64_t s = 0;
    assert (kc_duration_parse ("90", &s, &why) == 0 && s == 90);
    assert (kc_duration_parse ("15m", &s, &why) == 0 && s == 900);
    assert (kc_duration_parse ("30d", &s, &why) == 0 && s == 30 * 86400);
    assert (kc_duration_parse ("1y", &s, &why) == 0 && s == 365 * 86400);
    assert (kc_duration_parse ("1x", &s, &why) == -1);
    assert (kc_duration_parse ("", &s, &why) == -1);
    assert (kc_duration_parse ("d", &s, &why) == -1);
    assert (kc_duration_parse ("99999999999999999999999", &s, &why) == -1);
    assert (kc_duration_parse ("999999999y", &s, &why) == -1);

    char when [32];
    assert (KC_STREQ (kc_time_format (0, when), "never"));
    assert (KC_STREQ (kc_time_format (1764096794, when), "2025-11-25T18:53:14Z"));
    char relative [40], both [KC_TIME_WHEN_BYTES];
    assert (KC_STREQ (kc_time_relative (1764096794 + 3 * 86400 + 5, 1764096794, relative), "in 3 days"));
    assert (KC_STREQ (kc_time_relative (1764096794, 1764096794 + 86400, relative), "24 hours ago"));
    assert (KC_STREQ (kc_time_relative (1764096794, 1764096794 + 90, relative), "90 seconds ago"));
    assert (KC_STREQ (kc_time_relative (1764096794 + 600, 1764096794, relative), "in 10 minutes"));
    assert (KC_STREQ (kc_time_when (1764096794, 1764096794 - 30 * 86400, both), "2025-11-25T18:53:14Z (in 30 days)"));
    assert (KC_STREQ (kc_time_when (0, 1764096794, both), "never"));

    //  Big arrays: zeroed, and grown with their contents kept
    size_t small = 100, large = 5 * BIG_PAGE + 3;
    uint8_t *big = kc_big_alloc (small);
    assert (big && big [0] == 0 && big [small - 1] == 0);
    memset (big, 0xab, small);
    big = kc_big_grow (big, small, large);
    assert (big && big [0] == 0xab && big [small - 1] == 0xab && big [large - 1] == 0);
    kc_big_free (big, large);
    kc_big_free (NULL, 0);

    //  Arena: copies stay put across chunks, a run bigger than a chunk too
    kc_arena_t *arena = kc_arena_new ();
    uint8_t *first = kc_arena_copy (arena, "abc", 3);
    uint8_t *huge = malloc (ARENA_CHUNK + 1);
    assert (first && huge);
    memset (huge, 0x5a, ARENA_CHUNK + 1);
    uint8_t *copy = kc_arena_copy (arena, huge, ARENA_CHUNK + 1);
    uint8_t *last = kc_arena_copy (arena, "de", 2);
    assert (copy && last && memcmp (first, "abc", 3) == 0 && memcmp (last, "de", 2) == 0);
    assert (copy [0] == 0x5a && copy [ARENA_CHUNK] == 0x5a && ((uintptr_t) last & 15) == 0);
    assert (kc_arena_size (arena) == ARENA_CHUNK + 6);
    free (huge);
    kc_arena_destroy (&arena);
    kc_arena_destroy (&arena);
    //  Hex prefixes: any case, an odd last digit in the high half byte
    uint8_t prefix [4] = { 0, 0, 0, 0xee };
    assert (kc_unhex_prefix ("aBc", 3, prefix, sizeof prefix) == 0 && prefix [0] == 0xab && prefix [1] == 0xc0);
    assert (prefix [3] == 0xee);
    assert (kc_unhex_prefix ("0123456789", 10, prefix, sizeof prefix) == -1);
    assert (kc_unhex_prefix ("01x3", 4, prefix, sizeof prefix) == -1);
    assert (kc_unhex_prefix ("01234567", 8, prefix, sizeof prefix) == 0 && prefix [3] == 0x67);
    //  Sync progress: the rate, and the time left once the target is known
    char progress [160];
    assert (KC_STREQ (kc_sync_progress (progress, sizeof progress, 0, 0, 5000, 0, 0),
                      "0 batches, 0 records (0 records/s)"));
    assert (KC_STREQ (kc_sync_progress (progress, sizeof progress, 100, 20000, 5000, 100, 600),
                      "100 batches, 20000 records (4000 records/s); seq 100 of 600, about 25 s left"));
    assert (KC_STREQ (kc_sync_progress (progress, sizeof progress, 100, 20000, 5000, 700, 600),
                      "100 batches, 20000 records (4000 records/s)"));
    assert (KC_STREQ (kc_sync_progress (progress, sizeof progress, 0, 0, 0, 0, 600),
                      "0 batches, 0 records (0 records/s)"));
    if (verbose) {
        printf ("OK\n");
    }
}

static void (*s_sighup_fn) (void);

static void *
s_sighup_thread (void *arg)
{
    sigset_t *set = arg;
    int received;
    while (sigwait (set, &received) == 0) {
        s_sighup_fn ();
    }
    return NULL;
}

int
kc_on_sighup (void (*fn) (void))
{
    static sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGHUP);
    s_sighup_fn = fn;
    pthread_t thread;
    if (pthread_sigmask (SIG_BLOCK, &set, NULL) || pthread_create (&thread, NULL, s_sighup_thread, &set)) {
        pthread_sigmask (SIG_UNBLOCK, &set, NULL);
        return -1;
    }
    pthread_detach (thread);
    return 0;
}

static FILE *s_log_stream;
static char *s_log_path;

static int
s_log_open (const char *path, kc_why_t *why)
{
    int fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        return kc_why (why, "cannot open the log file '%s': %s", path, strerror (errno));
    }
    return fd;
}

int
kc_log_file (const char *path, kc_why_t *why)
{
    assert (path);
    int fd = s_log_open (path, why);
    FILE *stream = fd < 0 ? NULL : fdopen (fd, "a");
    if (!stream) {
        if (fd >= 0) {
            close (fd);
            kc_why (why, "cannot open the log file '%s': %s", path, strerror (errno));
        }
        return -1;
    }
    setvbuf (stream, NULL, _IOLBF, 0);
    free (s_log_path);
    s_log_path = strdup (path);
    s_log_stream = stream;
    zsys_set_logstream (stream);
    return 0;
}

int
kc_log_reopen (kc_why_t *why)
{
    if (!s_log_stream) {
        return 0;
    }
    int fd = s_log_open (s_log_path, why);
    if (fd < 0) {
        return -1;
    }
    fflush (s_log_stream);
    int rc = dup2 (fd, fileno (s_log_stream));
    close (fd);
    if (rc < 0) {
        return kc_why (why, "cannot reopen the log file '%s': %s", s_log_path, strerror (errno));
    }
    return 1;
}

void
kc_log_reopen_logged (const char *who)
{
    kc_why_t why;
    int rc = kc_log_reopen (&why);
    if (rc == 1) {
        char shown [512];
        zsys_info ("%s: SIGHUP: log file %s opened again", who,
                   kc_escape (s_log_path, strlen (s_log_path), shown, sizeof shown, 0));
    }
    else
    if (rc < 0) {
        zsys_warning ("%s: SIGHUP: %s; logging on to the file as it was", who, why.text);
    }
}

char *
kc_sync_progress (char *out, size_t size, uint64_t batches, uint64_t records, int64_t elapsed_ms, uint64_t at,
                  uint64_t target)
{
    double seconds = elapsed_ms > 0 ? (double) elapsed_ms / 1000.0 : 0;
    double rate = seconds > 0 ? (double) records / seconds : 0;
    double batch_rate = seconds > 0 ? (double) batches / seconds : 0;
    int n = snprintf (out, size, "%llu batches, %llu records (%.0f records/s)", (unsigned long long) batches,
                      (unsigned long long) records, rate);
    if (target > at && batch_rate > 0 && n >= 0 && (size_t) n < size) {
        snprintf (out + n, size - (size_t) n, "; seq %llu of %llu, about %.0f s left", (unsigned long long) at,
                  (unsigned long long) target, (double) (target - at) / batch_rate);
    }
    return out;
}

bool
kc_same_text (const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp (a, b) == 0);
}
