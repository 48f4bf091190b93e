/*  =========================================================================
    kc_zap - ZAP (ZeroMQ RFC 27) requests and replies, and keyclone's
    decision on them. Pure functions, shared by the in-process handler
    (kc_auth) and the agent's ipc ZAP service, so both decide alike.

    A request is allowed (200) only for a CURVE client whose key the
    directory holds as trusted (registered, unrevoked, in its validity
    window), when the directory is not stale under a fail-closed policy, and
    when the key carries every tag the domain's policy requires. The user id
    is the node name; the reply metadata carries X-Keyclone-Key (Z85),
    X-Keyclone-Name and X-Keyclone-Tags, which every message from that peer
    then carries (zframe_meta).
    =========================================================================
*/
#ifndef KC_ZAP_H_INCLUDED
#define KC_ZAP_H_INCLUDED

#include "kc_util.h"
#include "kc_lookup.h"
#include <czmq.h>

#define KC_ZAP_VERSION          "1.0"
#define KC_ZAP_FIELD_MAX        255         //  domain, address, mechanism, request id
#define KC_ZAP_TEXT_MAX         255         //  status text
#define KC_ZAP_METADATA_MAX     1024        //  reply metadata
#define KC_ZAP_PROPERTY_KEY     "X-Keyclone-Key"
#define KC_ZAP_PROPERTY_NAME    "X-Keyclone-Name"
#define KC_ZAP_PROPERTY_TAGS    "X-Keyclone-Tags"

//  A parsed request (views into the message's frames).
typedef struct {
    const uint8_t *request_id;
    size_t request_id_size;
    char domain [KC_ZAP_FIELD_MAX + 1];
    char address [KC_ZAP_FIELD_MAX + 1];
    char mechanism [KC_ZAP_FIELD_MAX + 1];
    const uint8_t *key;                     //  32 bytes (CURVE only)
} kc_zap_request_t;

typedef struct {
    int status;                             //  200, 300, 400, 500
    char text [KC_ZAP_TEXT_MAX + 1];
    char user [KC_RECORD_NAME_MAX + 1];
    uint8_t metadata [KC_ZAP_METADATA_MAX];
    size_t metadata_size;
} kc_zap_reply_t;

//  Parses a ZAP request (version, request id, domain, address, identity,
//  mechanism, credentials...). Returns 0; or -1 with a reason when it is
//  malformed, and then reply holds the 500/400 error to send (request_id set
//  if it could be read).
int
    kc_zap_parse (zmsg_t *request, kc_zap_request_t *out, kc_zap_reply_t *reply,
                  kc_why_t *why) KC_WUR;

//  Decides a well-formed request for a key whose directory entry is entry
//  (verdict filled in), given whether the directory is stale under a
//  fail-closed policy and the tags the domain requires (comma-separated,
//  may be NULL or empty).
void
    kc_zap_decide (const kc_zap_request_t *request, const kc_lookup_entry_t *entry,
                   bool stale_deny, const char *required_tags, kc_zap_reply_t *reply);

//  Builds the 6-frame reply (version, request id, status, text, user id,
//  metadata).
zmsg_t *
    kc_zap_reply (const uint8_t *request_id, size_t request_id_size, const kc_zap_reply_t *reply);

//  True if tags (comma-separated) holds every tag of required.
bool
    kc_zap_tags_cover (const char *tags, const char *required);

//  Self test of this module.
void
    kc_zap_test (bool verbose);

#endif
