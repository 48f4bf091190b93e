/*  =========================================================================
    vectors - frozen golden encodings (the .hex files in tests/vectors).

    Every encoding is rebuilt here from fixed inputs (fixed seeds: Ed25519 is
    deterministic) and compared byte for byte with the committed file, then
    the file is decoded and verified. A vector is never edited once
    committed: a change to an encoding is a new format version with new files.

    With KC_VECTORS_WRITE=1 in the environment, a vector file that does not
    exist yet is written (an existing one is never overwritten).
    =========================================================================
*/
#include "kc_all.h"
#include "selftest.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VECTOR_DIR "tests/vectors/"

//  The fixed world every vector lives in.
typedef struct {
    kc_signer_t *operators [3];
    kc_signer_t *head;
    uint8_t server_key [32];
    uint8_t node_key [32];          //  libzmq's documented client test key
    uint8_t other_key [32];         //  libzmq's documented server test key
} s_world_t;

static void
s_world_new (s_world_t *world)
{
    static const char *names [3] = { "alice", "bob", "carol" };
    uint8_t seed [32];
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 32; j++) {
            seed [j] = (uint8_t) (0x10 * (i + 1) + j);
        }
        world->operators [i] = kc_signer_new_from_seed (seed, names [i], "keyclone-operator");
    }
    memset (seed, 0x77, 32);
    world->head = kc_signer_new_from_seed (seed, "head", "keyclone-head");
    kc_why_t why;
    assert (kc_z85_key ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", world->server_key, &why) == 0);
    assert (kc_z85_key ("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", world->node_key, &why) == 0);
    memcpy (world->other_key, world->server_key, 32);
    world->other_key [31] ^= 0x5a;
}

static void
s_world_destroy (s_world_t *world)
{
    for (int i = 0; i < 3; i++) {
        kc_signer_destroy (&world->operators [i]);
    }
    kc_signer_destroy (&world->head);
}

//  Reads a hex vector file into bytes; NULL if it does not exist.
static uint8_t *
s_read_vector (const char *name, size_t *size)
{
    char path [256];
    snprintf (path, sizeof path, VECTOR_DIR "%s", name);
    FILE *file = fopen (path, "r");
    if (!file) {
        return NULL;
    }
    uint8_t *data = malloc (1 << 20);
    assert (data);
    *size = 0;
    int high = -1, c;
    while ((c = fgetc (file)) != EOF) {
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (c == '#') {                 //  comment to end of line
            while ((c = fgetc (file)) != EOF && c != '\n') {
            }
            continue;
        }
        if (digit < 0) {
            assert (c == ' ' || c == '\n');
            continue;
        }
        if (high < 0) {
            high = digit;
        }
        else {
            data [(*size)++] = (uint8_t) (high << 4 | digit);
            high = -1;
        }
    }
    fclose (file);
    assert (high < 0);
    return data;
}

static void
s_write_vector (const char *name, const char *comment, const uint8_t *data, size_t size)
{
    char path [256];
    snprintf (path, sizeof path, VECTOR_DIR "%s", name);
    FILE *file = fopen (path, "w");
    assert (file);
    fprintf (file, "# %s\n# %zu bytes, frozen: never edit this file.\n", comment, size);
    for (size_t i = 0; i < size; i++) {
        fprintf (file, "%02x%s", data [i], (i % 32 == 31 || i == size - 1) ? "\n" : "");
    }
    fclose (file);
}

//  Compares fresh bytes with the frozen file (writing it first if allowed).
static void
s_check (const char *name, const char *comment, const uint8_t *data, size_t size)
{
    size_t frozen_size = 0;
    uint8_t *frozen = s_read_vector (name, &frozen_size);
    if (!frozen && getenv ("KC_VECTORS_WRITE")) {
        s_write_vector (name, comment, data, size);
        frozen = s_read_vector (name, &frozen_size);
    }
    if (!frozen) {
        fprintf (stderr, "vectors: missing " VECTOR_DIR "%s\n", name);
        abort ();
    }
    if (frozen_size != size || memcmp (frozen, data, size)) {
        fprintf (stderr, "vectors: %s differs from the encoder's output (%zu vs %zu bytes)\n",
                 name, frozen_size, size);
        abort ();
    }
    free (frozen);
}

static kc_root_t *
s_root (s_world_t *world, int operators, int t_register, int t_revoke, int t_root)
{
    kc_operator_t list [3];
    for (int i = 0; i < operators; i++) {
        memcpy (list [i].key, kc_signer_public_key (world->operators [i]), 32);
        snprintf (list [i].name, sizeof list [i].name, "%s", kc_signer_name (world->operators [i]));
    }
    kc_root_spec_t spec = {
        .version = 1, .created = 1700000000, .expires = 4000000000ULL,
        .operators = list, .operator_count = (size_t) operators,
        .threshold_register = (uint8_t) t_register, .threshold_revoke = (uint8_t) t_revoke,
        .threshold_root = (uint8_t) t_root,
        .head_key = kc_signer_public_key (world->head), .server_key = world->server_key,
        .endpoints = { "tcp://127.0.0.1:5550", "tcp://127.0.0.1:5551", "tcp://127.0.0.1:5552" },
        .format = 1
    };
    kc_why_t why;
    kc_root_t *root = kc_root_new (&spec, &why);
    assert (root);
    for (int i = 0; i < operators; i++) {
        kc_root_sign (root, world->operators [i]);
    }
    return root;
}

static void
s_check_root (const char *name, const char *comment, const kc_root_t *root)
{
    size_t size;
    const uint8_t *data = kc_root_data (root, &size);
    s_check (name, comment, data, size);
    kc_why_t why;
    kc_root_t *decoded = kc_root_decode (data, size, &why);
    assert (decoded);
    assert (kc_root_verify (decoded, 1800000000, &why) == 0);
    kc_root_destroy (&decoded);
}

static void
s_check_batch (const char *name, const char *comment, const kc_batch_t *batch,
               const kc_root_t *root)
{
    size_t size;
    const uint8_t *data = kc_batch_data (batch, &size);
    s_check (name, comment, data, size);
    kc_why_t why;
    kc_batch_t *decoded = kc_batch_decode (data, size, &why);
    assert (decoded);
    assert (kc_batch_verify (decoded, root, 1800000000, &why) == 0);
    kc_batch_destroy (&decoded);
}

static void
s_records (s_world_t *world, const kc_root_t *root)
{
    const char *tags [] = { "role=db", "dc=eu-1" };
    kc_record_spec_t active = {
        .directory = kc_root_directory (root), .key = world->node_key, .version = 42,
        .status = KC_STATUS_ACTIVE, .not_before = 1700000000, .not_after = 1900000000,
        .name = "db-1.example", .tags = tags, .tag_count = 2
    };
    kc_record_spec_t revoked = {
        .directory = kc_root_directory (root), .key = world->other_key, .version = 43,
        .status = KC_STATUS_REVOKED, .reason = "key left on a laptop"
    };
    kc_writer_t w;
    kc_writer_init (&w);
    kc_why_t why;
    assert (kc_record_encode (&active, &w, &why) == 0);
    s_check ("record-active.hex", "record v1: active, 2 tags, validity window", w.data, w.size);
    kc_writer_free (&w);
    assert (kc_record_encode (&revoked, &w, &why) == 0);
    s_check ("record-revoked.hex", "record v1: revoked with a reason", w.data, w.size);
    kc_writer_free (&w);
}

void
kc_vectors_test (bool verbose)
{
    if (verbose) {
        printf (" * vectors: ");
    }
    s_world_t world;
    s_world_new (&world);
    kc_why_t why;

    kc_root_t *single = s_root (&world, 1, 1, 1, 1);
    s_check_root ("root-1of1.hex", "genesis root v1: one operator, thresholds 1/1/1", single);
    kc_root_t *triple = s_root (&world, 3, 2, 1, 2);
    s_check_root ("root-2of3.hex", "genesis root v1: three operators, register 2, revoke 1, root 2",
                  triple);
    s_records (&world, single);

    //  One registration signed by its one operator
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (single), 1700000001);
    kc_record_spec_t spec = {
        .key = world.node_key, .version = 1, .status = KC_STATUS_ACTIVE, .name = "node-1"
    };
    assert (kc_batch_builder_add (builder, &spec, &why) == 0);
    kc_batch_t *batch = kc_batch_builder_finish (builder, world.operators, 1, &why);
    s_check_batch ("batch-1of1.hex", "batch v1: one registration, signed by alice", batch, single);
    kc_batch_destroy (&batch);
    kc_batch_builder_destroy (&builder);

    //  Two registrations and a revocation, signed by alice and carol (2 of 3)
    builder = kc_batch_builder_new (kc_root_directory (triple), 1700000002);
    const char *tags [] = { "role=web" };
    kc_record_spec_t specs [3] = {
        { .key = world.node_key, .version = 5, .status = KC_STATUS_ACTIVE, .name = "web-1",
          .tags = tags, .tag_count = 1, .not_after = 1900000000 },
        { .key = world.server_key, .version = 6, .status = KC_STATUS_ACTIVE, .name = "web-2" },
        { .key = world.other_key, .version = 7, .status = KC_STATUS_REVOKED, .name = "web-0",
          .reason = "decommissioned" }
    };
    for (int i = 0; i < 3; i++) {
        assert (kc_batch_builder_add (builder, &specs [i], &why) == 0);
    }
    kc_signer_t *two [2] = { world.operators [0], world.operators [2] };
    batch = kc_batch_builder_finish (builder, two, 2, &why);
    s_check_batch ("batch-2of3.hex", "batch v1: 2 registrations + 1 revocation, alice and carol",
                   batch, triple);
    kc_batch_destroy (&batch);
    kc_batch_builder_destroy (&builder);

    //  A successor root: bob and carol only, signed by 2 old and 2 new
    kc_operator_t next_ops [2];
    for (int i = 0; i < 2; i++) {
        memcpy (next_ops [i].key, kc_signer_public_key (world.operators [i + 1]), 32);
        snprintf (next_ops [i].name, sizeof next_ops [i].name, "%s",
                  kc_signer_name (world.operators [i + 1]));
    }
    kc_root_spec_t next_spec = {
        .version = 2, .directory = kc_root_directory (triple), .previous = kc_root_digest (triple),
        .created = 1700000100, .expires = 4000000000ULL, .operators = next_ops,
        .operator_count = 2, .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 2,
        .head_key = kc_signer_public_key (world.head), .server_key = world.server_key,
        .endpoints = { "tcp://10.0.0.1:5550", "tcp://10.0.0.1:5551", "tcp://10.0.0.1:5552" },
        .format = 1
    };
    kc_root_t *next = kc_root_new (&next_spec, &why);
    assert (next);
    for (int i = 0; i < 3; i++) {
        kc_root_sign (next, world.operators [i]);
    }
    size_t size;
    const uint8_t *data = kc_root_data (next, &size);
    s_check ("root-2of3-v2.hex", "root v2 succeeding root-2of3: bob and carol, signed by all three",
             data, size);
    assert (kc_root_verify_successor (triple, next, 1800000000, &why) == 0);

    //  Format 2: a three-server cluster with two witnesses (threshold 1),
    //  succeeding the format 1 root v2 (an upgrade), signed by bob and carol
    kc_root_server_t servers [3];
    static const char *server_names [3] = { "kc-a", "kc-b", "kc-c" };
    for (int i = 0; i < 3; i++) {
        kc_root_server_t *server = &servers [i];
        memset (server, 0, sizeof *server);
        snprintf (server->name, sizeof server->name, "%s", server_names [i]);
        memcpy (server->server_key, world.server_key, 32);
        server->server_key [0] ^= (uint8_t) (i + 1);
        memcpy (server->head_key, kc_signer_public_key (world.head), 32);
        server->head_key [31] ^= (uint8_t) (i + 1);
        for (int e = 0; e < KC_ENDPOINTS; e++) {
            snprintf (server->endpoints [e], sizeof server->endpoints [e], "tcp://10.0.0.%d:%d",
                      i + 1, 5550 + e);
        }
    }
    kc_witness_t witnesses [2];
    for (int i = 0; i < 2; i++) {
        memset (&witnesses [i], 0, sizeof witnesses [i]);
        memcpy (witnesses [i].key, kc_signer_public_key (world.operators [i]), 32);
        witnesses [i].key [0] ^= 0xff;
        snprintf (witnesses [i].name, sizeof witnesses [i].name, "witness-%d", i + 1);
    }
    kc_root_storage_t storage;
    kc_root_spec_t cluster_spec;
    kc_root_successor_spec (next, &cluster_spec, &storage);
    cluster_spec.created = 1700000200;
    cluster_spec.servers = servers;
    cluster_spec.server_count = 3;
    cluster_spec.witnesses = witnesses;
    cluster_spec.witness_count = 2;
    cluster_spec.witness_threshold = 1;
    kc_root_t *cluster = kc_root_new (&cluster_spec, &why);
    assert (cluster && kc_root_format (cluster) == 2);
    kc_root_sign (cluster, world.operators [1]);
    kc_root_sign (cluster, world.operators [2]);
    data = kc_root_data (cluster, &size);
    s_check ("root2-cluster-v3.hex", "root format 2, v3 succeeding root-2of3-v2: servers kc-a, "
             "kc-b, kc-c; witnesses 1 of 2; signed by bob and carol", data, size);
    assert (kc_root_verify_successor (next, cluster, 1800000000, &why) == 0);
    kc_root_t *decoded = kc_root_decode (data, size, &why);
    assert (decoded && kc_root_server_count (decoded) == 3 && kc_root_witness_count (decoded) == 2);
    assert (kc_root_witness_threshold (decoded) == 1);
    assert (KC_STREQ (kc_root_server (decoded, 1)->name, "kc-b"));
    assert (KC_STREQ (kc_root_endpoint (decoded, KC_ENDPOINT_SUBMIT), "tcp://10.0.0.1:5552"));
    kc_root_destroy (&decoded);

    //  Format 2 genesis: one server, no witnesses (what `keyclone init` writes)
    kc_operator_t alice;
    memcpy (alice.key, kc_signer_public_key (world.operators [0]), 32);
    snprintf (alice.name, sizeof alice.name, "alice");
    kc_root_spec_t genesis_spec = {
        .version = 1, .created = 1700000000, .expires = 4000000000ULL,
        .operators = &alice, .operator_count = 1,
        .threshold_register = 1, .threshold_revoke = 1, .threshold_root = 1,
        .head_key = kc_signer_public_key (world.head), .server_key = world.server_key,
        .endpoints = { "tcp://127.0.0.1:5550", "tcp://127.0.0.1:5551", "tcp://127.0.0.1:5552" }
    };
    kc_root_t *genesis = kc_root_new (&genesis_spec, &why);
    assert (genesis && kc_root_format (genesis) == 2);
    kc_root_sign (genesis, world.operators [0]);
    s_check_root ("root2-1of1.hex", "root format 2, genesis: alice, thresholds 1/1/1, one server "
                  "named server, no witnesses", genesis);

    //  Enrolment grants (records.md section 8) under the genesis: a grant
    //  signed by alice, a registration signed with its token, a revocation
    uint8_t token_seed [32];
    for (int j = 0; j < 32; j++) {
        token_seed [j] = (uint8_t) (0x70 + j);
    }
    kc_signer_t *token = kc_signer_new_from_seed (token_seed, "grant", "keyclone-grant");
    kc_grant_t fields = { .status = KC_STATUS_ACTIVE, .created = 1700000300, .not_after = 1700604800,
                          .uses = 10, .tag_count = 2 };
    memcpy (fields.directory, kc_root_directory (genesis), 32);
    memcpy (fields.grant_key, kc_signer_public_key (token), 32);
    snprintf (fields.pattern, sizeof fields.pattern, "web-*");
    snprintf (fields.tags [0], sizeof fields.tags [0], "dc=eu");
    snprintf (fields.tags [1], sizeof fields.tags [1], "role=web");
    kc_grant_t *grant = kc_grant_new (&fields, &world.operators [0], 1, &why);
    assert (grant && kc_grant_verify (grant, genesis, &why) == 0);
    s_check ("grant-1of1.hex", "grant: names web-*, 10 uses, until 1700604800, tags dc=eu role=web, grant key "
             "from seed 0x70.., signed by alice under root2-1of1", grant->data, grant->size);
    const char *web_tags [] = { "dc=eu", "role=web" };
    kc_record_spec_t node_spec = { .key = world.node_key, .name = "web-1", .tags = web_tags, .tag_count = 2 };
    kc_grant_use_t *use = kc_grant_use_new (kc_root_directory (genesis), token, 1700000400, &node_spec, &why);
    assert (use && kc_grant_use_check (use, grant, 0, &why) == 0);
    s_check ("grant-use.hex", "grant use: web-1 (libzmq's client test key), tags dc=eu role=web, created "
             "1700000400, signed with the token of grant-1of1", use->data, use->size);
    //  A rotation by grant (records.md 8.5): web-1 moves to a new key
    //  (libzmq's server test key, as a key like any other), its old one
    //  ending an hour after
    kc_record_spec_t rotated_spec = { .key = world.server_key, .name = "web-1", .tags = web_tags, .tag_count = 2 };
    kc_record_spec_t ending_spec = { .key = world.node_key, .version = 2, .not_after = 1700000500 + 3600,
                                     .name = "web-1", .tags = web_tags, .tag_count = 2 };
    kc_grant_use_t *rotation = kc_grant_use_new_rotation (kc_root_directory (genesis), token, 1700000500,
                                                          &rotated_spec, &ending_spec, &why);
    assert (rotation && rotation->rotation && kc_grant_use_check (rotation, grant, 1, &why) == 0);
    s_check ("grant-rotation.hex", "grant rotation: web-1 to libzmq's server test key, its old key (the use's) "
             "version 2 until 1700004100, created 1700000500, signed with the token of grant-1of1",
             rotation->data, rotation->size);
    kc_grant_use_destroy (&rotation);
    kc_grant_t revocation_fields = { .status = KC_STATUS_REVOKED };
    memcpy (revocation_fields.directory, fields.directory, 32);
    memcpy (revocation_fields.grant_key, fields.grant_key, 32);
    snprintf (revocation_fields.reason, sizeof revocation_fields.reason, "token leaked");
    kc_grant_t *revocation = kc_grant_new (&revocation_fields, &world.operators [0], 1, &why);
    assert (revocation && kc_grant_verify (revocation, genesis, &why) == 0);
    s_check ("grant-revoked.hex", "grant revocation of grant-1of1: reason 'token leaked', signed by alice",
             revocation->data, revocation->size);
    kc_grant_destroy (&revocation);
    kc_grant_use_destroy (&use);
    kc_grant_destroy (&grant);
    kc_signer_destroy (&token);
    kc_root_destroy (&genesis);
    kc_root_destroy (&cluster);

    kc_root_destroy (&next);
    kc_root_destroy (&triple);
    kc_root_destroy (&single);
    s_world_destroy (&world);
    if (verbose) {
        printf ("OK\n");
    }
}
