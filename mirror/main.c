/*  =========================================================================
    keyclone-mirror - arguments and wiring; the engine is kc_mirror.
    Exit status: 0 clean shutdown, 1 cannot start, 2 usage.
    =========================================================================
*/
#include "kc_mirror.h"

#include "kc_daemon.h"
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#include <sodium.h>

static const char *s_help =
    "Usage: keyclone-mirror --upstream LIST --bind tcp://HOST:PORT [--dir DIR]\n"
    "                       [--root FILE] [--key FILE] [--store FILE]\n"
    "                       [--read members|any] [--stale-after MS] [--log FILE]\n"
    "                       [--verbose]\n"
    "\n"
    "Relays a keyclone directory's log (docs/mirror.md): follows an upstream (a\n"
    "server, a cluster member or another mirror), verifies every entry against the\n"
    "operators' signatures and the chain as a server would, keeps the log in its own\n"
    "store, and serves the same snapshot and update channels to agents with the same\n"
    "read policy. It signs nothing: agents check what it relays as they check a\n"
    "server's, so a mirror can delay them, never make them trust a key. Its agents'\n"
    "acknowledgements go upstream. Runs until SIGINT or SIGTERM; SIGHUP opens the\n"
    "log file again (--log).\n"
    "\n"
    "Options:\n"
    "  --upstream LIST     where to follow from, in order of preference, comma-\n"
    "                      separated: NAME (a server of the root, e.g. 'server' or a\n"
    "                      cluster member's name) or tcp://HOST:PORT=KEY (another\n"
    "                      mirror: its snapshot port, updates PORT+1, CURVE key in\n"
    "                      Z85); it moves to the next when one gives no head to relay\n"
    "                      for --stale-after\n"
    "  --bind tcp://HOST:PORT  serve the snapshot channel on PORT and updates on PORT+1\n"
    "  --dir DIR           state directory (default .): DIR/root the pinned root,\n"
    "                      DIR/mirror/curve_secret its CURVE key (keyclone keygen curve\n"
    "                      --dir DIR/mirror; register it upstream when the upstream\n"
    "                      serves members only), DIR/mirror/store.db its log\n"
    "  --root FILE         the pinned root (default DIR/root)\n"
    "  --key FILE          its CURVE key pair (default DIR/mirror/curve_secret)\n"
    "  --store FILE        its copy of the log (default DIR/mirror/store.db)\n"
    "  --read WHO          who may sync from it: 'members' (registered, unrevoked,\n"
    "                      unexpired keys, from its verified copy; default) or 'any'\n"
    "  --stale-after MS    move to the next upstream after MS ms without a head to\n"
    "                      relay (default 5000; a few times the upstream's heartbeat)\n"
    "  --log FILE          log to FILE (appended) instead of standard output\n"
    "  --verbose           also log every sync served\n"
    "  --version           print the version (and the libraries') and exit\n";

int
main (int argc, char *argv [])
{
    static const struct option longs [] = {
        { "upstream", required_argument, NULL, 'u' }, { "bind", required_argument, NULL, 'b' },
        { "dir", required_argument, NULL, 'd' }, { "root", required_argument, NULL, 'r' },
        { "key", required_argument, NULL, 'k' }, { "store", required_argument, NULL, 's' },
        { "read", required_argument, NULL, 'R' }, { "stale-after", required_argument, NULL, 'S' },
        { "log", required_argument, NULL, 'L' }, { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'H' }, { "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 }
    };
    const char *options [128] = { NULL };
    int parsed = kc_daemon_options ("keyclone-mirror", s_help, argc, argv, longs, options);
    if (parsed) {
        return parsed == 1 ? 0 : 2;
    }
    kc_mirror_config_t config;
    kc_mirror_config_defaults (&config);
    const char *bind = options ['b'], *read = options ['R'];
    //  --bind tcp://HOST:PORT: snapshot PORT, updates PORT+1
    static char binds [2][600];
    const char *colon = bind ? strrchr (bind, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol (colon + 1, &end, 10) : 0;
    if (!options ['u'] || !bind || strncmp (bind, "tcp://", 6) || !colon || *end || port < 1 || port > 65534) {
        fprintf (stderr, "keyclone-mirror: --upstream LIST and --bind tcp://HOST:PORT are required\n"
                 "Try 'keyclone-mirror --help'.\n");
        return 2;
    }
    snprintf (binds [0], sizeof binds [0], "%s", bind);
    snprintf (binds [1], sizeof binds [1], "%.*s:%ld", (int) (colon - bind), bind, port + 1);
    if (read && !KC_STREQ (read, "members") && !KC_STREQ (read, "any")) {
        fprintf (stderr, "keyclone-mirror: --read must be 'members' or 'any'\n");
        return 2;
    }
    if (kc_daemon_ms ("keyclone-mirror", "stale-after", options ['S'], 100, 86400000, &config.stale_after_ms)) {
        return 2;
    }
    static char dir [PATH_MAX], root [PATH_MAX + 16], key [PATH_MAX + 32], store [PATH_MAX + 32], mirror [PATH_MAX + 16];
    if (!realpath (options ['d'] ? options ['d'] : ".", dir)) {
        fprintf (stderr, "keyclone-mirror: no such directory '%s'\n", options ['d'] ? options ['d'] : ".");
        return 1;
    }
    kc_daemon_path (root, sizeof root, dir, options ['r'] ? options ['r'] : "root");
    kc_daemon_path (key, sizeof key, dir, options ['k'] ? options ['k'] : "mirror/curve_secret");
    kc_daemon_path (store, sizeof store, dir, options ['s'] ? options ['s'] : "mirror/store.db");
    config.root_path = root;
    config.key_path = key;
    config.store_path = store;
    config.bind [0] = binds [0];
    config.bind [1] = binds [1];
    config.upstreams = options ['u'];
    config.read_any = read && KC_STREQ (read, "any");
    config.verbose = options ['v'] != NULL;
    if (sodium_init () < 0) {
        fprintf (stderr, "keyclone-mirror: libsodium failed to initialise\n");
        return 1;
    }
    kc_malloc_tune ();
    kc_why_t why;
    snprintf (mirror, sizeof mirror, "%s/mirror", dir);
    if (kc_file_mkdirs (mirror, 0700, &why)) {
        fprintf (stderr, "keyclone-mirror: %s\n", why.text);
        return 1;
    }
    int lock = kc_daemon_start ("keyclone-mirror", store, options ['L'], kc_mirror_reopen_wanted);
    if (lock < 0) {
        return 1;
    }
    int rc = kc_mirror_run (&config);
    close (lock);
    return rc;
}
