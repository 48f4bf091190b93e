/*  fuzz_zap - the ZAP request parser and the decision and reply built on
    it. Input: frames as big-endian u16 length + bytes (see fuzz_proto.h).  */
#include "fuzz_proto.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    zmsg_t *msg = s_frames (data, size);
    kc_zap_request_t request;
    kc_zap_reply_t reply;
    kc_why_t why;
    if (kc_zap_parse (msg, &request, &reply, &why) == 0) {
        kc_lookup_entry_t entry = { .verdict = KC_VERDICT_TRUSTED, .status = KC_STATUS_ACTIVE };
        snprintf (entry.name, sizeof entry.name, "node");
        snprintf (entry.tags, sizeof entry.tags, "role=db,dc=eu");
        kc_zap_decide (&request, &entry, false, request.domain, &reply);
    }
    zmsg_t *answer = kc_zap_reply (request.request_id, request.request_id_size, &reply);
    zmsg_destroy (&answer);
    zmsg_destroy (&msg);
    return 0;
}
