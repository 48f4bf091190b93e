/*  =========================================================================
    kc_proto - every message of the keyclone distribution protocol (KCP/1,
    docs/protocol.md): encoders that build czmq messages, and one pure,
    bounds-checked decoder per direction of each channel.

    A decoded message points into the frames of the zmsg_t it came from: keep
    the zmsg_t alive while you use it, then kc_proto_msg_reset.
    =========================================================================
*/
#ifndef KC_PROTO_H_INCLUDED
#define KC_PROTO_H_INCLUDED

#include "kc_util.h"
#include "kc_head.h"
#include "kc_record.h"
#include "kc_enrol.h"
#include <czmq.h>

#define KC_PROTO_BATCHES_MAX    1024                //  batch entries per message
#define KC_PROTO_MESSAGE_MAX    (40 * 1024 * 1024)  //  bytes in one message
#define KC_PROTO_REASON_MAX     255                 //  bytes of an ERROR reason
//  A cluster member that is not the leader refuses a SUBMIT with an ERROR
//  whose reason starts with one of these (docs/cluster.md 4): the leader's
//  name (a server of the root) follows the first; clients go there, or try
//  again shortly after the second.
#define KC_NOT_LEADER           "not the leader: the leader is "
#define KC_NO_LEADER            "no leader: "
#define KC_PROTO_CREDIT_MAX     64                  //  credit one SYNC/CREDIT grants
#define KC_PROTO_RECORDS_MAX    10000               //  records in one RECORDS reply
#define KC_PROTO_ROOTS_MAX      1000                //  root changes in one ROOTS reply
#define KC_PROTO_LOG_MAX        1000                //  entries in one LOG reply
#define KC_PROTO_LOG_HEADER     48                  //  u64 seq, u64 accepted, key[32]
#define KC_PROTO_STATUS_MAX     (4 * 1024 * 1024)   //  bytes of a STATUS JSON reply
#define KC_PROTO_ARGUMENT_MAX   255                 //  bytes of a QUERY argument
#define KC_PROTO_ENTRY_HEADER   40                  //  u64 seq + 32-byte chain, or
#define KC_PROTO_ENTRY_HEADER_META 80               //  + u64 accepted + key[32] submitter
#define KC_PROTO_AUTH_BYTES     104                 //  operator authorization (kc_access.h)
#define KC_PROTO_PENDING_MAX    10000               //  enrolments in one PENDING reply
#define KC_PROTO_COSIGS_MAX     16                  //  cosignatures after a HEAD or END
#define KC_PROTO_COSIG_BYTES    181                 //  one cosignature (kc_cosig.h)

//  Which side of which channel is decoding (what it may receive).
typedef enum {
    KC_CHANNEL_SNAPSHOT_SERVER,     //  server receives: SYNC, CREDIT, ACK, COSIGN
    KC_CHANNEL_SNAPSHOT_AGENT,      //  agent receives: BATCHES, END, ERROR
    KC_CHANNEL_UPDATES,             //  agent receives: UPDATE, HEAD (both with cosignatures)
    KC_CHANNEL_SUBMIT_SERVER,       //  server receives: SUBMIT, QUERY, STATUS, ROOTS, LOG,
                                    //  ENROL, PENDING, REJECT, ROTATE, METRICS
    KC_CHANNEL_SUBMIT_CLIENT        //  client receives: OK, RECORDS, STATUS, ROOTS, LOG, ERROR,
                                    //  ENROLMENT, PENDING
} kc_channel_t;

typedef enum {
    KC_MSG_SYNC = 1, KC_MSG_CREDIT, KC_MSG_ACK, KC_MSG_BATCHES, KC_MSG_END,
    KC_MSG_ERROR, KC_MSG_UPDATE, KC_MSG_HEAD, KC_MSG_SUBMIT, KC_MSG_OK,
    KC_MSG_QUERY, KC_MSG_RECORDS, KC_MSG_STATUS, KC_MSG_ROOTS, KC_MSG_LOG,
    KC_MSG_ENROL, KC_MSG_PENDING, KC_MSG_REJECT, KC_MSG_ENROLMENT, KC_MSG_ROTATE, KC_MSG_METRICS,
    KC_MSG_COSIGN
} kc_msg_type_t;

//  One batch entry (BATCHES, UPDATE) or record entry (RECORDS).
typedef struct {
    uint64_t seq;
    const uint8_t *chain;                   //  32 bytes (batch entries only)
    const uint8_t *data;                    //  the batch or record bytes
    size_t size;
    uint64_t accepted;                      //  LOG: unix milliseconds
    const uint8_t *submitter;               //  LOG: 32 bytes, or NULL when unknown
} kc_entry_t;

typedef struct {
    kc_msg_type_t type;
    const uint8_t *directory;               //  SYNC
    uint64_t seq;                           //  SYNC from, ACK, OK, LOG after, ROTATE overlap
    uint32_t credit;                        //  SYNC, CREDIT, QUERY and LOG limit
    const uint8_t *chain;                   //  ACK, OK
    uint64_t batches, records;              //  END
    kc_head_t head;                         //  END, HEAD
    const uint8_t *cosigs [KC_PROTO_COSIGS_MAX];    //  END, HEAD: witness cosignatures (0..16),
    size_t cosig_count;                     //  COSIGN: one; KC_PROTO_COSIG_BYTES each, not decoded
    const char *text;                       //  ERROR reason, OK status, STATUS json,
    size_t text_size;                       //  QUERY kind
    const char *rendering;                  //  STATUS reply: human-readable text
    size_t rendering_size;
    const uint8_t *argument;                //  QUERY argument, RECORDS next cursor, ACK's
                                            //  relayed agent key
    size_t argument_size;
    bool auth;                              //  QUERY, STATUS, LOG: authorization frame last
    const uint8_t *batch;                   //  SUBMIT
    size_t batch_size;
    kc_entry_t *entries;                    //  BATCHES, UPDATE, RECORDS, ROOTS reply (owned array)
    size_t entry_count;                     //  PENDING reply: each an enrolment (kc_enrol.h)
    const char *tags [KC_RECORD_TAGS_MAX];  //  ENROL: the tags asked for (text: the name)
    size_t tag_sizes [KC_RECORD_TAGS_MAX];
    size_t tag_count;
} kc_proto_msg_t;

//  Decodes msg as received on channel into out. Pure: never changes msg.
//  Returns 0, or -1 with a reason (unknown command, wrong frame count or size,
//  over a limit). After a success, reset out with kc_proto_msg_reset; after
//  a refusal there is nothing to free.
int
    kc_proto_decode (zmsg_t *msg, kc_channel_t channel, kc_proto_msg_t *out,
                     kc_why_t *why) KC_WUR;

//  Frees what a decode allocated and clears out.
void
    kc_proto_msg_reset (kc_proto_msg_t *out);

//  --- Encoders: each returns a new message the caller owns ------------------

zmsg_t *
    kc_proto_sync (const uint8_t directory [static KC_HASH_BYTES], uint64_t from, uint32_t credit);
zmsg_t *
    kc_proto_credit (uint32_t credit);
zmsg_t *
    kc_proto_ack (uint64_t seq, const uint8_t chain [static KC_HASH_BYTES]);
//  ACK relayed by a mirror for the agent with key (docs/protocol.md 10).
zmsg_t *
    kc_proto_ack_for (uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                      const uint8_t key [static KC_KEY_BYTES]);
zmsg_t *
    kc_proto_end (uint64_t batches, uint64_t records, const kc_head_t *head);
zmsg_t *
    kc_proto_head (const kc_head_t *head);
//  Appends a witness cosignature (KC_PROTO_COSIG_BYTES) to a HEAD or END
//  message (at most KC_PROTO_COSIGS_MAX).
void
    kc_proto_add_cosig (zmsg_t *msg, const uint8_t cosig [static KC_PROTO_COSIG_BYTES]);
//  COSIGN: a witness gives the server its cosignature.
zmsg_t *
    kc_proto_cosign (const uint8_t cosig [static KC_PROTO_COSIG_BYTES]);
zmsg_t *
    kc_proto_error (const char *format, ...) KC_PRINTF (1, 2);
zmsg_t *
    kc_proto_submit (const uint8_t *batch, size_t size);
zmsg_t *
    kc_proto_ok (uint64_t seq, const uint8_t chain [static KC_HASH_BYTES], const char *status);
zmsg_t *
    kc_proto_query (const char *kind, const uint8_t *argument, size_t size, uint32_t limit);
zmsg_t *
    kc_proto_status_request (void);
//  METRICS: read like STATUS; the reply is a STATUS whose text is the
//  Prometheus text exposition.
zmsg_t *
    kc_proto_metrics_request (void);
//  ROOTS: the request (no argument); the reply is built with
//  kc_proto_roots_reply and one kc_proto_add_root per root change, in order.
zmsg_t *
    kc_proto_roots_request (void);
zmsg_t *
    kc_proto_roots_reply (void);
void
    kc_proto_add_root (zmsg_t *msg, uint64_t seq, const uint8_t *root, size_t size);
//  LOG: entries after seq after, at most limit; the reply is built with
//  kc_proto_log_reply and one kc_proto_add_log per entry, in order.
zmsg_t *
    kc_proto_log_request (uint64_t after, uint32_t limit);
zmsg_t *
    kc_proto_log_reply (void);
void
    kc_proto_add_log (zmsg_t *msg, uint64_t seq, uint64_t accepted, const uint8_t *submitter,
                      const uint8_t *data, size_t size);
zmsg_t *
    kc_proto_status_reply (const char *json, size_t json_size, const char *text, size_t text_size);
//  Enrolment (docs/protocol.md 6.4). ENROL asks to join as name with tags
//  (the connection's CURVE key is the key); PENDING asks for the list;
//  REJECT refuses a pending request (sign it with kc_access_sign). The
//  replies carry enrolments in kc_enrol.h's encoding: ENROLMENT one,
//  PENDING (started with kc_proto_pending_reply) any number.
zmsg_t *
    kc_proto_enrol (const char *name, const char *const *tags, size_t tag_count);
zmsg_t *
    kc_proto_pending_request (void);
//  ROTATE: a member asks for key to replace it (the connection's key), the
//  old key staying valid overlap seconds after the approval.
zmsg_t *
    kc_proto_rotate (const uint8_t key [static KC_KEY_BYTES], uint64_t overlap);
zmsg_t *
    kc_proto_reject (const uint8_t key [static KC_KEY_BYTES], const char *reason);
zmsg_t *
    kc_proto_enrolment (const kc_enrolment_t *enrolment);
zmsg_t *
    kc_proto_pending_reply (void);

//  Readers' callbacks that fill a ROOTS or LOG reply (msg, a zmsg_t) from
//  a store or a cache: one root change (stops at KC_PROTO_ROOTS_MAX), one
//  log entry. Both return 0 to go on.
int
    kc_proto_add_root_fn (uint64_t seq, const uint8_t *data, size_t size, void *msg);
int
    kc_proto_add_log_fn (uint64_t seq, uint64_t accepted, const uint8_t *submitter, const uint8_t *data,
                         size_t size, void *msg);

//  BATCHES / UPDATE: start with kc_proto_entries ("BATCHES" or "UPDATE") and
//  add entries in sequence order.
zmsg_t *
    kc_proto_entries (const char *command);
void
    kc_proto_add_entry (zmsg_t *msg, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                        const uint8_t *batch, size_t size);

//  The same with when the server accepted it (unix ms) and who submitted it
//  (NULL: unknown), for receivers that keep the audit history.
void
    kc_proto_add_entry_meta (zmsg_t *msg, uint64_t seq, const uint8_t chain [static KC_HASH_BYTES],
                             uint64_t accepted, const uint8_t *submitter,
                             const uint8_t *batch, size_t size);

//  RECORDS: start with the next cursor (may be empty), add (seq, record).
zmsg_t *
    kc_proto_records (const uint8_t *next, size_t next_size);
void
    kc_proto_add_record (zmsg_t *msg, uint64_t seq, const uint8_t *record, size_t size);

//  Name of a message type, for logs.
const char *
    kc_proto_name (kc_msg_type_t type);

//  Self test of this module.
void
    kc_proto_test (bool verbose);

#endif
