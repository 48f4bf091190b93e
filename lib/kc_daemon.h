/*  =========================================================================
    kc_daemon - what the small daemons (keyclone-mirror, keyclone-witness)
    do alike before their engine runs: their options read into a table,
    --help and --version answered, paths under a state directory, one
    process per store (a lock), the log file and SIGHUP. Not installed.
    =========================================================================
*/
#ifndef KC_DAEMON_H_INCLUDED
#define KC_DAEMON_H_INCLUDED

#include "kc_util.h"
#include <getopt.h>

//  Reads argv with getopt_long into options [c] (each option's argument,
//  "" for a flag), by the option's val. 'H' in longs is --help (prints
//  help), 'V' is --version. Returns 0 to go on, 1 when help or the version
//  was printed (exit 0), 2 on an unknown option or a stray argument (said,
//  with "Try 'NAME --help'.").
int
    kc_daemon_options (const char *name, const char *help, int argc, char *argv [], const struct option *longs,
                       const char *options [128]);

//  An option's number of milliseconds, min..max, into *out (untouched when
//  text is NULL). 0, or 2 having said what is wrong.
int
    kc_daemon_ms (const char *name, const char *option, const char *text, long min, long max, int *out);

//  DIR/value, or value when it is absolute, into out.
void
    kc_daemon_path (char *out, size_t size, const char *dir, const char *value);

//  Takes the lock that makes this process the only one on store (STORE.lock),
//  calls reopen on SIGHUP, sets up czmq's logging as name and, with
//  log_path, logs there. Returns the lock's descriptor (keep it open), or
//  -1 having said why.
int
    kc_daemon_start (const char *name, const char *store, const char *log_path, void (*reopen) (void));

#endif
