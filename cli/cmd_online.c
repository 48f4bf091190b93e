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


#define DEFAULT_CHUNK       10000

static uint64_t
s_now_us (void)
{
    struct timeval tv;
    gettimeofday (&tv, NULL);
    return (uint64_t) tv.tv_sec * 1000000 + (uint64_t) tv.tv_usec;
}

//  --- keys as people give them ---------------------------------------------------

typedef struct {
    uint8_t keys [64][KC_KEY_BYTES];
    uint64_t versions [64];
    char names [64][KC_RECORD_NAME_MAX + 1];
    size_t count;
    bool by_name;
    bool never_registered;                  //  a key the directory has never held
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


#define KEY_PREFIX_MIN      8               //  hex characters of a fingerprint prefix

typedef struct {
    uint8_t prefix [KC_KEY_BYTES];
    size_t nibbles;                         //  hex digits to match
    uint8_t keys [8][KC_KEY_BYTES];
    char names [8][KC_RECORD_NAME_MAX + 1];
    size_t count;
} s_prefix_t;

static bool
s_prefix_matches (const s_prefix_t *self, const uint8_t *key)
{
    size_t bytes = self->nibbles / 2;
    if (memcmp (key, self->prefix, bytes)) {
        return false;
    }
    return self->nibbles % 2 == 0 || (key [bytes] >> 4) == (self->prefix [bytes] >> 4);
}

static int
s_collect_prefix (uint64_t seq, const kc_record_t *record, void *arg)
{
    (void) seq;
    s_prefix_t *self = arg;
    if (!s_prefix_matches (self, record->key)) {
        return -1;                          //  past the prefix in key order
    }
    if (self->count < 8) {
        memcpy (self->keys [self->count], record->key, KC_KEY_BYTES);
        kc_record_name (record, self->names [self->count]);
    }
    self->count++;
    return self->count > 8 ? -1 : 0;
}

//  A key as a person gives it: a 40-character Z85 key; a certificate file
//  (czmq's or pyzmq's, public or secret: only the public key is read); or,
//  with a client, a fingerprint: a hex prefix of at least 8 characters of a
//  registered key, which must be unique (the server's records are read in
//  key order from the prefix). 0, or -1 with a reason (several matches are
//  listed).
//  True if text can be a fingerprint: KEY_PREFIX_MIN to 64 hex digits.
static bool
s_hex (const char *text)
{
    uint8_t scratch [KC_KEY_BYTES];
    size_t length = strlen (text);
    return length >= KEY_PREFIX_MIN && kc_unhex_prefix (text, length, scratch, sizeof scratch) == 0;
}

int
cli_key_input (kc_client_t *client, const char *text, uint8_t key [static KC_KEY_BYTES], kc_why_t *why)
{
    size_t length = strlen (text);
    if (length == KC_Z85_KEY_CHARS && kc_z85_key (text, key, NULL) == 0) {
        return 0;
    }
    if (kc_file_exists (text)) {
        kc_why_t problem;
        kc_cert_t *cert = kc_cert_load_public (text, &problem);
        if (!cert) {
            return kc_why (why, "'%s' is a file but not a CURVE certificate: %s", text, problem.text);
        }
        memcpy (key, kc_cert_public_key (cert), KC_KEY_BYTES);
        kc_cert_destroy (&cert);
        return 0;
    }
    s_prefix_t prefix = { .nibbles = length };
    if (length < KEY_PREFIX_MIN || kc_unhex_prefix (text, length, prefix.prefix, sizeof prefix.prefix)) {
        return kc_why (why, "'%s' is not a key: give a 40-character Z85 key, a certificate file, or "
                       "a fingerprint (at least %d hex digits)", text, KEY_PREFIX_MIN);
    }
    if (!client) {
        return kc_why (why, "'%s' looks like a fingerprint: this command cannot look it up; give the "
                       "Z85 key or a certificate file", text);
    }
    //  Keys in order after the prefix (its last half byte padded with 0):
    //  the matches come first
    if (kc_client_query (client, "list", prefix.prefix, (length + 1) / 2, s_collect_prefix, &prefix,
                         why) < 0) {
        return -1;
    }
    if (prefix.count == 0) {
        return kc_why (why, "no registered key has the fingerprint '%s'", text);
    }
    if (prefix.count > 1) {
        char list [1024] = "";
        size_t n = 0;
        for (size_t i = 0; i < prefix.count && i < 8; i++) {
            char z85 [KC_Z85_KEY_CHARS + 1];
            n += (size_t) snprintf (list + n, sizeof list - n, "%s%s (%s)", i ? ", " : "",
                                    kc_z85_encode (prefix.keys [i], KC_KEY_BYTES, z85), prefix.names [i]);
        }
        return kc_why (why, "the fingerprint '%s' matches %s%zu keys: %s%s; give more of it", text,
                       prefix.count > 8 ? "more than " : "", prefix.count > 8 ? (size_t) 8 : prefix.count,
                       list, prefix.count > 8 ? ", ..." : "");
    }
    memcpy (key, prefix.keys [0], KC_KEY_BYTES);
    return 0;
}

static int
s_count_record (uint64_t seq, const kc_record_t *record, void *arg)
{
    (void) seq;
    (void) record;
    (*(size_t *) arg)++;
    return 0;
}

//  A key (as cli_key_input takes it) or a node name: *is_key says which. A
//  valid name that is also all hex is a name when the directory has it,
//  else a fingerprint. Without a client, fingerprints are not looked up.
static int
s_key_or_name (kc_client_t *client, const char *text, uint8_t key [static KC_KEY_BYTES], bool *is_key,
               kc_why_t *why)
{
    size_t length = strlen (text);
    *is_key = true;
    if ((length == KC_Z85_KEY_CHARS && kc_z85_key (text, key, NULL) == 0) || kc_file_exists (text)) {
        return cli_key_input (client, text, key, why);
    }
    if (kc_record_name_valid (text, length)) {
        size_t named = 0;
        if (!s_hex (text) || !client
        ||  kc_client_query (client, "name", (const uint8_t *) text, length, s_count_record, &named, why) != 0
        ||  named) {
            *is_key = false;
            return 0;
        }
    }
    return cli_key_input (client, text, key, why);
}

//  --- register ----------------------------------------------------------------

typedef struct {
    const char *command;
    cli_online_t *online;
    kc_root_t *root;
    kc_client_t *client;
    kc_signer_t **signers;
    int signer_count;
    kc_batch_builder_t *builder;
    size_t chunk, records, batches, duplicates;
    uint64_t first_seq, last_seq;
    bool progress;
    size_t total;                           //  records expected, for the progress line (0: unknown)
    bool force;                             //  moving keys to other names is wanted
    uint64_t started_us;                    //  for the progress line's rate
    zhashx_t *held;                         //  bulk: hex key -> name of each unrevoked record
} s_register_t;

static int
s_hold_record (uint64_t seq, const kc_record_t *record, void *arg)
{
    (void) seq;
    if (record->status == KC_STATUS_ACTIVE) {
        char hex [2 * KC_KEY_BYTES + 1], *name = malloc ((size_t) record->name_size + 1);
        assert (name);
        memcpy (name, record->name, record->name_size);
        name [record->name_size] = 0;
        zhashx_update ((zhashx_t *) arg, kc_hex (record->key, KC_KEY_BYTES, hex), name);
    }
    return 0;
}

//  In a bulk run without --force, a record that would move a key to
//  another name stops the run (the batches before it were submitted). The
//  directory's names are read once, at the first record.
static int
s_check_move (s_register_t *self, const kc_record_spec_t *spec, kc_why_t *why)
{
    if (self->force || spec->status != KC_STATUS_ACTIVE) {
        return 0;
    }
    if (!self->held) {
        self->held = zhashx_new ();
        zhashx_set_destructor (self->held, (zhashx_destructor_fn *) zstr_free);
        if (kc_client_query (self->client, "list", NULL, 0, s_hold_record, self->held, why) < 0) {
            return -1;
        }
    }
    char hex [2 * KC_KEY_BYTES + 1], fp [KC_FINGERPRINT_CHARS + 1];
    const char *name = zhashx_lookup (self->held, kc_hex (spec->key, KC_KEY_BYTES, hex));
    if (name && !KC_STREQ (name, spec->name)) {
        return kc_why (why, "key %s is registered as '%s': registering it as '%s' moves it; add --force to do "
                       "that", kc_fingerprint (spec->key, fp), name, spec->name);
    }
    return 0;
}

//  The progress line of a bulk run on a terminal: how far, how fast, and
//  with the total known, how much is left and when it should be done.
static void
s_progress (s_register_t *self, uint64_t seq)
{
    double seconds = (double) (s_now_us () - self->started_us) / 1e6;
    double rate = seconds > 0 ? (double) self->records / seconds : 0.0;
    if (self->total == 0) {
        fprintf (stderr, "\rkeyclone %s: %zu records in %zu batches (seq %llu), %.0f records/s", self->command,
                 self->records, self->batches, (unsigned long long) seq, rate);
        return;
    }
    size_t total = self->total > self->records ? self->total : self->records;
    unsigned long long left = rate > 0 ? (unsigned long long) ((double) (total - self->records) / rate + 0.5) : 0;
    char eta [32];
    if (left >= 3600) {
        snprintf (eta, sizeof eta, "%lluh%02llum", left / 3600, left / 60 % 60);
    }
    else {
        snprintf (eta, sizeof eta, "%llu:%02llu", left / 60, left % 60);
    }
    fprintf (stderr, "\rkeyclone %s: %zu of %zu records (%zu%%) in %zu batches (seq %llu), %.0f records/s, "
             "ETA %s ", self->command, self->records, total, self->records * 100 / total, self->batches,
             (unsigned long long) seq, rate, eta);
}

//  How many records a bulk file holds (lines that are not blank or a
//  comment), for the progress line; 0 when it cannot tell (standard input).
static size_t
s_count_records (const char *path)
{
    FILE *file = KC_STREQ (path, "-") ? NULL : fopen (path, "r");
    size_t count = 0;
    bool start = true, content = false;
    int c;
    while (file && (c = getc (file)) != EOF) {
        if (c == '\n') {
            count += content;
            start = true;
            content = false;
        }
        else
        if (start && c != ' ' && c != '\t' && c != '\r') {
            start = false;
            content = c != '#';
        }
    }
    count += content;
    if (file) {
        fclose (file);
    }
    return count;
}

static int
s_flush (s_register_t *self)
{
    if (kc_batch_builder_count (self->builder) == 0) {
        return 0;
    }
    uint64_t seq;
    bool duplicate;
    size_t count = kc_batch_builder_count (self->builder);
    int rc = cli_sign_submit (self->command, self->client, self->root, self->builder,
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
        s_progress (self, seq);
    }
    return 0;
}

static int
s_register_record (const kc_record_spec_t *spec, void *arg, kc_why_t *why)
{
    s_register_t *self = arg;
    if (s_check_move (self, spec, why) || kc_batch_builder_add (self->builder, spec, why)) {
        return -1;
    }
    if (kc_batch_builder_count (self->builder) >= self->chunk && s_flush (self)) {
        return kc_why (why, "stopped after the failed batch");
    }
    return 0;
}

//  The root in force (followed from the pinned root through the server),
//  the client and the operator signers a registration run needs. 0, or -1
//  after printing why.
static int
s_register_open (s_register_t *self, kc_signer_t *signers [CLI_OPERATORS_MAX])
{
    cli_online_t *online = self->online;
    self->root = cli_load_pinned_root (self->command, online->root_path);
    if (!self->root) {
        return -1;
    }
    //  Signed for, and checked against, the root in force
    self->client = cli_client_new (online->root_path, self->root, online->server, online->timeout_ms);
    if (!cli_follow_root (self->command, self->client, &self->root)) {
        kc_client_destroy (&self->client);
        kc_root_destroy (&self->root);
        return -1;
    }
    self->signer_count = cli_load_operators (self->command, online->dir, online->operators,
                                             online->operator_count, signers);
    self->signers = signers;
    if (self->signer_count < 0 || cli_check_signers (self->command, self->root, signers,
                                                     self->signer_count)) {
        kc_client_destroy (&self->client);
        kc_root_destroy (&self->root);
        return -1;
    }
    //  Its reads (is this key registered already?) signed by an operator
    kc_client_set_operator (self->client, signers [0]);
    self->builder = kc_batch_builder_new (kc_root_directory (self->root), kc_now ());
    return 0;
}

static void
s_register_close (s_register_t *self)
{
    zhashx_destroy (&self->held);
    for (int i = 0; i < self->signer_count; i++) {
        kc_signer_destroy (&self->signers [i]);
    }
    kc_batch_builder_destroy (&self->builder);
    kc_client_destroy (&self->client);
    kc_root_destroy (&self->root);
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

//  --batch-size and --tag, shared by the bulk registrations (register,
//  import). Returns 1 if c was one of them, 0 if not, -1 after a usage error.
static int
s_bulk_option (const char *command, int c, int *chunk, char *tags [KC_RECORD_TAGS_MAX + 1],
               int *tag_count)
{
    if (c == 'b') {
        *chunk = atoi (optarg);
        if (*chunk < 1 || *chunk > KC_BATCH_RECORDS_MAX) {
            cli_usage (command, "--batch-size must be 1..%d", KC_BATCH_RECORDS_MAX);
            return -1;
        }
        return 1;
    }
    if (c == 't') {
        if (*tag_count == KC_RECORD_TAGS_MAX) {
            cli_usage (command, "at most %d tags", KC_RECORD_TAGS_MAX);
            return -1;
        }
        tags [(*tag_count)++] = optarg;
        return 1;
    }
    return 0;
}

int
cmd_register (int argc, char *argv [])
{
    static const struct option longs [] = {
        CLI_ONLINE_OPTIONS, { "key", required_argument, NULL, 'k' },
        { "tag", required_argument, NULL, 't' }, { "expires", required_argument, NULL, 'x' },
        { "version", required_argument, NULL, 'V' }, { "from", required_argument, NULL, 'f' },
        { "batch-size", required_argument, NULL, 'b' }, { "force", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    const char *key = NULL, *expires = NULL, *version = NULL, *from = NULL;
    bool force = false;
    char *tags [KC_RECORD_TAGS_MAX + 1];
    int tag_count = 0, chunk = DEFAULT_CHUNK, c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = cli_online_option ("register", c, &online))) {
            if (handled < 0) {
                return CLI_USAGE;
            }
            continue;
        }
        if ((handled = s_bulk_option ("register", c, &chunk, tags, &tag_count))) {
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
            case 'F': force = true; break;
            default: return CLI_USAGE;
        }
    }
    const char *name = optind < argc ? argv [optind] : NULL;
    if (from ? (name || key) : (!name || !key || optind != argc - 1)) {
        return cli_usage ("register", from ? "--from takes no NAME or --key"
                                           : "expected NAME and --key Z85KEY");
    }
    //  Invalid values are usage errors, as for every command
    uint64_t seconds;
    kc_why_t bad;
    char *end = NULL;
    if (expires && kc_duration_parse (expires, &seconds, &bad)) {
        return cli_usage ("register", "--expires: %s", bad.text);
    }
    if (version && (strtoull (version, &end, 10) == 0 || *end)) {
        return cli_usage ("register", "--version: '%s' is not a version (1..2^63-1)", version);
    }
    cli_online_finish (&online);
    //  (one key: checked below with a query of its own)
    s_register_t self = { .command = "register", .online = &online, .chunk = (size_t) chunk,
                          .progress = from && isatty (STDERR_FILENO) && !online.json, .force = force || !from,
                          .started_us = s_now_us () };
    if (self.progress) {
        self.total = s_count_records (from);
    }
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    int rc = CLI_FAIL;
    if (s_register_open (&self, signers)) {
        return CLI_FAIL;
    }
    kc_why_t why;
    char argument [4096], z85 [KC_Z85_KEY_CHARS + 1];
    uint8_t raw_key [KC_KEY_BYTES];
    if (!from) {
        //  The key as given (Z85, a certificate file, a fingerprint), and
        //  not quietly moved from another name
        static s_targets_t held;
        memset (&held, 0, sizeof held);
        held.by_name = true;                //  the unrevoked records only
        if (cli_key_input (self.client, key, raw_key, &why)
        ||  kc_client_query (self.client, "key", raw_key, KC_KEY_BYTES, s_collect_target, &held, &why) < 0) {
            cli_fail ("register", "%s", why.text);
            s_register_close (&self);
            return CLI_FAIL;
        }
        char fp [KC_FINGERPRINT_CHARS + 1];
        if (held.count && !KC_STREQ (held.names [0], name) && !force) {
            cli_fail ("register", "key %s is registered as '%s': registering it as '%s' moves it; add "
                      "--force to do that", kc_fingerprint (raw_key, fp), held.names [0], name);
            s_register_close (&self);
            return CLI_FAIL;
        }
        key = kc_z85_encode (raw_key, KC_KEY_BYTES, z85);
    }
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
    s_register_close (&self);
    return rc;
}

//  --- revoke ------------------------------------------------------------------

static int
s_resolve (kc_client_t *client, const char *what, s_targets_t *targets, kc_why_t *why)
{
    uint8_t key [KC_KEY_BYTES];
    memset (targets, 0, sizeof *targets);
    bool is_key;
    if (s_key_or_name (client, what, key, &is_key, why)) {
        return -1;
    }
    if (is_key) {
        if (kc_client_query (client, "key", key, KC_KEY_BYTES, s_collect_target, targets, why) < 0) {
            return -1;
        }
        if (targets->count == 0) {          //  not registered: a pre-emptive tombstone
            memcpy (targets->keys [0], key, KC_KEY_BYTES);
            targets->count = 1;
            targets->never_registered = true;
        }
        return 0;
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
        CLI_ONLINE_OPTIONS, { "reason", required_argument, NULL, 'R' }, { "force", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    const char *reason = NULL;
    bool force = false;
    int c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = cli_online_option ("revoke", c, &online))) {
            if (handled < 0) {
                return CLI_USAGE;
            }
            continue;
        }
        if (c == 'F') {
            force = true;
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
    cli_online_finish (&online);
    kc_root_t *root = cli_load_pinned_root ("revoke", online.root_path);
    if (!root) {
        return CLI_FAIL;
    }
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    int signer_count = cli_load_operators ("revoke", online.dir, online.operators,
                                           online.operator_count, signers);
    int rc = CLI_FAIL;
    kc_client_t *client = cli_online_client ("revoke", &online, root);
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
    if (targets.never_registered && !force) {
        char fp [KC_FINGERPRINT_CHARS + 1];
        cli_fail ("revoke", "key %s was never registered: revoking it makes a pre-emptive tombstone "
                  "(it can never be registered afterwards); add --force to do that",
                  kc_fingerprint (targets.keys [0], fp));
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
    if (cli_sign_submit ("revoke", client, root, builder, signers, signer_count, &seq, &duplicate) == 0) {
        rc = CLI_OK;
        for (size_t i = 0; i < targets.count; i++) {
            char fp [KC_FINGERPRINT_CHARS + 1], z85 [KC_Z85_KEY_CHARS + 1];
            if (online.json) {
                printf ("{\"revoked\": \"%s\", \"name\": ", kc_z85_encode (targets.keys [i], 32, z85));
                kc_json_cstr (stdout, targets.names [i]);
                printf (", \"seq\": %llu}\n", (unsigned long long) seq);
            }
            else {
                printf ("revoked %s (%s) at seq %llu%s\n", *targets.names [i] ? targets.names [i] : "key",
                        kc_fingerprint (targets.keys [i], fp), (unsigned long long) seq,
                        targets.never_registered ? " (never registered: a pre-emptive tombstone)" : "");
            }
        }
    }
cleanup:
    for (int i = 0; i < signer_count; i++) {
        kc_signer_destroy (&signers [i]);
    }
    kc_batch_builder_destroy (&builder);
    kc_client_destroy (&client);
    cli_online_release (&online);
    kc_root_destroy (&root);
    return rc;
}

//  --- submit ------------------------------------------------------------------


int
cmd_submit (int argc, char *argv [])
{
    static const struct option longs [] = { CLI_ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    cli_online_t online = { 0 };
    int c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = cli_online_option ("submit", c, &online)) != 1) {
            return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        return cli_usage ("submit", "expected one or more batch FILEs");
    }
    cli_online_finish (&online);
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
        bool is_root = data && kc_root_is_root (data, size), is_grant = data && kc_grant_is_grant (data, size);
        bool is_use = data && kc_grant_is_use (data, size);
        kc_root_t *change = is_root ? kc_root_decode (data, size, &why) : NULL;
        kc_grant_t *grant = is_grant ? kc_grant_decode (data, size, &why) : NULL;
        kc_grant_use_t *use = is_use ? kc_grant_use_decode (data, size, &why) : NULL;
        kc_batch_t *batch = data && !is_root && !is_grant && !is_use ? kc_batch_decode (data, size, &why) : NULL;
        if ((!change && !batch && !grant && !use) || kc_client_submit_data (client, data, size, &seq, &duplicate, &why)) {
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
                printf (", \"seq\": %llu, \"records\": %zu", (unsigned long long) seq,
                        batch ? kc_batch_count (batch) : 0);
            }
            printf (", \"duplicate\": %s}\n", duplicate ? "true" : "false");
        }
        else {
            char what [48];
            if (change) {
                snprintf (what, sizeof what, "root v%llu", (unsigned long long) kc_root_version (change));
            }
            else
            if (grant || use) {
                char fp [KC_FINGERPRINT_CHARS + 1];
                snprintf (what, sizeof what, "%s %s",
                          grant ? "grant" : use->rotation ? "rotation by grant" : "registration by grant",
                          kc_fingerprint (grant ? grant->grant_key : use->grant_key, fp));
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
        kc_grant_destroy (&grant);
        kc_grant_use_destroy (&use);
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
        CLI_ONLINE_OPTIONS, { "revoked", no_argument, NULL, 'R' }, { NULL, 0, NULL, 0 }
    };
    static const struct option show_longs [] = { CLI_ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    const struct option *longs = show ? show_longs : list_longs;
    cli_online_t online = { 0 };
    s_print_t print = { .all = show };
    int c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = cli_online_option (command, c, &online))) {
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
    cli_online_finish (&online);
    print.json = online.json;
    kc_root_t *root = cli_load_pinned_root (command, online.root_path);
    if (!root) {
        return CLI_FAIL;
    }
    kc_client_t *client = cli_online_client (command, &online, root);
    if (!client) {
        kc_root_destroy (&root);
        return CLI_FAIL;
    }
    kc_why_t why;
    uint8_t key [KC_KEY_BYTES];
    const char *what = show ? argv [optind] : NULL;
    bool by_key = false;
    if (what && s_key_or_name (client, what, key, &by_key, &why)) {
        kc_client_destroy (&client);
        cli_online_release (&online);
        kc_root_destroy (&root);
        return cli_fail (command, "%s", why.text);
    }
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
    cli_online_release (&online);
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

//  The one key of the agent's cache whose fingerprint (hex) starts with
//  text: 0 with it, 1 when there is none, -1 with a reason (several,
//  listed; or the agent did not answer).
static int
s_agent_prefix (const cli_online_t *online, const char *text, uint8_t key [static KC_KEY_BYTES], kc_why_t *why)
{
    char *listed = NULL;
    char *json = kc_agent_request_both (online->agent, online->timeout_ms, "PREFIX", (const uint8_t *) text,
                                        strlen (text), &listed, why);
    uint64_t count = 0;
    int rc = 0;
    if (!json) {
        rc = -1;
    }
    else
    if (!cli_status_u64 (json, "count", &count)) {
        rc = kc_why (why, "the agent's answer to PREFIX has no count");
    }
    else
    if (count == 0) {
        rc = 1;
    }
    else
    if (count > 1) {
        //  The text rendering: one line a key (verdict, key, name, ...)
        for (char *p = listed; p && (p = strchr (p, '\n')); ) {
            *p = ';';
        }
        rc = kc_why (why, "the fingerprint '%s' matches %llu keys: %s give more of it", text,
                     (unsigned long long) count, listed);
    }
    else {
        const char *at = strstr (json, "\"key\": \"");
        char z85 [KC_Z85_KEY_CHARS + 1] = "";
        if (at) {
            snprintf (z85, sizeof z85, "%s", at + 8);
        }
        rc = kc_z85_key (z85, key, why);
    }
    free (json);
    free (listed);
    return rc;
}

int
cmd_lookup (int argc, char *argv [])
{
    static const struct option longs [] = { CLI_ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    cli_online_t online = { 0 };
    int c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = cli_online_option ("lookup", c, &online)) != 1) {
            return CLI_USAGE;
        }
    }
    if (optind != argc - 1) {
        return cli_usage ("lookup", "expected one Z85KEY or NAME");
    }
    cli_online_finish (&online);
    const char *what = argv [optind];
    uint8_t key [KC_KEY_BYTES];
    bool by_key;
    kc_why_t why;
    //  A Z85 key, a certificate file, a name, or a fingerprint (the agent
    //  searches its cache: s_agent_prefix)
    if (s_key_or_name (NULL, what, key, &by_key, &why)) {
        return cli_fail ("lookup", "%s", why.text);
    }
    if (!by_key && s_hex (what)) {
        //  All hex, a valid name too: the name when the agent knows it,
        //  else a fingerprint, else the name nobody has (unknown)
        char *named = kc_agent_request (online.agent, online.timeout_ms, "NAME", (const uint8_t *) what,
                                        strlen (what), true, &why);
        bool known = named && !strstr (named, "\"keys\": []");
        free (named);
        int found = known ? 1 : s_agent_prefix (&online, what, key, &why);
        if (found < 0) {
            return cli_fail ("lookup", "%s", why.text);
        }
        by_key = found == 0;
    }
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
    return trusted ? CLI_OK : CLI_NOT_TRUSTED;
}

//  status and metrics: the agent's (default) or, with --server, the server's.
static int
s_status_or_metrics (const char *command, int argc, char *argv [], bool metrics)
{
    static const struct option longs [] = {
        CLI_ONLINE_OPTIONS, { "server-status", no_argument, NULL, 's' }, { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    bool server = false;
    int c, handled;
    //  "--server" alone (no endpoint) asks the server: rewrite it before parsing
    for (int i = 1; i < argc; i++) {
        if (KC_STREQ (argv [i], "--server") && (i + 1 == argc || argv [i + 1][0] == '-')) {
            argv [i] = (char *) "--server-status";
        }
    }
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if (c == 's') {
            server = true;
            continue;
        }
        if ((handled = cli_online_option (command, c, &online)) != 1) {
            return CLI_USAGE;
        }
        server |= c == 'S';
    }
    if (optind != argc) {
        return cli_usage (command, "unexpected argument '%s'", argv [optind]);
    }
    cli_online_finish (&online);
    kc_why_t why;
    char *json = NULL, *text = NULL;
    if (server) {
        kc_root_t *root = cli_load_pinned_root (command, online.root_path);
        if (!root) {
            return CLI_FAIL;
        }
        kc_client_t *client = cli_online_client (command, &online, root);
        bool loaded = client != NULL;
        json = !client ? NULL : metrics ? kc_client_metrics (client, &text, &why)
                                        : kc_client_status_both (client, &text, &why);
        kc_client_destroy (&client);
        cli_online_release (&online);
        kc_root_destroy (&root);
        if (!loaded) {
            return CLI_FAIL;
        }
    }
    else {
        json = kc_agent_request_both (online.agent, online.timeout_ms, metrics ? "METRICS" : "STATUS", NULL, 0,
                                      &text, &why);
    }
    if (!json) {
        return cli_fail (command, "%s", why.text);
    }
    if (metrics) {
        //  The exposition as it is (escaped like any reply), for a textfile
        //  collector or a scrape wrapper
        cli_print_reply (text, false);
        free (json);
        free (text);
        return CLI_OK;
    }
    cli_print_reply (online.json ? json : text, online.json);
    //  Monitoring's cue: the root in force expires within a week (or has)
    uint64_t expires = 0;
    cli_status_u64 (json, "root_expires", &expires);
    int rc = expires && expires < kc_now () + CLI_ROOT_WARN_DAYS * 86400ULL ? CLI_ROOT_EXPIRING : CLI_OK;
    if (rc == CLI_ROOT_EXPIRING && !online.json) {
        char when [KC_TIME_WHEN_BYTES];
        fprintf (stderr, "keyclone status: the root in force %s %s: renew it ('keyclone root renew')\n",
                 expires <= kc_now () ? "expired at" : "expires at", kc_time_when (expires, kc_now (), when));
    }
    free (json);
    free (text);
    return rc;
}

int
cmd_status (int argc, char *argv [])
{
    return s_status_or_metrics ("status", argc, argv, false);
}

int
cmd_metrics (int argc, char *argv [])
{
    return s_status_or_metrics ("metrics", argc, argv, true);
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

//  A grant (operators' signatures verified against the root in force) or a
//  registration by grant (shown as the log holds it: every agent checks it
//  against its grant in log order).
static void
s_log_grant (s_log_t *log, const kc_entry_t *entry)
{
    kc_why_t why;
    char fp [KC_FINGERPRINT_CHARS + 1], sub [KC_FINGERPRINT_CHARS + 1], when [KC_TIME_WHEN_BYTES], name [KC_RECORD_NAME_MAX + 1];
    const char *submitter = entry->submitter ? kc_fingerprint (entry->submitter, sub) : "unknown";
    if (kc_grant_is_use (entry->data, entry->size)) {
        kc_grant_use_t *use = kc_grant_use_decode (entry->data, entry->size, &why);
        if (!use) {
            fprintf (stderr, "keyclone log: seq %llu: %s\n", (unsigned long long) entry->seq, why.text);
            log->invalid++;
            return;
        }
        if (!log->name || KC_STREQ (kc_record_name (&use->record, name), log->name)) {
            s_log_head (log, entry, use->rotation ? "rotate by grant" : "register by grant");
            kc_fingerprint (use->grant_key, fp);
            if (log->json) {
                printf (", \"grant\": \"%s\", \"records\": [", fp);
            }
            else {
                printf (", signed with the token of grant %s; submitted by %s\n", fp, submitter);
            }
            cli_print_record (stdout, &use->record, log->json);
            if (use->rotation) {
                printf ("%s", log->json ? ", " : "");
                cli_print_record (stdout, &use->replaced, log->json);
            }
            printf ("%s", log->json ? "]}" : "");
            log->shown++;
        }
        kc_grant_use_destroy (&use);
        return;
    }
    kc_grant_t *grant = kc_grant_decode (entry->data, entry->size, &why);
    if (!grant || kc_grant_verify (grant, log->root, &why)) {
        fprintf (stderr, "keyclone log: seq %llu does not verify against root v%llu: %s\n",
                 (unsigned long long) entry->seq, (unsigned long long) kc_root_version (log->root), why.text);
        log->invalid++;
        kc_grant_destroy (&grant);
        return;
    }
    if (!log->name) {
        bool active = grant->status == KC_STATUS_ACTIVE;
        s_log_head (log, entry, active ? "grant" : "grant revoke");
        kc_fingerprint (grant->grant_key, fp);
        if (log->json) {
            printf (", \"grant\": \"%s\", \"signed_by\": [", fp);
            s_log_signers (log->root, grant->signatures, grant->signature_count, true);
            printf ("]}");
        }
        else {
            printf (", signed by ");
            s_log_signers (log->root, grant->signatures, grant->signature_count, false);
            printf ("; submitted by %s\n", submitter);
            if (active) {
                printf ("    grant %s: names '%s', at most %u, until %s, tags", fp, grant->pattern, grant->uses,
                        kc_time_when (grant->not_after, kc_now (), when));
                for (size_t i = 0; i < grant->tag_count; i++) {
                    printf ("%s%s", i ? "," : " ", grant->tags [i]);
                }
                printf ("%s\n", grant->tag_count ? "" : " none");
            }
            else {
                printf ("    grant %s revoked: %s\n", fp, grant->reason);
            }
        }
        log->shown++;
    }
    kc_grant_destroy (&grant);
}

static int
s_log_entry (const kc_entry_t *entry, void *arg)
{
    s_log_t *log = arg;
    if (kc_root_is_root (entry->data, entry->size)) {
        return s_log_root (log, entry) ? -1 : 0;
    }
    if (kc_grant_is_grant (entry->data, entry->size) || kc_grant_is_use (entry->data, entry->size)) {
        s_log_grant (log, entry);
        return 0;
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
        CLI_ONLINE_OPTIONS, { "since", required_argument, NULL, 's' }, { "name", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    s_log_t log = { 0 };
    uint64_t since = 1;
    int c, handled;
    bool from_agent = false;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
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
        if ((handled = cli_online_option ("log", c, &online)) != 1) {
            return CLI_USAGE;
        }
    }
    if (optind != argc) {
        return cli_usage ("log", "unexpected argument '%s'", argv [optind]);
    }
    cli_online_finish (&online);
    log.json = online.json;
    kc_root_t *pinned = cli_load_pinned_root ("log", online.root_path);
    if (!pinned) {
        return CLI_FAIL;
    }
    //  A node's history (--agent) is what its agent verified and kept: it
    //  may start later than the server's log
    kc_client_t *client = from_agent ? kc_client_new_agent (online.agent, online.timeout_ms)
                                     : cli_online_client ("log", &online, pinned);
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
    cli_online_release (&online);
    kc_root_destroy (&pinned);
    return rc;
}

//  --- import and export: czmq and pyzmq certificate directories ------------------

typedef struct {
    const char *file;                       //  the first file a key was read from
} s_seen_t;

//  One file of a certificate directory (zcertstore's layout: every file
//  but the *_secret ones is a public certificate). Returns 0 (imported or
//  skipped, with the reason on stderr), or -1 when the registration failed.
static int
s_import_file (s_register_t *self, const char *dir, const char *file, char *const *tags, int tag_count,
               zhashx_t *seen, size_t *skipped, kc_why_t *why)
{
    char path [CLI_PATH_MAX], escaped [3 * 256 + 1], reason [2 * KC_WHY_BYTES + 1024] = "";
    snprintf (path, sizeof path, "%s/%s", dir, file);
    kc_escape (file, strlen (file), escaped, sizeof escaped, 0);
    size_t length = strlen (file);
    kc_cert_t *cert = NULL;
    kc_why_t problem;
    char name [KC_RECORD_NAME_MAX + 1] = "";
    if (length > 7 && KC_STREQ (file + length - 7, "_secret")) {
        snprintf (reason, sizeof reason, "a secret key file (not read: registering needs only the public key)");
    }
    else
    if (!(cert = kc_cert_load_public (path, &problem))) {
        snprintf (reason, sizeof reason, "not a CURVE public certificate: %s", problem.text);
    }
    else
    if (zhashx_lookup (seen, kc_cert_public_txt (cert))) {
        char first [3 * 256 + 1];
        const char *other = zhashx_lookup (seen, kc_cert_public_txt (cert));
        kc_escape (other, strlen (other), first, sizeof first, 0);
        snprintf (reason, sizeof reason, "the same key as '%s'", first);
    }
    else {
        //  The name: the certificate's metadata, else the file name without
        //  its .key extension
        const char *meta = kc_cert_name (cert);
        if (kc_record_name_valid (meta, strlen (meta))) {
            snprintf (name, sizeof name, "%s", meta);
        }
        else {
            size_t stem = length > 4 && KC_STREQ (file + length - 4, ".key") ? length - 4 : length;
            if (kc_record_name_valid (file, stem)) {
                snprintf (name, sizeof name, "%.*s", (int) stem, file);
            }
            else {
                snprintf (reason, sizeof reason, "no valid name in its metadata or file name (letters, "
                          "digits, '.', '-', '_', at most %d)", KC_RECORD_NAME_MAX);
            }
        }
    }
    if (*reason) {
        fprintf (stderr, "keyclone %s: skipped '%s': %s\n", self->command, escaped, reason);
        (*skipped)++;
        kc_cert_destroy (&cert);
        return 0;
    }
    zhashx_insert (seen, kc_cert_public_txt (cert), (void *) strdup (file));
    char argument [4096];
    int rc = s_register_argument (argument, sizeof argument, name, kc_cert_public_txt (cert), tags,
                                  tag_count, NULL, NULL);
    kc_cert_destroy (&cert);
    if (rc) {
        return kc_why (why, "'%s': arguments too long", escaped);
    }
    return cli_parse_record (argument, false, s_register_record, self, why);
}

static int
s_compare_names (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

//  The regular files of dir, sorted (caller frees with s_free_names).
static char **
s_list_files (const char *dir, size_t *count, kc_why_t *why)
{
    DIR *handle = opendir (dir);
    if (!handle) {
        kc_why (why, "cannot read the directory '%s': %s", dir, strerror (errno));
        return NULL;
    }
    size_t capacity = 64;
    char **names = malloc (capacity * sizeof (char *));
    assert (names);
    *count = 0;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        //  The file type from the directory itself when it says (no stat)
        if (entry->d_type != DT_REG && entry->d_type != DT_UNKNOWN && entry->d_type != DT_LNK) {
            continue;
        }
        char path [CLI_PATH_MAX];
        struct stat info;
        snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
        if (entry->d_type != DT_REG && (stat (path, &info) || !S_ISREG (info.st_mode))) {
            continue;
        }
        if (*count == capacity) {
            capacity *= 2;
            names = realloc (names, capacity * sizeof (char *));
            assert (names);
        }
        names [(*count)++] = strdup (entry->d_name);
    }
    closedir (handle);
    qsort (names, *count, sizeof (char *), s_compare_names);
    return names;
}

static void
s_free_names (char **names, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free (names [i]);
    }
    free (names);
}

static void
s_free_string (void **item)
{
    free (*item);
    *item = NULL;
}

int
cmd_import (int argc, char *argv [])
{
    static const struct option longs [] = {
        CLI_ONLINE_OPTIONS, { "tag", required_argument, NULL, 't' },
        { "batch-size", required_argument, NULL, 'b' }, { "force", no_argument, NULL, 'F' }, { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    char *tags [KC_RECORD_TAGS_MAX + 1];
    int tag_count = 0, chunk = DEFAULT_CHUNK, c, handled;
    bool force = false;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = cli_online_option ("import", c, &online))) {
            if (handled < 0) {
                return CLI_USAGE;
            }
            continue;
        }
        if (c == 'F') {
            force = true;
            continue;
        }
        if ((handled = s_bulk_option ("import", c, &chunk, tags, &tag_count)) != 1) {
            return CLI_USAGE;
        }
    }
    if (optind != argc - 1) {
        return cli_usage ("import", "expected one CERTDIR");
    }
    const char *dir = argv [optind];
    cli_online_finish (&online);
    kc_why_t why;
    size_t count = 0, skipped = 0;
    char **files = s_list_files (dir, &count, &why);
    if (!files) {
        return cli_fail ("import", "%s", why.text);
    }
    s_register_t self = { .command = "import", .online = &online, .chunk = (size_t) chunk,
                          .progress = isatty (STDERR_FILENO) && !online.json, .force = force,
                          .started_us = s_now_us () };
    for (size_t file = 0; self.progress && file < count; file++) {
        size_t length = strlen (files [file]);      //  secret files are never read
        self.total += length < 7 || !KC_STREQ (files [file] + length - 7, "_secret");
    }
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    if (s_register_open (&self, signers)) {
        s_free_names (files, count);
        return CLI_FAIL;
    }
    zhashx_t *seen = zhashx_new ();
    zhashx_set_destructor (seen, s_free_string);
    int rc = CLI_FAIL;
    size_t i;
    for (i = 0; i < count; i++) {
        if (s_import_file (&self, dir, files [i], tags, tag_count, seen, &skipped, &why)) {
            if (!strstr (why.text, "stopped after")) {
                cli_fail ("import", "%s", why.text);
            }
            break;
        }
    }
    size_t imported = zhashx_size (seen);
    if (i == count && imported == 0) {
        cli_fail ("import", "no certificate to import in '%s' (%zu file%s skipped)", dir, skipped,
                  skipped == 1 ? "" : "s");
    }
    else
    if (i == count && s_flush (&self) == 0) {
        rc = CLI_OK;
    }
    if (self.progress) {
        fputc ('\n', stderr);
    }
    if (rc == CLI_OK && online.json) {
        printf ("{\"imported\": %zu, \"skipped\": %zu, \"batches\": %zu, \"first_seq\": %llu, "
                "\"seq\": %llu}\n", imported, skipped, self.batches, (unsigned long long) self.first_seq,
                (unsigned long long) self.last_seq);
    }
    else
    if (rc == CLI_OK) {
        printf ("imported %zu certificate%s in %zu batch%s, seq %llu..%llu; skipped %zu file%s\n",
                imported, imported == 1 ? "" : "s", self.batches, self.batches == 1 ? "" : "es",
                (unsigned long long) self.first_seq, (unsigned long long) self.last_seq, skipped,
                skipped == 1 ? "" : "s");
    }
    zhashx_destroy (&seen);
    s_register_close (&self);
    s_free_names (files, count);
    return rc;
}

typedef struct {
    const char *dir;
    const char *directory_hex;
    bool trusted_only;
    uint64_t now;
    zhashx_t *written;                      //  file name -> "" (this run)
    size_t exported, skipped_revoked, skipped_untrusted;
    kc_why_t why;
    bool failed;
} s_export_t;

//  Writes one record as a czmq public certificate: its name and tags as
//  metadata (a tag "k=v" as k = "v", a plain tag as tag = "..."), and the
//  directory it came from, so a later export can tell its own files.
static int
s_export_one (uint64_t seq, const kc_record_t *record, void *arg)
{
    (void) seq;
    s_export_t *self = arg;
    if (record->status == KC_STATUS_REVOKED) {
        self->skipped_revoked++;
        return 0;
    }
    if (self->trusted_only
    &&  kc_verdict_at (record->status, record->not_before, record->not_after, self->now) != KC_VERDICT_TRUSTED) {
        self->skipped_untrusted++;
        return 0;
    }
    char name [KC_RECORD_NAME_MAX + 1], z85 [KC_Z85_KEY_CHARS + 1], fp [KC_FINGERPRINT_CHARS + 1];
    char file [KC_RECORD_NAME_MAX + KC_FINGERPRINT_CHARS + 8], when [32];
    kc_record_name (record, name);
    kc_z85_encode (record->key, KC_KEY_BYTES, z85);
    kc_fingerprint (record->key, fp);
    //  Several keys under one name: the others get their fingerprint
    snprintf (file, sizeof file, "%s.key", name);
    if (zhashx_lookup (self->written, file)) {
        snprintf (file, sizeof file, "%s-%s.key", name, fp);
    }
    char text [8192];
    int n = snprintf (text, sizeof text,
        "#   ****  Generated on %s by keyclone export  ****\n"
        "#   ZeroMQ CURVE Public Certificate\n"
        "#   Exchange securely, or use a secure mechanism to verify the contents\n"
        "#   of this file after exchange.\n\n"
        "metadata\n    name = \"%s\"\n", kc_time_format (kc_now (), when), name);
    const uint8_t *tag = record->tags;
    for (size_t i = 0; i < record->tag_count; i++) {
        size_t size = *tag++;
        const char *equals = memchr (tag, '=', size);
        if (equals && equals > (const char *) tag) {
            n += snprintf (text + n, sizeof text - (size_t) n, "    %.*s = \"%.*s\"\n",
                           (int) (equals - (const char *) tag), tag,
                           (int) (size - (size_t) (equals - (const char *) tag) - 1), equals + 1);
        }
        else {
            n += snprintf (text + n, sizeof text - (size_t) n, "    tag = \"%.*s\"\n", (int) size, tag);
        }
        tag += size;
    }
    n += snprintf (text + n, sizeof text - (size_t) n,
                   "    keyclone-fingerprint = \"%s\"\n    keyclone-directory = \"%s\"\n"
                   "curve\n    public-key = \"%s\"\n", fp, self->directory_hex, z85);
    char path [CLI_PATH_MAX + 300];
    snprintf (path, sizeof path, "%s/%s", self->dir, file);
    if (kc_file_write_atomic (path, text, (size_t) n, KC_FILE_MODE_PUBLIC, &self->why)) {
        self->failed = true;
        return -1;
    }
    zhashx_insert (self->written, file, (void *) "");
    self->exported++;
    return 0;
}

//  Removes the certificates an earlier export of this directory wrote that
//  this one did not (keys revoked, expired or renamed since): a zcertstore
//  reading the folder must not keep trusting them. Other files stay.
static size_t
s_export_prune (s_export_t *self)
{
    size_t count = 0, removed = 0;
    kc_why_t why;
    char **files = s_list_files (self->dir, &count, &why);
    char marker [128];
    snprintf (marker, sizeof marker, "keyclone-directory = \"%s\"", self->directory_hex);
    for (size_t i = 0; files && i < count; i++) {
        if (zhashx_lookup (self->written, files [i])) {
            continue;
        }
        char path [CLI_PATH_MAX];
        size_t size;
        snprintf (path, sizeof path, "%s/%s", self->dir, files [i]);
        uint8_t *data = kc_file_read (path, 64 * 1024, false, &size, &why);
        if (data && strstr ((char *) data, marker) && unlink (path) == 0) {
            removed++;
        }
        kc_file_free (&data, false);
    }
    if (files) {
        s_free_names (files, count);
    }
    return removed;
}

int
cmd_export (int argc, char *argv [])
{
    static const struct option longs [] = {
        CLI_ONLINE_OPTIONS, { "trusted", no_argument, NULL, 'u' }, { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    s_export_t self = { .now = kc_now () };
    int c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = cli_online_option ("export", c, &online))) {
            if (handled < 0) {
                return CLI_USAGE;
            }
            continue;
        }
        if (c != 'u') {
            return CLI_USAGE;
        }
        self.trusted_only = true;
    }
    if (optind != argc - 1) {
        return cli_usage ("export", "expected one DIR to write the certificates to");
    }
    self.dir = argv [optind];
    cli_online_finish (&online);
    kc_root_t *root = cli_load_pinned_root ("export", online.root_path);
    if (!root) {
        return CLI_FAIL;
    }
    kc_why_t why;
    if (kc_file_mkdirs (self.dir, 0755, &why)) {
        kc_root_destroy (&root);
        return cli_fail ("export", "%s", why.text);
    }
    char hex [2 * KC_HASH_BYTES + 1];
    self.directory_hex = kc_hex (kc_root_directory (root), KC_HASH_BYTES, hex);
    self.written = zhashx_new ();
    kc_client_t *client = cli_online_client ("export", &online, root);
    int rc = CLI_FAIL;
    if (client) {
        int count = kc_client_query (client, "list", NULL, 0, s_export_one, &self, &why);
        if (self.failed) {
            cli_fail ("export", "%s", self.why.text);
        }
        else
        if (count < 0) {
            cli_fail ("export", "%s", why.text);
        }
        else {
            size_t removed = s_export_prune (&self);
            if (online.json) {
                printf ("{\"exported\": %zu, \"revoked\": %zu, \"not_trusted_now\": %zu, \"removed\": %zu}\n",
                        self.exported, self.skipped_revoked, self.skipped_untrusted, removed);
            }
            else {
                printf ("exported %zu certificate%s to %s (left out: %zu revoked, %zu not trusted now); "
                        "removed %zu of an earlier export\n", self.exported, self.exported == 1 ? "" : "s",
                        self.dir, self.skipped_revoked, self.skipped_untrusted, removed);
            }
            rc = CLI_OK;
        }
    }
    zhashx_destroy (&self.written);
    kc_client_destroy (&client);
    cli_online_release (&online);
    kc_root_destroy (&root);
    return rc;
}
