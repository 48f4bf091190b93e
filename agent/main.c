/*  =========================================================================
    keyclone-agent - arguments, configuration and wiring; the engine is
    kc_agent. Exit status: 0 clean shutdown, 1 cannot start, 2 usage.
    =========================================================================
*/
#include "kc_agent.h"

#include <getopt.h>
#include <grp.h>
#include <unistd.h>
#include <limits.h>
#include <sodium.h>

static const char *s_help =
    "Usage: keyclone-agent [--dir DIR] [--config FILE] [--root FILE] [--key FILE]\n"
    "                      [--cache FILE] [--local EP] [--events EP]\n"
    "                      [--server-snapshot EP] [--server-updates EP]\n"
    "                      [--stale-after MS] [--policy serve|fail-closed]\n"
    "                      [--check-interval MS] [--clock-skew MS]\n"
    "                      [--group GROUP] [--socket-mode MODE] [--log FILE] [--verbose]\n"
    "                      [--enrol NAME [--tag TAG]...] [--witness FILE]\n"
    "                      [--mirror tcp://HOST:PORT=KEY,...]\n"
    "\n"
    "Keeps a verified copy of the keyclone directory in a local sqlite cache and\n"
    "serves it to this node: lookups, status and an event stream on ipc endpoints.\n"
    "Every batch is checked against the operators' signatures in the root in force\n"
    "(the pinned root, followed through the root changes in the log), the chain\n"
    "and the server's signed heads before it is applied. It runs until SIGINT or\n"
    "SIGTERM; SIGHUP opens the log file again (--log) and reads the configuration\n"
    "again (stale-after, policy and clock-skew apply at once, the rest is logged as\n"
    "needing a restart).\n"
    "\n"
    "Options (each may also be set in the config file, default DIR/agent.cfg):\n"
    "  --dir DIR              state directory (default .): DIR/root is the pinned\n"
    "                         root, DIR/node_secret this node's CURVE key, DIR/agent.db\n"
    "                         the cache, ipc://DIR/agent.ipc the local service and\n"
    "                         ipc://DIR/events.ipc the event stream\n"
    "  --root FILE            the pinned root (copy it from 'keyclone init'); FILE.followed,\n"
    "                         when present, names a newer server key to try (a hint)\n"
    "  --key FILE             this node's CURVE key pair (from 'keyclone keygen'); with\n"
    "                         the server's read = members it must be registered\n"
    "  --server-snapshot EP   override the root's snapshot endpoint (and --server-updates)\n"
    "  --stale-after MS       stale after MS ms without a valid head (default 5000);\n"
    "                         when the root names a witness threshold, also stale\n"
    "                         unless that many witnesses cosigned this copy within MS\n"
    "  --policy P             when stale: 'serve' (default) keeps answering from the\n"
    "                         cache; 'fail-closed' reports trusted keys as 'stale'\n"
    "  --check-interval MS    check the cache file's integrity every MS ms (default\n"
    "                         60000; 0 = never); a damaged cache is rebuilt\n"
    "  --clock-skew MS        accept heads from a server whose clock differs from\n"
    "                         this node's by up to MS ms (default 300000); 'keyclone\n"
    "                         status' shows the measured difference\n"
    "  --group GROUP          group (name or number) of the ipc sockets and the cache\n"
    "                         (mode 0640): applications running as other users in\n"
    "                         GROUP can ask the agent and read the cache\n"
    "  --socket-mode MODE     mode of the ipc sockets, octal (default 0660)\n"
    "  --log FILE             log to FILE (appended) instead of standard output;\n"
    "                         SIGHUP opens it again (after logrotate moved it)\n"
    "  --enrol NAME           first start of a new node: make its key if --key has none,\n"
    "                         and ask the server to admit it under NAME (with each\n"
    "                         --tag TAG), as 'keyclone enrol' does; the key, fingerprint\n"
    "                         and comparison code are logged for the operator. The agent\n"
    "                         runs meanwhile and syncs as soon as the request is approved\n"
    "                         (a rejection is logged with its reason). Harmless once\n"
    "                         the key is registered.\n"
    "  --mirror LIST          follow mirrors (docs/mirror.md) instead of the root's\n"
    "                         servers: comma-separated tcp://HOST:PORT=KEY, each a\n"
    "                         keyclone-mirror's snapshot port (updates PORT+1) and\n"
    "                         CURVE key (Z85); the agent picks one at random and moves\n"
    "                         to another when it gives no fresh head. What a mirror\n"
    "                         relays is checked as a server's is\n"
    "  --witness FILE         also be a witness of the directory (docs/protocol.md 9):\n"
    "                         cosign, with this Ed25519 key (from 'keyclone keygen NAME\n"
    "                         --witness'; the root names its public half), each head\n"
    "                         that names exactly this node's verified copy of the log,\n"
    "                         never a lower seq or another chain than one it cosigned,\n"
    "                         and send it to every server of the root\n"
    "  --version              print the version (and the libraries') and exit\n"
    "\n"
    "The local service also answers ZAP requests (send \"ZAP\" then the request's\n"
    "frames) for applications in other languages; per-domain tag policies come from\n"
    "the config file: agent/zap/DOMAIN = \"tag,tag\". See docs/zap.md.\n";

typedef struct {
    char dir [PATH_MAX];
    char root [PATH_MAX], key [PATH_MAX], cache [PATH_MAX], witness [PATH_MAX], mirrors [4096];
    char local [PATH_MAX + 32], events [PATH_MAX + 32];
    char connect [2][512];
} s_paths_t;

static void
s_path (char *out, size_t size, const char *dir, const char *value)
{
    int n = value [0] == '/' ? snprintf (out, size, "%s", value)
                             : snprintf (out, size, "%s/%s", dir, value);
    if (n < 0 || (size_t) n >= size) {
        out [0] = 0;                        //  too long: no file, said when it is opened
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

static int
s_policy (const char *text, bool *fail_closed)
{
    if (KC_STREQ (text, "serve") || KC_STREQ (text, "fail-closed")) {
        *fail_closed = KC_STREQ (text, "fail-closed");
        return 0;
    }
    return -1;
}

//  A group by name or number; -1 if there is no such group.
static long
s_group (const char *text)
{
    char *end;
    long gid = strtol (text, &end, 10);
    if (*text && !*end && gid >= 0) {
        return gid;
    }
    struct group *entry = getgrnam (text);
    return entry ? (long) entry->gr_gid : -1;
}

//  An octal mode for a socket (read and write bits only).
static int
s_mode (const char *text, int *mode)
{
    char *end;
    long value = strtol (text, &end, 8);
    if (!*text || *end || value < 0 || (value & ~0666)) {
        return -1;
    }
    *mode = (int) value;
    return 0;
}

static int
s_configure (const char *file, bool must_exist, kc_agent_config_t *config, s_paths_t *paths)
{
    zconfig_t *root = zconfig_load (file);
    if (!root) {
        if (must_exist) {
            fprintf (stderr, "keyclone-agent: cannot load config '%s'\n", file);
            return -1;
        }
        return 0;
    }
    const char *value;
    if ((value = zconfig_get (root, "agent/root", NULL))) {
        s_path (paths->root, sizeof paths->root, paths->dir, value);
    }
    if ((value = zconfig_get (root, "agent/key", NULL))) {
        s_path (paths->key, sizeof paths->key, paths->dir, value);
    }
    if ((value = zconfig_get (root, "agent/cache", NULL))) {
        s_path (paths->cache, sizeof paths->cache, paths->dir, value);
    }
    if ((value = zconfig_get (root, "agent/mirrors", NULL))) {
        snprintf (paths->mirrors, sizeof paths->mirrors, "%s", value);
    }
    if ((value = zconfig_get (root, "agent/witness", NULL))) {
        s_path (paths->witness, sizeof paths->witness, paths->dir, value);
    }
    if ((value = zconfig_get (root, "agent/local", NULL))) {
        snprintf (paths->local, sizeof paths->local, "%s", value);
    }
    if ((value = zconfig_get (root, "agent/events", NULL))) {
        snprintf (paths->events, sizeof paths->events, "%s", value);
    }
    if ((value = zconfig_get (root, "agent/server/snapshot", NULL))) {
        snprintf (paths->connect [0], sizeof paths->connect [0], "%s", value);
        config->connect [0] = paths->connect [0];
    }
    if ((value = zconfig_get (root, "agent/server/updates", NULL))) {
        snprintf (paths->connect [1], sizeof paths->connect [1], "%s", value);
        config->connect [1] = paths->connect [1];
    }
    //  ZAP policies: agent/zap/DOMAIN = "tag,tag"
    zconfig_t *zap = zconfig_locate (root, "agent/zap");
    for (zconfig_t *item = zap ? zconfig_child (zap) : NULL; item; item = zconfig_next (item)) {
        if (!config->zap_policies) {
            config->zap_policies = zhashx_new ();
            zhashx_set_destructor (config->zap_policies, (zhashx_destructor_fn *) zstr_free);
        }
        zhashx_update (config->zap_policies, zconfig_name (item), strdup (zconfig_value (item)));
    }
    int rc = 0;
    if ((value = zconfig_get (root, "agent/group", NULL)) && (config->group = s_group (value)) < 0) {
        fprintf (stderr, "keyclone-agent: %s: no group '%s'\n", file, value);
        rc = -1;
    }
    if ((value = zconfig_get (root, "agent/socket-mode", NULL)) && s_mode (value, &config->socket_mode)) {
        fprintf (stderr, "keyclone-agent: %s: socket-mode must be octal read/write bits such as 0660\n",
                 file);
        rc = -1;
    }
    if (s_int (zconfig_get (root, "agent/stale-after", "5000"), 10, 86400000, &config->stale_after_ms)
    ||  s_int (zconfig_get (root, "agent/clock-skew", "300000"), 0, 86400000, &config->clock_skew_ms)
    ||  s_int (zconfig_get (root, "agent/check-interval", "60000"), 0, 86400000,
               &config->check_interval_ms)
    ||  s_policy (zconfig_get (root, "agent/policy", "serve"), &config->fail_closed)) {
        fprintf (stderr, "keyclone-agent: %s: stale-after (ms), clock-skew (ms), check-interval (ms) "
                 "or policy (serve | fail-closed) is invalid\n", file);
        rc = -1;
    }
    zconfig_destroy (&root);
    return rc;
}

//  The configuration: defaults, the config file, then the options (which
//  win). Returns 0, or the exit status after printing why. Run again on
//  SIGHUP (s_reload) with the same options.
typedef struct {
    const char **options;
    char dir [PATH_MAX];
} s_build_t;

static int
s_build (s_build_t *self, kc_agent_config_t *config, s_paths_t *paths)
{
    const char **options = self->options;
    memset (paths, 0, sizeof *paths);
    snprintf (paths->dir, sizeof paths->dir, "%s", self->dir);
    kc_agent_config_defaults (config);
    s_path (paths->root, sizeof paths->root, paths->dir, "root");
    s_path (paths->key, sizeof paths->key, paths->dir, "node");
    s_path (paths->cache, sizeof paths->cache, paths->dir, "agent.db");
    snprintf (paths->local, sizeof paths->local, "ipc://%s/agent.ipc", paths->dir);
    snprintf (paths->events, sizeof paths->events, "ipc://%s/events.ipc", paths->dir);
    char default_config [PATH_MAX + 16];
    snprintf (default_config, sizeof default_config, "%s/agent.cfg", self->dir);
    if (s_configure (options ['c'] ? options ['c'] : default_config, options ['c'] != NULL,
                     config, paths)) {
        return 1;
    }
    char *targets [] = { paths->root, paths->key, paths->cache, paths->witness };
    const char letters [] = { 'r', 'k', 'C', 'W' };
    for (int i = 0; i < 4; i++) {
        if (options [(int) letters [i]]) {
            snprintf (targets [i], PATH_MAX, "%s", options [(int) letters [i]]);
        }
    }
    if (options ['l']) {
        snprintf (paths->local, sizeof paths->local, "%s", options ['l']);
    }
    if (options ['M']) {
        snprintf (paths->mirrors, sizeof paths->mirrors, "%s", options ['M']);
    }
    if (options ['e']) {
        snprintf (paths->events, sizeof paths->events, "%s", options ['e']);
    }
    for (int i = 0; i < 2; i++) {
        if (options ['0' + i]) {
            config->connect [i] = options ['0' + i];
        }
    }
    if ((options ['s'] && s_int (options ['s'], 10, 86400000, &config->stale_after_ms))
    ||  (options ['i'] && s_int (options ['i'], 0, 86400000, &config->check_interval_ms))
    ||  (options ['w'] && s_int (options ['w'], 0, 86400000, &config->clock_skew_ms))
    ||  (options ['p'] && s_policy (options ['p'], &config->fail_closed))) {
        fprintf (stderr, "keyclone-agent: invalid --stale-after, --check-interval, --clock-skew or --policy\n"
                 "Try 'keyclone-agent --help'.\n");
        return 2;
    }
    if (options ['g'] && (config->group = s_group (options ['g'])) < 0) {
        fprintf (stderr, "keyclone-agent: no group '%s'\n", options ['g']);
        return 2;
    }
    if (options ['m'] && s_mode (options ['m'], &config->socket_mode)) {
        fprintf (stderr, "keyclone-agent: --socket-mode must be octal read/write bits such as 0660\n");
        return 2;
    }
    config->root_path = paths->root;
    config->key_path = paths->key;
    config->cache_path = paths->cache;
    config->witness_path = *paths->witness ? paths->witness : NULL;
    config->mirrors = *paths->mirrors ? paths->mirrors : NULL;
    config->local_endpoint = paths->local;
    config->events_endpoint = paths->events;
    return 0;
}

static int
s_reload (void *arg, kc_agent_config_t *fresh)
{
    static s_paths_t paths;
    return s_build ((s_build_t *) arg, fresh, &paths) ? -1 : 0;
}

//  --enrol on a node with no key yet: makes the pair (KEY, KEY_secret mode
//  0600, each written atomically). 0, or -1 having said why.
static int
s_make_key (const char *path)
{
    char base [PATH_MAX], secret [PATH_MAX + 16];
    if (!kc_nodekey_base (path, base, sizeof base)) {
        fprintf (stderr, "keyclone-agent: path too long: '%.80s...'\n", path);
        return -1;
    }
    snprintf (secret, sizeof secret, "%s%s", base, KC_SECRET_SUFFIX);
    if (kc_file_exists (base) || kc_file_exists (secret)) {
        return 0;
    }
    kc_why_t why;
    kc_cert_t *cert = kc_cert_new (NULL);
    int rc = kc_cert_save (cert, base, &why);
    if (rc) {
        fprintf (stderr, "keyclone-agent: cannot make this node's key: %s\n", why.text);
    }
    else {
        char fp [KC_FINGERPRINT_CHARS + 1];
        printf ("keyclone-agent: made this node's key %s (and %s), fingerprint %s\n", base, secret,
                kc_fingerprint (kc_cert_public_key (cert), fp));
        fflush (stdout);
    }
    kc_cert_destroy (&cert);
    return rc;
}

int
main (int argc, char *argv [])
{
    static const struct option longs [] = {
        { "dir", required_argument, NULL, 'd' }, { "config", required_argument, NULL, 'c' },
        { "root", required_argument, NULL, 'r' }, { "key", required_argument, NULL, 'k' },
        { "cache", required_argument, NULL, 'C' }, { "local", required_argument, NULL, 'l' },
        { "events", required_argument, NULL, 'e' },
        { "server-snapshot", required_argument, NULL, '0' },
        { "server-updates", required_argument, NULL, '1' },
        { "stale-after", required_argument, NULL, 's' }, { "policy", required_argument, NULL, 'p' },
        { "check-interval", required_argument, NULL, 'i' }, { "verbose", no_argument, NULL, 'v' },
        { "clock-skew", required_argument, NULL, 'w' }, { "group", required_argument, NULL, 'g' },
        { "socket-mode", required_argument, NULL, 'm' }, { "log", required_argument, NULL, 'L' },
        { "enrol", required_argument, NULL, 'E' }, { "tag", required_argument, NULL, 't' },
        { "witness", required_argument, NULL, 'W' }, { "mirror", required_argument, NULL, 'M' },
        { "help", no_argument, NULL, 'H' }, { "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 }
    };
    const char *options [128] = { NULL };
    static const char *tags [KC_RECORD_TAGS_MAX];
    size_t tag_count = 0;
    int c;
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if (c == 't') {
            if (tag_count == KC_RECORD_TAGS_MAX || !kc_record_tag_valid (optarg, strlen (optarg))) {
                fprintf (stderr, "keyclone-agent: --tag: at most %d tags of letters, digits and . _ : = / + - @ "
                         "(as role=web)\nTry 'keyclone-agent --help'.\n", KC_RECORD_TAGS_MAX);
                return 2;
            }
            tags [tag_count++] = optarg;
            continue;
        }
        if (c == 'H') {
            fputs (s_help, stdout);
            return 0;
        }
        if (c == 'V') {
            char text [KC_VERSION_TEXT_MAX];
            puts (kc_version_text ("keyclone-agent", text, sizeof text));
            return 0;
        }
        if (c == '?' || c < 0 || c >= 128) {
            fprintf (stderr, "Try 'keyclone-agent --help'.\n");
            return 2;
        }
        options [c] = optarg ? optarg : "";
    }
    const char *enrol = options ['E'];
    if ((enrol && !kc_record_name_valid (enrol, strlen (enrol))) || (tag_count && !enrol)) {
        fprintf (stderr, "keyclone-agent: %s\nTry 'keyclone-agent --help'.\n", enrol
                 ? "--enrol: invalid NAME (letters, digits, '.', '-', '_', starting with a letter or digit)"
                 : "--tag goes with --enrol");
        return 2;
    }
    if (optind < argc) {
        fprintf (stderr, "keyclone-agent: unexpected argument '%s'\nTry 'keyclone-agent --help'.\n",
                 argv [optind]);
        return 2;
    }
    static s_paths_t paths;
    const char *dir = options ['d'] ? options ['d'] : ".";
    if (!realpath (dir, paths.dir)) {
        fprintf (stderr, "keyclone-agent: no such directory '%s'\n", dir);
        return 1;
    }
    kc_agent_config_t config;
    s_build_t build = { .options = options };
    snprintf (build.dir, sizeof build.dir, "%s", paths.dir);
    int built = s_build (&build, &config, &paths);
    if (built) {
        return built;
    }
    config.verbose = options ['v'] != NULL;
    config.enrol_name = enrol;
    config.enrol_tags = tags;
    config.enrol_tag_count = tag_count;
    config.reload = s_reload;
    config.reload_arg = &build;
    if (sodium_init () < 0) {
        fprintf (stderr, "keyclone-agent: libsodium failed to initialise\n");
        return 1;
    }
    kc_malloc_tune ();
    if (enrol && s_make_key (config.key_path)) {
        zhashx_destroy (&config.zap_policies);
        return 1;
    }
    //  One agent per directory: a second one would take over its endpoints
    //  and write the same cache
    char lock_path [PATH_MAX + 16], what [PATH_MAX + 8];
    snprintf (lock_path, sizeof lock_path, "%s/agent.lock", paths.dir);
    snprintf (what, sizeof what, "'%s'", paths.dir);
    kc_why_t why;
    int lock = kc_file_lock (lock_path, what, &why);
    if (lock < 0) {
        fprintf (stderr, "keyclone-agent: %s\n", why.text);
        zhashx_destroy (&config.zap_policies);
        return 1;
    }
    //  SIGHUP reads the configuration again (it used to end the agent),
    //  set before any other thread exists
    kc_on_sighup (kc_agent_reload_wanted);
    zsys_init ();
    zsys_set_logident ("keyclone-agent");
    if (options ['L'] && kc_log_file (options ['L'], &why)) {
        fprintf (stderr, "keyclone-agent: %s\n", why.text);
        close (lock);
        zhashx_destroy (&config.zap_policies);
        return 1;
    }
    zsys_set_linger (0);
    int rc = kc_agent_run (&config);
    close (lock);
    zhashx_destroy (&config.zap_policies);
    return rc;
}
