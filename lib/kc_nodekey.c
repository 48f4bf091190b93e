/*  =========================================================================
    kc_nodekey - a node's key files through a rotation: the swap of KEY.next
    into KEY and the end of the old pair's overlap (kc_nodekey.h).
    =========================================================================
*/
#include "kc_nodekey.h"
#include "kc_file.h"
#include "kc_keys.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_BYTES      4096                //  every path built here

typedef struct {
    char base [PATH_BYTES - 32], secret [PATH_BYTES];
    char next [PATH_BYTES], next_secret [PATH_BYTES];
    char old [PATH_BYTES], old_secret [PATH_BYTES], until [PATH_BYTES];
} s_paths_t;

char *
kc_nodekey_base (const char *path, char *base, size_t size)
{
    size_t length = strlen (path), suffix = strlen (KC_SECRET_SUFFIX);
    if (length > suffix && KC_STREQ (path + length - suffix, KC_SECRET_SUFFIX)) {
        length -= suffix;
    }
    if (length >= size) {
        return NULL;
    }
    memcpy (base, path, length);
    base [length] = 0;
    return base;
}

static int
s_paths (const char *path, s_paths_t *self, kc_why_t *why)
{
    if (!kc_nodekey_base (path, self->base, sizeof self->base)) {
        return kc_why (why, "path too long: '%.80s...'", path);
    }
    snprintf (self->secret, PATH_BYTES, "%s%s", self->base, KC_SECRET_SUFFIX);
    snprintf (self->next, PATH_BYTES, "%s.next", self->base);
    snprintf (self->next_secret, PATH_BYTES, "%s.next%s", self->base, KC_SECRET_SUFFIX);
    snprintf (self->old, PATH_BYTES, "%s.old", self->base);
    snprintf (self->old_secret, PATH_BYTES, "%s.old%s", self->base, KC_SECRET_SUFFIX);
    snprintf (self->until, PATH_BYTES, "%s.old.until", self->base);
    return 0;
}

//  The directory holding the key files, locked (flock, waiting for the
//  other holder: a swap takes a few system calls); its descriptor, which
//  also fsyncs the renames, or -1 with a reason.
static int
s_lock (const s_paths_t *paths, kc_why_t *why)
{
    char copy [PATH_BYTES];
    snprintf (copy, sizeof copy, "%s", paths->base);
    const char *dir = dirname (copy);
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return kc_why (why, "cannot open '%s': %s", dir, strerror (errno));
    }
    while (flock (fd, LOCK_EX)) {
        if (errno != EINTR) {
            kc_why (why, "cannot lock '%s': %s", dir, strerror (errno));
            close (fd);
            return -1;
        }
    }
    return fd;
}

static void
s_unlock (int fd)
{
    flock (fd, LOCK_UN);
    close (fd);
}

int
kc_nodekey_next (const char *path, uint8_t key [static KC_KEY_BYTES], kc_why_t *why)
{
    s_paths_t paths;
    if (s_paths (path, &paths, why)) {
        return -1;
    }
    if (!kc_file_exists (paths.next)) {
        return 0;
    }
    kc_cert_t *cert = kc_cert_load_public (paths.next, why);
    if (!cert) {
        return -1;
    }
    memcpy (key, kc_cert_public_key (cert), KC_KEY_BYTES);
    kc_cert_destroy (&cert);
    return 1;
}

int
kc_nodekey_next_seen (const char *path, kc_nodekey_seen_t *seen, uint8_t key [static KC_KEY_BYTES], kc_why_t *why)
{
    s_paths_t paths;
    if (s_paths (path, &paths, why)) {
        return -1;
    }
    struct stat st;
    if (stat (paths.next, &st)) {
        seen->known = false;
        return 0;                           //  no rotation under way
    }
    int64_t changed = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if (!seen->known || seen->device != (uint64_t) st.st_dev || seen->inode != (uint64_t) st.st_ino
    ||  seen->size != (uint64_t) st.st_size || seen->changed_ns != changed) {
        int found = kc_nodekey_next (path, seen->key, why);
        seen->known = found == 1;
        if (found != 1) {
            return found;
        }
        seen->device = (uint64_t) st.st_dev;
        seen->inode = (uint64_t) st.st_ino;
        seen->size = (uint64_t) st.st_size;
        seen->changed_ns = changed;
    }
    memcpy (key, seen->key, KC_KEY_BYTES);
    return 1;
}

//  Whether the certificate file at path holds key (public side only).
static bool
s_holds (const char *path, const uint8_t key [static KC_KEY_BYTES])
{
    kc_why_t why;
    kc_cert_t *cert = kc_cert_load_public (path, &why);
    bool holds = cert && memcmp (kc_cert_public_key (cert), key, KC_KEY_BYTES) == 0;
    kc_cert_destroy (&cert);
    return holds;
}

//  Under the lock: KEY.next_secret is in place already but KEY.next is not
//  (a swap interrupted between its two renames): finishes it.
static int
s_finish (const s_paths_t *paths, const uint8_t expected [static KC_KEY_BYTES], kc_why_t *why)
{
    if (!kc_file_exists (paths->next) || !s_holds (paths->next, expected)) {
        return 1;
    }
    kc_cert_t *cert = kc_cert_load_secret (paths->secret, why);
    bool in_place = cert && memcmp (kc_cert_public_key (cert), expected, KC_KEY_BYTES) == 0;
    kc_cert_destroy (&cert);
    if (!in_place) {
        return 1;
    }
    if (rename (paths->next, paths->base)) {
        return kc_why (why, "cannot rename '%s' to '%s': %s", paths->next, paths->base, strerror (errno));
    }
    return 0;
}

int
kc_nodekey_swap (const char *path, const uint8_t expected [static KC_KEY_BYTES], uint64_t until, kc_why_t *why)
{
    s_paths_t paths;
    if (s_paths (path, &paths, why)) {
        return -1;
    }
    int lock = s_lock (&paths, why);
    if (lock < 0) {
        return -1;
    }
    int rc = -1;
    kc_cert_t *next = NULL;
    if (!kc_file_exists (paths.next_secret)) {
        rc = s_finish (&paths, expected, why);
        goto done;
    }
    next = kc_cert_load_secret (paths.next, why);
    if (!next) {
        goto done;
    }
    if (memcmp (kc_cert_public_key (next), expected, KC_KEY_BYTES)) {
        rc = 1;
        goto done;
    }
    //  The pair in use becomes KEY.old (hard links: KEY stays in place
    //  until the renames below replace it)
    unlink (paths.old);
    unlink (paths.old_secret);
    unlink (paths.until);
    if (link (paths.secret, paths.old_secret) || link (paths.base, paths.old)) {
        kc_why (why, "cannot keep '%s' as '%s': %s", paths.base, paths.old, strerror (errno));
        goto done;
    }
    char text [32];
    snprintf (text, sizeof text, "%llu\n", (unsigned long long) until);
    if (until && kc_file_write_atomic (paths.until, text, strlen (text), KC_FILE_MODE_PUBLIC, why)) {
        goto done;
    }
    if (rename (paths.next_secret, paths.secret) || rename (paths.next, paths.base)) {
        kc_why (why, "cannot put '%s' in place of '%s': %s", paths.next, paths.base, strerror (errno));
        goto done;
    }
    if (fsync (lock)) {
        kc_why (why, "cannot fsync the directory of '%s': %s", paths.base, strerror (errno));
        goto done;
    }
    rc = 0;
done:
    kc_cert_destroy (&next);
    s_unlock (lock);
    return rc;
}

int
kc_nodekey_old_until (const char *path, uint64_t *until)
{
    s_paths_t paths;
    *until = 0;
    if (s_paths (path, &paths, NULL)) {
        return 0;
    }
    size_t size;
    kc_why_t why;
    uint8_t *text = kc_file_read (paths.until, 64, false, &size, &why);
    if (!text) {
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long value = strtoull ((const char *) text, &end, 10);
    bool valid = errno == 0 && end != (char *) text && (*end == '\n' || *end == 0) && value > 0;
    kc_file_free (&text, false);
    *until = valid ? (uint64_t) value : 0;
    return valid ? 1 : 0;
}

int
kc_nodekey_forget_old (const char *path, uint64_t now, uint64_t *until, kc_why_t *why)
{
    s_paths_t paths;
    if (s_paths (path, &paths, why)) {
        return -1;
    }
    if (!kc_nodekey_old_until (path, until) || *until > now) {
        return 0;
    }
    int lock = s_lock (&paths, why);
    if (lock < 0) {
        return -1;
    }
    int rc = 1;
    //  Read again under the lock: a swap may have begun a new overlap
    if (!kc_nodekey_old_until (path, until) || *until > now) {
        rc = 0;
    }
    else
    if ((unlink (paths.old_secret) && errno != ENOENT) || (unlink (paths.old) && errno != ENOENT)
    ||  unlink (paths.until)) {
        rc = kc_why (why, "cannot remove '%s': %s", paths.old, strerror (errno));
    }
    else {
        *until = 0;
    }
    s_unlock (lock);
    return rc;
}

void
kc_nodekey_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_nodekey: ");
    }
    char dir [] = "/tmp/kc_nodekey_test.XXXXXX";
    assert (mkdtemp (dir));
    char key [256], next [256], base [256];
    snprintf (key, sizeof key, "%s/node", dir);
    snprintf (next, sizeof next, "%s/node.next", dir);
    kc_why_t why;
    assert (KC_STREQ (kc_nodekey_base ("a/node_secret", base, sizeof base), "a/node"));
    assert (KC_STREQ (kc_nodekey_base ("a/node", base, sizeof base), "a/node"));

    kc_cert_t *first = kc_cert_new (NULL), *second = kc_cert_new (NULL);
    assert (kc_cert_save (first, key, &why) == 0);
    uint8_t found [KC_KEY_BYTES];
    assert (kc_nodekey_next (key, found, &why) == 0);
    //  Nothing to swap yet
    assert (kc_nodekey_swap (key, kc_cert_public_key (second), 100, &why) == 1);
    assert (kc_cert_save (second, next, &why) == 0);
    assert (kc_nodekey_next (key, found, &why) == 1);
    assert (memcmp (found, kc_cert_public_key (second), KC_KEY_BYTES) == 0);
    //  Asked often: read once, read again when the file is replaced
    kc_nodekey_seen_t seen;
    memset (&seen, 0, sizeof seen);
    assert (kc_nodekey_next_seen (key, &seen, found, &why) == 1 && seen.known);
    assert (memcmp (found, kc_cert_public_key (second), KC_KEY_BYTES) == 0);
    memset (found, 0, sizeof found);
    assert (kc_nodekey_next_seen (key, &seen, found, &why) == 1);
    assert (memcmp (found, kc_cert_public_key (second), KC_KEY_BYTES) == 0);
    assert (kc_cert_save (first, next, &why) == 0);         //  a new file (an atomic write)
    assert (kc_nodekey_next_seen (key, &seen, found, &why) == 1);
    assert (memcmp (found, kc_cert_public_key (first), KC_KEY_BYTES) == 0);
    assert (kc_cert_save (second, next, &why) == 0);
    assert (kc_nodekey_next_seen (key, &seen, found, &why) == 1);
    assert (memcmp (found, kc_cert_public_key (second), KC_KEY_BYTES) == 0);
    //  Another key than the one registered: not swapped
    assert (kc_nodekey_swap (key, kc_cert_public_key (first), 100, &why) == 1);
    //  Swapped: KEY holds the new pair, KEY.old the old one until 100
    char secret [280];
    snprintf (secret, sizeof secret, "%s_secret", key);
    assert (kc_nodekey_swap (secret, kc_cert_public_key (second), 100, &why) == 0);
    kc_cert_t *now = kc_cert_load_secret (key, &why), *old = NULL;
    assert (now && memcmp (kc_cert_public_key (now), kc_cert_public_key (second), KC_KEY_BYTES) == 0);
    char old_path [280];
    snprintf (old_path, sizeof old_path, "%s.old", key);
    old = kc_cert_load_secret (old_path, &why);
    assert (old && memcmp (kc_cert_public_key (old), kc_cert_public_key (first), KC_KEY_BYTES) == 0);
    assert (kc_nodekey_next (key, found, &why) == 0);
    assert (kc_nodekey_next_seen (key, &seen, found, &why) == 0 && !seen.known);
    //  A second swap of the same key finds nothing to do
    assert (kc_nodekey_swap (key, kc_cert_public_key (second), 100, &why) == 1);
    uint64_t until;
    assert (kc_nodekey_old_until (key, &until) == 1 && until == 100);
    assert (kc_nodekey_forget_old (key, 99, &until, &why) == 0 && until == 100);
    assert (kc_file_exists (old_path));
    assert (kc_nodekey_forget_old (key, 100, &until, &why) == 1);
    assert (!kc_file_exists (old_path) && kc_nodekey_old_until (key, &until) == 0);
    assert (kc_nodekey_forget_old (key, 200, &until, &why) == 0);

    kc_cert_destroy (&now);
    kc_cert_destroy (&old);
    kc_cert_destroy (&first);
    kc_cert_destroy (&second);
    const char *files [] = { "node", "node_secret", NULL };
    for (size_t i = 0; files [i]; i++) {
        char path [300];
        snprintf (path, sizeof path, "%s/%s", dir, files [i]);
        assert (unlink (path) == 0);
    }
    assert (rmdir (dir) == 0);
    if (verbose) {
        printf ("OK\n");
    }
}
