/*  =========================================================================
    kc_file - whole-file reads and atomic writes.
    =========================================================================
*/
#include "kc_file.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int
s_read_all (int fd, uint8_t *data, size_t size)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = read (fd, data + done, size - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        done += (size_t) n;
    }
    return 0;
}

uint8_t *
kc_file_read (const char *path, size_t max, bool secret, size_t *size, kc_why_t *why)
{
    uint8_t *data = NULL;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        kc_why (why, "cannot open '%s': %s", path, strerror (errno));
        goto cleanup;
    }
    struct stat st;
    if (fstat (fd, &st)) {
        kc_why (why, "cannot stat '%s': %s", path, strerror (errno));
        goto cleanup;
    }
    if (!S_ISREG (st.st_mode)) {
        kc_why (why, "'%s' is not a regular file", path);
        goto cleanup;
    }
    if (secret && (st.st_mode & 077)) {
        kc_why (why, "refusing secret file '%s': mode %04o lets group or others "
                "access it (run: chmod 600 '%s')", path,
                (unsigned) (st.st_mode & 07777), path);
        goto cleanup;
    }
    if ((uint64_t) st.st_size > max) {
        kc_why (why, "'%s' is too large (%lld bytes, limit %zu)", path,
                (long long) st.st_size, max);
        goto cleanup;
    }
    size_t length = (size_t) st.st_size;
    data = secret ? sodium_malloc (length + 1) : malloc (length + 1);
    if (!data) {
        fprintf (stderr, "kc_file: out of memory\n");
        abort ();
    }
    if (s_read_all (fd, data, length)) {
        kc_why (why, "cannot read '%s': %s", path, errno ? strerror (errno) : "short read");
        kc_file_free (&data, secret);
        goto cleanup;
    }
    data [length] = 0;
    *size = length;
cleanup:
    if (fd >= 0) {
        close (fd);
    }
    return data;
}

void
kc_file_free (uint8_t **data_p, bool secret)
{
    if (data_p && *data_p) {
        if (secret) {
            sodium_free (*data_p);      //  sodium_free wipes before freeing
        }
        else {
            free (*data_p);
        }
        *data_p = NULL;
    }
}

static int
s_fsync_dir (const char *path)
{
    char copy [4096];
    snprintf (copy, sizeof copy, "%s", path);
    int fd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync (fd);
    close (fd);
    return rc;
}

//  The owner and group that what root writes at path takes: those of its
//  directory when another user owns it (a service's state directory, such as
//  the agent's /var/lib/keyclone/agent, operator.md 2a), so the service can
//  read the key root made for it; its secret stays mode 0600, no one else's.
//  False when the file keeps its creator's (not root, or a root-owned
//  directory).
static bool
s_owner_of_directory (const char *path, uid_t *uid, gid_t *gid)
{
    if (geteuid () != 0) {
        return false;
    }
    char copy [4096];
    snprintf (copy, sizeof copy, "%s", path);
    struct stat st;
    if (stat (dirname (copy), &st) || st.st_uid == 0) {
        return false;
    }
    *uid = st.st_uid;
    *gid = st.st_gid;
    return true;
}

int
kc_file_write_atomic (const char *path, const void *data, size_t size, mode_t mode,
                      kc_why_t *why)
{
    char temp [4096];
    if (snprintf (temp, sizeof temp, "%s.tmp.XXXXXX", path) >= (int) sizeof temp) {
        return kc_why (why, "path too long: '%.80s...'", path);
    }
    int fd = mkstemp (temp);
    if (fd < 0) {
        return kc_why (why, "cannot create '%s': %s", temp, strerror (errno));
    }
    int rc = -1;
    if (fchmod (fd, mode)) {
        kc_why (why, "cannot chmod '%s': %s", temp, strerror (errno));
        goto cleanup;
    }
    uid_t uid;
    gid_t gid;
    if (s_owner_of_directory (path, &uid, &gid) && fchown (fd, uid, gid)) {
        kc_why (why, "cannot give '%s' the owner of its directory: %s", temp, strerror (errno));
        goto cleanup;
    }
    const uint8_t *p = data;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write (fd, p + done, size - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            kc_why (why, "cannot write '%s': %s", temp, strerror (errno));
            goto cleanup;
        }
        done += (size_t) n;
    }
    if (fsync (fd)) {
        kc_why (why, "cannot fsync '%s': %s", temp, strerror (errno));
        goto cleanup;
    }
    if (close (fd)) {
        fd = -1;
        kc_why (why, "cannot close '%s': %s", temp, strerror (errno));
        goto cleanup;
    }
    fd = -1;
    if (rename (temp, path)) {
        kc_why (why, "cannot rename '%s' to '%s': %s", temp, path, strerror (errno));
        goto cleanup;
    }
    s_fsync_dir (path);
    rc = 0;
cleanup:
    if (fd >= 0) {
        close (fd);
    }
    if (rc) {
        unlink (temp);
    }
    return rc;
}

bool
kc_file_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0;
}

int
kc_file_mkdirs (const char *path, mode_t mode, kc_why_t *why)
{
    char copy [4096];
    if (snprintf (copy, sizeof copy, "%s", path) >= (int) sizeof copy) {
        return kc_why (why, "path too long: '%.80s...'", path);
    }
    for (char *p = copy + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char saved = *p;
            *p = 0;
            if (mkdir (copy, mode) == 0) {
                uid_t uid;
                gid_t gid;
                if (s_owner_of_directory (copy, &uid, &gid) && chown (copy, uid, gid)) {
                    return kc_why (why, "cannot give '%s' the owner of its directory: %s", copy, strerror (errno));
                }
            }
            else
            if (errno != EEXIST) {
                return kc_why (why, "cannot create directory '%s': %s", copy, strerror (errno));
            }
            *p = saved;
            if (saved == 0) {
                break;
            }
        }
    }
    struct stat st;
    if (stat (path, &st) || !S_ISDIR (st.st_mode)) {
        return kc_why (why, "'%s' is not a directory", path);
    }
    return 0;
}

int
kc_file_lock (const char *path, const char *what, kc_why_t *why)
{
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return kc_why (why, "cannot open the lock '%s': %s", path, strerror (errno));
    }
    if (flock (fd, LOCK_EX | LOCK_NB)) {
        int error = errno;
        char text [32] = "";
        ssize_t size = pread (fd, text, sizeof text - 1, 0);
        close (fd);
        if (error == EWOULDBLOCK) {
            long pid = size > 0 ? strtol (text, NULL, 10) : 0;
            return pid > 0 ? kc_why (why, "%s is in use by pid %ld", what, pid)
                           : kc_why (why, "%s is in use by another process", what);
        }
        return kc_why (why, "cannot lock '%s': %s", path, strerror (error));
    }
    char text [32];
    int length = snprintf (text, sizeof text, "%ld\n", (long) getpid ());
    if (ftruncate (fd, 0) || pwrite (fd, text, (size_t) length, 0) != length) {
        int error = errno;
        close (fd);
        return kc_why (why, "cannot write the lock '%s': %s", path, strerror (error));
    }
    return fd;
}

void
kc_file_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_file: ");
    }
    char dir [] = "/tmp/kc_file_test.XXXXXX";
    assert (mkdtemp (dir));
    char path [256], sub [256];
    snprintf (path, sizeof path, "%s/secret", dir);
    snprintf (sub, sizeof sub, "%s/a/b/c", dir);
    kc_why_t why;

    assert (kc_file_mkdirs (sub, 0700, &why) == 0);
    assert (kc_file_mkdirs (sub, 0700, &why) == 0);
    assert (kc_file_write_atomic (path, "hush", 4, 0600, &why) == 0);
    struct stat st;
    assert (stat (path, &st) == 0 && (st.st_mode & 0777) == 0600);

    size_t size = 0;
    uint8_t *data = kc_file_read (path, 100, true, &size, &why);
    assert (data && size == 4 && memcmp (data, "hush", 5) == 0);
    kc_file_free (&data, true);
    assert (data == NULL);

    //  Too large
    assert (kc_file_read (path, 3, false, &size, &why) == NULL);
    assert (strstr (why.text, "too large"));

    //  A secret others can read is refused, but a public read is fine
    assert (chmod (path, 0644) == 0);
    assert (kc_file_read (path, 100, true, &size, &why) == NULL);
    assert (strstr (why.text, "mode 0644"));
    data = kc_file_read (path, 100, false, &size, &why);
    assert (data);
    kc_file_free (&data, false);

    //  Atomic rewrite replaces content and mode
    assert (kc_file_write_atomic (path, "louder", 6, 0600, &why) == 0);
    data = kc_file_read (path, 100, true, &size, &why);
    assert (data && size == 6);
    kc_file_free (&data, true);

    //  Root writing in a directory another user owns (a service's state
    //  directory): the files and directories take that user and group
    if (geteuid () == 0) {
        char owned [300], key [320], below [320];
        snprintf (owned, sizeof owned, "%s/service", dir);
        snprintf (key, sizeof key, "%s/node_secret", owned);
        snprintf (below, sizeof below, "%s/server/keys", owned);
        assert (mkdir (owned, 0750) == 0 && chown (owned, 65534, 65533) == 0);
        assert (kc_file_write_atomic (key, "hush", 4, 0600, &why) == 0);
        assert (kc_file_mkdirs (below, 0700, &why) == 0);
        assert (stat (key, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65533 && (st.st_mode & 0777) == 0600);
        assert (stat (below, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65533);
        snprintf (below, sizeof below, "%s/server", owned);
        assert (stat (below, &st) == 0 && st.st_uid == 65534);
        //  in a directory root owns, root's files stay root's
        assert (stat (path, &st) == 0 && st.st_uid == 0);
        unlink (key);
        snprintf (below, sizeof below, "%s/server/keys", owned);
        rmdir (below);
        snprintf (below, sizeof below, "%s/server", owned);
        rmdir (below);
        rmdir (owned);
    }

    //  Missing file and directory
    char missing [300];
    snprintf (missing, sizeof missing, "%s/none", dir);
    assert (kc_file_read (missing, 100, false, &size, &why) == NULL);
    assert (strstr (why.text, "cannot open"));
    assert (kc_file_read (dir, 100, false, &size, &why) == NULL);
    assert (!kc_file_exists (missing) && kc_file_exists (path));

    //  One holder at a time: a second open of the lock is refused with the pid
    char lock [300];
    snprintf (lock, sizeof lock, "%s/test.lock", dir);
    int held = kc_file_lock (lock, "the test directory", &why);
    assert (held >= 0);
    assert (kc_file_lock (lock, "the test directory", &why) == -1);
    char expected [80];
    snprintf (expected, sizeof expected, "the test directory is in use by pid %ld", (long) getpid ());
    assert (KC_STREQ (why.text, expected));
    close (held);
    held = kc_file_lock (lock, "the test directory", &why);
    assert (held >= 0);
    close (held);
    unlink (lock);

    unlink (path);
    rmdir (sub);
    snprintf (sub, sizeof sub, "%s/a/b", dir);
    rmdir (sub);
    snprintf (sub, sizeof sub, "%s/a", dir);
    rmdir (sub);
    rmdir (dir);
    if (verbose) {
        printf ("OK\n");
    }
}
