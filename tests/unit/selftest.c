/*  =========================================================================
    kc_selftest - runs every module's selftest, table-driven.

    Usage: kc_selftest [-q] [module...]   (no module: all of them)
    Run from the project root: the golden vectors are read from tests/vectors.
    =========================================================================
*/
#include "kc_all.h"
#include "selftest.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    void (*test) (bool verbose);
} s_tests [] = {
    { "kc_util", kc_util_test },
    { "kc_wire", kc_wire_test },
    { "kc_z85", kc_z85_test },
    { "kc_file", kc_file_test },
    { "kc_zpl", kc_zpl_test },
    { "kc_keys", kc_keys_test },
    { "kc_nodekey", kc_nodekey_test },
    { "kc_record", kc_record_test },
    { "kc_enrol", kc_enrol_test },
    { "kc_grant", kc_grant_test },
    { "kc_metrics", kc_metrics_test },
    { "kc_root", kc_root_test },
    { "kc_batch", kc_batch_test },
    { "kc_keyindex", kc_keyindex_test },
    { "kc_db", kc_db_test },
    { "kc_json", kc_json_test },
    { "kc_ratelog", kc_ratelog_test },
    { "kc_head", kc_head_test },
    { "kc_proto", kc_proto_test },
    { "kc_access", kc_access_test },
    { "kc_store", kc_store_test },
    { "kc_bucket", kc_bucket_test },
    { "kc_cache", kc_cache_test },
    { "kc_lookup", kc_lookup_test },
    { "kc_sock", kc_sock_test },
    { "kc_sockopt", kc_sockopt_test },
    { "kc_track", kc_track_test },
    { "kc_zap", kc_zap_test },
    { "kc_auth", kc_auth_test },
    { "kc_meta", kc_meta_test },
    { "kc_curve", kc_curve_test },
    { "kc_zmtp", kc_zmtp_test },
    { "kc_group", kc_group_test },
    { "kc_cosig", kc_cosig_test },
    { "kc_publish", kc_publish_test },
    { "kc_follow", kc_follow_test },
    { "kc_cosigner", kc_cosigner_test },
    { "vectors", kc_vectors_test },
    { "limits", kc_limits_test },
    { "properties", kc_properties_test },
    { NULL, NULL }
};

int
main (int argc, char *argv [])
{
    bool verbose = true;
    int first = 1;
    if (argc > 1 && KC_STREQ (argv [1], "-q")) {
        verbose = false;
        first = 2;
    }
    if (sodium_init () < 0) {
        fprintf (stderr, "kc_selftest: libsodium failed to initialise\n");
        return 1;
    }
    if (verbose) {
        printf ("Running keyclone selftests...\n");
    }
    int ran = 0;
    for (int i = 0; s_tests [i].name; i++) {
        bool wanted = argc <= first;
        for (int arg = first; arg < argc; arg++) {
            wanted |= KC_STREQ (argv [arg], s_tests [i].name);
        }
        if (wanted) {
            s_tests [i].test (verbose);
            ran++;
        }
    }
    if (ran == 0) {
        fprintf (stderr, "kc_selftest: no such test\n");
        return 2;
    }
    if (verbose) {
        printf ("Tests passed OK (%d)\n", ran);
    }
    return 0;
}
