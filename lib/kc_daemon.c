/*  =========================================================================
    kc_daemon - the small daemons' start-up.
    =========================================================================
*/
#include "kc_daemon.h"
#include "kc_file.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int
kc_daemon_options (const char *name, const char *help, int argc, char *argv [], const struct option *longs,
                   const char *options [128])
{
    int c;
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if (c == 'H') {
            fputs (help, stdout);
            return 1;
        }
        if (c == 'V') {
            char text [KC_VERSION_TEXT_MAX];
            puts (kc_version_text (name, text, sizeof text));
            return 1;
        }
        if (c == '?' || c < 0 || c >= 128) {
            fprintf (stderr, "Try '%s --help'.\n", name);
            return 2;
        }
        options [c] = optarg ? optarg : "";
    }
    if (optind < argc) {
        fprintf (stderr, "%s: unexpected argument '%s'\nTry '%s --help'.\n", name, argv [optind], name);
        return 2;
    }
    return 0;
}

int
kc_daemon_ms (const char *name, const char *option, const char *text, long min, long max, int *out)
{
    if (!text) {
        return 0;
    }
    char *end = NULL;
    long value = strtol (text, &end, 10);
    if (!*text || *end || value < min || value > max) {
        fprintf (stderr, "%s: --%s must be %ld..%ld ms\n", name, option, min, max);
        return 2;
    }
    *out = (int) value;
    return 0;
}

void
kc_daemon_path (char *out, size_t size, const char *dir, const char *value)
{
    snprintf (out, size, "%s%s%s", value [0] == '/' ? "" : dir, value [0] == '/' ? "" : "/", value);
}

int
kc_daemon_start (const char *name, const char *store, const char *log_path, void (*reopen) (void))
{
    char lock_path [4200], what [4200];
    snprintf (lock_path, sizeof lock_path, "%s.lock", store);
    snprintf (what, sizeof what, "'%s'", store);
    kc_why_t why;
    int lock = kc_file_lock (lock_path, what, &why);
    if (lock < 0) {
        fprintf (stderr, "%s: %s\n", name, why.text);
        return -1;
    }
    kc_on_sighup (reopen);
    zsys_init ();
    zsys_set_logident (name);
    zsys_set_linger (0);
    if (log_path && kc_log_file (log_path, &why)) {
        fprintf (stderr, "%s: %s\n", name, why.text);
        close (lock);
        return -1;
    }
    return lock;
}
