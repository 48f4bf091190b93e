/*  =========================================================================
    kc_file - whole-file reads (secret files into sodium_malloc memory, with a
    permission check) and atomic writes (temp file, fsync, rename, fsync dir).
    =========================================================================
*/
#ifndef KC_FILE_H_INCLUDED
#define KC_FILE_H_INCLUDED

#include "kc_util.h"
#include <sys/types.h>

#define KC_FILE_MODE_SECRET 0600
#define KC_FILE_MODE_PUBLIC 0644

//  Reads a regular file of at most max bytes and returns its contents with a
//  NUL appended; *size excludes the NUL. With secret set, the file must not be
//  readable or writable by group or others, and the buffer is sodium_malloc
//  memory that the caller frees with kc_file_free (which wipes it). Returns
//  NULL with a reason on any failure.
uint8_t *
    kc_file_read (const char *path, size_t max, bool secret, size_t *size, kc_why_t *why);

//  Frees a buffer from kc_file_read; wipes secret buffers. Nulls *data_p.
void
    kc_file_free (uint8_t **data_p, bool secret);

//  Writes data to path atomically with the given mode: a temporary file in
//  the same directory, fsync, rename over path, fsync of the directory. An
//  interrupted write leaves either the old file or the new one, never a mix.
//  Run as root in a directory another user owns (a service's state
//  directory), the file takes that directory's owner and group.
int
    kc_file_write_atomic (const char *path, const void *data, size_t size,
                          mode_t mode, kc_why_t *why) KC_WUR;

//  True if path exists (any type).
bool
    kc_file_exists (const char *path);

//  Creates a directory and its parents with the given mode (like mkdir -p);
//  as root, each one it creates in a directory another user owns takes that
//  owner and group. Returns 0 or -1 with a reason.
int
    kc_file_mkdirs (const char *path, mode_t mode, kc_why_t *why) KC_WUR;

//  Takes the lock that makes a daemon the only one on a directory: an
//  exclusive flock(2) on path (created if missing) that lasts while the
//  returned descriptor is open (the process's lifetime; the kernel drops it
//  when the process dies, even by kill -9), with the holder's pid written
//  in the file. Returns the descriptor, or -1 with a reason: "'DIR' is in
//  use by pid N" when another process holds it.
int
    kc_file_lock (const char *path, const char *what, kc_why_t *why) KC_WUR;

//  Self test of this module.
void
    kc_file_test (bool verbose);

#endif
