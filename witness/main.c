/*  =========================================================================
    keyclone-witness - arguments and wiring; the engine is kc_witnessd.
    Exit status: 0 clean shutdown, 1 cannot start, 2 usage.
    =========================================================================
*/
#include "kc_witnessd.h"

#include "kc_daemon.h"
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#include <sodium.h>

static const char *s_help =
    "Usage: keyclone-witness --upstream LIST --witness FILE [--dir DIR] [--root FILE]\n"
    "                        [--key FILE] [--store FILE] [--stale-after MS]\n"
    "                        [--log FILE]\n"
    "\n"
    "A witness of a keyclone directory (docs/witness.md): follows the log from an\n"
    "upstream (a server, a cluster member or a mirror), verifies every entry against\n"
    "the operators' signatures and the chain as a server would, keeps its own copy,\n"
    "and cosigns, with the witness key the root names, each head that names exactly\n"
    "the (seq, chain) its copy ends at, sending the cosignature to every server of\n"
    "the root. It never cosigns a lower seq, or another chain at the same seq, than\n"
    "one it cosigned. Agents whose root names a witness threshold are fresh only on\n"
    "what that many witnesses cosigned. Runs until SIGINT or SIGTERM; SIGHUP opens\n"
    "the log file again (--log).\n"
    "\n"
    "Options:\n"
    "  --upstream LIST     where to follow from, in order of preference, comma-\n"
    "                      separated: NAME (a server of the root) or\n"
    "                      tcp://HOST:PORT=KEY (a mirror); it moves to the next when\n"
    "                      one gives no news for --stale-after\n"
    "  --witness FILE      the witness key (made by 'keyclone init' with witnesses, or\n"
    "                      'keyclone keygen NAME' as a witness key)\n"
    "  --dir DIR           state directory (default .): DIR/root the pinned root,\n"
    "                      DIR/witness/curve_secret the CURVE key it reads the log\n"
    "                      with (register it when the servers serve members only),\n"
    "                      DIR/witness/store.db its copy\n"
    "  --root FILE         the pinned root (default DIR/root)\n"
    "  --key FILE          its CURVE key pair (default DIR/witness/curve_secret)\n"
    "  --store FILE        its copy of the log (default DIR/witness/store.db)\n"
    "  --stale-after MS    move to the next upstream after MS ms without news\n"
    "                      (default 5000; a few times the upstream's heartbeat)\n"
    "  --log FILE          log to FILE (appended) instead of standard output\n"
    "  --version           print the version (and the libraries') and exit\n";

int
main (int argc, char *argv [])
{
    static const struct option longs [] = {
        { "upstream", required_argument, NULL, 'u' }, { "witness", required_argument, NULL, 'w' },
        { "dir", required_argument, NULL, 'd' }, { "root", required_argument, NULL, 'r' },
        { "key", required_argument, NULL, 'k' }, { "store", required_argument, NULL, 's' },
        { "stale-after", required_argument, NULL, 'S' }, { "log", required_argument, NULL, 'L' },
        { "help", no_argument, NULL, 'H' }, { "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 }
    };
    const char *options [128] = { NULL };
    int parsed = kc_daemon_options ("keyclone-witness", s_help, argc, argv, longs, options);
    if (parsed) {
        return parsed == 1 ? 0 : 2;
    }
    if (!options ['u'] || !options ['w']) {
        fprintf (stderr, "keyclone-witness: --upstream LIST and --witness FILE are required\n"
                 "Try 'keyclone-witness --help'.\n");
        return 2;
    }
    kc_witnessd_config_t config = { .stale_after_ms = 5000, .upstreams = options ['u'] };
    if (kc_daemon_ms ("keyclone-witness", "stale-after", options ['S'], 100, 86400000, &config.stale_after_ms)) {
        return 2;
    }
    static char dir [PATH_MAX], root [PATH_MAX + 16], key [PATH_MAX + 32], store [PATH_MAX + 32],
                witness [PATH_MAX + 32], state [PATH_MAX + 16];
    if (!realpath (options ['d'] ? options ['d'] : ".", dir)) {
        fprintf (stderr, "keyclone-witness: no such directory '%s'\n", options ['d'] ? options ['d'] : ".");
        return 1;
    }
    kc_daemon_path (root, sizeof root, dir, options ['r'] ? options ['r'] : "root");
    kc_daemon_path (key, sizeof key, dir, options ['k'] ? options ['k'] : "witness/curve_secret");
    kc_daemon_path (store, sizeof store, dir, options ['s'] ? options ['s'] : "witness/store.db");
    snprintf (witness, sizeof witness, "%s", options ['w']);
    config.root_path = root;
    config.key_path = key;
    config.store_path = store;
    config.witness_path = witness;
    if (sodium_init () < 0) {
        fprintf (stderr, "keyclone-witness: libsodium failed to initialise\n");
        return 1;
    }
    kc_why_t why;
    snprintf (state, sizeof state, "%s/witness", dir);
    if (kc_file_mkdirs (state, 0700, &why)) {
        fprintf (stderr, "keyclone-witness: %s\n", why.text);
        return 1;
    }
    int lock = kc_daemon_start ("keyclone-witness", store, options ['L'], kc_witnessd_reopen_wanted);
    if (lock < 0) {
        return 1;
    }
    int rc = kc_witnessd_run (&config);
    close (lock);
    return rc;
}
