/*  =========================================================================
    cmd_online - the commands that talk to a running server or agent:
    register, revoke, submit, list, show (server), lookup, status (agent or
    server).
    =========================================================================
*/
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS  10000
#define DEFAULT_CHUNK       10000

//  Options shared by the online commands.
typedef struct {
    const char *dir;
    const char *root_path;
    const char *server;                     //  submit endpoint override
    const char *agent;                      //  agent local endpoint
    const char *key_path;                   //  --client-key: a member's key pair
    kc_cert_t *key;                         //  loaded from key_path
    kc_signer_t *reader;                    //  signs read requests, if found
    char *operators [CLI_OPERATORS_MAX];
    int operator_count;
    int timeout_ms;
    bool json;
    char root_buffer [CLI_PATH_MAX];
    char agent_buffer [PATH_MAX + 32];
} s_online_t;

#define ONLINE_OPTIONS \
    { "dir", required_argument, NULL, 'd' }, { "root", required_argument, NULL, 'r' }, \
    { "server", required_argument, NULL, 'S' }, { "agent", required_argument, NULL, 'A' }, \
    { "operator", required_argument, NULL, 'p' }, { "timeout", required_argument, NULL, 'T' }, \
    { "client-key", required_argument, NULL, 'K' }, { "json", no_argument, NULL, 'j' }

//  Handles a shared option; returns 1 if handled, 0 if not, -1 on error.
static int
s_online_option (const char *command, int c, s_online_t *o)
{
    switch (c) {
        case 'd': o->dir = optarg; return 1;
        case 'r': o->root_path = optarg; return 1;
        case 'S': o->server = optarg; return 1;
        case 'A': o->agent = optarg; return 1;
        case 'K': o->key_path = optarg; return 1;
        case 'j': o->json = true; return 1;
        case 'T':
            o->timeout_ms = atoi (optarg);
            if (o->timeout_ms < 1) {
                cli_usage (command, "invalid --timeout '%s'", optarg);
                return -1;
            }
            return 1;
        case 'p':
            if (o->operator_count == CLI_OPERATORS_MAX) {
                cli_usage (command, "too many --operator options");
                return -1;
            }
            o->operators [o->operator_count++] = optarg;
            return 1;
        default:
            return 0;
    }
}

static void
s_online_finish (s_online_t *o)
{
    o->dir = cli_dir (o->dir);
    if (!o->root_path) {
        o->root_path = cli_path (o->root_buffer, o->dir, "root");
    }
    if (!o->timeout_ms) {
        o->timeout_ms = DEFAULT_TIMEOUT_MS;
    }
    if (!o->agent) {
        const char *env = getenv ("KEYCLONE_AGENT");
        if (env && *env) {
            o->agent = env;
        }
        else {
            char absolute [PATH_MAX];
            snprintf (o->agent_buffer, sizeof o->agent_buffer, "ipc://%s/agent/agent.ipc",
                      realpath (o->dir, absolute) ? absolute : o->dir);
            o->agent = o->agent_buffer;
        }
    }
}

//  A client of the server, authenticated for reading (QUERY, STATUS) when
//  the server's policy is read = members: with --client-key (or $KEYCLONE_CLIENT_KEY), a
//  registered member's key pair; and with an operator key (the first
//  --operator, or one found in DIR/operators) signing each read request.
//  NULL after printing why when --key cannot be loaded.
static kc_client_t *
s_online_client (const char *command, s_online_t *o, const kc_root_t *root)
{
    const char *path = o->key_path ? o->key_path : getenv ("KEYCLONE_CLIENT_KEY");
    kc_why_t why;
    if (path && *path && !(o->key = kc_cert_load_secret (path, &why))) {
        cli_fail (command, "--client-key: %s", why.text);
        return NULL;
    }
    kc_client_t *client = cli_client_new (o->root_path, root, o->server, o->timeout_ms);
    if (o->key) {
        kc_client_set_key (client, o->key);
    }
    o->reader = cli_reader_operator (o->dir, o->operators, o->operator_count);
    if (o->reader) {
        kc_client_set_operator (client, o->reader);
    }
    return client;
}

//  Frees what s_online_client loaded.
static void
s_online_release (s_online_t *o)
{
    kc_cert_destroy (&o->key);
    kc_signer_destroy (&o->reader);
}

static uint64_t
s_now_us (void)
{
    struct timeval tv;
    gettimeofday (&tv, NULL);
    return (uint64_t) tv.tv_sec * 1000000 + (uint64_t) tv.tv_usec;
}

//  Signs a builder's records and submits them. Returns 0 and the seq, or
//  -1 after printing why.
static int
s_sign_submit (const char *command, kc_client_t *client, const kc_root_t *root,
               kc_batch_builder_t *builder, kc_signer_t **signers, int count, uint64_t *seq,
               bool *duplicate)
{
    kc_why_t why;
    kc_batch_t *batch = kc_batch_builder_finish (builder, signers, (size_t) count, &why);
    if (!batch) {
        cli_fail (command, "%s", why.text);
        return -1;
    }
    int rc = -1;
    if (kc_batch_verify (batch, root, kc_now (), &why)) {
        cli_fail (command, "%s: give more operators with --operator, or sign offline with "
                  "'keyclone sign' and 'keyclone cosign', then 'keyclone submit'", why.text);
    }
    else
    if (kc_client_submit (client, batch, seq, duplicate, &why)) {
        cli_fail (command, "server refused the batch: %s", why.text);
    }
    else {
        rc = 0;
    }
    kc_batch_destroy (&batch);
    return rc;
}

//  --- register ----------------------------------------------------------------

typedef struct {
    const char *command;
    s_online_t *online;
    kc_root_t *root;
    kc_client_t *client;
    kc_signer_t **signers;
    int signer_count;
    kc_batch_builder_t *builder;
    size_t chunk, records, batches, duplicates;
    uint64_t first_seq, last_seq;
    bool progress;
} s_register_t;

static int
s_flush (s_register_t *self)
{
    if (kc_batch_builder_count (self->builder) == 0) {
        return 0;
    }
    uint64_t seq;
    bool duplicate;
    size_t count = kc_batch_builder_count (self->builder);
    int rc = s_sign_submit (self->command, self->client, self->root, self->builder,
                            self->signers, self->signer_count, &seq, &duplicate);
    kc_batch_builder_destroy (&self->builder);
    self->builder = kc_batch_builder_new (kc_root_directory (self->root), kc_now ());
    if (rc) {
        return -1;
    }
    self->records += count;
    self->batches++;
    self->duplicates += duplicate;
    self->first_seq = self->first_seq ? self->first_seq : seq;
    self->last_seq = seq;
    if (self->progress) {
        fprintf (stderr, "\rkeyclone %s: %zu records in %zu batches (seq %llu)", self->command,
                 self->records, self->batches, (unsigned long long) seq);
    }
    return 0;
}

static int
s_register_record (const kc_record_spec_t *spec, void *arg, kc_why_t *why)
{
    s_register_t *self = arg;
    if (kc_batch_builder_add (self->builder, spec, why)) {
        return -1;
    }
    if (kc_batch_builder_count (self->builder) >= self->chunk && s_flush (self)) {
        return kc_why (why, "stopped after the failed batch");
    }
    return 0;
}

//  Builds "NAME=KEY,tag=...,expires=...,version=..." for cli_parse_record.
static int
s_register_argument (char *out, size_t size, const char *name, const char *key,
                     char *const *tags, int tag_count, const char *expires, const char *version)
{
    int n = snprintf (out, size, "%s=%s", name, key);
    for (int i = 0; i < tag_count && n < (int) size; i++) {
        n += snprintf (out + n, size - (size_t) n, ",tag=%s", tags [i]);
    }
    if (expires && n < (int) size) {
        n += snprintf (out + n, size - (size_t) n, ",expires=%s", expires);
    }
    if (version && n < (int) size) {
        n += snprintf (out + n, size - (size_t) n, ",version=%s", version);
    }
    return n < (int) size ? 0 : -1;
}

int
cmd_register (int argc, char *argv [])
{
    static const struct option longs [] = {
        ONLINE_OPTIONS, { "key", required_argument, NULL, 'k' },
        { "tag", required_argument, NULL, 't' }, { "expires", required_argument, NULL, 'x' },
        { "version", required_argument, NULL, 'V' }, { "from", required_argument, NULL, 'f' },
        { "batch-size", required_argument, NULL, 'b' }, { NULL, 0, NULL, 0 }
    };
    s_online_t online = { 0 };
    const char *key = NULL, *expires = NULL, *version = NULL, *from = NULL;
    char *tags [KC_RECORD_TAGS_MAX + 1];
    int tag_count = 0, chunk = DEFAULT_CHUNK, c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = s_online_option ("register", c, &online))) {
            if (handled < 0) {
                return CLI_USAGE;
            }
            continue;
        }
        switch (c) {
            case 'k': key = optarg; break;
            case 'x': expires = optarg; break;
            case 'V': version = optarg; break;
            case 'f': from = optarg; break;
            case 'b':
                chunk = atoi (optarg);
                if (chunk < 1 || chunk > KC_BATCH_RECORDS_MAX) {
                    return cli_usage ("register", "--batch-size must be 1..%d", KC_BATCH_RECORDS_MAX);
                }
                break;
            case 't':
                if (tag_count == KC_RECORD_TAGS_MAX) {
                    return cli_usage ("register", "at most %d tags", KC_RECORD_TAGS_MAX);
                }
                tags [tag_count++] = optarg;
                break;
            default: return CLI_USAGE;
        }
    }
    const char *name = optind < argc ? argv [optind] : NULL;
    if (from ? (name || key) : (!name || !key || optind != argc - 1)) {
        return cli_usage ("register", from ? "--from takes no NAME or --key"
                                           : "expected NAME and --key Z85KEY");
    }
    s_online_finish (&online);
    s_register_t self = { .command = "register", .online = &online, .chunk = (size_t) chunk,
                          .progress = from && isatty (STDERR_FILENO) && !online.json };
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    int rc = CLI_FAIL;
    self.root = cli_load_pinned_root ("register", online.root_path);
    if (!self.root) {
        return CLI_FAIL;
    }
    //  Signed for, and checked against, the root in force
    self.client = cli_client_new (online.root_path, self.root, online.server, online.timeout_ms);
    if (!cli_follow_root ("register", self.client, &self.root)) {
        kc_client_destroy (&self.client);
        kc_root_destroy (&self.root);
        return CLI_FAIL;
    }
    self.signer_count = cli_load_operators ("register", online.dir, online.operators,
                                            online.operator_count, signers);
    self.signers = signers;
    if (self.signer_count < 0 || cli_check_signers ("register", self.root, signers, self.signer_count)) {
        kc_client_destroy (&self.client);
        kc_root_destroy (&self.root);
        return CLI_FAIL;
    }
    self.builder = kc_batch_builder_new (kc_root_directory (self.root), kc_now ());
    kc_why_t why;
    char argument [4096];
    if (!from && s_register_argument (argument, sizeof argument, name, key, tags, tag_count,
                                      expires, version)) {
        cli_usage ("register", "arguments too long");
        rc = CLI_USAGE;
    }
    else
    if (from ? cli_read_records (from, s_register_record, &self, &why)
             : cli_parse_record (argument, false, s_register_record, &self, &why)) {
        if (!strstr (why.text, "stopped after")) {
            cli_fail ("register", "%s", why.text);
        }
    }
    else
    if (s_flush (&self) == 0) {
        rc = CLI_OK;
    }
    if (self.progress) {
        fputc ('\n', stderr);
    }
    if (rc == CLI_OK && online.json) {
        printf ("{\"records\": %zu, \"batches\": %zu, \"first_seq\": %llu, \"seq\": %llu}\n",
                self.records, self.batches, (unsigned long long) self.first_seq,
                (unsigned long long) self.last_seq);
    }
    else
    if (rc == CLI_OK && from) {
        printf ("registered %zu records in %zu batches, seq %llu..%llu\n", self.records,
                self.batches, (unsigned long long) self.first_seq, (unsigned long long) self.last_seq);
    }
    else
    if (rc == CLI_OK) {
        uint8_t raw [KC_KEY_BYTES];
        char fp [KC_FINGERPRINT_CHARS + 1];
        if (kc_z85_key (key, raw, NULL) == 0) {
            printf ("registered %s (%s) at seq %llu%s\n", name, kc_fingerprint (raw, fp),
                    (unsigned long long) self.last_seq,
                    self.duplicates ? " (already: the same batch was accepted before)" : "");
        }
    }
    for (int i = 0; i < self.signer_count; i++) {
        kc_signer_destroy (&signers [i]);
    }
    kc_batch_builder_destroy (&self.builder);
    kc_client_destroy (&self.client);
    kc_root_destroy (&self.root);
    return rc;
}

//  --- revoke ------------------------------------------------------------------

typedef struct {
    uint8_t keys [64][KC_KEY_BYTES];
    uint64_t versions [64];
    char names [64][KC_RECORD_NAME_MAX + 1];
    size_t count;
    bool by_name;
} s_targets_t;

static int
s_collect_target (uint64_t seq, const kc_record_t *record, void *arg)
{
    (void) seq;
    s_targets_t *targets = arg;
    if (targets->by_name && record->status == KC_STATUS_REVOKED) {
        return 0;                           //  already revoked
    }
    if (targets->count == 64) {
        return -1;
    }
    memcpy (targets->keys [targets->count], record->key, KC_KEY_BYTES);
    targets->versions [targets->count] = record->version;
    kc_record_name (record, targets->names [targets->count]);
    targets->count++;
    return 0;
}

static int
s_resolve (kc_client_t *client, const char *what, s_targets_t *targets, kc_why_t *why)
{
    uint8_t key [KC_KEY_BYTES];
    memset (targets, 0, sizeof *targets);
    if (strlen (what) == KC_Z85_KEY_CHARS && kc_z85_key (what, key, NULL) == 0) {
        if (kc_client_query (client, "key", key, KC_KEY_BYTES, s_collect_target, targets, why) < 0) {
            return -1;
        }
        if (targets->count == 0) {          //  not registered: revoke it anyway
            memcpy (targets->keys [0], key, KC_KEY_BYTES);
            targets->count = 1;
        }
        return 0;
    }
    if (!kc_record_name_valid (what, strlen (what))) {
        return kc_why (why, "'%s' is neither a 40-character Z85 key nor a node name", what);
    }
    targets->by_name = true;
    if (kc_client_query (client, "name", (const uint8_t *) what, strlen (what), s_collect_target,
                         targets, why) < 0) {
        return -1;
    }
    return targets->count ? 0 : kc_why (why, "no unrevoked key is registered for '%s'", what);
}

int
cmd_revoke (int argc, char *argv [])
{
    static const struct option longs [] = {
        ONLINE_OPTIONS, { "reason", required_argument, NULL, 'R' }, { NULL, 0, NULL, 0 }
    };
    s_online_t online = { 0 };
    const char *reason = NULL;
    int c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = s_online_option ("revoke", c, &online))) {
            if (handled < 0) {
                return CLI_USAGE;
            }
            continue;
        }
        if (c != 'R') {
            return CLI_USAGE;
        }
        reason = optarg;
    }
    if (optind != argc - 1) {
        return cli_usage ("revoke", "expected one Z85KEY or NAME");
    }
    s_online_finish (&online);
    kc_root_t *root = cli_load_pinned_root ("revoke", online.root_path);
    if (!root) {
        return CLI_FAIL;
    }
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    int signer_count = cli_load_operators ("revoke", online.dir, online.operators,
                                           online.operator_count, signers);
    int rc = CLI_FAIL;
    kc_client_t *client = s_online_client ("revoke", &online, root);
    //  Signed for, and checked against, the root in force
    if (client && !cli_follow_root ("revoke", client, &root)) {
        kc_client_destroy (&client);
    }
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), kc_now ());
    static s_targets_t targets;
    kc_why_t why;
    uint64_t seq = 0, now_us = s_now_us ();
    bool duplicate;
    if (!client || signer_count < 0 || cli_check_signers ("revoke", root, signers, signer_count)) {
        goto cleanup;
    }
    if (s_resolve (client, argv [optind], &targets, &why)) {
        cli_fail ("revoke", "%s", why.text);
        goto cleanup;
    }
    for (size_t i = 0; i < targets.count; i++) {
        kc_record_spec_t spec = {
            .key = targets.keys [i], .status = KC_STATUS_REVOKED, .name = targets.names [i],
            .reason = reason,
            //  Informational: a revocation needs no higher version
            .version = targets.versions [i] < now_us ? now_us
                     : targets.versions [i] < KC_RECORD_VERSION_MAX ? targets.versions [i] + 1
                     : KC_RECORD_VERSION_MAX
        };
        if (kc_batch_builder_add (builder, &spec, &why)) {
            cli_fail ("revoke", "%s", why.text);
            goto cleanup;
        }
    }
    if (s_sign_submit ("revoke", client, root, builder, signers, signer_count, &seq, &duplicate) == 0) {
        rc = CLI_OK;
        for (size_t i = 0; i < targets.count; i++) {
            char fp [KC_FINGERPRINT_CHARS + 1], z85 [KC_Z85_KEY_CHARS + 1];
            if (online.json) {
                printf ("{\"revoked\": \"%s\", \"name\": ", kc_z85_encode (targets.keys [i], 32, z85));
                kc_json_cstr (stdout, targets.names [i]);
                printf (", \"seq\": %llu}\n", (unsigned long long) seq);
            }
            else {
                printf ("revoked %s (%s) at seq %llu\n", *targets.names [i] ? targets.names [i] : "key",
                        kc_fingerprint (targets.keys [i], fp), (unsigned long long) seq);
            }
        }
    }
cleanup:
    for (int i = 0; i < signer_count; i++) {
        kc_signer_destroy (&signers [i]);
    }
    kc_batch_builder_destroy (&builder);
    kc_client_destroy (&client);
    s_online_release (&online);
    kc_root_destroy (&root);
    return rc;
}

//  --- submit ------------------------------------------------------------------


int
cmd_submit (int argc, char *argv [])
{
    static const struct option longs [] = { ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    s_online_t online = { 0 };
    int c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = s_online_option ("submit", c, &online)) != 1) {
            return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        return cli_usage ("submit", "expected one or more batch FILEs");
    }
    s_online_finish (&online);
    kc_root_t *root = cli_load_pinned_root ("submit", online.root_path);
    if (!root) {
        return CLI_FAIL;
    }
    kc_client_t *client = cli_client_new (online.root_path, root, online.server, online.timeout_ms);
    int rc = CLI_OK;
    for (int i = optind; i < argc; i++) {
        kc_why_t why;
        uint64_t seq;
        bool duplicate;
        //  A batch made with 'keyclone sign', or a root change made with
        //  'keyclone root' (told apart by their first bytes), cosigned
        size_t size;
        uint8_t *data = kc_file_read (argv [i], KC_BATCH_BYTES_MAX, false, &size, &why);
        bool is_root = data && kc_root_is_root (data, size);
        kc_root_t *change = is_root ? kc_root_decode (data, size, &why) : NULL;
        kc_batch_t *batch = data && !is_root ? kc_batch_decode (data, size, &why) : NULL;
        if ((!change && !batch) || kc_client_submit_data (client, data, size, &seq, &duplicate, &why)) {
            rc = cli_fail ("submit", "'%s': %s", argv [i], why.text);
        }
        else
        if (online.json) {
            printf ("{\"file\": ");
            kc_json_cstr (stdout, argv [i]);
            if (change) {
                printf (", \"seq\": %llu, \"root_version\": %llu", (unsigned long long) seq,
                        (unsigned long long) kc_root_version (change));
            }
            else {
                printf (", \"seq\": %llu, \"records\": %zu", (unsigned long long) seq, kc_batch_count (batch));
            }
            printf (", \"duplicate\": %s}\n", duplicate ? "true" : "false");
        }
        else {
            char what [48];
            if (change) {
                snprintf (what, sizeof what, "root v%llu", (unsigned long long) kc_root_version (change));
            }
            else {
                snprintf (what, sizeof what, "%zu records", kc_batch_count (batch));
            }
            printf ("%s: %s at seq %llu (%s)\n", argv [i], duplicate ? "already accepted" : "accepted",
                    (unsigned long long) seq, what);
        }
        if (change) {
            cli_remember_root ("submit", root, change);
        }
        kc_root_destroy (&change);
        kc_batch_destroy (&batch);
        kc_file_free (&data, false);
    }
    kc_client_destroy (&client);
    kc_root_destroy (&root);
    return rc;
}

//  --- list and show -----------------------------------------------------------

typedef struct {
    bool json, revoked_only, all;
    size_t count;
} s_print_t;

static int
s_print_one (uint64_t seq, const kc_record_t *record, void *arg)
{
    s_print_t *print = arg;
    if (!print->all && (record->status == KC_STATUS_REVOKED) != print->revoked_only) {
        return 0;
    }
    if (print->json) {
        printf ("%s{\"seq\": %llu, \"record\": ", print->count ? ",\n " : "", (unsigned long long) seq);
        cli_print_record (stdout, record, true);
        printf ("}");
    }
    else {
        cli_print_record (stdout, record, false);
    }
    print->count++;
    return 0;
}

static int
s_query_command (const char *command, int argc, char *argv [], bool show)
{
    static const struct option list_longs [] = {
        ONLINE_OPTIONS, { "revoked", no_argument, NULL, 'R' }, { NULL, 0, NULL, 0 }
    };
    static const struct option show_longs [] = { ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    const struct option *longs = show ? show_longs : list_longs;
    s_online_t online = { 0 };
    s_print_t print = { .all = show };
    int c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = s_online_option (command, c, &online))) {
            if (handled < 0) {
                return CLI_USAGE;
            }
            continue;
        }
        if (c != 'R') {
            return CLI_USAGE;
        }
        print.revoked_only = true;
    }
    if (show ? optind != argc - 1 : optind != argc) {
        return cli_usage (command, show ? "expected one Z85KEY or NAME" : "unexpected argument");
    }
    s_online_finish (&online);
    print.json = online.json;
    kc_root_t *root = cli_load_pinned_root (command, online.root_path);
    if (!root) {
        return CLI_FAIL;
    }
    kc_client_t *client = s_online_client (command, &online, root);
    if (!client) {
        kc_root_destroy (&root);
        return CLI_FAIL;
    }
    kc_why_t why;
    uint8_t key [KC_KEY_BYTES];
    const char *what = show ? argv [optind] : NULL;
    bool by_key = what && strlen (what) == KC_Z85_KEY_CHARS && kc_z85_key (what, key, NULL) == 0;
    if (print.json) {
        printf ("[");
    }
    int count = !show ? kc_client_query (client, "list", NULL, 0, s_print_one, &print, &why)
              : by_key ? kc_client_query (client, "key", key, KC_KEY_BYTES, s_print_one, &print, &why)
              : kc_client_query (client, "name", (const uint8_t *) what, strlen (what), s_print_one,
                                 &print, &why);
    if (print.json) {
        printf ("]\n");
    }
    int rc = CLI_OK;
    if (count < 0) {
        rc = cli_fail (command, "%s", why.text);
    }
    else
    if (show && count == 0) {
        rc = cli_fail (command, "no key or name '%s' in the directory", what);
    }
    kc_client_destroy (&client);
    s_online_release (&online);
    kc_root_destroy (&root);
    return rc;
}

int
cmd_list (int argc, char *argv [])
{
    return s_query_command ("list", argc, argv, false);
}

int
cmd_show (int argc, char *argv [])
{
    return s_query_command ("show", argc, argv, true);
}

//  --- lookup and status (agent) -----------------------------------------------

int
cmd_lookup (int argc, char *argv [])
{
    static const struct option longs [] = { ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    s_online_t online = { 0 };
    int c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = s_online_option ("lookup", c, &online)) != 1) {
            return CLI_USAGE;
        }
    }
    if (optind != argc - 1) {
        return cli_usage ("lookup", "expected one Z85KEY or NAME");
    }
    s_online_finish (&online);
    const char *what = argv [optind];
    uint8_t key [KC_KEY_BYTES];
    bool by_key = strlen (what) == KC_Z85_KEY_CHARS && kc_z85_key (what, key, NULL) == 0;
    kc_why_t why;
    char *reply = kc_agent_request (online.agent, online.timeout_ms, by_key ? "LOOKUP" : "NAME",
                                    by_key ? key : (const uint8_t *) what,
                                    by_key ? KC_KEY_BYTES : strlen (what), online.json, &why);
    if (!reply) {
        return cli_fail ("lookup", "%s", why.text);
    }
    cli_print_reply (reply, online.json);
    //  Exit 0 only when a trusted key was found
    bool trusted = online.json ? strstr (reply, "\"status\": \"trusted\"") != NULL
                               : strncmp (reply, "trusted", 7) == 0 || strstr (reply, "\ntrusted");
    free (reply);
    return trusted ? CLI_OK : CLI_FAIL;
}

int
cmd_status (int argc, char *argv [])
{
    static const struct option longs [] = {
        ONLINE_OPTIONS, { "server-status", no_argument, NULL, 's' }, { NULL, 0, NULL, 0 }
    };
    s_online_t online = { 0 };
    bool server = false;
    int c, handled;
    //  "--server" alone (no endpoint) asks the server: rewrite it before parsing
    for (int i = 1; i < argc; i++) {
        if (KC_STREQ (argv [i], "--server") && (i + 1 == argc || argv [i + 1][0] == '-')) {
            argv [i] = (char *) "--server-status";
        }
    }
    cli_args (&argc, &argv, longs);
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if (c == 's') {
            server = true;
            continue;
        }
        if ((handled = s_online_option ("status", c, &online)) != 1) {
            return CLI_USAGE;
        }
        server |= c == 'S';
    }
    if (optind != argc) {
        return cli_usage ("status", "unexpected argument '%s'", argv [optind]);
    }
    s_online_finish (&online);
    kc_why_t why;
    char *json = NULL, *text = NULL;
    if (server) {
        kc_root_t *root = cli_load_pinned_root ("status", online.root_path);
        if (!root) {
            return CLI_FAIL;
        }
        kc_client_t *client = s_online_client ("status", &online, root);
        bool loaded = client != NULL;
        json = client ? kc_client_status_both (client, &text, &why) : NULL;
        kc_client_destroy (&client);
        s_online_release (&online);
        kc_root_destroy (&root);
        if (!loaded) {
            return CLI_FAIL;
        }
    }
    else {
        json = kc_agent_request_both (online.agent, online.timeout_ms, "STATUS", NULL, 0, &text, &why);
    }
    if (!json) {
        return cli_fail ("status", "%s", why.text);
    }
    cli_print_reply (online.json ? json : text, online.json);
    //  Monitoring's cue: the root in force expires within a week (or has)
    const char *field = strstr (json, "\"root_expires\": ");
    uint64_t expires = field ? strtoull (field + 16, NULL, 10) : 0;
    int rc = expires && expires < kc_now () + CLI_ROOT_WARN_DAYS * 86400ULL ? CLI_ROOT_EXPIRING : CLI_OK;
    if (rc == CLI_ROOT_EXPIRING && !online.json) {
        char when [32];
        fprintf (stderr, "keyclone status: the root in force %s %s: renew it ('keyclone root renew')\n",
                 expires <= kc_now () ? "expired at" : "expires at", kc_time_format (expires, when));
    }
    free (json);
    free (text);
    return rc;
}

//  --- log ------------------------------------------------------------------------

typedef struct {
    bool json;
    const char *name;                       //  only entries with a record of this name
    kc_root_t *root;                        //  in force at the entry being shown
    uint64_t since;                         //  the first seq shown
    size_t shown;
    int invalid;
} s_log_t;

//  The signers of an entry, by operator name in root (else fingerprint).
static void
s_log_signers (const kc_root_t *root, const kc_signature_t *list, size_t count, bool json)
{
    char who [80], fp [KC_FINGERPRINT_CHARS + 1];
    for (size_t i = 0; i < count; i++) {
        int index = kc_root_operator_index (root, list [i].key);
        snprintf (who, sizeof who, "%s", index >= 0 ? kc_root_operator (root, (size_t) index)->name
                                                    : kc_fingerprint (list [i].key, fp));
        if (json) {
            printf ("%s", i ? ", " : "");
            kc_json_cstr (stdout, who);
        }
        else {
            printf ("%s%s", i ? ", " : "", who);
        }
    }
}

static void
s_log_head (s_log_t *log, const kc_entry_t *entry, const char *kind)
{
    char when [32], fp [KC_FINGERPRINT_CHARS + 1];
    if (entry->accepted) {
        kc_time_format (entry->accepted / 1000, when);
    }
    else {
        snprintf (when, sizeof when, "unknown");   //  from a server that did not say
    }
    if (log->json) {
        printf ("%s{\"seq\": %llu, \"accepted\": ", log->shown ? ",\n " : "", (unsigned long long) entry->seq);
        kc_json_cstr (stdout, when);
        printf (", \"kind\": ");
        kc_json_cstr (stdout, kind);
        printf (", \"submitted_by\": ");
        kc_json_cstr (stdout, entry->submitter ? kc_fingerprint (entry->submitter, fp) : "unknown");
    }
    else {
        printf ("%llu  %s  %s", (unsigned long long) entry->seq, when, kind);
    }
}

static int
s_log_root (s_log_t *log, const kc_entry_t *entry)
{
    kc_why_t why;
    kc_root_t *next = kc_root_decode (entry->data, entry->size, &why);
    if (!next || kc_root_verify_successor (log->root, next, kc_root_created (next), &why)) {
        kc_root_destroy (&next);
        return cli_fail ("log", "seq %llu: root change refused: %s", (unsigned long long) entry->seq,
                         why.text);
    }
    if (!log->name) {
        kc_signature_t list [KC_ROOT_SIGNATURES_MAX];
        for (size_t i = 0; i < kc_root_signature_count (next); i++) {
            list [i] = kc_root_signature (next, i);
        }
        char diff [4096];
        kc_root_diff (log->root, next, diff, sizeof diff);
        char kind [48];
        snprintf (kind, sizeof kind, "root change to v%llu", (unsigned long long) kc_root_version (next));
        s_log_head (log, entry, kind);
        //  Signers named from either root: an added operator signs too
        if (log->json) {
            printf (", \"signed_by\": [");
            s_log_signers (next, list, kc_root_signature_count (next), true);
            printf ("], \"changes\": ");
            kc_json_cstr (stdout, diff);
            printf ("}");
        }
        else {
            printf (", signed by ");
            s_log_signers (next, list, kc_root_signature_count (next), false);
            char fp [KC_FINGERPRINT_CHARS + 1];
            printf ("; submitted by %s\n", entry->submitter ? kc_fingerprint (entry->submitter, fp) : "unknown");
            for (char *line = strtok (diff, "\n"); line; line = strtok (NULL, "\n")) {
                if (strncmp (line, "version:", 8)) {
                    printf ("    %s\n", line);
                }
            }
        }
        log->shown++;
    }
    kc_root_destroy (&log->root);
    log->root = next;
    return 0;
}

static int
s_log_entry (const kc_entry_t *entry, void *arg)
{
    s_log_t *log = arg;
    if (kc_root_is_root (entry->data, entry->size)) {
        return s_log_root (log, entry) ? -1 : 0;
    }
    kc_why_t why;
    kc_batch_t *batch = kc_batch_decode (entry->data, entry->size, &why);
    if (!batch || kc_batch_verify (batch, log->root, 0, &why)) {
        //  Shown, marked: the server's log should never hold one
        fprintf (stderr, "keyclone log: seq %llu does not verify against root v%llu: %s\n",
                 (unsigned long long) entry->seq, (unsigned long long) kc_root_version (log->root), why.text);
        log->invalid++;
        kc_batch_destroy (&batch);
        return 0;
    }
    bool wanted = !log->name, registers = false, revokes = false;
    char name [KC_RECORD_NAME_MAX + 1];
    for (size_t i = 0; i < kc_batch_count (batch); i++) {
        const kc_record_t *record = kc_batch_record (batch, i);
        wanted |= log->name && KC_STREQ (kc_record_name (record, name), log->name);
        registers |= record->status == KC_STATUS_ACTIVE;
        revokes |= record->status == KC_STATUS_REVOKED;
    }
    if (wanted) {
        kc_signature_t list [KC_BATCH_SIGNATURES_MAX + 1];
        size_t count = kc_batch_signature_count (batch);
        for (size_t i = 0; i < count; i++) {
            list [i] = kc_batch_signature (batch, i);
        }
        s_log_head (log, entry, registers && revokes ? "register+revoke" : registers ? "register" : "revoke");
        if (log->json) {
            printf (", \"signed_by\": [");
            s_log_signers (log->root, list, count, true);
            printf ("], \"records\": [");
        }
        else {
            printf (", signed by ");
            s_log_signers (log->root, list, count, false);
            char fp [KC_FINGERPRINT_CHARS + 1];
            printf ("; submitted by %s\n", entry->submitter ? kc_fingerprint (entry->submitter, fp) : "unknown");
        }
        size_t printed = 0;
        for (size_t i = 0; i < kc_batch_count (batch); i++) {
            const kc_record_t *record = kc_batch_record (batch, i);
            if (log->name && !KC_STREQ (kc_record_name (record, name), log->name)) {
                continue;
            }
            if (log->json) {
                printf ("%s", printed ? ", " : "");
            }
            cli_print_record (stdout, record, log->json);
            printed++;
        }
        if (log->json) {
            printf ("]}");
        }
        log->shown++;
    }
    kc_batch_destroy (&batch);
    return 0;
}

//  The first entry a node's history holds (from seq since on).
static int
s_log_first (const kc_entry_t *entry, void *arg)
{
    *(uint64_t *) arg = entry->seq;
    return 1;
}

//  The root in force just before seq since: the pinned root followed
//  through the root changes before it.
static void
s_log_root_before (const kc_root_t *from, const kc_root_t *to, uint64_t seq, void *arg)
{
    (void) from;
    s_log_t *log = arg;
    if (seq < log->since) {
        kc_root_destroy (&log->root);
        log->root = kc_root_dup (to);
    }
}

int
cmd_log (int argc, char *argv [])
{
    static const struct option longs [] = {
        ONLINE_OPTIONS, { "since", required_argument, NULL, 's' }, { "name", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 }
    };
    s_online_t online = { 0 };
    s_log_t log = { 0 };
    uint64_t since = 1;
    int c, handled;
    bool from_agent = false;
    cli_args (&argc, &argv, longs);
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        if (c == 's') {
            char *end;
            since = strtoull (optarg, &end, 10);
            if (*end || !*optarg || since == 0) {
                return cli_usage ("log", "invalid --since '%s' (a sequence number, 1 or more)", optarg);
            }
            continue;
        }
        if (c == 'n') {
            log.name = optarg;
            continue;
        }
        from_agent |= c == 'A';
        if ((handled = s_online_option ("log", c, &online)) != 1) {
            return CLI_USAGE;
        }
    }
    if (optind != argc) {
        return cli_usage ("log", "unexpected argument '%s'", argv [optind]);
    }
    s_online_finish (&online);
    log.json = online.json;
    kc_root_t *pinned = cli_load_pinned_root ("log", online.root_path);
    if (!pinned) {
        return CLI_FAIL;
    }
    //  A node's history (--agent) is what its agent verified and kept: it
    //  may start later than the server's log
    kc_client_t *client = from_agent ? kc_client_new_agent (online.agent, online.timeout_ms)
                                     : s_online_client ("log", &online, pinned);
    int rc = CLI_FAIL;
    kc_why_t why;
    uint64_t first = 0;
    if (client && from_agent && kc_client_log (client, since - 1, s_log_first, &first, &why) < 0) {
        cli_fail ("log", "%s", why.text);
        kc_client_destroy (&client);
    }
    if (client && first > since) {
        fprintf (stderr, "keyclone log: this node's history starts at seq %llu (it keeps the last "
                 "%d entries or %d MiB; the server's log has all)\n", (unsigned long long) first,
                 KC_CACHE_HISTORY_ENTRIES, KC_CACHE_HISTORY_BYTES / (1024 * 1024));
        since = first;
    }
    if (client) {
        log.root = kc_root_dup (pinned);
        log.since = since;
        kc_root_t *current = kc_client_root (client, pinned, s_log_root_before, &log, &why);
        if (!current) {
            cli_fail ("log", "%s", why.text);
        }
        else {
            if (log.json) {
                printf ("[");
            }
            int count = kc_client_log (client, since - 1, s_log_entry, &log, &why);
            if (log.json) {
                printf ("]\n");
            }
            if (count < 0) {
                cli_fail ("log", "%s", why.text);
            }
            else {
                rc = log.invalid ? CLI_FAIL : CLI_OK;
            }
        }
        kc_root_destroy (&current);
    }
    kc_root_destroy (&log.root);
    kc_client_destroy (&client);
    s_online_release (&online);
    kc_root_destroy (&pinned);
    return rc;
}
