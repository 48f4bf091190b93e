/*  =========================================================================
    cmd_root - keyclone root: the trust root over time (docs/operator.md).

        root show            the root in force at the server, followed from
                             the pinned root through the root changes in the
                             log (each checked, the server is not trusted)
        root renew           a successor with a later expiry
        root add-operator    ... with one more operator
        root remove-operator ... with one fewer
        root add-witness     ... with one more witness (docs/protocol.md 9)
        root remove-witness  ... with one fewer
        root set-threshold   ... with other thresholds (witness=K among them)
        root rotate-head-key ... naming a new head key for this server (run
                             on the server's host: the key is staged there)
        root rotate-server-key ... naming a new CURVE key for this server
                             (the same way; the server serves the old key
                             for an overlap, then switches)

    Each change builds the successor of the root in force, shows what it
    changes, signs it with the operator keys given, and submits it when the
    root thresholds of the old and of the new operators are met; otherwise
    it writes the root to a file for 'keyclone cosign' and 'keyclone submit'.
    =========================================================================
*/
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS  10000
#define DEFAULT_LIFETIME    "1y"

typedef struct {
    const char *dir;
    const char *root_path;
    const char *server;
    const char *out;
    const char *expires;
    const char *key_path;
    const char *overlap;
    char *operators [CLI_OPERATORS_MAX];
    int operator_count;
    int timeout_ms;
    bool json;
    char root_buffer [CLI_PATH_MAX];
} s_options_t;

//  --- Shared with other commands -----------------------------------------

//  ROOT_PATH.followed: the newest root the CLI followed from the pinned
//  root ROOT_PATH. Only a hint of which server key to connect with (a
//  server key rotation, docs/protocol.md 2.3): every command still follows
//  the root changes from the pinned root, so the file is never trusted.
static char s_followed_path [CLI_PATH_MAX + 16];
static uint64_t s_followed_version;         //  of the root there (0: none usable)

static kc_root_t *
s_load_followed (const kc_root_t *pinned)
{
    kc_why_t why;
    kc_root_t *followed = *s_followed_path && kc_file_exists (s_followed_path)
                        ? kc_root_load (s_followed_path, &why) : NULL;
    if (followed && (memcmp (kc_root_directory (followed), kc_root_directory (pinned), KC_HASH_BYTES)
                 ||  kc_root_version (followed) <= kc_root_version (pinned))) {
        kc_root_destroy (&followed);
    }
    return followed;
}

kc_client_t *
cli_client_new (const char *root_path, const kc_root_t *pinned, const char *server, int timeout_ms)
{
    snprintf (s_followed_path, sizeof s_followed_path, "%s.followed", root_path);
    kc_root_t *followed = s_load_followed (pinned);
    s_followed_version = followed ? kc_root_version (followed) : 0;
    kc_client_t *client = kc_client_new (followed ? followed : pinned, server, timeout_ms);
    kc_client_add_server_key (client, kc_root_server_key (pinned));
    kc_root_destroy (&followed);
    return client;
}

kc_root_t *
cli_follow_root (const char *command, kc_client_t *client, kc_root_t **pinned_p)
{
    kc_why_t why;
    kc_root_t *current = kc_client_root (client, *pinned_p, NULL, NULL, &why);
    if (!current) {
        cli_fail (command, "cannot learn the root in force from the server: %s", why.text);
        return NULL;
    }
    cli_remember_root (command, *pinned_p, current);
    kc_root_destroy (pinned_p);
    *pinned_p = current;
    return current;
}

void
cli_remember_root (const char *command, const kc_root_t *pinned, const kc_root_t *root)
{
    kc_why_t why;
    if (kc_root_version (root) <= kc_root_version (pinned) || !*s_followed_path
    ||  kc_root_version (root) <= s_followed_version) {
        return;                             //  nothing newer than the file holds
    }
    if (kc_root_save (root, s_followed_path, &why) == 0) {
        s_followed_version = kc_root_version (root);
    }
    else
    if (errno != EACCES && errno != EROFS) {
        //  A read-only directory is no error: the next command tries the
        //  pinned key first
        fprintf (stderr, "keyclone %s: warning: %s\n", command, why.text);
    }
}

kc_root_t *
cli_root_before (const char *dir, const char *root_path, const kc_root_t *change)
{
    char buffer [CLI_PATH_MAX];
    kc_why_t why;
    kc_root_t *pinned = kc_root_load (root_path ? root_path : cli_path (buffer, dir, "root"), &why);
    if (!pinned || kc_root_version (pinned) + 1 == kc_root_version (change)) {
        return pinned;
    }
    //  Learnt from the server, followed from the pinned root (briefly: an
    //  operator offline gets the reason instead)
    kc_client_t *client = cli_client_new (root_path ? root_path : buffer, pinned, NULL, 3000);
    kc_root_t *current = kc_client_root (client, pinned, NULL, NULL, &why);
    kc_client_destroy (&client);
    kc_root_destroy (&pinned);
    if (current && kc_root_version (current) + 1 != kc_root_version (change)) {
        kc_root_destroy (&current);
    }
    return current;
}

void
cli_report_root_change (const kc_root_t *before, const kc_root_t *change)
{
    kc_why_t why;
    char diff [4096];
    kc_root_diff (before, change, diff, sizeof diff);
    printf ("%s", diff);
    if (kc_root_verify_successor (before, change, kc_now (), &why) == 0) {
        printf ("root v%llu is complete: submit it with 'keyclone submit'\n",
                (unsigned long long) kc_root_version (change));
    }
    else {
        printf ("root v%llu is not complete yet: %s\n", (unsigned long long) kc_root_version (change),
                why.text);
    }
}

//  "in 12 days", "12 days ago", "today"
static const char *
s_days (uint64_t when, char *text, size_t size)
{
    int64_t days = ((int64_t) when - (int64_t) kc_now ()) / 86400;
    if (days > 0) {
        snprintf (text, size, "in %lld day%s", (long long) days, days == 1 ? "" : "s");
    }
    else
    if (days < 0) {
        snprintf (text, size, "%lld day%s ago", (long long) -days, days == -1 ? "" : "s");
    }
    else {
        snprintf (text, size, (int64_t) when > (int64_t) kc_now () ? "today" : "expired today");
    }
    return text;
}

void
cli_print_root (const kc_root_t *root, bool json, bool quiet, const char *verdict)
{
    static const char *labels [KC_ENDPOINTS] = { "snapshot", "updates", "submit" };
    char hex [65], when [32], created [KC_TIME_WHEN_BYTES], z85 [KC_Z85_KEY_CHARS + 1], who [80], days [48];
    kc_hex (kc_root_directory (root), KC_HASH_BYTES, hex);
    int64_t left = ((int64_t) kc_root_expires (root) - (int64_t) kc_now ()) / 86400;
    if (json) {
        printf ("{\"type\": \"root\", \"valid\": true");
        kc_json_field_str (stdout, false, "directory", hex);
        kc_json_field_u64 (stdout, false, "version", kc_root_version (root));
        kc_json_field_u64 (stdout, false, "format", (uint64_t) kc_root_format (root));
        kc_json_field_u64 (stdout, false, "created", kc_root_created (root));
        kc_json_field_u64 (stdout, false, "expires", kc_root_expires (root));
        kc_json_field_str (stdout, false, "expires_date", kc_time_format (kc_root_expires (root), when));
        printf (", \"days_left\": %lld", (long long) left);
        printf (", \"operators\": [");
        for (size_t i = 0; i < kc_root_operator_count (root); i++) {
            const kc_operator_t *op = kc_root_operator (root, i);
            char fp [KC_FINGERPRINT_CHARS + 1];
            printf ("%s{", i ? ", " : "");
            kc_json_field_str (stdout, true, "name", op->name);
            kc_json_field_str (stdout, false, "key", kc_z85_encode (op->key, KC_KEY_BYTES, z85));
            kc_json_field_str (stdout, false, "fingerprint", kc_fingerprint (op->key, fp));
            printf ("}");
        }
        printf ("], \"thresholds\": {\"register\": %d, \"revoke\": %d, \"root\": %d}",
                kc_root_threshold_register (root), kc_root_threshold_revoke (root),
                kc_root_threshold_root (root));
        //  The first server's, as before format 2
        kc_json_field_str (stdout, false, "head_key",
                           kc_z85_encode (kc_root_head_key (root), KC_KEY_BYTES, z85));
        kc_json_field_str (stdout, false, "server_key",
                           kc_z85_encode (kc_root_server_key (root), KC_KEY_BYTES, z85));
        for (int i = 0; i < KC_ENDPOINTS; i++) {
            kc_json_field_str (stdout, false, labels [i], kc_root_endpoint (root, (kc_endpoint_t) i));
        }
        printf (", \"servers\": [");
        for (size_t i = 0; i < kc_root_server_count (root); i++) {
            const kc_root_server_t *server = kc_root_server (root, i);
            printf ("%s{", i ? ", " : "");
            kc_json_field_str (stdout, true, "name", server->name);
            kc_json_field_str (stdout, false, "server_key", kc_z85_encode (server->server_key, KC_KEY_BYTES, z85));
            kc_json_field_str (stdout, false, "head_key", kc_z85_encode (server->head_key, KC_KEY_BYTES, z85));
            for (int e = 0; e < KC_ENDPOINTS; e++) {
                kc_json_field_str (stdout, false, labels [e], server->endpoints [e]);
            }
            printf ("}");
        }
        printf ("], \"witnesses\": [");
        for (size_t i = 0; i < kc_root_witness_count (root); i++) {
            const kc_witness_t *witness = kc_root_witness (root, i);
            printf ("%s{", i ? ", " : "");
            kc_json_field_str (stdout, true, "name", witness->name);
            kc_json_field_str (stdout, false, "key", kc_z85_encode (witness->key, KC_KEY_BYTES, z85));
            printf ("}");
        }
        printf ("], \"witness_threshold\": %d}\n", kc_root_witness_threshold (root));
        return;
    }
    printf ("root v%llu: %s\n", (unsigned long long) kc_root_version (root), verdict);
    if (quiet) {
        return;
    }
    printf ("  directory   %s\n  created     %s\n  expires     %s (%s)\n", hex,
            kc_time_when (kc_root_created (root), kc_now (), created),
            kc_time_format (kc_root_expires (root), when),
            s_days (kc_root_expires (root), days, sizeof days));
    for (size_t i = 0; i < kc_root_operator_count (root); i++) {
        const kc_operator_t *op = kc_root_operator (root, i);
        printf ("  operator    %-12s %s\n", op->name, kc_z85_encode (op->key, KC_KEY_BYTES, z85));
    }
    printf ("  thresholds  register %d, revoke %d, root change %d\n",
            kc_root_threshold_register (root), kc_root_threshold_revoke (root),
            kc_root_threshold_root (root));
    for (size_t i = 0; i < kc_root_server_count (root); i++) {
        const kc_root_server_t *server = kc_root_server (root, i);
        if (kc_root_server_count (root) > 1) {
            printf ("  server      %s\n", server->name);
        }
        printf ("  server key  %s\n", kc_z85_encode (server->server_key, KC_KEY_BYTES, z85));
        printf ("  head key    %s\n", kc_z85_encode (server->head_key, KC_KEY_BYTES, z85));
        for (int e = 0; e < KC_ENDPOINTS; e++) {
            printf ("  %-11s %s\n", labels [e], server->endpoints [e]);
        }
    }
    for (size_t i = 0; i < kc_root_witness_count (root); i++) {
        const kc_witness_t *witness = kc_root_witness (root, i);
        printf ("  witness     %-12s %s\n", witness->name, kc_z85_encode (witness->key, KC_KEY_BYTES, z85));
    }
    if (kc_root_witness_count (root)) {
        printf ("  witnesses   %d needed\n", kc_root_witness_threshold (root));
    }
    for (size_t i = 0; i < kc_root_signature_count (root); i++) {
        printf ("  signed by   %s\n", cli_operator_name (root, kc_root_signature (root, i).key, who));
    }
}

//  --- Options -------------------------------------------------------------

//  Parses the options; argc and argv are rewritten (cli_args) and the
//  index of the first positional argument is returned, or -1.
static int
s_parse (const char *command, int *argc_p, char ***argv_p, s_options_t *o, bool change)
{
    static const struct option longs [] = {
        { "dir", required_argument, NULL, 'd' }, { "root", required_argument, NULL, 'r' },
        { "server", required_argument, NULL, 'S' }, { "operator", required_argument, NULL, 'p' },
        { "timeout", required_argument, NULL, 'T' }, { "json", no_argument, NULL, 'j' },
        { "out", required_argument, NULL, 'o' }, { "expires", required_argument, NULL, 'e' },
        { "key", required_argument, NULL, 'k' }, { "agent", required_argument, NULL, 'A' },
        { "client-key", required_argument, NULL, 'K' }, { "overlap", required_argument, NULL, 'O' },
        { NULL, 0, NULL, 0 }
    };
    int c;
    optind = 1;
    cli_args (argc_p, argv_p, longs);
    int argc = *argc_p;
    char **argv = *argv_p;
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'd': o->dir = optarg; break;
            case 'r': o->root_path = optarg; break;
            case 'S': o->server = optarg; break;
            case 'j': o->json = true; break;
            case 'o': o->out = optarg; break;
            case 'e': o->expires = optarg; break;
            case 'k': o->key_path = optarg; break;
            case 'O': o->overlap = optarg; break;
            case 'A': case 'K': break;          //  common options with no use here
            case 'T':
                o->timeout_ms = atoi (optarg);
                if (o->timeout_ms < 1) {
                    cli_usage (command, "invalid --timeout '%s'", optarg);
                    return -1;
                }
                break;
            case 'p':
                if (o->operator_count == CLI_OPERATORS_MAX) {
                    cli_usage (command, "too many --operator options");
                    return -1;
                }
                o->operators [o->operator_count++] = optarg;
                break;
            default:
                return -1;
        }
    }
    if (!change && (o->expires || o->key_path || o->operator_count || o->overlap)) {
        cli_usage (command, "--expires, --key, --overlap and --operator are for root changes");
        return -1;
    }
    if (o->overlap && !KC_STREQ (command, "root rotate-server-key")) {
        cli_usage (command, "--overlap is for 'root rotate-server-key'");
        return -1;
    }
    o->dir = cli_dir (o->dir);
    if (!o->root_path) {
        o->root_path = cli_path (o->root_buffer, o->dir, "root");
    }
    if (!o->timeout_ms) {
        o->timeout_ms = DEFAULT_TIMEOUT_MS;
    }
    return optind;
}

//  The pinned root (checked as of its creation: it may have expired since
//  and been renewed in the log) and the root in force at the server.
static kc_root_t *
s_current (const char *command, const s_options_t *o, kc_client_t **client_p)
{
    kc_root_t *root = cli_load_pinned_root (command, o->root_path);
    if (!root) {
        return NULL;
    }
    *client_p = cli_client_new (o->root_path, root, o->server, o->timeout_ms);
    if (!cli_follow_root (command, *client_p, &root)) {
        kc_client_destroy (client_p);
        kc_root_destroy (&root);
        return NULL;
    }
    return root;
}

//  --- show ----------------------------------------------------------------

static int
s_show (int argc, char *argv [])
{
    s_options_t o = { 0 };
    int first = s_parse ("root show", &argc, &argv, &o, false);
    if (first < 0) {
        return CLI_USAGE;
    }
    if (first != argc) {
        return cli_usage ("root show", "unexpected argument '%s'", argv [first]);
    }
    kc_client_t *client = NULL;
    kc_root_t *root = s_current ("root show", &o, &client);
    kc_client_destroy (&client);
    if (!root) {
        return CLI_FAIL;
    }
    kc_why_t why;
    int rc = CLI_OK;
    if (o.out && kc_root_save (root, o.out, &why)) {
        rc = cli_fail ("root show", "%s", why.text);
    }
    else {
        bool expired = kc_root_expires (root) <= kc_now ();
        cli_print_root (root, o.json, false, expired ? "EXPIRED" : "in force");
    }
    kc_root_destroy (&root);
    return rc;
}

//  --- Changes ------------------------------------------------------------------

typedef struct {
    kc_root_spec_t spec;
    kc_root_storage_t storage;
} s_change_t;

//  Parses "register=K,revoke=K,root=K" (any subset) into spec.
static int
s_thresholds (const char *text, kc_root_spec_t *spec)
{
    char copy [256];
    snprintf (copy, sizeof copy, "%s", text);
    char *state = NULL;
    int parsed = 0;
    for (char *part = strtok_r (copy, ",", &state); part; part = strtok_r (NULL, ",", &state)) {
        char *equals = strchr (part, '=');
        char *end = NULL;
        long value = equals ? strtol (equals + 1, &end, 10) : 0;
        if (!equals || !end || *end || equals [1] == 0 || value < 0 || value > KC_ROOT_OPERATORS_MAX) {
            return -1;
        }
        *equals = 0;
        if (KC_STREQ (part, "witness") && value <= KC_ROOT_WITNESSES_MAX) {
            spec->witness_threshold = (uint8_t) value;
        }
        else
        if (value < 1) {
            return -1;
        }
        else
        if (KC_STREQ (part, "register")) {
            spec->threshold_register = (uint8_t) value;
        }
        else
        if (KC_STREQ (part, "revoke")) {
            spec->threshold_revoke = (uint8_t) value;
        }
        else
        if (KC_STREQ (part, "root")) {
            spec->threshold_root = (uint8_t) value;
        }
        else {
            return -1;
        }
        parsed++;
    }
    return parsed ? 0 : -1;
}

//  This server's entry (found by DIR/server/curve) in the successor being
//  built, or NULL (reported).
static kc_root_server_t *
s_this_server (const char *command, const s_options_t *o, s_change_t *change)
{
    char curve [CLI_PATH_MAX];
    kc_why_t why;
    kc_cert_t *cert = kc_cert_load_public (cli_path (curve, o->dir, "server/curve"), &why);
    if (!cert) {
        cli_fail (command, "run it on the server's host, with --dir its directory: %s", why.text);
        return NULL;
    }
    kc_root_server_t *server = NULL;
    for (size_t i = 0; i < change->spec.server_count; i++) {
        if (memcmp (change->storage.servers [i].server_key, kc_cert_public_key (cert), KC_KEY_BYTES) == 0) {
            server = &change->storage.servers [i];
        }
    }
    kc_cert_destroy (&cert);
    if (!server) {
        cli_fail (command, "'%s' is not the key of a server of the root in force (is a key "
                  "rotation already in force?)", curve);
    }
    return server;
}

//  rotate-server-key, on the server's host: stages a new CURVE key pair at
//  DIR/server/curve-next (kept if one is staged already: a retry), writes
//  the overlap beside it, and names the key for this server in the
//  successor. Once the change is in force the server serves the old key for
//  the overlap, then switches (docs/protocol.md 2.3).
static int
s_rotate_server_key (const char *command, const s_options_t *o, s_change_t *change)
{
    uint64_t overlap = 86400;
    kc_why_t why;
    if (o->overlap && kc_duration_parse (o->overlap, &overlap, &why)) {
        return cli_usage (command, "--overlap: %s", why.text);
    }
    if (overlap > 366 * 86400) {
        return cli_usage (command, "--overlap: at most 366 days");
    }
    kc_root_server_t *server = s_this_server (command, o, change);
    if (!server) {
        return CLI_FAIL;
    }
    char staged [CLI_PATH_MAX], path [CLI_PATH_MAX + 16];
    cli_path (staged, o->dir, "server/curve-next");
    snprintf (path, sizeof path, "%s_secret", staged);
    kc_cert_t *next = kc_file_exists (path) ? kc_cert_load_secret (staged, &why) : NULL;
    if (!next) {
        next = kc_cert_new ("keyclone-server");
        if (kc_cert_save (next, staged, &why)) {
            kc_cert_destroy (&next);
            return cli_fail (command, "%s", why.text);
        }
    }
    char line [32];
    int length = snprintf (line, sizeof line, "%llu\n", (unsigned long long) overlap * 1000);
    snprintf (path, sizeof path, "%s.overlap", staged);
    if (kc_file_write_atomic (path, line, (size_t) length, 0644, &why)) {
        kc_cert_destroy (&next);
        return cli_fail (command, "%s", why.text);
    }
    memcpy (server->server_key, kc_cert_public_key (next), KC_KEY_BYTES);
    kc_cert_destroy (&next);
    return 0;
}

//  rotate-head-key, on the server's host: stages a new head key pair at
//  DIR/server/head-next (kept if one is staged already: a retry) and names
//  it for this server (found by DIR/server/curve) in the successor. The
//  server signs with it once the root change is in force (and with the old
//  one too for an overlap, docs/protocol.md 2.3).
static int
s_rotate_head_key (const char *command, const s_options_t *o, s_change_t *change)
{
    char staged [CLI_PATH_MAX];
    kc_why_t why;
    kc_root_server_t *server = s_this_server (command, o, change);
    if (!server) {
        return CLI_FAIL;
    }
    cli_path (staged, o->dir, "server/head-next");
    kc_signer_t *next = kc_file_exists (staged) ? kc_signer_load (staged, &why) : NULL;
    if (!next) {
        next = kc_signer_new ("head", "keyclone-head");
        if (kc_signer_save (next, staged, &why)) {
            kc_signer_destroy (&next);
            return cli_fail (command, "%s", why.text);
        }
    }
    if (memcmp (kc_signer_public_key (next), server->head_key, KC_KEY_BYTES) == 0) {
        kc_signer_destroy (&next);
        return cli_fail (command, "the staged head key is already in force");
    }
    memcpy (server->head_key, kc_signer_public_key (next), KC_KEY_BYTES);
    kc_signer_destroy (&next);
    return 0;
}

//  add-operator, add-witness: NAME with the Ed25519 public key in --key,
//  appended to list (the root sorts it). Returns 0, or a CLI code.
static int
s_add_key (const char *command, const s_options_t *o, const char *argument, const char *what,
           kc_operator_t *list, size_t *count, size_t max)
{
    kc_why_t why;
    if (!o->key_path) {
        return cli_usage (command, "expected --key FILE (a%s %s's public key file, from 'keyclone keygen NAME "
                          "--%s')", *what == 'o' ? "n" : "", what, what);
    }
    if (!kc_record_name_valid (argument, strlen (argument)) || strlen (argument) > KC_ROOT_OPERATOR_NAME_MAX) {
        return cli_usage (command, "invalid %s name '%s'", what, argument);
    }
    if (*count == max) {
        return cli_fail (command, "a root holds at most %zu %ss", max, what);
    }
    kc_operator_t *added = &list [*count];
    char name [KC_KEY_NAME_MAX + 1];
    if (kc_signer_load_public (o->key_path, added->key, name, &why)) {
        return cli_fail (command, "%s", why.text);
    }
    for (size_t i = 0; i < *count; i++) {
        if (KC_STREQ (list [i].name, argument) || memcmp (list [i].key, added->key, KC_KEY_BYTES) == 0) {
            return cli_fail (command, "'%s' (or its key) is already a%s %s", argument, *what == 'o' ? "n" : "",
                             what);
        }
    }
    snprintf (added->name, sizeof added->name, "%s", argument);
    (*count)++;
    return 0;
}

//  Applies a change to the successor spec. Returns 0, or a CLI code.
static int
s_edit (const char *command, const s_options_t *o, int argc, char *argv [], int first,
        const kc_root_t *current, s_change_t *change)
{
    kc_root_spec_t *spec = &change->spec;
    kc_why_t why;
    if (KC_STREQ (command, "root renew")) {
        if (first != argc) {
            return cli_usage (command, "unexpected argument '%s'", argv [first]);
        }
        uint64_t lifetime;
        if (kc_duration_parse (o->expires ? o->expires : DEFAULT_LIFETIME, &lifetime, &why)) {
            return cli_usage (command, "--expires: %s", why.text);
        }
        spec->expires = kc_now () + lifetime;
        if (spec->expires <= kc_root_expires (current) && o->expires == NULL) {
            spec->expires = kc_root_expires (current) + lifetime;
        }
        return 0;
    }
    if (o->expires) {
        return cli_usage (command, "--expires is for 'root renew'");
    }
    if (KC_STREQ (command, "root rotate-head-key")) {
        if (first != argc) {
            return cli_usage (command, "unexpected argument '%s'", argv [first]);
        }
        return s_rotate_head_key (command, o, change);
    }
    if (KC_STREQ (command, "root rotate-server-key")) {
        if (first != argc) {
            return cli_usage (command, "unexpected argument '%s'", argv [first]);
        }
        return s_rotate_server_key (command, o, change);
    }
    if (first != argc - 1) {
        return cli_usage (command, "expected one argument");
    }
    const char *argument = argv [first];
    if (KC_STREQ (command, "root set-threshold")) {
        if (s_thresholds (argument, spec)) {
            return cli_usage (command, "expected register=K,revoke=K,root=K,witness=K (any of them, K >= 1; "
                              "witness=0 needs no cosignature), not '%s'", argument);
        }
        return 0;
    }
    bool witness = strstr (command, "witness") != NULL;
    kc_operator_t *list = witness ? change->storage.witnesses : change->storage.operators;
    size_t *count = witness ? &spec->witness_count : &spec->operator_count;
    const char *what = witness ? "witness" : "operator";
    if (KC_STREQ (command, "root add-operator") || KC_STREQ (command, "root add-witness")) {
        return s_add_key (command, o, argument, what, list, count,
                          witness ? KC_ROOT_WITNESSES_MAX : KC_ROOT_OPERATORS_MAX);
    }
    if (o->key_path) {
        return cli_usage (command, "--key is for 'root add-operator' and 'root add-witness'");
    }
    //  remove-operator, remove-witness
    for (size_t i = 0; i < *count; i++) {
        if (KC_STREQ (list [i].name, argument)) {
            memmove (&list [i], &list [i + 1], (*count - i - 1) * sizeof (kc_operator_t));
            (*count)--;
            int n = (int) *count;
            if (witness && spec->witness_threshold > n) {
                return cli_fail (command, "without '%s' only %d witness%s remain, fewer than the witness "
                                 "threshold %d: lower it in the same change with 'keyclone root set-threshold "
                                 "witness=K' first", argument, n, n == 1 ? "" : "es", spec->witness_threshold);
            }
            if (witness) {
                return 0;
            }
            if (n == 0) {
                return cli_fail (command, "'%s' is the only operator: a root needs one", argument);
            }
            if (spec->threshold_register > n || spec->threshold_revoke > n || spec->threshold_root > n) {
                return cli_fail (command, "without '%s' only %d operator%s remain, fewer than a threshold "
                                 "(register %d, revoke %d, root %d): lower it in the same change with "
                                 "'keyclone root set-threshold' first", argument, n, n == 1 ? "" : "s",
                                 spec->threshold_register, spec->threshold_revoke, spec->threshold_root);
            }
            return 0;
        }
    }
    return cli_fail (command, "no %s named '%s' in root v%llu", what, argument,
                     (unsigned long long) kc_root_version (current));
}

//  Builds the root spec describes (the successor of current), signs it with
//  the operator keys, shows what changes, and submits it, or writes it for
//  more signatures (to out, default DIR/root-vN.pending). CLI_OK or why.
int
cli_root_change (const char *command, const char *dir, char *const *operators, int operator_count,
                 const char *out, bool json, kc_client_t *client, const kc_root_t *current,
                 const kc_root_spec_t *spec)
{
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    int signer_count = 0, rc = CLI_FAIL;
    kc_why_t why;
    kc_root_t *next = kc_root_new (spec, &why);
    if (!next) {
        cli_fail (command, "%s", why.text);
        goto done;
    }
    signer_count = cli_load_operators (command, dir, operators, operator_count, signers);
    if (signer_count < 0) {
        goto done;
    }
    for (int i = 0; i < signer_count; i++) {
        if (kc_root_operator_index (current, kc_signer_public_key (signers [i])) < 0
        &&  kc_root_operator_index (next, kc_signer_public_key (signers [i])) < 0) {
            char fp [KC_FINGERPRINT_CHARS + 1];
            cli_fail (command, "'%s' (%s) is an operator of neither root v%llu nor v%llu",
                      kc_signer_name (signers [i]), kc_fingerprint (kc_signer_public_key (signers [i]), fp),
                      (unsigned long long) kc_root_version (current),
                      (unsigned long long) kc_root_version (next));
            goto done;
        }
        kc_root_sign (next, signers [i]);
    }
    char diff [4096];
    kc_root_diff (current, next, diff, sizeof diff);
    if (!json) {
        printf ("%s", diff);
    }
    if (kc_root_verify_successor (current, next, kc_now (), &why) == 0) {
        uint64_t seq;
        bool duplicate;
        if (kc_client_submit_root (client, next, &seq, &duplicate, &why)) {
            cli_fail (command, "server refused root v%llu: %s",
                      (unsigned long long) kc_root_version (next), why.text);
            goto done;
        }
        cli_remember_root (command, current, next);
        if (json) {
            printf ("{\"version\": %llu, \"seq\": %llu, \"submitted\": true, \"duplicate\": %s}\n",
                    (unsigned long long) kc_root_version (next), (unsigned long long) seq,
                    duplicate ? "true" : "false");
        }
        else {
            printf ("root v%llu %s at seq %llu\n", (unsigned long long) kc_root_version (next),
                    duplicate ? "already accepted" : "accepted", (unsigned long long) seq);
        }
        rc = CLI_OK;
        goto done;
    }
    if (!strstr (why.text, "threshold")) {
        cli_fail (command, "%s", why.text);
        goto done;
    }
    //  More signatures needed: a file for cosign and submit
    char path [CLI_PATH_MAX];
    if (out) {
        snprintf (path, sizeof path, "%s", out);
    }
    else {
        char name [64];
        snprintf (name, sizeof name, "root-v%llu.pending", (unsigned long long) kc_root_version (next));
        cli_path (path, dir, name);
    }
    if (kc_root_save (next, path, &why)) {
        cli_fail (command, "%s", why.text);
        goto done;
    }
    if (json) {
        printf ("{\"version\": %llu, \"submitted\": false, \"file\": ",
                (unsigned long long) kc_root_version (next));
        kc_json_cstr (stdout, path);
        printf (", \"needs\": ");
        kc_json_cstr (stdout, why.text);
        printf ("}\n");
    }
    else {
        printf ("root v%llu written to %s, not submitted: %s\n"
                "  add signatures with: keyclone cosign %s --operator NAME\n"
                "  then submit it with: keyclone submit %s\n",
                (unsigned long long) kc_root_version (next), path, why.text, path, path);
    }
    rc = CLI_OK;
done:
    while (signer_count > 0) {
        kc_signer_destroy (&signers [--signer_count]);
    }
    kc_root_destroy (&next);
    return rc;
}

static int
s_change (const char *command, int argc, char *argv [])
{
    s_options_t o = { 0 };
    int first = s_parse (command, &argc, &argv, &o, true);
    if (first < 0) {
        return CLI_USAGE;
    }
    kc_client_t *client = NULL;
    kc_root_t *current = s_current (command, &o, &client);
    if (!current) {
        return CLI_FAIL;
    }
    static s_change_t change;
    kc_root_successor_spec (current, &change.spec, &change.storage);
    change.spec.created = kc_now () > kc_root_created (current) ? kc_now () : kc_root_created (current);
    int rc = s_edit (command, &o, argc, argv, first, current, &change);
    if (rc == 0) {
        rc = cli_root_change (command, o.dir, o.operators, o.operator_count, o.out, o.json, client, current,
                              &change.spec);
    }
    kc_root_destroy (&current);
    kc_client_destroy (&client);
    return rc;
}

int
cmd_root (int argc, char *argv [])
{
    if (argc < 2) {
        return s_show (argc, argv);

    }
    const char *sub = argv [1];
    char command [64];
    snprintf (command, sizeof command, "root %s", sub);
    if (KC_STREQ (sub, "--help") || KC_STREQ (sub, "-h")) {
        return cli_help ("root");
    }
    if (sub [0] == '-') {
        return s_show (argc, argv);         //  options only: show
    }
    static char name [] = "root";           //  usage errors say "keyclone root: ..."
    argv [1] = name;                        //  (sub: the subcommand)
    if (KC_STREQ (sub, "show")) {
        return s_show (argc - 1, argv + 1);
    }
    if (KC_STREQ (sub, "renew") || KC_STREQ (sub, "add-operator") || KC_STREQ (sub, "remove-operator")
    ||  KC_STREQ (sub, "add-witness") || KC_STREQ (sub, "remove-witness")
    ||  KC_STREQ (sub, "set-threshold") || KC_STREQ (sub, "rotate-head-key")
    ||  KC_STREQ (sub, "rotate-server-key")) {
        return s_change (command, argc - 1, argv + 1);
    }
    return cli_usage ("root", "unknown subcommand '%s'", sub);
}
