/*  =========================================================================
    kc_util - small shared pieces: failure reasons, fingerprints, hex, time,
    durations.

    Every verifier and parser in libkeyclone reports why it refused its input
    through a kc_why_t: one line of text, safe to log (it never holds a secret).
    =========================================================================
*/
#ifndef KC_UTIL_H_INCLUDED
#define KC_UTIL_H_INCLUDED

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KC_KEY_BYTES          32        //  CURVE or Ed25519 public key
#define KC_HASH_BYTES         32        //  BLAKE2b-256 digest
#define KC_SIGNATURE_BYTES    64        //  Ed25519 signature
#define KC_Z85_KEY_CHARS      40        //  Z85 text of a 32-byte key
#define KC_FINGERPRINT_CHARS  8         //  hex of the first 4 key bytes
#define KC_VERSION_TEXT_MAX   256       //  kc_version_text
#define KC_WHY_BYTES          240       //  one log line of reason

#define KC_STREQ(a, b) (strcmp ((a), (b)) == 0)

#if defined (__GNUC__)
#   define KC_WUR __attribute__ ((warn_unused_result))
#   define KC_PRINTF(a, b) __attribute__ ((format (printf, a, b)))
#else
#   define KC_WUR
#   define KC_PRINTF(a, b)
#endif

//  Why an operation failed: one line, no secrets.
typedef struct {
    char text [KC_WHY_BYTES];
} kc_why_t;

//  Sets the reason (printf style) and returns -1, so a failure path can say
//  "return kc_why (why, ...)". why may be NULL. The reason is escaped
//  (kc_escape): it is always one line of printable ASCII, whatever the
//  arguments held.
int
    kc_why (kc_why_t *why, const char *format, ...) KC_PRINTF (2, 3);

//  Prefixes the reason already in why with more context ("record 3: ...").
int
    kc_why_prefix (kc_why_t *why, const char *format, ...) KC_PRINTF (2, 3);

//  Escaping: every byte outside printable ASCII (0x20-0x7E) becomes the four
//  characters \xNN, so text that came from the network, a file or another
//  person can be logged or printed without forging lines or sending terminal
//  escapes. A backslash is kept as it is, so escaping is idempotent: escaped
//  text escapes to itself. With KC_ESCAPE_NEWLINES, '\n' is kept (multi-line
//  text such as a status rendering).
#define KC_ESCAPE_NEWLINES  1

//  Escapes size bytes of data into out (out_size bytes, always NUL-terminated,
//  truncated between escapes, never inside one). Returns out.
char *
    kc_escape (const void *data, size_t size, char *out, size_t out_size, int flags);

//  The same into a fresh heap string (caller frees); never NULL.
char *
    kc_escape_dup (const void *data, size_t size, int flags);

//  Clears a reason.
void
    kc_why_clear (kc_why_t *why);

//  Writes the 8-char uppercase hex fingerprint of a key (first 4 bytes) and a
//  NUL into text; returns text. Fingerprints name peers in logs.
char *
    kc_fingerprint (const uint8_t key [static KC_KEY_BYTES],
                    char text [static KC_FINGERPRINT_CHARS + 1]);

//  Lowercase hex of size bytes into text (2*size+1 bytes); returns text.
char *
    kc_hex (const uint8_t *data, size_t size, char *text);

//  Parses exactly 2*size hex digits into data; returns 0 or -1.
int
    kc_unhex (const char *text, uint8_t *data, size_t size) KC_WUR;

//  Parses the first length hex digits of text (any case; at most 2*size)
//  into data, a digit a half byte, the last half byte padded with 0 when
//  length is odd; the rest of data is left as it was. 0, or -1 for a
//  character that is not a hex digit or too many digits.
int
    kc_unhex_prefix (const char *text, size_t length, uint8_t *data, size_t size) KC_WUR;

//  Current wall-clock time in seconds and milliseconds since the epoch.
uint64_t
    kc_now (void);
uint64_t
    kc_now_ms (void);

//  Milliseconds on the monotonic clock (coarse: a few ms resolution, and
//  cheap enough for hot paths). For intervals only.
int64_t
    kc_mono_ms (void);

//  Parses a duration such as "90s", "15m", "12h", "30d", "52w", "1y" or a bare
//  number of seconds into *seconds. Returns 0 or -1 (reason in why).
int
    kc_duration_parse (const char *text, uint64_t *seconds, kc_why_t *why) KC_WUR;

//  Formats seconds since the epoch as "2026-11-25T18:53:14Z" (UTC) into text
//  (at least 21 bytes); 0 formats as "never". Returns text.
char *
    kc_time_format (uint64_t seconds, char text [static 32]);

//  How far seconds is from now, as people say it: "in 3 days", "5 hours ago"
//  (days from 2 days on, then hours, minutes, seconds). Returns text.
char *
    kc_time_relative (uint64_t seconds, uint64_t now, char text [static 40]);

//  A date for people: "2026-11-25T18:53:14Z (in 3 days)", or "never" for 0.
//  Returns text.
#define KC_TIME_WHEN_BYTES 80
char *
    kc_time_when (uint64_t seconds, uint64_t now, char text [static KC_TIME_WHEN_BYTES]);

//  Large arrays (a cold sync's indexes, megabytes each) in their own
//  zeroed mapping, on transparent huge pages where the kernel offers them:
//  a page fault per 2 MiB instead of per 4 KiB. kc_big_grow keeps the
//  contents (mremap, no copy); both return NULL when memory runs out, the
//  old mapping untouched. Sizes are the caller's to remember.
void *
    kc_big_alloc (size_t size);
void *
    kc_big_grow (void *data, size_t size, size_t new_size);
void
    kc_big_free (void *data, size_t size);

//  An append-only store of byte runs in big chunks (kc_big_alloc) that never
//  move: what a cold sync keeps of the messages it received. NULL when
//  memory runs out.
typedef struct _kc_arena_t kc_arena_t;
kc_arena_t *
    kc_arena_new (void);
void *
    kc_arena_copy (kc_arena_t *self, const void *data, size_t size);
//  Bytes held.
size_t
    kc_arena_size (const kc_arena_t *self);
void
    kc_arena_destroy (kc_arena_t **self_p);

//  A daemon's malloc settings, called once at start: buffers of up to
//  KC_MALLOC_MMAP_MAX (libzmq's messages of a sync, about 1 MiB each) come
//  from malloc's heaps and are reused, instead of being mapped, page-faulted
//  in and unmapped every time (that cost a syncing server three times the
//  encryption itself); up to KC_MALLOC_TRIM_MAX of free memory at a heap's
//  top is kept for reuse. Daemons call malloc_trim when a burst ends.
#define KC_MALLOC_MMAP_MAX      (32 * 1024 * 1024)
#define KC_MALLOC_TRIM_MAX      (64 * 1024 * 1024)
void
    kc_malloc_tune (void);

//  Self test of this module.
void
    kc_util_test (bool verbose);

//  keyclone's version ("0.1.0"), and a line for --version: the program's
//  name, the version, and the libraries it runs with (their run-time
//  versions where they report one).
const char *
    kc_version (void);
char *
    kc_version_text (const char *program, char *text, size_t size);

//  Calls fn on a thread of its own each time the process receives SIGHUP.
//  SIGHUP is blocked in the calling thread and in every thread it creates
//  later (a signal interrupting zloop's poll would end the loop): call it
//  before any other thread starts. fn must be async-safe in spirit (set a
//  flag). Returns 0, or -1 (SIGHUP then keeps its default action).
int
    kc_on_sighup (void (*fn) (void));

//  Sends the process's log lines (zsys) to path, appended (made 0640 if
//  missing), instead of standard output. Returns 0, or -1 with a reason.
int
    kc_log_file (const char *path, kc_why_t *why) KC_WUR;

//  After a rotation (logrotate renamed the file): opens the path again and
//  puts it under the same stream, so a line being written by another
//  thread goes to one file or the other, never to a closed one. 0 when
//  there is no log file; 1 when it was reopened; -1 with a reason (the old
//  file is kept).
int
    kc_log_reopen (kc_why_t *why) KC_WUR;

//  kc_log_reopen on SIGHUP for a daemon named who, with a line saying so in
//  the (new) file, or a warning that the old one is kept.
void
    kc_log_reopen_logged (const char *who);

//  A sync's progress for people: "N batches, M records (R records/s)", and
//  when the sequence to reach (target) is known and above the one reached
//  (at), "; seq AT of TARGET, about S s left" from the batch rate. elapsed_ms
//  is how long the sync has run. Returns out.
char *
    kc_sync_progress (char *out, size_t size, uint64_t batches, uint64_t records, int64_t elapsed_ms,
                      uint64_t at, uint64_t target);

//  True if both are NULL, or both are the same text.
bool
    kc_same_text (const char *a, const char *b);

#endif
