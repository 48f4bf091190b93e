/*  =========================================================================
    kc_forge - signs a batch that `keyclone sign` would refuse to make, for
    tests of the server's and the agents' checks: one active record for the
    directory of ROOT, signed with the given operator key files whether or
    not they are operators of ROOT.

    Usage: kc_forge ROOT OUT NAME Z85KEY OPERATOR_KEY_FILE...
    With KC_FORGE_CHAIN=SEQ:PREVIOUS-CHAIN-HEX in the environment it also
    prints the batch's chain hash at SEQ after that chain (hex), as a
    leader would put it in a cluster's entry (test_cluster's rogue leader).

    Usage: kc_forge cosig KEY_FILE DIRECTORY-HEX SEQ CHAIN-HEX TIME-MS OUT
    writes a witness cosignature (docs/protocol.md 9) signed with KEY_FILE,
    whether or not that key is a witness, for whatever it is told.
    =========================================================================
*/
#include "kc_all.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
s_cosig (char *argv [])
{
    kc_why_t why;
    kc_signer_t *signer = kc_signer_load (argv [2], &why);
    kc_cosig_t cosig = { .seq = strtoull (argv [4], NULL, 10), .time = strtoull (argv [6], NULL, 10) };
    if (!signer || kc_unhex (argv [3], cosig.directory, KC_HASH_BYTES)
    ||  kc_unhex (argv [5], cosig.chain, KC_HASH_BYTES)) {
        fprintf (stderr, "kc_forge: %s\n", signer ? "bad hex" : why.text);
        return 1;
    }
    kc_cosig_sign (&cosig, signer);
    uint8_t bytes [KC_COSIG_BYTES];
    kc_cosig_encode (&cosig, bytes);
    kc_signer_destroy (&signer);
    if (kc_file_write_atomic (argv [7], bytes, sizeof bytes, KC_FILE_MODE_PUBLIC, &why)) {
        fprintf (stderr, "kc_forge: %s\n", why.text);
        return 1;
    }
    return 0;
}

int
main (int argc, char *argv [])
{
    if (argc == 8 && KC_STREQ (argv [1], "cosig")) {
        return s_cosig (argv);
    }
    if (argc < 6) {
        fprintf (stderr, "usage: kc_forge ROOT OUT NAME Z85KEY OPERATOR_KEY_FILE...\n");
        return 2;
    }
    kc_why_t why;
    kc_root_t *root = kc_root_load (argv [1], &why);
    uint8_t key [KC_KEY_BYTES];
    if (!root || kc_z85_key (argv [4], key, &why)) {
        fprintf (stderr, "kc_forge: %s\n", why.text);
        return 1;
    }
    kc_signer_t *signers [16];
    size_t count = 0;
    for (int i = 5; i < argc && count < 16; i++) {
        if (!(signers [count++] = kc_signer_load (argv [i], &why))) {
            fprintf (stderr, "kc_forge: %s\n", why.text);
            return 1;
        }
    }
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), kc_now ());
    kc_record_spec_t spec = { .key = key, .version = kc_now_ms () * 1000, .status = KC_STATUS_ACTIVE,
                              .name = argv [3] };
    kc_batch_t *batch = NULL;
    if (kc_batch_builder_add (builder, &spec, &why) == 0) {
        batch = kc_batch_builder_finish (builder, signers, count, &why);
    }
    size_t size = 0;
    const uint8_t *data = batch ? kc_batch_data (batch, &size) : NULL;
    int rc = data && kc_file_write_atomic (argv [2], data, size, 0644, &why) == 0 ? 0 : 1;
    const char *chain_at = getenv ("KC_FORGE_CHAIN");
    if (rc == 0 && chain_at) {
        char *colon = strchr (chain_at, ':');
        uint8_t previous [KC_HASH_BYTES], chain [KC_HASH_BYTES];
        char hex [2 * KC_HASH_BYTES + 1];
        if (!colon || kc_unhex (colon + 1, previous, KC_HASH_BYTES)) {
            fprintf (stderr, "kc_forge: KC_FORGE_CHAIN is not SEQ:HEX\n");
            rc = 1;
        }
        else {
            kc_chain_next (previous, strtoull (chain_at, NULL, 10), batch, chain);
            printf ("%s\n", kc_hex (chain, KC_HASH_BYTES, hex));
        }
    }
    if (rc) {
        fprintf (stderr, "kc_forge: %s\n", why.text);
    }
    kc_batch_destroy (&batch);
    kc_batch_builder_destroy (&builder);
    for (size_t i = 0; i < count; i++) {
        kc_signer_destroy (&signers [i]);
    }
    kc_root_destroy (&root);
    return rc;
}
