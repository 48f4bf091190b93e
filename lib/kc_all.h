/*  =========================================================================
    kc_all - every module of libkeyclone, for keyclone's own programs (the
    daemons, the CLI, the tests). Not installed: applications include
    keyclone.h, the public API.
    =========================================================================
*/
#ifndef KC_ALL_H_INCLUDED
#define KC_ALL_H_INCLUDED

#include "keyclone.h"
#include "kc_util.h"
#include "kc_wire.h"
#include "kc_z85.h"
#include "kc_file.h"
#include "kc_zpl.h"
#include "kc_keys.h"
#include "kc_nodekey.h"
#include "kc_record.h"
#include "kc_enrol.h"
#include "kc_grant.h"
#include "kc_root.h"
#include "kc_batch.h"
#include "kc_keyindex.h"
#include "kc_db.h"
#include "kc_json.h"
#include "kc_ratelog.h"
#include "kc_head.h"
#include "kc_proto.h"
#include "kc_store.h"
#include "kc_access.h"
#include "kc_client.h"
#include "kc_bucket.h"
#include "kc_cache.h"
#include "kc_lookup.h"
#include "kc_sock.h"
#include "kc_sockopt.h"
#include "kc_track.h"
#include "kc_zap.h"
#include "kc_meta.h"
#include "kc_curve.h"
#include "kc_zmtp.h"
#include "kc_auth.h"
#include "kc_metrics.h"
#include "kc_group.h"
#include "kc_publish.h"
#include "kc_keep.h"
#include "kc_follow.h"
#include "kc_cosigner.h"
#include "kc_cosig.h"

#endif
