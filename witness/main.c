/*  =========================================================================
    keyclone-witness - arguments and wiring; the engine is kc_witnessd.
    Exit status: 0 clean shutdown, 1 cannot start, 2 usage.
    =========================================================================
*/
#include "kc_witnessd.h"

#include <getopt.h>
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
    "                      (default 5000)\n"
    "  --log FILE          log to FILE (appended) instead of standard output\n"
    "  --version           print the version (and the libraries') and exit\n";

static void
s_path (char *out, size_t size, const char *dir, const char *value)
{
    snprintf (out, size, "%s%s%s", value [0] == '/' ? "" : dir, value [0] == '/' ? "" : "/", value);
}

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
    int c;
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if (c == 'H') {
            fputs (s_help, stdout);
            return 0;
        }
        if (c == 'V') {
            char text [KC_VERSION_TEXT_MAX];
            puts (kc_version_text ("keyclone-witness", text, sizeof text));
            return 0;
        }
        if (c == '?' || c < 0 || c >= 128) {
            fprintf (stderr, "Try 'keyclone-witness --help'.\n");
            return 2;
        }
        options [c] = optarg ? optarg : "";
    }
    if (optind < argc || !options ['u'] || !options ['w']) {
        fprintf (stderr, "keyclone-witness: %s%s\nTry 'keyclone-witness --help'.\n",
                 optind < argc ? "unexpected argument " : "--upstream LIST and --witness FILE are required",
                 optind < argc ? argv [optind] : "");
        return 2;
    }
    kc_witnessd_config_t config = { .stale_after_ms = 5000, .upstreams = options ['u'] };
    if (options ['S']) {
        char *end = NULL;
        long stale = strtol (options ['S'], &end, 10);
        if (*end || stale < 100 || stale > 86400000) {
            fprintf (stderr, "keyclone-witness: --stale-after must be 100..86400000 ms\n");
            return 2;
        }
        config.stale_after_ms = (int) stale;
    }
    static char dir [PATH_MAX], root [PATH_MAX + 16], key [PATH_MAX + 32], store [PATH_MAX + 32],
                witness [PATH_MAX + 32], state [PATH_MAX + 16];
    if (!realpath (options ['d'] ? options ['d'] : ".", dir)) {
        fprintf (stderr, "keyclone-witness: no such directory '%s'\n", options ['d'] ? options ['d'] : ".");
        return 1;
    }
    s_path (root, sizeof root, dir, options ['r'] ? options ['r'] : "root");
    s_path (key, sizeof key, dir, options ['k'] ? options ['k'] : "witness/curve_secret");
    s_path (store, sizeof store, dir, options ['s'] ? options ['s'] : "witness/store.db");
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
    char lock_path [PATH_MAX + 64], what [PATH_MAX + 64];
    snprintf (lock_path, sizeof lock_path, "%s.lock", store);
    snprintf (what, sizeof what, "'%s'", store);
    int lock = kc_file_lock (lock_path, what, &why);
    if (lock < 0) {
        fprintf (stderr, "keyclone-witness: %s\n", why.text);
        return 1;
    }
    kc_on_sighup (kc_witnessd_reopen_wanted);
    zsys_init ();
    zsys_set_logident ("keyclone-witness");
    zsys_set_linger (0);
    if (options ['L'] && kc_log_file (options ['L'], &why)) {
        fprintf (stderr, "keyclone-witness: %s\n", why.text);
        close (lock);
        return 1;
    }
    int rc = kc_witnessd_run (&config);
    close (lock);
    return rc;
}
