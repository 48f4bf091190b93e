/*  =========================================================================
    keyclone-server - arguments, configuration and wiring; the engine is
    kc_server. Exit status: 0 clean shutdown, 1 cannot start, 2 usage.
    =========================================================================
*/
#include "kc_server.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#include <sodium.h>

static const char *s_help =
    "Usage: keyclone-server [--dir DIR] [--config FILE] [--read members|any]\n"
    "                       [--bind-snapshot EP] [--bind-updates EP] [--bind-submit EP]\n"
    "                       [--heartbeat MS] [--log FILE] [--verbose]\n"
    "                       [--cluster NAME=HOST:PORT,...] [--raft-dir DIR] [--election MS]\n"
    "                       [--member NAME]\n"
    "\n"
    "Runs the keyclone clone server for the directory that 'keyclone init --dir DIR'\n"
    "created: it reads DIR/root, DIR/server/curve_secret, DIR/server/head_secret and\n"
    "keeps its log in DIR/server/store.db. It serves the snapshot, updates and\n"
    "submission channels on the root's endpoints (or the --bind-* ones, e.g.\n"
    "tcp://*:5550) with CURVE, until SIGINT or SIGTERM. SIGHUP opens the log file\n"
    "again (--log) and reads the configuration again: heartbeat and head-valid apply\n"
    "at once, the rest is logged\n"
    "as needing a restart; enrol/* apply at once too.\n"
    "Nodes ask to join with 'keyclone enrol'; the requests wait, bounded, rate-limited\n"
    "per source and expiring (config enrol/max, enrol/rate, enrol/expiry), until an\n"
    "operator approves or rejects them.\n"
    "\n"
    "Options (each may also be set in the config file, default DIR/server.cfg):\n"
    "  --dir DIR           the keyclone directory (default: $KEYCLONE_DIR or .)\n"
    "  --config FILE       ZPL configuration (section 'server'; see docs/operator.md)\n"
    "  --read WHO          who may sync: 'members' (registered, unrevoked, unexpired\n"
    "                      keys; default) or 'any' CURVE client\n"
    "  --heartbeat MS      publish a signed head at least every MS ms (default 1000)\n"
    "  --verbose           also log every sync served\n"
    "  --log FILE          log to FILE (appended) instead of standard output; SIGHUP\n"
    "                      opens it again (after logrotate moved it)\n"
    "  --cluster LIST      run as a member of a cluster (docs/cluster.md), whose\n"
    "                      members are the servers of the root in force; LIST gives\n"
    "                      their Raft addresses (default: the submission port + 1),\n"
    "                      e.g. a=10.0.0.1:5553,b=10.0.0.2:5553,c=10.0.0.3:5553;\n"
    "                      this server is the one with its CURVE key\n"
    "  --member NAME       this member's name while the root in force does not name it\n"
    "                      yet (joining a cluster: 'keyclone cluster add' writes it)\n"
    "  --raft-dir DIR      the member's Raft log (default: 'raft' beside the store,\n"
    "                      DIR/server/raft)\n"
    "  --election MS       Raft election timeout (default 500; heartbeat MS/10)\n"
    "  --version           print the version (and the libraries') and exit\n";

typedef struct {
    char root [4096], curve [4096], head [4096], store [4096], cluster [4096], raft_dir [4096], member [128];
    char bind [KC_ENDPOINTS][512];
} s_paths_t;

static void
s_path (char *out, const char *dir, const char *value)
{
    if (value [0] == '/') {
        snprintf (out, 4096, "%s", value);
    }
    else {
        snprintf (out, 4096, "%s/%s", dir, value);
    }
}

static int
s_int (const char *text, int min, int max, int *value)
{
    char *end;
    long parsed = strtol (text, &end, 10);
    if (*text == 0 || *end || parsed < min || parsed > max) {
        return -1;
    }
    *value = (int) parsed;
    return 0;
}

//  Applies a ZPL config file. Returns 0, or -1 after printing why.
static int
s_configure (const char *dir, const char *file, bool must_exist, kc_server_config_t *config,
             s_paths_t *paths)
{
    zconfig_t *root = zconfig_load (file);
    if (!root) {
        if (must_exist) {
            fprintf (stderr, "keyclone-server: cannot load config '%s'\n", file);
            return -1;
        }
        return 0;
    }
    s_path (paths->root, dir, zconfig_get (root, "server/root", "root"));
    s_path (paths->curve, dir, zconfig_get (root, "server/curve", "server/curve"));
    s_path (paths->head, dir, zconfig_get (root, "server/head", "server/head"));
    s_path (paths->store, dir, zconfig_get (root, "server/store", "server/store.db"));
    const char *read = zconfig_get (root, "server/read", "members");
    const char *cluster = zconfig_get (root, "server/cluster", NULL);
    if (cluster && *cluster) {
        snprintf (paths->cluster, sizeof paths->cluster, "%s", cluster);
        config->cluster = paths->cluster;
    }
    const char *member = zconfig_get (root, "server/member", NULL);
    if (member && *member) {
        snprintf (paths->member, sizeof paths->member, "%s", member);
        config->member = paths->member;
    }
    const char *raft_dir = zconfig_get (root, "server/raft-dir", NULL);
    if (raft_dir) {
        s_path (paths->raft_dir, dir, raft_dir);
        config->raft_dir = paths->raft_dir;
    }
    static const char *names [KC_ENDPOINTS] = { "server/bind/snapshot", "server/bind/updates",
                                                "server/bind/submit" };
    for (int i = 0; i < KC_ENDPOINTS; i++) {
        const char *bind = zconfig_get (root, names [i], NULL);
        if (bind) {
            snprintf (paths->bind [i], sizeof paths->bind [i], "%s", bind);
            config->bind [i] = paths->bind [i];
        }
    }
    int rc = 0;
    if (!KC_STREQ (read, "members") && !KC_STREQ (read, "any")) {
        fprintf (stderr, "keyclone-server: %s: read must be 'members' or 'any', not '%s'\n", file, read);
        rc = -1;
    }
    config->read_any = KC_STREQ (read, "any");
    if (s_int (zconfig_get (root, "server/heartbeat", "1000"), 10, 60000, &config->heartbeat_ms)
    ||  s_int (zconfig_get (root, "server/head-valid", "5000"), 20, 3600000, &config->head_valid_ms)
    ||  s_int (zconfig_get (root, "server/sndhwm", "100000"), 0, 100000000, &config->sndhwm)
    ||  s_int (zconfig_get (root, "server/election", "500"), 100, 60000, &config->election_ms)) {
        fprintf (stderr, "keyclone-server: %s: heartbeat (10..60000), head-valid (20..3600000), "
                 "election (100..60000) and sndhwm must be numbers in range\n", file);
        rc = -1;
    }
    uint64_t expiry;
    kc_why_t why;
    if (kc_duration_parse (zconfig_get (root, "server/enrol/expiry", "24h"), &expiry, &why)
    ||  expiry < 1 || expiry > 365 * 86400) {
        fprintf (stderr, "keyclone-server: %s: enrol/expiry must be a duration of 1s..365d\n", file);
        rc = -1;
    }
    config->enrol_expiry_ms = expiry * 1000;
    if (s_int (zconfig_get (root, "server/enrol/max", "1000"), 0, 100000, &config->enrol_max)
    ||  s_int (zconfig_get (root, "server/enrol/rate", "10"), 1, 100000, &config->enrol_rate)) {
        fprintf (stderr, "keyclone-server: %s: enrol/max (0..100000) and enrol/rate (1..100000) "
                 "must be numbers in range\n", file);
        rc = -1;
    }
    zconfig_destroy (&root);
    return rc;
}

//  The configuration: defaults, the config file, then the options (which
//  win). 0, or 1 after printing why. Run again on SIGHUP (s_reload).
typedef struct {
    const char *dir, *config_file, *read, *cluster, *raft_dir, *member;
    const char *binds [KC_ENDPOINTS];
    int heartbeat, election;
} s_build_t;

static int
s_build (s_build_t *self, kc_server_config_t *config, s_paths_t *paths)
{
    kc_server_config_defaults (config);
    memset (paths, 0, sizeof *paths);
    const char *dir = self->dir, *config_file = self->config_file, *read = self->read;
    s_path (paths->root, dir, "root");
    s_path (paths->curve, dir, "server/curve");
    s_path (paths->head, dir, "server/head");
    s_path (paths->store, dir, "server/store.db");
    char default_config [4096];
    s_path (default_config, dir, "server.cfg");
    if (s_configure (dir, config_file ? config_file : default_config, config_file != NULL,
                     config, paths)) {
        return 1;
    }
    config->root_path = paths->root;
    config->curve_path = paths->curve;
    config->head_path = paths->head;
    config->store_path = paths->store;
    for (int i = 0; i < KC_ENDPOINTS; i++) {
        if (self->binds [i]) {
            config->bind [i] = self->binds [i];
        }
    }
    if (read) {
        config->read_any = KC_STREQ (read, "any");
    }
    if (self->heartbeat) {
        config->heartbeat_ms = self->heartbeat;
    }
    if (self->cluster) {
        config->cluster = self->cluster;
    }
    if (self->raft_dir) {
        config->raft_dir = self->raft_dir;
    }
    if (self->member) {
        config->member = self->member;
    }
    if (self->election) {
        config->election_ms = self->election;
    }
    config->raft_heartbeat_ms = config->election_ms / 10;
    return 0;
}

static int
s_reload (void *arg, kc_server_config_t *fresh)
{
    static s_paths_t paths;
    return s_build ((s_build_t *) arg, fresh, &paths);
}

int
main (int argc, char *argv [])
{
    static const struct option longs [] = {
        { "dir", required_argument, NULL, 'd' },
        { "config", required_argument, NULL, 'c' },
        { "read", required_argument, NULL, 'r' },
        { "bind-snapshot", required_argument, NULL, '0' },
        { "bind-updates", required_argument, NULL, '1' },
        { "bind-submit", required_argument, NULL, '2' },
        { "heartbeat", required_argument, NULL, 'h' },
        { "cluster", required_argument, NULL, 'C' }, { "raft-dir", required_argument, NULL, 'R' },
        { "election", required_argument, NULL, 'E' }, { "member", required_argument, NULL, 'M' },
        { "verbose", no_argument, NULL, 'v' }, { "log", required_argument, NULL, 'L' },
        { "help", no_argument, NULL, 'H' }, { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *dir = getenv ("KEYCLONE_DIR"), *config_file = NULL, *read = NULL, *log = NULL;
    const char *cluster = NULL, *raft_dir = NULL, *member = NULL;
    const char *binds [KC_ENDPOINTS] = { NULL, NULL, NULL };
    int heartbeat = 0, election = 0, c;
    bool verbose = false;
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'd': dir = optarg; break;
            case 'c': config_file = optarg; break;
            case 'r': read = optarg; break;
            case '0': case '1': case '2': binds [c - '0'] = optarg; break;
            case 'v': verbose = true; break;
            case 'L': log = optarg; break;
            case 'C': cluster = optarg; break;
            case 'R': raft_dir = optarg; break;
            case 'M': member = optarg; break;
            case 'E':
                if (s_int (optarg, 100, 60000, &election)) {
                    fprintf (stderr, "keyclone-server: --election must be 100..60000 ms\n");
                    return 2;
                }
                break;
            case 'H': fputs (s_help, stdout); return 0;
            case 'V': {
                char text [KC_VERSION_TEXT_MAX];
                puts (kc_version_text ("keyclone-server", text, sizeof text));
                return 0;
            }
            case 'h':
                if (s_int (optarg, 10, 60000, &heartbeat)) {
                    fprintf (stderr, "keyclone-server: --heartbeat must be 10..60000 ms\n");
                    return 2;
                }
                break;
            default:
                fprintf (stderr, "Try 'keyclone-server --help'.\n");
                return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "keyclone-server: unexpected argument '%s'\nTry 'keyclone-server --help'.\n",
                 argv [optind]);
        return 2;
    }
    if (read && !KC_STREQ (read, "members") && !KC_STREQ (read, "any")) {
        fprintf (stderr, "keyclone-server: --read must be 'members' or 'any'\n");
        return 2;
    }
    dir = dir && *dir ? dir : ".";
    if (sodium_init () < 0) {
        fprintf (stderr, "keyclone-server: libsodium failed to initialise\n");
        return 1;
    }
    kc_malloc_tune ();
    kc_server_config_t config;
    s_build_t build = { .dir = dir, .config_file = config_file, .read = read, .heartbeat = heartbeat,
                        .cluster = cluster, .raft_dir = raft_dir, .election = election, .member = member };
    memcpy (build.binds, binds, sizeof binds);
    static s_paths_t paths;
    if (s_build (&build, &config, &paths)) {
        return 1;
    }
    config.reload = s_reload;
    config.reload_arg = &build;
    config.verbose = verbose;
    //  One server per directory: a second one would sequence batches into
    //  the same store behind the first one's back
    char lock_path [4096 + 16], absolute [4096];
    s_path (lock_path, dir, "server.lock");
    kc_why_t why;
    char what [4096 + 8];
    snprintf (what, sizeof what, "'%s'", realpath (dir, absolute) ? absolute : dir);
    int lock = kc_file_lock (lock_path, what, &why);
    if (lock < 0) {
        fprintf (stderr, "keyclone-server: %s\n", why.text);
        return 1;
    }
    //  SIGHUP reads the configuration again (it used to end the server),
    //  set before any other thread exists
    kc_on_sighup (kc_server_reload_wanted);
    zsys_init ();
    zsys_set_logident ("keyclone-server");
    zsys_set_linger (0);
    if (log && kc_log_file (log, &why)) {
        fprintf (stderr, "keyclone-server: %s\n", why.text);
        close (lock);
        return 1;
    }
    int rc = kc_server_run (&config);
    close (lock);
    return rc;
}
