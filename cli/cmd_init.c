/*  =========================================================================
    cmd_init - keyclone init (operator keys, server keys, genesis root) and
    keyclone keygen (a CURVE key pair in czmq certificate format).
    =========================================================================
*/
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5550"

typedef struct {
    const char *dir;
    int operators;
    int threshold [3];                  //  register, revoke, root; 0 = default
    const char *names;
    const char *endpoint;
    const char *members;                //  --members NAME=tcp://HOST:PORT,...: a cluster
    int witnesses;                      //  --witnesses N: keys w1..wN in DIR/witnesses
    int witness_threshold;              //  --witness-threshold K; -1: a majority
    uint64_t lifetime;
    bool json;
} s_init_t;

#define MEMBERS_MIN     3
#define MEMBERS_MAX     KC_ROOT_SERVERS_MAX

//  A cluster's member as init makes it: a server of the root, with its own
//  directory DIR/servers/NAME, and its Raft address HOST:PORT+3.
typedef struct {
    kc_root_server_t server;
    char raft [300];
    kc_cert_t *curve;
    kc_signer_t *head;
} s_member_t;

//  Derives the three channel endpoints from a base: tcp://HOST:PORT gives
//  PORT, PORT+1, PORT+2; ipc://PATH gives PATH.snapshot, .updates, .submit.
int
cli_endpoints (const char *base, char out [KC_ENDPOINTS][300])
{
    static const char *suffix [KC_ENDPOINTS] = { "snapshot", "updates", "submit" };
    if (strncmp (base, "ipc://", 6) == 0 && strlen (base) > 6 && strlen (base) < 200) {
        for (int i = 0; i < KC_ENDPOINTS; i++) {
            snprintf (out [i], 300, "%s.%s", base, suffix [i]);
        }
        return 0;
    }
    const char *colon = strrchr (base, ':');
    if (strncmp (base, "tcp://", 6) || !colon || colon < base + 6 || strlen (base) > 200) {
        return -1;
    }
    char *end;
    errno = 0;
    long port = strtol (colon + 1, &end, 10);
    if (errno || *end || port < 1 || port > 65533) {
        return -1;
    }
    for (int i = 0; i < KC_ENDPOINTS; i++) {
        snprintf (out [i], 300, "%.*s:%ld", (int) (colon - base), base, port + i);
    }
    return 0;
}

static int
s_parse_names (const char *command, const char *list, int count,
               char names [CLI_OPERATORS_MAX][KC_ROOT_OPERATOR_NAME_MAX + 1])
{
    int found = 0;
    if (!list) {
        for (int i = 0; i < count; i++) {
            snprintf (names [i], KC_ROOT_OPERATOR_NAME_MAX + 1, "op%d", i + 1);
        }
        return 0;
    }
    const char *p = list;
    while (*p) {
        size_t length = strcspn (p, ",");
        if (found == CLI_OPERATORS_MAX || length == 0 || length > KC_ROOT_OPERATOR_NAME_MAX
        ||  !kc_record_name_valid (p, length)) {
            return cli_usage (command, "invalid operator name list '%s'", list);
        }
        snprintf (names [found++], KC_ROOT_OPERATOR_NAME_MAX + 1, "%.*s", (int) length, p);
        p += length + (p [length] == ',');
    }
    if (found != count) {
        return cli_usage (command, "--names lists %d names for %d operators", found, count);
    }
    for (int i = 0; i < count; i++) {
        for (int j = 0; j < i; j++) {
            if (KC_STREQ (names [i], names [j])) {
                return cli_usage (command, "operator name '%s' given twice", names [i]);
            }
        }
    }
    return 0;
}

static int
s_init_options (int argc, char *argv [], s_init_t *options)
{
    static const struct option longs [] = {
        { "dir", required_argument, NULL, 'd' },
        { "operators", required_argument, NULL, 'n' },
        { "threshold", required_argument, NULL, 't' },
        { "threshold-register", required_argument, NULL, 'R' },
        { "threshold-revoke", required_argument, NULL, 'V' },
        { "threshold-root", required_argument, NULL, 'O' },
        { "names", required_argument, NULL, 'N' },
        { "endpoint", required_argument, NULL, 'e' },
        { "members", required_argument, NULL, 'm' },
        { "witnesses", required_argument, NULL, 'w' },
        { "witness-threshold", required_argument, NULL, 'W' },
        { "expires", required_argument, NULL, 'x' },
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 }
    };
    int all = 1, c;
    kc_why_t why;
    options->operators = 1;
    options->endpoint = DEFAULT_ENDPOINT;
    options->lifetime = 365 * 86400;
    options->witness_threshold = -1;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        int *slot = c == 'R' ? &options->threshold [0] : c == 'V' ? &options->threshold [1]
                  : c == 'O' ? &options->threshold [2] : c == 't' ? &all : NULL;
        if (slot) {
            *slot = atoi (optarg);
            if (*slot < 1 || *slot > CLI_OPERATORS_MAX) {
                return cli_usage ("init", "invalid threshold '%s'", optarg);
            }
        }
        else
        switch (c) {
            case 'd': options->dir = optarg; break;
            case 'N': options->names = optarg; break;
            case 'e': options->endpoint = optarg; break;
            case 'm': options->members = optarg; break;
            case 'j': options->json = true; break;
            case 'w':
                options->witnesses = atoi (optarg);
                if (options->witnesses < 1 || options->witnesses > KC_ROOT_WITNESSES_MAX) {
                    return cli_usage ("init", "--witnesses must be 1..%d", KC_ROOT_WITNESSES_MAX);
                }
                break;
            case 'W':
                options->witness_threshold = atoi (optarg);
                if (options->witness_threshold < 0 || options->witness_threshold > KC_ROOT_WITNESSES_MAX
                ||  !isdigit ((unsigned char) *optarg)) {
                    return cli_usage ("init", "invalid --witness-threshold '%s'", optarg);
                }
                break;
            case 'n':
                options->operators = atoi (optarg);
                if (options->operators < 1 || options->operators > CLI_OPERATORS_MAX) {
                    return cli_usage ("init", "--operators must be 1..%d", CLI_OPERATORS_MAX);
                }
                break;
            case 'x':
                if (kc_duration_parse (optarg, &options->lifetime, &why) || !options->lifetime) {
                    return cli_usage ("init", "%s", why.text);
                }
                break;
            default:
                return CLI_USAGE;
        }
    }
    if (optind < argc) {
        return cli_usage ("init", "unexpected argument '%s'", argv [optind]);
    }
    for (int i = 0; i < 3; i++) {
        if (!options->threshold [i]) {
            options->threshold [i] = all;
        }
        if (options->threshold [i] > options->operators) {
            return cli_usage ("init", "a threshold of %d needs at least %d operators "
                              "(--operators)", options->threshold [i], options->threshold [i]);
        }
    }
    if (options->witness_threshold < 0) {
        options->witness_threshold = options->witnesses / 2 + (options->witnesses > 0);
    }
    if (options->witness_threshold > options->witnesses) {
        return cli_usage ("init", "a witness threshold of %d needs at least %d witnesses (--witnesses)",
                          options->witness_threshold, options->witness_threshold);
    }
    options->dir = cli_dir (options->dir);
    return CLI_OK;
}

//  Parses --members into members (keys made); their count, or -1 having
//  said why.
static int
s_parse_members (const char *list, s_member_t members [MEMBERS_MAX])
{
    char *copy = strdup (list), *save = NULL;
    int count = 0, rc = 0;
    assert (copy);
    for (char *item = strtok_r (copy, ",", &save); item && rc == 0; item = strtok_r (NULL, ",", &save)) {
        char *equals = strchr (item, '='), endpoints [KC_ENDPOINTS][300];
        if (count == MEMBERS_MAX) {
            rc = cli_usage ("init", "--members: at most %d", MEMBERS_MAX);
            break;
        }
        if (!equals || equals == item || (size_t) (equals - item) > KC_ROOT_OPERATOR_NAME_MAX
        ||  strncmp (equals + 1, "tcp://", 6) || cli_endpoints (equals + 1, endpoints)) {
            rc = cli_usage ("init", "--members: '%s' is not NAME=tcp://HOST:PORT", item);
            break;
        }
        *equals = 0;
        for (int i = 0; i < count; i++) {
            if (KC_STREQ (members [i].server.name, item)) {
                rc = cli_usage ("init", "--members: '%s' is named twice", item);
            }
        }
        s_member_t *member = &members [count++];
        memset (member, 0, sizeof *member);
        snprintf (member->server.name, sizeof member->server.name, "%s", item);
        for (int i = 0; i < KC_ENDPOINTS; i++) {
            snprintf (member->server.endpoints [i], sizeof member->server.endpoints [i], "%.250s", endpoints [i]);
        }
        if (kc_root_raft_address (member->server.endpoints [KC_ENDPOINT_SUBMIT], member->raft, sizeof member->raft)) {
            rc = cli_usage ("init", "--members: '%s' has no Raft port", item);
        }
        member->curve = kc_cert_new ("keyclone-server");
        member->head = kc_signer_new ("head", "keyclone-head");
        memcpy (member->server.server_key, kc_cert_public_key (member->curve), KC_KEY_BYTES);
        memcpy (member->server.head_key, kc_signer_public_key (member->head), KC_KEY_BYTES);
    }
    free (copy);
    if (rc == 0 && count < MEMBERS_MIN) {
        rc = cli_usage ("init", "--members: %d named; a cluster has %d or more (5 to survive two failures)",
                        count, MEMBERS_MIN);
    }
    return rc == 0 ? count : -1;
}

//  DIR/servers/NAME: a cluster member's keys, a copy of the root and a
//  server.cfg naming every member's Raft address (cluster: "a=H:P,...");
//  for a member joining (the root does not name it yet) also its name and
//  where it binds (endpoints). 0, or -1 with a reason.
int
cli_save_member (const char *dir, const char *name, const kc_cert_t *curve, const kc_signer_t *head,
                 const kc_root_t *root, const char *cluster, char endpoints [KC_ENDPOINTS][300], kc_why_t *why)
{
    char path [CLI_PATH_MAX + 128], base [CLI_PATH_MAX + 64];
    snprintf (base, sizeof base, "%.*s/servers/%.64s", CLI_PATH_MAX - 80, dir, name);
    snprintf (path, sizeof path, "%s/server", base);
    if (kc_file_mkdirs (path, 0700, why)) {
        return -1;
    }
    snprintf (path, sizeof path, "%s/server/curve", base);
    if (kc_cert_save (curve, path, why)) {
        return -1;
    }
    snprintf (path, sizeof path, "%s/server/head", base);
    if (kc_signer_save (head, path, why)) {
        return -1;
    }
    snprintf (path, sizeof path, "%s/root", base);
    if (kc_root_save (root, path, why)) {
        return -1;
    }
    char text [4096];
    int at = snprintf (text, sizeof text, "#   keyclone-server configuration of cluster member %s "
                       "(docs/cluster.md)\nserver\n    cluster = \"%s\"\n", name, cluster);
    if (endpoints && at > 0 && (size_t) at < sizeof text) {
        snprintf (text + at, sizeof text - (size_t) at, "    member = \"%s\"\n    bind\n        snapshot = \"%s\"\n"
                  "        updates = \"%s\"\n        submit = \"%s\"\n", name, endpoints [0], endpoints [1],
                  endpoints [2]);
    }
    snprintf (path, sizeof path, "%s/server.cfg", base);
    return kc_file_write_atomic (path, text, strlen (text), 0644, why);
}

static void
s_print_init (const s_init_t *options, const kc_root_t *root, char names [][KC_ROOT_OPERATOR_NAME_MAX + 1])
{
    char hex [65], when [KC_TIME_WHEN_BYTES], path_buffer [CLI_PATH_MAX];
    kc_hex (kc_root_directory (root), KC_HASH_BYTES, hex);
    if (options->json) {
        printf ("{");
        kc_json_field_str (stdout, true, "directory", hex);
        kc_json_field_str (stdout, false, "root", cli_path (path_buffer, options->dir, "root"));
        kc_json_field_u64 (stdout, false, "expires", kc_root_expires (root));
        printf (", \"operators\": [");
        for (int i = 0; i < options->operators; i++) {
            printf ("%s", i ? ", " : "");
            char operator_path [CLI_PATH_MAX + 64];
            snprintf (operator_path, sizeof operator_path, "%s/operators/%s_secret", options->dir, names [i]);
            kc_json_cstr (stdout, operator_path);
        }
        printf ("], \"witnesses\": [");
        for (size_t i = 0; i < kc_root_witness_count (root); i++) {
            char witness_path [CLI_PATH_MAX + 64];
            snprintf (witness_path, sizeof witness_path, "%s/witnesses/%s_secret", options->dir,
                      kc_root_witness (root, i)->name);
            printf ("%s", i ? ", " : "");
            kc_json_cstr (stdout, witness_path);
        }
        printf ("], \"witness_threshold\": %u", kc_root_witness_threshold (root));
        for (int i = 0; i < KC_ENDPOINTS; i++) {
            static const char *labels [] = { "snapshot", "updates", "submit" };
            kc_json_field_str (stdout, false, labels [i], kc_root_endpoint (root, (kc_endpoint_t) i));
        }
        printf ("}\n");
        return;
    }
    printf ("keyclone: initialised '%s'\n", options->dir);
    printf ("  directory id   %s\n", hex);
    printf ("  root           %s (v1), expires %s\n", cli_path (path_buffer, options->dir, "root"),
            kc_time_when (kc_root_expires (root), kc_now (), when));
    printf ("  thresholds     register %d, revoke %d, root change %d of %d operators\n",
            options->threshold [0], options->threshold [1], options->threshold [2],
            options->operators);
    for (int i = 0; i < options->operators; i++) {
        printf ("  operator key   %s/operators/%s_secret\n", options->dir, names [i]);
    }
    for (size_t i = 0; i < kc_root_witness_count (root); i++) {
        printf ("  witness key    %s/witnesses/%s_secret%s\n", options->dir, kc_root_witness (root, i)->name,
                i ? "" : " (heads need cosignatures:");
        if (i == 0) {
            printf ("                 %u of %zu witnesses within each agent's stale-after)\n",
                    kc_root_witness_threshold (root), kc_root_witness_count (root));
        }
    }
    if (options->members) {
        for (size_t i = 0; i < kc_root_server_count (root); i++) {
            const kc_root_server_t *server = kc_root_server (root, i);
            printf ("  member %-7s %s/servers/%s (keys, root, server.cfg); submit %s\n", server->name,
                    options->dir, server->name, server->endpoints [KC_ENDPOINT_SUBMIT]);
        }
        printf ("\nStart each member on its host with: keyclone-server --dir DIR/servers/NAME\n");
    }
    else {
        printf ("  server keys    %s/server/curve_secret, %s/server/head_secret\n",
                options->dir, options->dir);
        printf ("  endpoints      snapshot %s, updates %s, submit %s\n",
                kc_root_endpoint (root, KC_ENDPOINT_SNAPSHOT),
                kc_root_endpoint (root, KC_ENDPOINT_UPDATES),
                kc_root_endpoint (root, KC_ENDPOINT_SUBMIT));
    }
    printf ("\nWhat to copy where:\n"
            "  - %s/root to every node (the agent pins it) and to every operator;\n"
            "  - each %s/operators/NAME_secret to that operator's machine, then delete it\n"
            "    here: operator keys sign membership and belong offline;\n"
            "  - %s/%s stay%s on the server%s only.\n", options->dir, options->dir,
            options->dir, options->members ? "servers/NAME/" : "server/", options->members ? "s" : "",
            options->members ? " NAME (each member's host)" : "");
    if (kc_root_witness_count (root)) {
        printf ("  - each %s/witnesses/NAME_secret to its witness's host, where\n"
                "    'keyclone-agent --witness FILE' runs (on machines other than the servers').\n", options->dir);
    }
}

int
cmd_init (int argc, char *argv [])
{
    s_init_t options = { 0 };
    int rc = s_init_options (argc, argv, &options);
    if (rc != CLI_OK) {
        return rc;
    }
    char names [CLI_OPERATORS_MAX][KC_ROOT_OPERATOR_NAME_MAX + 1];
    char endpoints [KC_ENDPOINTS][300];
    if ((rc = s_parse_names ("init", options.names, options.operators, names)) != CLI_OK) {
        return rc;
    }
    if (cli_endpoints (options.endpoint, endpoints)) {
        return cli_usage ("init", "invalid endpoint '%s' (expected tcp://HOST:PORT or ipc://PATH)",
                          options.endpoint);
    }
    s_member_t members [MEMBERS_MAX];
    kc_root_server_t servers [MEMBERS_MAX];
    int member_count = options.members ? s_parse_members (options.members, members) : 0;
    if (member_count < 0) {
        return CLI_USAGE;
    }
    for (int i = 0; i < member_count; i++) {
        servers [i] = members [i].server;
    }
    char root_path [CLI_PATH_MAX], path_buffer [CLI_PATH_MAX];
    cli_path (root_path, options.dir, "root");
    if (kc_file_exists (root_path)) {
        return cli_fail ("init", "'%s' already exists: this directory is initialised "
                         "(refusing to overwrite)", root_path);
    }
    kc_why_t why;
    if (kc_file_mkdirs (options.dir, 0755, &why)
    ||  kc_file_mkdirs (cli_path (path_buffer, options.dir, "operators"), 0700, &why)
    ||  kc_file_mkdirs (cli_path (path_buffer, options.dir, member_count ? "servers" : "server"), 0700, &why)) {
        rc = cli_fail ("init", "%s", why.text);
        for (int i = 0; i < member_count; i++) {
            kc_cert_destroy (&members [i].curve);
            kc_signer_destroy (&members [i].head);
        }
        return rc;
    }
    kc_signer_t *signers [CLI_OPERATORS_MAX] = { NULL };
    kc_operator_t operators [CLI_OPERATORS_MAX];
    kc_cert_t *curve = kc_cert_new ("keyclone-server");
    kc_signer_t *head = kc_signer_new ("head", "keyclone-head");
    kc_root_t *root = NULL;
    rc = CLI_FAIL;
    for (int i = 0; i < options.operators; i++) {
        signers [i] = kc_signer_new (names [i], "keyclone-operator");
        memcpy (operators [i].key, kc_signer_public_key (signers [i]), KC_KEY_BYTES);
        snprintf (operators [i].name, sizeof operators [i].name, "%s", names [i]);
    }
    //  Witnesses: Ed25519 keys like operators', one per witness host
    kc_signer_t *witness_signers [KC_ROOT_WITNESSES_MAX] = { NULL };
    kc_witness_t witnesses [KC_ROOT_WITNESSES_MAX];
    for (int i = 0; i < options.witnesses; i++) {
        snprintf (witnesses [i].name, sizeof witnesses [i].name, "w%d", i + 1);
        witness_signers [i] = kc_signer_new (witnesses [i].name, "keyclone-witness");
        memcpy (witnesses [i].key, kc_signer_public_key (witness_signers [i]), KC_KEY_BYTES);
    }
    uint64_t now = kc_now ();
    kc_root_spec_t spec = {
        .version = 1, .created = now, .expires = now + options.lifetime,
        .operators = operators, .operator_count = (size_t) options.operators,
        .threshold_register = (uint8_t) options.threshold [0],
        .threshold_revoke = (uint8_t) options.threshold [1],
        .threshold_root = (uint8_t) options.threshold [2],
        .head_key = kc_signer_public_key (head), .server_key = kc_cert_public_key (curve),
        .endpoints = { endpoints [0], endpoints [1], endpoints [2] },
        .servers = member_count ? servers : NULL, .server_count = (size_t) member_count,
        .witnesses = witnesses, .witness_count = (size_t) options.witnesses,
        .witness_threshold = (uint8_t) options.witness_threshold
    };
    root = kc_root_new (&spec, &why);
    if (!root) {
        cli_fail ("init", "%s", why.text);
        goto cleanup;
    }
    for (int i = 0; i < options.operators; i++) {
        kc_root_sign (root, signers [i]);
        char path [4200];
        snprintf (path, sizeof path, "%s/operators/%s", options.dir, names [i]);
        if (kc_signer_save (signers [i], path, &why)) {
            cli_fail ("init", "%s", why.text);
            goto cleanup;
        }
    }
    for (int i = 0; i < options.witnesses; i++) {
        char path [4200];
        snprintf (path, sizeof path, "%s/witnesses/%s", options.dir, witnesses [i].name);
        if (kc_file_mkdirs (cli_path (path_buffer, options.dir, "witnesses"), 0700, &why)
        ||  kc_signer_save (witness_signers [i], path, &why)) {
            cli_fail ("init", "%s", why.text);
            goto cleanup;
        }
    }
    char cluster [2048] = "";
    for (int i = 0, at = 0; i < member_count && at < (int) sizeof cluster; i++) {
        at += snprintf (cluster + at, sizeof cluster - (size_t) at, "%s%s=%s", i ? "," : "", members [i].server.name,
                        members [i].raft);
    }
    for (int i = 0; i < member_count; i++) {
        if (cli_save_member (options.dir, members [i].server.name, members [i].curve, members [i].head, root,
                             cluster, NULL, &why)) {
            cli_fail ("init", "%s", why.text);
            goto cleanup;
        }
    }
    if ((!member_count
    &&   (kc_cert_save (curve, cli_path (path_buffer, options.dir, "server/curve"), &why)
    ||    kc_signer_save (head, cli_path (path_buffer, options.dir, "server/head"), &why)))
    ||  kc_root_save (root, root_path, &why)) {
        cli_fail ("init", "%s", why.text);
        goto cleanup;
    }
    s_print_init (&options, root, names);
    rc = CLI_OK;
cleanup:
    for (int i = 0; i < options.operators; i++) {
        kc_signer_destroy (&signers [i]);
    }
    for (int i = 0; i < options.witnesses; i++) {
        kc_signer_destroy (&witness_signers [i]);
    }
    kc_signer_destroy (&head);
    kc_cert_destroy (&curve);
    kc_root_destroy (&root);
    for (int i = 0; i < member_count; i++) {
        kc_cert_destroy (&members [i].curve);
        kc_signer_destroy (&members [i].head);
    }
    return rc;
}

int
cmd_keygen (int argc, char *argv [])
{
    static const struct option longs [] = {
        { "dir", required_argument, NULL, 'd' },
        { "force", no_argument, NULL, 'f' },
        { "json", no_argument, NULL, 'j' },
        { "operator", no_argument, NULL, 'o' },
        { "witness", no_argument, NULL, 'w' },
        { NULL, 0, NULL, 0 }
    };
    const char *dir = ".";
    bool force = false, json = false, operator = false, witness = false;
    int c;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'd': dir = optarg; break;
            case 'f': force = true; break;
            case 'j': json = true; break;
            case 'o': operator = true; break;
            case 'w': witness = true; break;
            default: return CLI_USAGE;
        }
    }
    if (optind != argc - 1) {
        return cli_usage ("keygen", "expected one NAME");
    }
    const char *name = argv [optind];
    if (!kc_record_name_valid (name, strlen (name))) {
        return cli_usage ("keygen", "invalid name '%s' (letters, digits, '.', '-', '_'; "
                          "starting with a letter or digit; at most %d)", name, KC_RECORD_NAME_MAX);
    }
    kc_why_t why;
    if (kc_file_mkdirs (dir, 0755, &why)) {
        return cli_fail ("keygen", "%s", why.text);
    }
    char path [CLI_PATH_MAX];
    cli_path (path, dir, name);
    char secret [4200];
    snprintf (secret, sizeof secret, "%s_secret", path);
    if (!force && (kc_file_exists (path) || kc_file_exists (secret))) {
        return cli_fail ("keygen", "'%s' already exists (use --force to replace it)", path);
    }
    if (operator && witness) {
        return cli_usage ("keygen", "--operator or --witness, not both");
    }
    if (operator || witness) {
        //  An operator's Ed25519 signing key, for 'keyclone root
        //  add-operator', or a witness's, for 'keyclone root add-witness'
        kc_signer_t *signer = kc_signer_new (name, operator ? "keyclone-operator" : "keyclone-witness");
        int rc = kc_signer_save (signer, path, &why);
        char fp [KC_FINGERPRINT_CHARS + 1];
        if (rc) {
            cli_fail ("keygen", "%s", why.text);
        }
        else
        if (json) {
            printf ("{");
            kc_json_field_str (stdout, true, "name", name);
            kc_json_field_str (stdout, false, "fingerprint",
                               kc_fingerprint (kc_signer_public_key (signer), fp));
            kc_json_field_str (stdout, false, "public", path);
            printf ("}\n");
        }
        else {
            printf ("keyclone keygen: wrote %s key %s (%s) and %s_secret (mode 0600)\n",
                    operator ? "operator" : "witness", path, kc_fingerprint (kc_signer_public_key (signer), fp),
                    path);
        }
        kc_signer_destroy (&signer);
        return rc ? CLI_FAIL : CLI_OK;
    }
    kc_cert_t *cert = kc_cert_new (name);
    int rc = kc_cert_save (cert, path, &why);
    if (rc) {
        cli_fail ("keygen", "%s", why.text);
    }
    else
    if (json) {
        char fp [KC_FINGERPRINT_CHARS + 1];
        printf ("{");
        kc_json_field_str (stdout, true, "name", name);
        kc_json_field_str (stdout, false, "public_key", kc_cert_public_txt (cert));
        kc_json_field_str (stdout, false, "fingerprint", kc_fingerprint (kc_cert_public_key (cert), fp));
        kc_json_field_str (stdout, false, "public_file", path);
        kc_json_field_str (stdout, false, "secret_file", secret);
        printf ("}\n");
    }
    else {
        printf ("%s\n", kc_cert_public_txt (cert));
        fprintf (stderr, "keyclone keygen: wrote %s and %s (mode 0600)\n", path, secret);
    }
    kc_cert_destroy (&cert);
    return rc ? CLI_FAIL : CLI_OK;
}
