/*  =========================================================================
    keyclone - key distribution for ZeroMQ CURVE security.

    The one public umbrella header of libkeyclone: include this and link with
    `pkg-config --libs keyclone`.
    =========================================================================
*/
#ifndef KEYCLONE_H_INCLUDED
#define KEYCLONE_H_INCLUDED

#define KEYCLONE_VERSION_MAJOR 0
#define KEYCLONE_VERSION_MINOR 1
#define KEYCLONE_VERSION_PATCH 0

//  The application API: looking keys up in an agent's cache (kc_lookup),
//  protecting libzmq sockets with the agent's decisions (kc_auth, kc_zap),
//  the CurveZMQ codec (kc_curve, kc_meta) and ZMTP framing around it
//  (kc_zmtp), key files and Z85 (kc_keys, kc_z85) and what
//  they need. keyclone's own programs include kc_all.h, which is not
//  installed.
#include "kc_util.h"
#include "kc_wire.h"
#include "kc_z85.h"
#include "kc_record.h"
#include "kc_keys.h"
#include "kc_meta.h"
#include "kc_curve.h"
#include "kc_zmtp.h"
#include "kc_lookup.h"
#include "kc_zap.h"
#include "kc_auth.h"

#endif
