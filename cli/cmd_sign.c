/*  =========================================================================
    cmd_sign - keyclone sign (build and sign a batch offline) and keyclone
    cosign (add signatures to a batch or root file).
    =========================================================================
*/
#include "cli.h"

#include <ctype.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define LINE_MAX_BYTES 2048

//  Microseconds since the epoch: the default record version.
static uint64_t
s_now_us (void)
{
    struct timeval tv;
    gettimeofday (&tv, NULL);
    return (uint64_t) tv.tv_sec * 1000000 + (uint64_t) tv.tv_usec;
}

static int
s_parse_u64 (const char *text, size_t size, uint64_t *value)
{
    char buffer [32];
    if (size == 0 || size >= sizeof buffer) {
        return -1;
    }
    memcpy (buffer, text, size);
    buffer [size] = 0;
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull (buffer, &end, 10);
    if (errno || *end || buffer [0] == '-') {
        return -1;
    }
    *value = parsed;
    return 0;
}

//  One parsed --register or --revoke argument; strings point into text.
//  (cli_record_fn and the public parsers are declared in cli.h.)
typedef struct {
    char text [LINE_MAX_BYTES];
    uint8_t key [KC_KEY_BYTES];
    const char *tags [KC_RECORD_TAGS_MAX + 1];
    kc_record_spec_t spec;
} s_item_t;

//  Parses the options after the key: "opt=value,opt=value". reason= takes
//  the rest of the text.
static int
s_parse_options (s_item_t *item, char *p, bool revoke, uint64_t now, kc_why_t *why)
{
    while (p && *p) {
        char *option = p;
        if (strncmp (option, "reason=", 7) == 0 && revoke) {
            item->spec.reason = option + 7;
            break;
        }
        char *comma = strchr (p, ',');
        if (comma) {
            *comma = 0;
        }
        p = comma ? comma + 1 : NULL;
        char *value = strchr (option, '=');
        if (!value) {
            return kc_why (why, "option '%s' has no value", option);
        }
        *value++ = 0;
        if (KC_STREQ (option, "version")) {
            if (s_parse_u64 (value, strlen (value), &item->spec.version)) {
                return kc_why (why, "invalid version '%s'", value);
            }
        }
        else
        if (KC_STREQ (option, "tag") && !revoke) {
            if (item->spec.tag_count == KC_RECORD_TAGS_MAX) {
                return kc_why (why, "more than %d tags", KC_RECORD_TAGS_MAX);
            }
            item->tags [item->spec.tag_count++] = value;
        }
        else
        if (KC_STREQ (option, "expires") && !revoke) {
            uint64_t seconds;
            if (kc_duration_parse (value, &seconds, why) || seconds == 0) {
                return kc_why (why, "invalid expires '%s'", value);
            }
            item->spec.not_after = now + seconds;
        }
        else
        if (KC_STREQ (option, "name") && revoke) {
            item->spec.name = value;
        }
        else {
            return kc_why (why, "unknown %s option '%s'", revoke ? "revoke" : "register", option);
        }
    }
    return 0;
}

//  Parses "NAME=KEY[,opts]" (register) or "KEY[,opts]" (revoke).
static int
s_parse_item (s_item_t *item, const char *argument, bool revoke, kc_why_t *why)
{
    memset (item, 0, sizeof *item);
    if (strlen (argument) >= sizeof item->text) {
        return kc_why (why, "argument longer than %d bytes", LINE_MAX_BYTES - 1);
    }
    strcpy (item->text, argument);
    uint64_t now = kc_now ();
    char *p = item->text;
    item->spec.version = s_now_us ();
    item->spec.status = revoke ? KC_STATUS_REVOKED : KC_STATUS_ACTIVE;
    item->spec.tags = item->tags;
    if (!revoke) {
        char *equals = strchr (p, '=');
        if (!equals) {
            return kc_why (why, "'%s' is not NAME=KEY", argument);
        }
        *equals = 0;
        item->spec.name = p;
        p = equals + 1;
    }
    char *comma = strchr (p, ',');
    if (comma) {
        *comma = 0;
    }
    //  A Z85 key, or a certificate file; offline, a fingerprint is refused
    //  with the reason (cli_key_input says it)
    size_t length = strlen (p);
    bool hex = length >= 8 && length <= 2 * KC_KEY_BYTES && length != KC_Z85_KEY_CHARS;
    for (size_t i = 0; hex && i < length; i++) {
        hex = isxdigit ((unsigned char) p [i]);
    }
    if (kc_file_exists (p) || hex ? cli_key_input (NULL, p, item->key, why) : kc_z85_key (p, item->key, why)) {
        return -1;
    }
    item->spec.key = item->key;
    return s_parse_options (item, comma ? comma + 1 : NULL, revoke, now, why);
}

int
cli_parse_record (const char *argument, bool revoke, cli_record_fn *fn, void *arg, kc_why_t *why)
{
    static s_item_t item;
    if (s_parse_item (&item, argument, revoke, why) || fn (&item.spec, arg, why)) {
        return kc_why_prefix (why, "'%.60s'", argument);
    }
    return 0;
}

int
cli_read_records (const char *path, cli_record_fn *fn, void *arg, kc_why_t *why)
{
    FILE *file = KC_STREQ (path, "-") ? stdin : fopen (path, "r");
    if (!file) {
        return kc_why (why, "cannot open '%s': %s", path, strerror (errno));
    }
    char line [LINE_MAX_BYTES + 2];
    int rc = 0;
    for (int number = 1; fgets (line, sizeof line, file); number++) {
        size_t length = strlen (line);
        if (length && line [length - 1] != '\n' && !feof (file)) {
            rc = kc_why (why, "%s:%d: line too long", path, number);
            break;
        }
        while (length && (line [length - 1] == '\n' || line [length - 1] == '\r'
                      ||  line [length - 1] == ' ')) {
            line [--length] = 0;
        }
        char *p = line;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == 0 || *p == '#') {
            continue;
        }
        bool revoke = strncmp (p, "revoke ", 7) == 0;
        if (revoke || strncmp (p, "register ", 9) == 0) {
            p += revoke ? 7 : 9;
            while (*p == ' ') {
                p++;
            }
        }
        if (cli_parse_record (p, revoke, fn, arg, why)) {
            rc = kc_why_prefix (why, "%s:%d", path, number);
            break;
        }
    }
    if (file != stdin) {
        fclose (file);
    }
    return rc;
}

typedef struct {
    kc_batch_builder_t *builder;
    int counts [2];                         //  register, revoke
} s_collect_t;

static int
s_collect (const kc_record_spec_t *spec, void *arg, kc_why_t *why)
{
    s_collect_t *collect = arg;
    if (kc_batch_builder_add (collect->builder, spec, why)) {
        return -1;
    }
    collect->counts [spec->status == KC_STATUS_REVOKED]++;
    return 0;
}

//  Checks every signer is an operator of root; prints why not.
int
cli_check_signers (const char *command, const kc_root_t *root, kc_signer_t **signers, int count)
{
    for (int i = 0; i < count; i++) {
        if (kc_root_operator_index (root, kc_signer_public_key (signers [i])) < 0) {
            char fp [KC_FINGERPRINT_CHARS + 1];
            return cli_fail (command, "operator key '%s' (%s) is not an operator in this root",
                             kc_signer_name (signers [i]),
                             kc_fingerprint (kc_signer_public_key (signers [i]), fp));
        }
    }
    return CLI_OK;
}

//  Reports a written batch: records, signers, and whether it meets the
//  thresholds yet.
static void
s_report (const char *path, const kc_batch_t *batch, const kc_root_t *root, bool json)
{
    kc_why_t why;
    bool valid = kc_batch_verify (batch, root, kc_now (), &why) == 0;
    char hex [65], who [80];
    size_t revoked = 0;
    for (size_t i = 0; i < kc_batch_count (batch); i++) {
        revoked += kc_batch_record (batch, i)->status == KC_STATUS_REVOKED;
    }
    kc_hex (kc_batch_digest (batch), KC_HASH_BYTES, hex);
    if (json) {
        printf ("{");
        kc_json_field_str (stdout, true, "file", path);
        kc_json_field_str (stdout, false, "digest", hex);
        kc_json_field_u64 (stdout, false, "records", kc_batch_count (batch));
        kc_json_field_u64 (stdout, false, "register", kc_batch_count (batch) - revoked);
        kc_json_field_u64 (stdout, false, "revoke", revoked);
        printf (", \"signers\": [");
        for (size_t i = 0; i < kc_batch_signature_count (batch); i++) {
            printf ("%s", i ? ", " : "");
            kc_json_cstr (stdout, cli_operator_name (root, kc_batch_signature (batch, i).key, who));
        }
        printf ("], \"complete\": %s", valid ? "true" : "false");
        if (!valid) {
            kc_json_field_str (stdout, false, "needs", why.text);
        }
        printf ("}\n");
        return;
    }
    printf ("wrote %s: %zu records (%zu register, %zu revoke), digest %.16s...\n", path,
            kc_batch_count (batch), kc_batch_count (batch) - revoked, revoked, hex);
    for (size_t i = 0; i < kc_batch_signature_count (batch); i++) {
        printf ("  signed by %s\n", cli_operator_name (root, kc_batch_signature (batch, i).key, who));
    }
    if (valid) {
        printf ("  complete: meets the root's thresholds; submit it with 'keyclone submit %s'\n", path);
    }
    else {
        printf ("  not complete yet: %s; add signatures with 'keyclone cosign %s --operator NAME'\n",
                why.text, path);
    }
}

int
cmd_sign (int argc, char *argv [])
{
    static const struct option longs [] = {
        { "register", required_argument, NULL, 'g' },
        { "revoke", required_argument, NULL, 'v' },
        { "from", required_argument, NULL, 'f' },
        { "out", required_argument, NULL, 'o' },
        { "operator", required_argument, NULL, 'p' },
        { "root", required_argument, NULL, 'r' },
        { "dir", required_argument, NULL, 'd' },
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 }
    };
    const char *out = NULL, *root_path = NULL, *dir = NULL;
    char root_buffer [CLI_PATH_MAX];
    char *operators [CLI_OPERATORS_MAX];
    int operator_count = 0, c;
    bool json = false;
    //  First pass: everything but the records, which need the root
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'g': case 'v': case 'f': break;
            case 'o': out = optarg; break;
            case 'r': root_path = optarg; break;
            case 'd': dir = optarg; break;
            case 'j': json = true; break;
            case 'p':
                if (operator_count == CLI_OPERATORS_MAX) {
                    return cli_usage ("sign", "too many --operator options");
                }
                operators [operator_count++] = optarg;
                break;
            default: return CLI_USAGE;
        }
    }
    if (optind < argc) {
        return cli_usage ("sign", "unexpected argument '%s'", argv [optind]);
    }
    if (!out) {
        return cli_usage ("sign", "--out FILE is required");
    }
    dir = cli_dir (dir);
    kc_root_t *root = cli_load_root ("sign", root_path ? root_path : cli_path (root_buffer, dir, "root"));
    if (!root) {
        return CLI_FAIL;
    }
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    int signer_count = cli_load_operators ("sign", dir, operators, operator_count, signers);
    int rc = CLI_FAIL;
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), kc_now ());
    kc_batch_t *batch = NULL;
    if (signer_count < 0 || cli_check_signers ("sign", root, signers, signer_count)) {
        goto cleanup;
    }
    //  Second pass: the records, in order
    kc_why_t why;
    s_collect_t collect = { builder, { 0, 0 } };
    optind = 0;                         //  0 makes GNU getopt start over
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        int failed = c == 'g' ? cli_parse_record (optarg, false, s_collect, &collect, &why)
                   : c == 'v' ? cli_parse_record (optarg, true, s_collect, &collect, &why)
                   : c == 'f' ? cli_read_records (optarg, s_collect, &collect, &why) : 0;
        if (failed) {
            rc = cli_fail ("sign", "%s", why.text);
            goto cleanup;
        }
    }
    if (collect.counts [0] + collect.counts [1] == 0) {
        rc = cli_usage ("sign", "nothing to sign: give --register, --revoke or --from");
        goto cleanup;
    }
    batch = kc_batch_builder_finish (builder, signers, (size_t) signer_count, &why);
    if (!batch || kc_batch_save (batch, out, &why)) {
        rc = cli_fail ("sign", "%s", why.text);
        goto cleanup;
    }
    s_report (out, batch, root, json);
    rc = CLI_OK;
cleanup:
    for (int i = 0; i < signer_count; i++) {
        kc_signer_destroy (&signers [i]);
    }
    kc_batch_destroy (&batch);
    kc_batch_builder_destroy (&builder);
    kc_root_destroy (&root);
    return rc;
}

//  Cosigns a root file; prints what it changes compared to the root it
//  follows and whether it is complete (or, without that root, its state
//  against itself).
static int
s_cosign_root (const char *dir, const char *root_path, const char *path, const char *out,
               kc_signer_t **signers, int count)
{
    kc_why_t why;
    kc_root_t *root = kc_root_load (path, &why);
    if (!root) {
        return cli_fail ("cosign", "%s", why.text);
    }
    for (int i = 0; i < count; i++) {
        kc_root_sign (root, signers [i]);
    }
    int rc = CLI_OK;
    if (kc_root_save (root, out, &why)) {
        rc = cli_fail ("cosign", "%s", why.text);
    }
    else {
        bool valid = kc_root_verify (root, kc_now (), &why) == 0;
        printf ("wrote %s: root v%llu with %zu signatures; %s\n", out,
                (unsigned long long) kc_root_version (root), kc_root_signature_count (root),
                valid ? "meets its own root threshold" : why.text);
        kc_root_t *before = kc_root_version (root) > 1 ? cli_root_before (dir, root_path, root) : NULL;
        if (before) {
            cli_report_root_change (before, root);
        }
        kc_root_destroy (&before);
    }
    kc_root_destroy (&root);
    return rc;
}

//  A grant file (keyclone grant create --out): each operator's signature
//  added, and how many valid ones it has against the root.
static int
s_cosign_grant (const char *dir, const char *root_path, const uint8_t *data, size_t size, const char *out,
                kc_signer_t **signers, int signer_count)
{
    kc_why_t why;
    char buffer [CLI_PATH_MAX];
    kc_grant_t *grant = kc_grant_decode (data, size, &why);
    kc_root_t *root = grant ? cli_load_root ("cosign", root_path ? root_path : cli_path (buffer, dir, "root")) : NULL;
    int rc = CLI_FAIL;
    if (!grant) {
        cli_fail ("cosign", "%s", why.text);
    }
    for (int i = 0; root && i < signer_count; i++) {
        kc_grant_t *signed_grant = kc_grant_cosign (grant, signers [i]);
        kc_grant_destroy (&grant);
        grant = signed_grant;
        if (!grant) {
            cli_fail ("cosign", "the grant carries %d signatures already", KC_GRANT_SIGNATURES_MAX);
            break;
        }
    }
    if (root && grant && kc_file_write_atomic (out, grant->data, grant->size, 0644, &why)) {
        cli_fail ("cosign", "%s", why.text);
    }
    else
    if (root && grant) {
        bool complete = kc_grant_verify (grant, root, &why) == 0;
        printf ("%s: grant with %zu signature%s: %s\n", out, grant->signature_count,
                grant->signature_count == 1 ? "" : "s", complete ? "complete; submit it with 'keyclone submit'" : why.text);
        rc = CLI_OK;
    }
    kc_grant_destroy (&grant);
    kc_root_destroy (&root);
    return rc;
}

int
cmd_cosign (int argc, char *argv [])
{
    static const struct option longs [] = {
        { "operator", required_argument, NULL, 'p' },
        { "out", required_argument, NULL, 'o' },
        { "root", required_argument, NULL, 'r' },
        { "dir", required_argument, NULL, 'd' },
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 }
    };
    const char *out = NULL, *root_path = NULL, *dir = NULL;
    char root_buffer [CLI_PATH_MAX];
    char *operators [CLI_OPERATORS_MAX];
    int operator_count = 0, c;
    bool json = false;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'o': out = optarg; break;
            case 'r': root_path = optarg; break;
            case 'd': dir = optarg; break;
            case 'j': json = true; break;
            case 'p':
                if (operator_count == CLI_OPERATORS_MAX) {
                    return cli_usage ("cosign", "too many --operator options");
                }
                operators [operator_count++] = optarg;
                break;
            default: return CLI_USAGE;
        }
    }
    if (optind != argc - 1) {
        return cli_usage ("cosign", "expected one FILE");
    }
    const char *path = argv [optind];
    out = out ? out : path;
    dir = cli_dir (dir);
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    int signer_count = cli_load_operators ("cosign", dir, operators, operator_count, signers);
    if (signer_count < 0) {
        return CLI_FAIL;
    }
    int rc = CLI_FAIL;
    kc_why_t why;
    kc_root_t *root = NULL;
    kc_batch_t *batch = kc_batch_load (path, &why);
    if (!batch) {
        size_t size = 0;
        uint8_t *data = strstr (why.text, "bad magic") ? kc_file_read (path, KC_GRANT_BYTES_MAX, false, &size, NULL)
                                                       : NULL;
        if (data && kc_grant_is_grant (data, size)) {
            rc = s_cosign_grant (dir, root_path, data, size, out ? out : path, signers, signer_count);
        }
        else
        if (strstr (why.text, "bad magic")) {
            rc = s_cosign_root (dir, root_path, path, out, signers, signer_count);
        }
        else {
            cli_fail ("cosign", "%s", why.text);
        }
        kc_file_free (&data, false);
        goto cleanup;
    }
    root = cli_load_root ("cosign", root_path ? root_path : cli_path (root_buffer, dir, "root"));
    if (!root || cli_check_signers ("cosign", root, signers, signer_count)) {
        goto cleanup;
    }
    for (int i = 0; i < signer_count; i++) {
        kc_batch_t *signed_batch = kc_batch_cosign (batch, signers [i]);
        if (!signed_batch) {
            cli_fail ("cosign", "batch already carries %d signatures", KC_BATCH_SIGNATURES_MAX);
            goto cleanup;
        }
        kc_batch_destroy (&batch);
        batch = signed_batch;
    }
    if (kc_batch_save (batch, out, &why)) {
        cli_fail ("cosign", "%s", why.text);
        goto cleanup;
    }
    s_report (out, batch, root, json);
    rc = CLI_OK;
cleanup:
    for (int i = 0; i < signer_count; i++) {
        kc_signer_destroy (&signers [i]);
    }
    kc_batch_destroy (&batch);
    kc_root_destroy (&root);
    return rc;
}
