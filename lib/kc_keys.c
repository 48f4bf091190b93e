/*  =========================================================================
    kc_keys - CURVE key pairs (czmq certificate files) and Ed25519 signers.
    =========================================================================
*/
#include "kc_keys.h"
#include "kc_file.h"
#include "kc_z85.h"
#include "kc_zpl.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <czmq.h>

struct _kc_cert_t {
    uint8_t public_key [KC_KEY_BYTES];
    char public_txt [KC_Z85_KEY_CHARS + 1];
    uint8_t *secret_key;                //  sodium_malloc, or NULL
    char name [KC_KEY_NAME_MAX + 1];
};

struct _kc_signer_t {
    uint8_t public_key [KC_KEY_BYTES];
    uint8_t *secret_key;                //  64 bytes, sodium_malloc, noaccess when idle
    char name [KC_KEY_NAME_MAX + 1];
    char type [32];
};

static void *
s_secure_alloc (size_t size)
{
    void *memory = sodium_malloc (size);
    if (!memory) {
        fprintf (stderr, "kc_keys: out of secure memory\n");
        abort ();
    }
    return memory;
}

static void *
s_zalloc (size_t size)
{
    void *memory = calloc (1, size);
    if (!memory) {
        fprintf (stderr, "kc_keys: out of memory\n");
        abort ();
    }
    return memory;
}

static void
s_set_text (char *target, size_t target_size, const char *text, size_t size)
{
    if (size >= target_size) {
        size = target_size - 1;
    }
    memcpy (target, text, size);
    target [size] = 0;
}

//  Builds "PATH_secret" unless path already ends in _secret.
static int
s_secret_path (const char *path, char *out, size_t out_size)
{
    size_t length = strlen (path), suffix = strlen (KC_SECRET_SUFFIX);
    bool has = length > suffix && KC_STREQ (path + length - suffix, KC_SECRET_SUFFIX);
    int n = snprintf (out, out_size, "%s%s", path, has ? "" : KC_SECRET_SUFFIX);
    return n < (int) out_size ? 0 : -1;
}

//  Reads and parses a key file; fills zpl. The text buffer is returned so
//  the zpl slices stay valid; the caller frees it with kc_file_free.
static uint8_t *
s_load_zpl (const char *path, bool secret, kc_zpl_t *zpl, kc_why_t *why)
{
    size_t size = 0;
    uint8_t *text = kc_file_read (path, KC_KEYFILE_BYTES_MAX, secret, &size, why);
    if (text && kc_zpl_parse (zpl, (const char *) text, size, why)) {
        kc_why_prefix (why, "cannot parse '%s'", path);
        kc_file_free (&text, secret);
    }
    return text;
}

//  Decodes the Z85 value at a path into key; why names the file.
static int
s_zpl_key (const kc_zpl_t *zpl, const char *entry_path, const char *file,
           uint8_t key [static KC_KEY_BYTES], kc_why_t *why)
{
    const kc_zpl_entry_t *entry = kc_zpl_get (zpl, entry_path);
    if (!entry) {
        return kc_why (why, "'%s' has no %s", file, entry_path);
    }
    char text [KC_Z85_KEY_CHARS + 1];
    if (entry->value_size != KC_Z85_KEY_CHARS) {
        return kc_why (why, "'%s': %s is not a 40-character Z85 key", file, entry_path);
    }
    memcpy (text, entry->value, KC_Z85_KEY_CHARS);
    text [KC_Z85_KEY_CHARS] = 0;
    int rc = kc_z85_decode (text, key, KC_KEY_BYTES);
    sodium_memzero (text, sizeof text);
    if (rc) {
        return kc_why (why, "'%s': %s is not valid Z85", file, entry_path);
    }
    return 0;
}

static void
s_zpl_name (const kc_zpl_t *zpl, char name [static KC_KEY_NAME_MAX + 1])
{
    const kc_zpl_entry_t *entry = kc_zpl_get (zpl, "metadata/name");
    name [0] = 0;
    if (entry) {
        s_set_text (name, KC_KEY_NAME_MAX + 1, entry->value, entry->value_size);
    }
}

//  Formats a key file in czmq's layout into a sodium_malloc buffer.
static char *
s_format_keyfile (const char *banner, const char *name, const char *type,
                  const char *section, const char *public_txt, const char *secret_txt,
                  size_t *size)
{
    size_t capacity = 1024 + KC_KEY_NAME_MAX;
    char *text = s_secure_alloc (capacity);
    char when [32];
    int n = snprintf (text, capacity,
        "#   ****  Generated on %s by keyclone  ****\n%s\n"
        "metadata\n", kc_time_format (kc_now (), when), banner);
    if (name && *name) {
        n += snprintf (text + n, capacity - (size_t) n, "    name = \"%s\"\n", name);
    }
    if (type && *type) {
        n += snprintf (text + n, capacity - (size_t) n, "    type = \"%s\"\n", type);
    }
    n += snprintf (text + n, capacity - (size_t) n, "%s\n    public-key = \"%s\"\n",
                   section, public_txt);
    if (secret_txt) {
        n += snprintf (text + n, capacity - (size_t) n, "    secret-key = \"%s\"\n", secret_txt);
    }
    *size = (size_t) n;
    return text;
}

static int
s_write_pair (const char *path, const char *public_text, size_t public_size,
              const char *secret_text, size_t secret_size, kc_why_t *why)
{
    if (secret_text) {
        char secret_path [4096];
        if (s_secret_path (path, secret_path, sizeof secret_path)) {
            return kc_why (why, "path too long: '%.80s...'", path);
        }
        if (kc_file_write_atomic (secret_path, secret_text, secret_size,
                                  KC_FILE_MODE_SECRET, why)) {
            return -1;
        }
    }
    return kc_file_write_atomic (path, public_text, public_size, KC_FILE_MODE_PUBLIC, why);
}

//  Names are printable ASCII without quotes, so they survive ZPL round trips.
static bool
s_name_ok (const char *name)
{
    if (!name) {
        return true;
    }
    if (strlen (name) > KC_KEY_NAME_MAX) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '"') {
            return false;
        }
    }
    return true;
}

//  --- CURVE ----------------------------------------------------------------

kc_cert_t *
kc_cert_new (const char *name)
{
    assert (s_name_ok (name));
    kc_cert_t *self = s_zalloc (sizeof *self);
    self->secret_key = s_secure_alloc (KC_KEY_BYTES);
    crypto_box_keypair (self->public_key, self->secret_key);
    kc_z85_encode (self->public_key, KC_KEY_BYTES, self->public_txt);
    s_set_text (self->name, sizeof self->name, name ? name : "", name ? strlen (name) : 0);
    return self;
}

kc_cert_t *
kc_cert_new_public (const uint8_t public_key [static KC_KEY_BYTES], const char *name)
{
    assert (s_name_ok (name));
    kc_cert_t *self = s_zalloc (sizeof *self);
    memcpy (self->public_key, public_key, KC_KEY_BYTES);
    kc_z85_encode (self->public_key, KC_KEY_BYTES, self->public_txt);
    s_set_text (self->name, sizeof self->name, name ? name : "", name ? strlen (name) : 0);
    return self;
}

kc_cert_t *
kc_cert_load_public (const char *path, kc_why_t *why)
{
    static __thread kc_zpl_t zpl;
    uint8_t *text = s_load_zpl (path, false, &zpl, why);
    if (!text) {
        return NULL;
    }
    uint8_t key [KC_KEY_BYTES];
    kc_cert_t *self = NULL;
    if (s_zpl_key (&zpl, "curve/public-key", path, key, why) == 0) {
        char name [KC_KEY_NAME_MAX + 1];
        s_zpl_name (&zpl, name);
        self = kc_cert_new_public (key, s_name_ok (name) ? name : NULL);
    }
    kc_file_free (&text, false);
    return self;
}

kc_cert_t *
kc_cert_load_secret (const char *path, kc_why_t *why)
{
    char secret_path [4096];
    if (s_secret_path (path, secret_path, sizeof secret_path)) {
        kc_why (why, "path too long: '%.80s...'", path);
        return NULL;
    }
    static __thread kc_zpl_t zpl;
    uint8_t *text = s_load_zpl (secret_path, true, &zpl, why);
    if (!text) {
        return NULL;
    }
    kc_cert_t *self = s_zalloc (sizeof *self);
    self->secret_key = s_secure_alloc (KC_KEY_BYTES);
    uint8_t derived [KC_KEY_BYTES];
    if (s_zpl_key (&zpl, "curve/public-key", secret_path, self->public_key, why)
    ||  s_zpl_key (&zpl, "curve/secret-key", secret_path, self->secret_key, why)) {
        kc_cert_destroy (&self);
    }
    else
    if (crypto_scalarmult_base (derived, self->secret_key)
    ||  sodium_memcmp (derived, self->public_key, KC_KEY_BYTES)) {
        kc_why (why, "'%s': secret-key does not match public-key", secret_path);
        kc_cert_destroy (&self);
    }
    else {
        kc_z85_encode (self->public_key, KC_KEY_BYTES, self->public_txt);
        s_zpl_name (&zpl, self->name);
        if (!s_name_ok (self->name)) {
            self->name [0] = 0;
        }
    }
    sodium_memzero (&zpl, sizeof zpl);
    kc_file_free (&text, true);
    return self;
}

int
kc_cert_save (const kc_cert_t *self, const char *path, kc_why_t *why)
{
    size_t public_size, secret_size = 0;
    char *public_text = s_format_keyfile (
        "#   ZeroMQ CURVE Public Certificate\n"
        "#   Exchange securely, or use a secure mechanism to verify the contents\n"
        "#   of this file after exchange.\n",
        self->name, NULL, "curve", self->public_txt, NULL, &public_size);
    char *secret_text = NULL;
    if (self->secret_key) {
        char *secret_txt = s_secure_alloc (KC_Z85_KEY_CHARS + 1);
        kc_z85_encode (self->secret_key, KC_KEY_BYTES, secret_txt);
        secret_text = s_format_keyfile (
            "#   ZeroMQ CURVE **Secret** Certificate\n"
            "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n",
            self->name, NULL, "curve", self->public_txt, secret_txt, &secret_size);
        sodium_free (secret_txt);
    }
    int rc = s_write_pair (path, public_text, public_size, secret_text, secret_size, why);
    sodium_free (public_text);
    if (secret_text) {
        sodium_free (secret_text);
    }
    return rc;
}

void
kc_cert_destroy (kc_cert_t **self_p)
{
    if (self_p && *self_p) {
        kc_cert_t *self = *self_p;
        if (self->secret_key) {
            sodium_free (self->secret_key);
        }
        free (self);
        *self_p = NULL;
    }
}

const uint8_t *
kc_cert_public_key (const kc_cert_t *self)
{
    return self->public_key;
}

const char *
kc_cert_public_txt (const kc_cert_t *self)
{
    return self->public_txt;
}

const uint8_t *
kc_cert_secret_key (const kc_cert_t *self)
{
    return self->secret_key;
}

const char *
kc_cert_name (const kc_cert_t *self)
{
    return self->name;
}

void
kc_cert_apply (const kc_cert_t *self, void *socket)
{
    assert (self->secret_key);
    zsock_set_curve_publickey_bin (socket, self->public_key);
    zsock_set_curve_secretkey_bin (socket, self->secret_key);
}

//  --- Ed25519 --------------------------------------------------------------

static kc_signer_t *
s_signer_from_seed (const uint8_t seed [static 32], const char *name, const char *type)
{
    assert (s_name_ok (name) && s_name_ok (type));
    kc_signer_t *self = s_zalloc (sizeof *self);
    self->secret_key = s_secure_alloc (crypto_sign_SECRETKEYBYTES);
    crypto_sign_seed_keypair (self->public_key, self->secret_key, seed);
    sodium_mprotect_noaccess (self->secret_key);
    s_set_text (self->name, sizeof self->name, name ? name : "", name ? strlen (name) : 0);
    s_set_text (self->type, sizeof self->type, type ? type : "", type ? strlen (type) : 0);
    return self;
}

kc_signer_t *
kc_signer_new (const char *name, const char *type)
{
    uint8_t *seed = s_secure_alloc (32);
    randombytes_buf (seed, 32);
    kc_signer_t *self = s_signer_from_seed (seed, name, type);
    sodium_free (seed);
    return self;
}

kc_signer_t *
kc_signer_new_from_seed (const uint8_t seed [static 32], const char *name, const char *type)
{
    return s_signer_from_seed (seed, name, type);
}

kc_signer_t *
kc_signer_load (const char *path, kc_why_t *why)
{
    char secret_path [4096];
    if (s_secret_path (path, secret_path, sizeof secret_path)) {
        kc_why (why, "path too long: '%.80s...'", path);
        return NULL;
    }
    static __thread kc_zpl_t zpl;
    uint8_t *text = s_load_zpl (secret_path, true, &zpl, why);
    if (!text) {
        return NULL;
    }
    kc_signer_t *self = NULL;
    uint8_t public_key [KC_KEY_BYTES];
    uint8_t *seed = s_secure_alloc (32);
    if (s_zpl_key (&zpl, "ed25519/public-key", secret_path, public_key, why) == 0
    &&  s_zpl_key (&zpl, "ed25519/secret-key", secret_path, seed, why) == 0) {
        char name [KC_KEY_NAME_MAX + 1], type [KC_KEY_NAME_MAX + 1];
        s_zpl_name (&zpl, name);
        const kc_zpl_entry_t *entry = kc_zpl_get (&zpl, "metadata/type");
        s_set_text (type, sizeof type, entry ? entry->value : "", entry ? entry->value_size : 0);
        self = s_signer_from_seed (seed, s_name_ok (name) ? name : NULL,
                                   s_name_ok (type) ? type : NULL);
        if (sodium_memcmp (self->public_key, public_key, KC_KEY_BYTES)) {
            kc_why (why, "'%s': secret-key does not match public-key", secret_path);
            kc_signer_destroy (&self);
        }
    }
    sodium_free (seed);
    sodium_memzero (&zpl, sizeof zpl);
    kc_file_free (&text, true);
    return self;
}

int
kc_signer_load_public (const char *path, uint8_t public_key [static KC_KEY_BYTES],
                       char name [static KC_KEY_NAME_MAX + 1], kc_why_t *why)
{
    static __thread kc_zpl_t zpl;
    uint8_t *text = s_load_zpl (path, false, &zpl, why);
    if (!text) {
        return -1;
    }
    int rc = s_zpl_key (&zpl, "ed25519/public-key", path, public_key, why);
    s_zpl_name (&zpl, name);
    kc_file_free (&text, false);
    return rc;
}

int
kc_signer_save (const kc_signer_t *self, const char *path, kc_why_t *why)
{
    char public_txt [KC_Z85_KEY_CHARS + 1];
    kc_z85_encode (self->public_key, KC_KEY_BYTES, public_txt);
    size_t public_size, secret_size;
    char *public_text = s_format_keyfile (
        "#   keyclone Ed25519 public key: safe to share.\n",
        self->name, self->type, "ed25519", public_txt, NULL, &public_size);
    char *secret_txt = s_secure_alloc (KC_Z85_KEY_CHARS + 1);
    sodium_mprotect_readonly (self->secret_key);
    kc_z85_encode (self->secret_key, 32, secret_txt);      //  the seed half
    sodium_mprotect_noaccess (self->secret_key);
    char *secret_text = s_format_keyfile (
        "#   keyclone Ed25519 **Secret** key: anyone holding this file can sign.\n"
        "#   Keep it offline; DO NOT PROVIDE THIS FILE TO OTHER USERS.\n",
        self->name, self->type, "ed25519", public_txt, secret_txt, &secret_size);
    sodium_free (secret_txt);
    int rc = s_write_pair (path, public_text, public_size, secret_text, secret_size, why);
    sodium_free (public_text);
    sodium_free (secret_text);
    return rc;
}

void
kc_signer_destroy (kc_signer_t **self_p)
{
    if (self_p && *self_p) {
        kc_signer_t *self = *self_p;
        sodium_free (self->secret_key);     //  unprotects and wipes
        free (self);
        *self_p = NULL;
    }
}

const uint8_t *
kc_signer_public_key (const kc_signer_t *self)
{
    return self->public_key;
}

const char *
kc_signer_name (const kc_signer_t *self)
{
    return self->name;
}

void
kc_signer_sign (const kc_signer_t *self, const uint8_t *message, size_t size,
                uint8_t signature [static KC_SIGNATURE_BYTES])
{
    sodium_mprotect_readonly (self->secret_key);
    crypto_sign_detached (signature, NULL, message, size, self->secret_key);
    sodium_mprotect_noaccess (self->secret_key);
}

void
kc_keys_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_keys: ");
    }
    char dir [] = "/tmp/kc_keys_test.XXXXXX";
    assert (mkdtemp (dir));
    char path [256], secret [256];
    snprintf (path, sizeof path, "%s/node", dir);
    snprintf (secret, sizeof secret, "%s/node_secret", dir);
    kc_why_t why;

    //  CURVE round trip
    kc_cert_t *cert = kc_cert_new ("node-1");
    assert (kc_cert_save (cert, path, &why) == 0);
    struct stat st;
    assert (stat (secret, &st) == 0 && (st.st_mode & 0777) == 0600);
    assert (stat (path, &st) == 0 && (st.st_mode & 0777) == 0644);
    kc_cert_t *loaded = kc_cert_load_secret (path, &why);
    assert (loaded);
    assert (memcmp (kc_cert_public_key (cert), kc_cert_public_key (loaded), 32) == 0);
    assert (memcmp (kc_cert_secret_key (cert), kc_cert_secret_key (loaded), 32) == 0);
    assert (KC_STREQ (kc_cert_name (loaded), "node-1"));
    kc_cert_destroy (&loaded);
    loaded = kc_cert_load_public (path, &why);
    assert (loaded && kc_cert_secret_key (loaded) == NULL);
    assert (KC_STREQ (kc_cert_public_txt (loaded), kc_cert_public_txt (cert)));
    kc_cert_destroy (&loaded);
    kc_cert_destroy (&loaded);          //  idempotent

    //  A readable secret file is refused
    assert (chmod (secret, 0644) == 0);
    assert (kc_cert_load_secret (path, &why) == NULL);
    assert (strstr (why.text, "mode 0644"));
    assert (chmod (secret, 0600) == 0);

    //  A secret that does not match its public key is refused
    char text [1024];
    FILE *file = fopen (secret, "r");
    size_t n = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text [n] = 0;
    char *at = strstr (text, "secret-key = \"");
    assert (at);
    at [14] = at [14] == 'a' ? 'b' : 'a';
    assert (kc_file_write_atomic (secret, text, n, 0600, &why) == 0);
    assert (kc_cert_load_secret (path, &why) == NULL);
    assert (strstr (why.text, "does not match"));
    kc_cert_destroy (&cert);

    //  czmq interop: zcert files load here, ours load in zcert
    zcert_t *zcert = zcert_new ();
    zcert_set_meta (zcert, "name", "from-czmq");
    snprintf (path, sizeof path, "%s/zcert", dir);
    assert (zcert_save (zcert, path) == 0);
    cert = kc_cert_load_secret (path, &why);
    assert (cert);
    assert (memcmp (kc_cert_public_key (cert), zcert_public_key (zcert), 32) == 0);
    assert (memcmp (kc_cert_secret_key (cert), zcert_secret_key (zcert), 32) == 0);
    assert (KC_STREQ (kc_cert_name (cert), "from-czmq"));
    zcert_destroy (&zcert);
    snprintf (path, sizeof path, "%s/ours", dir);
    assert (kc_cert_save (cert, path, &why) == 0);
    zcert = zcert_load (path);
    assert (zcert);
    assert (memcmp (kc_cert_secret_key (cert), zcert_secret_key (zcert), 32) == 0);
    assert (KC_STREQ (zcert_meta (zcert, "name"), "from-czmq"));
    zcert_destroy (&zcert);
    kc_cert_destroy (&cert);

    //  Signer round trip, and signatures verify
    uint8_t seed [32] = { 1, 2, 3 };
    kc_signer_t *signer = kc_signer_new_from_seed (seed, "alice", "keyclone-operator");
    snprintf (path, sizeof path, "%s/alice", dir);
    assert (kc_signer_save (signer, path, &why) == 0);
    kc_signer_t *again = kc_signer_load (path, &why);
    assert (again);
    assert (KC_STREQ (kc_signer_name (again), "alice"));
    uint8_t sig1 [64], sig2 [64];
    kc_signer_sign (signer, (const uint8_t *) "msg", 3, sig1);
    kc_signer_sign (again, (const uint8_t *) "msg", 3, sig2);
    assert (memcmp (sig1, sig2, 64) == 0);      //  Ed25519 is deterministic
    assert (crypto_sign_verify_detached (sig1, (const uint8_t *) "msg", 3,
                                         kc_signer_public_key (signer)) == 0);
    uint8_t public_key [32];
    char name [KC_KEY_NAME_MAX + 1];
    assert (kc_signer_load_public (path, public_key, name, &why) == 0);
    assert (memcmp (public_key, kc_signer_public_key (signer), 32) == 0);
    assert (KC_STREQ (name, "alice"));
    //  A CURVE loader does not accept a signer file, and vice versa
    assert (kc_cert_load_public (path, &why) == NULL);
    snprintf (path, sizeof path, "%s/node", dir);
    assert (kc_signer_load (path, &why) == NULL);
    kc_signer_destroy (&again);
    kc_signer_destroy (&signer);
    assert (signer == NULL);

    char command [300];
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    assert (system (command) == 0);
    if (verbose) {
        printf ("OK\n");
    }
}
