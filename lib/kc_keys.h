/*  =========================================================================
    kc_keys - key pairs and their files.

    kc_cert_t is a CURVE (X25519) key pair in czmq's certificate format: a
    public file NAME and a secret file NAME_secret, both ZPL with Z85 keys, so
    files written by zcert_save load here and ours load in zcert_load.

    kc_signer_t is an Ed25519 signing key (an operator's, or the server's
    head-signing key) in the same two-file layout with an "ed25519" section:

        metadata
            name = "alice"
            type = "keyclone-operator"
        ed25519
            public-key = "<Z85 of the 32-byte public key>"
            secret-key = "<Z85 of the 32-byte seed>"      (NAME_secret only)

    Secret keys live in sodium_malloc memory (read-protected while idle for
    signers), are wiped on destroy, and are written mode 0600 atomically.
    Secret files that group or others can read are refused.
    =========================================================================
*/
#ifndef KC_KEYS_H_INCLUDED
#define KC_KEYS_H_INCLUDED

#include "kc_util.h"

#define KC_KEYFILE_BYTES_MAX  16384     //  a key file larger than this is refused
#define KC_KEY_NAME_MAX       255       //  metadata name length
#define KC_SECRET_SUFFIX      "_secret"

typedef struct _kc_cert_t kc_cert_t;
typedef struct _kc_signer_t kc_signer_t;

//  --- CURVE key pairs ------------------------------------------------------

//  Makes a fresh CURVE key pair with an optional name (may be NULL).
kc_cert_t *
    kc_cert_new (const char *name);

//  Makes a public-only cert from a 32-byte public key.
kc_cert_t *
    kc_cert_new_public (const uint8_t public_key [static KC_KEY_BYTES], const char *name);

//  Loads the key pair from PATH_secret (or PATH if it already ends in
//  _secret). The secret must match the public key. NULL with reason on error.
kc_cert_t *
    kc_cert_load_secret (const char *path, kc_why_t *why);

//  Loads only the public key from PATH (never reads the secret file).
kc_cert_t *
    kc_cert_load_public (const char *path, kc_why_t *why);

//  Writes PATH (public, mode 0644) and, if the cert has a secret,
//  PATH_secret (mode 0600), each atomically.
int
    kc_cert_save (const kc_cert_t *self, const char *path, kc_why_t *why) KC_WUR;

//  Destroys the cert and wipes its secret. Nulls *self_p.
void
    kc_cert_destroy (kc_cert_t **self_p);

//  The 32-byte public key; owned by the cert.
const uint8_t *
    kc_cert_public_key (const kc_cert_t *self);

//  The 40-character Z85 public key; owned by the cert.
const char *
    kc_cert_public_txt (const kc_cert_t *self);

//  The 32-byte secret key in sodium_malloc memory, or NULL for a public-only
//  cert; owned by the cert, valid until destroy.
const uint8_t *
    kc_cert_secret_key (const kc_cert_t *self);

//  The metadata name ("" if none); owned by the cert.
const char *
    kc_cert_name (const kc_cert_t *self);

//  Applies the key pair to a czmq/libzmq socket (CURVE public and secret).
void
    kc_cert_apply (const kc_cert_t *self, void *socket);

//  --- Ed25519 signers ------------------------------------------------------

//  Makes a fresh Ed25519 signer with a name and a type ("keyclone-operator",
//  "keyclone-head").
kc_signer_t *
    kc_signer_new (const char *name, const char *type);

//  Makes a signer from a 32-byte seed (deterministic; tests and vectors).
kc_signer_t *
    kc_signer_new_from_seed (const uint8_t seed [static 32], const char *name, const char *type);

//  Loads a signer from PATH_secret (or PATH if it ends in _secret).
kc_signer_t *
    kc_signer_load (const char *path, kc_why_t *why);

//  Loads the public key and name of a signer from its public file PATH.
//  name receives at most KC_KEY_NAME_MAX characters and a NUL.
int
    kc_signer_load_public (const char *path, uint8_t public_key [static KC_KEY_BYTES],
                           char name [static KC_KEY_NAME_MAX + 1], kc_why_t *why) KC_WUR;

//  Writes PATH (public) and PATH_secret (secret, 0600), each atomically.
int
    kc_signer_save (const kc_signer_t *self, const char *path, kc_why_t *why) KC_WUR;

//  Destroys the signer and wipes its secret. Nulls *self_p.
void
    kc_signer_destroy (kc_signer_t **self_p);

//  The 32-byte public key; owned by the signer.
const uint8_t *
    kc_signer_public_key (const kc_signer_t *self);

//  The signer's name; owned by the signer.
const char *
    kc_signer_name (const kc_signer_t *self);

//  Signs size bytes at message: a detached 64-byte Ed25519 signature.
void
    kc_signer_sign (const kc_signer_t *self, const uint8_t *message, size_t size,
                    uint8_t signature [static KC_SIGNATURE_BYTES]);

//  Self test of this module.
void
    kc_keys_test (bool verbose);

#endif
