/*  =========================================================================
    kc_access - who may read through the submission channel (QUERY and
    STATUS, docs/protocol.md 6.3) when the server's read policy is
    "members": a registered member's own CURVE key, or a request that an
    operator signed. Operator keys stay offline for most work, so a console
    key registered as a member (e.g. tagged role=console) is the everyday
    way; a signature is for when an operator key is at hand anyway.

    The authorization is one frame appended to the request:

        auth = bytes[32] operator-key || u64 time-ms || bytes[64] signature

    signing "keyclone request v1" || 0x00 || H(server-key || client-key ||
    u64 time-ms || for each frame before auth: u32 size || bytes), so it is
    bound to this server, to the CURVE key of the connection that sends it,
    to its own content, and to a time within KC_ACCESS_SKEW_MS of the
    server's clock.
    =========================================================================
*/
#ifndef KC_ACCESS_H_INCLUDED
#define KC_ACCESS_H_INCLUDED

#include "kc_util.h"
#include "kc_keys.h"
#include "kc_root.h"
#include <czmq.h>

#define KC_ACCESS_BYTES     (32 + 8 + 64)       //  the auth frame
#define KC_ACCESS_SKEW_MS   (5 * 60 * 1000)     //  accepted clock difference
#define KC_CONTEXT_REQUEST  "keyclone request v1"

//  Appends an operator's authorization to request (all its frames are
//  covered), for a connection with CURVE key client_key to server_key.
void
    kc_access_sign (zmsg_t *request, const kc_signer_t *operator_key,
                    const uint8_t server_key [static KC_KEY_BYTES],
                    const uint8_t client_key [static KC_KEY_BYTES], uint64_t now_ms);

//  Checks the authorization in the last frame of request (as received,
//  without routing frames) against root's operators. Returns the index of
//  the operator in root, or -1 with a reason.
int
    kc_access_verify (zmsg_t *request, const kc_root_t *root,
                      const uint8_t server_key [static KC_KEY_BYTES],
                      const uint8_t client_key [static KC_KEY_BYTES], uint64_t now_ms,
                      kc_why_t *why);

//  Self test of this module.
void
    kc_access_test (bool verbose);

#endif
