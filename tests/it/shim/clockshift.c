/*  =========================================================================
    clockshift - an LD_PRELOAD shim that moves a process's wall clock, for
    the clock tests (a server an hour ahead, an agent a minute fast).

    KC_CLOCK_FILE names a file holding a signed offset in milliseconds; the
    shim adds it to CLOCK_REALTIME (clock_gettime, gettimeofday, time). The
    file is read again at most every 50 ms, so a test moves the clock of a
    running process by rewriting it. Monotonic clocks are not touched.

        LD_PRELOAD=build/tests/libkc_clockshift.so KC_CLOCK_FILE=offset keyclone-agent ...
    =========================================================================
*/

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (s_clock_gettime_fn) (clockid_t, struct timespec *);

static long long s_offset_ms;
static struct timespec s_read_at;           //  monotonic, when the file was read

static s_clock_gettime_fn *
s_real (void)
{
    static s_clock_gettime_fn *real;
    if (!real) {
        real = (s_clock_gettime_fn *) dlsym (RTLD_NEXT, "clock_gettime");
    }
    return real;
}

static long long
s_offset (void)
{
    struct timespec now;
    s_real () (CLOCK_MONOTONIC, &now);
    long long elapsed = (now.tv_sec - s_read_at.tv_sec) * 1000LL
                      + (now.tv_nsec - s_read_at.tv_nsec) / 1000000;
    if (s_read_at.tv_sec == 0 || elapsed >= 50) {
        const char *path = getenv ("KC_CLOCK_FILE");
        FILE *file = path ? fopen (path, "r") : NULL;
        long long value;
        if (file && fscanf (file, "%lld", &value) == 1) {
            s_offset_ms = value;
        }
        if (file) {
            fclose (file);
        }
        s_read_at = now;
    }
    return s_offset_ms;
}

static void
s_shift (struct timespec *ts)
{
    long long ns = (long long) ts->tv_nsec + (s_offset () % 1000) * 1000000LL;
    ts->tv_sec += (time_t) (s_offset () / 1000) + (time_t) (ns / 1000000000LL);
    ns %= 1000000000LL;
    if (ns < 0) {
        ns += 1000000000LL;
        ts->tv_sec--;
    }
    ts->tv_nsec = (long) ns;
}

int
clock_gettime (clockid_t id, struct timespec *ts)
{
    int rc = s_real () (id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        s_shift (ts);
    }
    return rc;
}

int
gettimeofday (struct timeval *tv, void *zone)
{
    (void) zone;
    struct timespec ts;
    int rc = clock_gettime (CLOCK_REALTIME, &ts);
    if (rc == 0) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t
time (time_t *out)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    if (out) {
        *out = ts.tv_sec;
    }
    return ts.tv_sec;
}
