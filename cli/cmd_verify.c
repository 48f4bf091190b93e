/*  =========================================================================
    cmd_verify - keyclone verify: check a batch or a root and print what it
    contains, or the one-line reason it is rejected.
    =========================================================================
*/
#include "cli.h"

#include <string.h>

typedef struct {
    bool json;
    bool quiet;
} s_verify_t;

static void
s_print_batch (const kc_batch_t *batch, const kc_root_t *root, const s_verify_t *options)
{
    char hex [65], dir [65], when [KC_TIME_WHEN_BYTES], who [80];
    kc_hex (kc_batch_digest (batch), KC_HASH_BYTES, hex);
    kc_hex (kc_batch_directory (batch), KC_HASH_BYTES, dir);
    if (options->json) {
        printf ("{\"type\": \"batch\", \"valid\": true");
        kc_json_field_str (stdout, false, "directory", dir);
        kc_json_field_str (stdout, false, "digest", hex);
        kc_json_field_u64 (stdout, false, "created", kc_batch_created (batch));
        printf (", \"signers\": [");
        for (size_t i = 0; i < kc_batch_signature_count (batch); i++) {
            printf ("%s", i ? ", " : "");
            kc_json_cstr (stdout, cli_operator_name (root, kc_batch_signature (batch, i).key, who));
        }
        printf ("], \"records\": [");
        for (size_t i = 0; i < kc_batch_count (batch); i++) {
            printf ("%s", i ? ", " : "");
            cli_print_record (stdout, kc_batch_record (batch, i), true);
        }
        printf ("]}\n");
        return;
    }
    printf ("batch: valid\n");
    if (options->quiet) {
        return;
    }
    printf ("  directory  %s\n  digest     %s\n  created    %s\n", dir, hex,
            kc_time_when (kc_batch_created (batch), kc_now (), when));
    for (size_t i = 0; i < kc_batch_signature_count (batch); i++) {
        printf ("  signed by  %s\n", cli_operator_name (root, kc_batch_signature (batch, i).key, who));
    }
    printf ("  records    %zu\n", kc_batch_count (batch));
    for (size_t i = 0; i < kc_batch_count (batch); i++) {
        cli_print_record (stdout, kc_batch_record (batch, i), false);
    }
}

static void
s_print_root (const kc_root_t *root, const s_verify_t *options)
{
    cli_print_root (root, options->json, options->quiet, "valid");
}

static int
s_reject (const char *path, const char *reason, const s_verify_t *options)
{
    if (options->json) {
        printf ("{\"valid\": false");
        kc_json_field_str (stdout, false, "file", path);
        kc_json_field_str (stdout, false, "reason", reason);
        printf ("}\n");
    }
    fprintf (stderr, "keyclone verify: '%s' rejected: %s\n", path, reason);
    return CLI_FAIL;
}

//  Verifies a root file: on its own, and as a successor when the pinned
//  root is older.
static int
s_verify_root (const char *dir, const char *path, const char *pinned_path, const s_verify_t *options)
{
    kc_why_t why;
    kc_root_t *root = kc_root_load (path, &why);
    if (!root) {
        return s_reject (path, why.text, options);
    }
    int rc = CLI_OK;
    kc_root_t *pinned = kc_file_exists (pinned_path) ? kc_root_load (pinned_path, &why) : NULL;
    //  A root change is checked against the root it follows: the pinned
    //  one, or the root in force at the server
    kc_root_t *before = pinned && kc_root_version (root) > kc_root_version (pinned) + 1
                      ? cli_root_before (dir, pinned_path, root) : NULL;
    if (before) {
        kc_root_destroy (&pinned);
        pinned = before;
    }
    if (kc_root_verify (root, kc_now (), &why)) {
        rc = s_reject (path, why.text, options);
    }
    else
    if (pinned && kc_root_version (root) > kc_root_version (pinned)
    &&  kc_root_verify_successor (pinned, root, kc_now (), &why)) {
        if (!options->json && !options->quiet && kc_root_version (root) == kc_root_version (pinned) + 1) {
            cli_report_root_change (pinned, root);
        }
        rc = s_reject (path, why.text, options);
    }
    else
    if (pinned && memcmp (kc_root_directory (root), kc_root_directory (pinned), KC_HASH_BYTES)) {
        rc = s_reject (path, "root is for another directory than the pinned root", options);
    }
    else {
        s_print_root (root, options);
        if (pinned && kc_root_version (root) == kc_root_version (pinned) + 1 && !options->json
        &&  !options->quiet) {
            char diff [4096];
            kc_root_diff (pinned, root, diff, sizeof diff);
            printf ("changes from v%llu:\n%s", (unsigned long long) kc_root_version (pinned), diff);
        }
    }
    kc_root_destroy (&pinned);
    kc_root_destroy (&root);
    return rc;
}

int
cmd_verify (int argc, char *argv [])
{
    static const struct option longs [] = {
        { "root", required_argument, NULL, 'r' },
        { "dir", required_argument, NULL, 'd' },
        { "json", no_argument, NULL, 'j' },
        { "quiet", no_argument, NULL, 'q' },
        { NULL, 0, NULL, 0 }
    };
    const char *root_path = NULL, *dir = NULL;
    char root_buffer [CLI_PATH_MAX];
    s_verify_t options = { false, false };
    int c;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'r': root_path = optarg; break;
            case 'd': dir = optarg; break;
            case 'j': options.json = true; break;
            case 'q': options.quiet = true; break;
            default: return CLI_USAGE;
        }
    }
    if (optind != argc - 1) {
        return cli_usage ("verify", "expected one FILE");
    }
    const char *path = argv [optind];
    root_path = root_path ? root_path : cli_path (root_buffer, cli_dir (dir), "root");
    kc_why_t why;
    kc_batch_t *batch = kc_batch_load (path, &why);
    if (!batch) {
        if (strstr (why.text, "bad magic")) {
            return s_verify_root (cli_dir (dir), path, root_path, &options);
        }
        return s_reject (path, why.text, &options);
    }
    int rc = CLI_OK;
    kc_root_t *root = kc_root_load (root_path, &why);
    if (!root) {
        rc = cli_fail ("verify", "%s", why.text);
    }
    else
    if (kc_root_verify (root, kc_now (), &why)) {
        rc = cli_fail ("verify", "root '%s' rejected: %s", root_path, why.text);
    }
    else
    if (kc_batch_verify (batch, root, kc_now (), &why)) {
        rc = s_reject (path, why.text, &options);
    }
    else {
        s_print_batch (batch, root, &options);
    }
    kc_root_destroy (&root);
    kc_batch_destroy (&batch);
    return rc;
}
