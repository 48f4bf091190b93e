/*  =========================================================================
    kc_agent_internal - the agent's state, shared by its modules. Not
    installed. They call each other one way only:

        kc_agent.c (the engine: kc_follow's consumer, heads, freshness,
        |           timers, cache checks and rebuilds, start-up)
        +-> kc_agent_connect.c (the server, member or mirror followed, its
        |     |                 keys, reconnects, the node's key rotation)
        |     +-> kc_agent_apply.c (below)
        +-> kc_agent_sync.c (a sync's BATCHES and END, a new cache file)
        |     +-> kc_agent_apply.c (entries checked and written to the cache)
        |           +-> kc_agent_witness.c (witnesses, proofs of equivocation)
        |                 +-> kc_agent_service.c (the local service, events,
        |                                         the state, warnings)
        +-> kc_agent_enrol.c (--enrol's thread)

    (tests/it/test_layers.py checks that no call goes the other way.)

    What the service does for a local client that only the engine or the
    witness module can do (RECONNECT, PROOF, their STATUS fields) it reaches
    through agent_ops_t, which the engine fills in.
    =========================================================================
*/
#ifndef KC_AGENT_INTERNAL_H_INCLUDED
#define KC_AGENT_INTERNAL_H_INCLUDED

#include "kc_agent.h"

#define AGENT_SERVER_KEYS   8               //  server keys remembered (key rotations)
#define AGENT_MIRRORS_MAX   16              //  --mirror entries

//  The newest entries of a cold sync (a ring), whose bytes live in the
//  sync's arena until END: the node's audit history after a rebuild.
typedef struct {
    uint64_t seq, accepted;
    uint8_t submitter [KC_KEY_BYTES];
    bool has_submitter;
    const uint8_t *data;
    size_t size;
} agent_history_entry_t;

typedef struct {
    agent_history_entry_t entries [KC_CACHE_HISTORY_ENTRIES];
    size_t next, count;
} agent_history_t;

typedef struct _agent_t agent_t;

//  Operations of the modules above the service, for its requests.
typedef struct {
    //  RECONNECT: sets *action ("now", "later" in *in_ms, or "none"); -1
    //  when the sockets cannot be made again
    int (*reconnect) (agent_t *self, const char **action, int64_t *in_ms);
    //  PROOF: two heads checked as a proof of equivocation; 0, or -1 with
    //  a reason
    int (*take_proof) (agent_t *self, const kc_head_t *a, const kc_head_t *b, const char *source, kc_why_t *why);
    //  Their own STATUS fields (JSON, after a comma) and lines
    void (*status_json) (agent_t *self, FILE *out);
    void (*status_text) (agent_t *self, FILE *out);
} agent_ops_t;

typedef enum {
    AGENT_SYNCING,                          //  no verified head for the cache yet
    AGENT_FRESH,                            //  heads keep matching the cache
    AGENT_STALE                             //  no matching head for stale-after
} agent_state_t;

struct _agent_t {
    kc_agent_config_t config;
    agent_ops_t ops;                        //  for the service (kc_agent.c fills it in)
    kc_root_t *root;                        //  in force at the cache's seq
    kc_root_t *pinned;                      //  the --root file: where a sync from 0 starts
    uint8_t previous_head_key [KC_KEY_BYTES];   //  before the last head key rotation, whose
    bool has_previous_head_key;             //  overlap heads are ignored without a word
    kc_cert_t *cert;
    kc_cache_t *cache;
    kc_follow_t *follow;                    //  the log followed from the server (or a mirror)
    zsock_t *local, *events;
    uint8_t server_keys [AGENT_SERVER_KEYS][KC_KEY_BYTES];  //  the server's CURVE keys in
    size_t key_count, key_index;            //  the roots followed, newest first; in use
    uint8_t key_in_use [KC_KEY_BYTES];
    size_t key_probes;                      //  older keys tried from the newest
    bool key_failed;                        //  a handshake failed since the last second
    int64_t refused_retry;                  //  the server refused our key: connect again then
                                            //  (zclock_mono; 0 when not refused), because libzmq
                                            //  never reconnects after a refusal
    int64_t refused_backoff;                //  ms, doubling to REFUSED_BACKOFF_MAX_MS
    int64_t connected_at;                   //  zclock_mono: sockets to the server made
    int64_t asked_at;                       //  RECONNECT asked: connect again then, if needed
    int swap_timer;                         //  one-shot: connect with the key just swapped in, or -1
    kc_nodekey_seen_t next_seen;            //  KEY.next as last read (s_take_next_key)
    int old_key_timer;                      //  one-shot: at the end of the old key's overlap, or -1
    zactor_t *enroller;                     //  --enrol: asks until the key is admitted (kc_agent_enrol.c)
    zactor_t *checker;                      //  cache integrity checks,
    bool checking;                          //  one asked for and not yet answered
    zloop_t *loop;
    const char *connect [2];                //  snapshot, updates endpoints (into connect_text:
    char connect_text [2][KC_ROOT_ENDPOINT_MAX + 1];   //  the root in force may change)
    char member [KC_ROOT_OPERATOR_NAME_MAX + 1];   //  the root's server followed (by name;
                                            //  "": the first), one of a cluster's members
    kc_follow_upstream_t mirrors [AGENT_MIRRORS_MAX];   //  --mirror: followed instead of
    size_t mirror_count, mirror;            //  the root's servers; the one in use
    size_t head_signer;                     //  the server whose head key verified the last head
    bool halfway;                           //  half the staleness window passed without a head:
                                            //  moved to another member (agent_next_member)
    uint64_t member_moves;                  //  since the start
    uint64_t cold_syncs;                    //  syncs from seq 0 (a new cache), since the start

    //  A sync in progress (kc_follow_syncing)
    bool cold;                              //  from 0: build a new cache file
    uint64_t sync_from, sync_seq;           //  start, last verified
    uint8_t sync_chain [KC_HASH_BYTES];
    uint64_t sync_batches, sync_records;
    kc_keyindex_t *cold_index;              //  a cold sync's records, checked as they come,
    kc_arena_t *cold_bytes;                 //  pointing into its batches, kept here;
    kc_root_t *sync_start;                  //  the pinned root it started from,
    kc_cache_roots_t cold_roots;            //  and the root changes it met
    agent_history_t *cold_history;          //  and its last entries, for the history
    size_t cold_count;                      //  batches in the index
    zhashx_t *cold_grants;                  //  and the grants it met: hex key -> s_cold_grant_t
    int64_t sync_started, sync_progressed;  //  zclock_mono: started, last BATCHES taken
    struct _agent_group_t *group;           //  entries applied in the open transaction
    int stale_timer, ack_timer;             //  one-shot zloop timers, or -1
    int64_t head_written;                   //  zclock_mono: last head written to the cache
    uint64_t head_written_seq;

    //  Freshness
    agent_state_t state;
    int64_t last_fresh;                     //  zclock_mono of the last matching head
    uint64_t last_head_time;                //  newest head time accepted
    uint64_t last_channel_time;             //  newest on the update channel: replays
    bool has_head;
    kc_head_t head;
    int64_t clock_offset_ms;                //  server's clock minus ours, last head
    bool clock_warned;                      //  said the clocks differ too much
    int64_t root_warned;                    //  zclock_mono: last root expiry warning
    kc_ratelog_t *log;                      //  warnings about what peers send, bounded

    //  Witnesses (docs/protocol.md 9)
    kc_witness_view_t *witnesses;           //  cosignatures counted for this copy
    uint64_t cosigs_counted, cosigs_refused;    //  cosignatures received
    uint64_t cosigs_forked;                 //  naming another chain at a seq we hold
    bool witness_short;                     //  stale because too few witnesses cosigned
    //  Equivocation proofs: two heads, each signed by a server's head key,
    //  for one seq with different chains; that head key is refused
    kc_head_t proof [2];
    size_t proofs;                          //  kept (the last one in proof)
    uint8_t refused_head_key [KC_KEY_BYTES];
    bool refusing;
    char refused_server [KC_ROOT_OPERATOR_NAME_MAX + 1];
    //  --witness: this agent cosigns the heads its copy ends at
    kc_cosigner_t *witness;

    //  Acknowledgements
    bool ack_pending;
    int64_t last_ack;

    //  Counters
    uint64_t applied, rejected, resyncs, rebuilds;
    uint64_t rejected_by [KC_REASONS];      //  rejected, by class of reason (kc_metrics.h)
    uint64_t zap_allowed, zap_denied;       //  the local ZAP service's answers
    uint64_t server_seq_hint;               //  the highest seq a verified head named
    bool behind;                            //  the last head was behind the cache,
    uint64_t server_behind;                 //  at this seq
    int64_t progress_logged;                //  zclock_mono of the last sync progress line
    uint64_t last_sync_from, last_sync_batches, last_sync_records;
    int64_t last_sync_ms;                   //  duration of the last completed sync
    int64_t last_build_ms;                  //  of which building a new cache file
    int64_t started;                        //  zclock_mono at start
    int64_t caught_up_ms;                   //  start to the first completed sync; -1 before
};

//  The server this agent follows in root: the member it chose, by name
//  (a cluster's members are all servers of the root), or the first.
static inline const kc_root_server_t *
agent_member_in (const agent_t *self, const kc_root_t *root)
{
    for (size_t i = 0; *self->member && i < kc_root_server_count (root); i++) {
        if (KC_STREQ (kc_root_server (root, i)->name, self->member)) {
            return kc_root_server (root, i);
        }
    }
    return kc_root_server (root, 0);
}

//  The server it follows in the root in force.
static inline const kc_root_server_t *
agent_member (const agent_t *self)
{
    return agent_member_in (self, self->root);
}

//  Entries of one UPDATE or BATCHES written in one transaction.
struct _agent_group_t {
    bool open;                              //  a transaction (update entries)
    kc_batch_t *batches [KC_PROTO_BATCHES_MAX * 4];
    uint64_t seqs [KC_PROTO_BATCHES_MAX * 4];
    bool *known [KC_PROTO_BATCHES_MAX * 4]; //  per record: the key was in the cache
    size_t count;
    kc_root_t *before;                      //  the root in force before a change in the group
    uint64_t root_seq;                      //  the last root change's seq
};
typedef struct _agent_group_t agent_group_t;

//  kc_agent_connect.c: whom the agent follows and how it gets through
int
    agent_parse_mirrors (agent_t *self);    //  --mirror; 0, or -1 having said why
void
    agent_use_mirror (agent_t *self);       //  follow mirror self->mirror (its key only)
bool
    agent_can_move (const agent_t *self);   //  several members or mirrors, none pinned
void
    agent_learn_followed_key (agent_t *self);   //  ROOT.followed names a newer server key
//  (Re)connects kc_follow to connect_text with the server key in use; why
//  is logged. 0, or -1 having said why.
int
    agent_connect_server (agent_t *self, const char *why);
//  The same with the node's key as its file holds it now.
int
    agent_reconnect (agent_t *self, const char *why);
bool
    agent_reconnect_needed (agent_t *self, bool *changed);  //  another key, or refused
int
    agent_reconnect_as_asked (agent_t *self, bool changed);
//  RECONNECT (ops.reconnect): at once, later (at most every 2 s), or none.
int
    agent_reconnect_asked (agent_t *self, const char **action, int64_t *in_ms);
int
    agent_next_member (agent_t *self, const char *why);     //  another member or mirror, at random
int
    agent_next_server_key (agent_t *self);  //  a handshake failed: another key the roots name
//  Reads one event of kc_follow's handshake monitor: a refusal of this
//  node's key (connect again later, with back-off), a protocol failure,
//  one that did not complete. Sets key_failed when another key may help.
int
    agent_read_monitor (zloop_t *loop, zsock_t *socket, void *arg);
void
    agent_arm_old_key (agent_t *self);      //  the old key's files go at its overlap's end
//  KEY.next registered and in force: it becomes the node's key, and the
//  agent connects with it.
void
    agent_take_next_key (agent_t *self);
//  --enrol answered (REGISTERED or REJECTED): a zloop reader.
int
    agent_on_enrolled (zloop_t *loop, zsock_t *socket, void *arg);

//  kc_agent_sync.c: a sync's messages, from kc_follow
void
    agent_free_cold (agent_t *self);        //  what a sync from 0 holds until END
//  A sync's BATCHES: verified, applied (or indexed, from 0). 0, or -1 with
//  a reason (the caller rebuilds a damaged cache).
int
    agent_sync_batches (agent_t *self, const kc_proto_msg_t *msg, kc_why_t *why);
//  The END of a sync, whose counts and (seq, chain) kc_follow checked: its
//  head's signature and time; a sync from 0 builds the new cache file. 0,
//  1 (not timely: the batches are kept, fresh at the next head), -1 with a
//  reason, -2 when the cache cannot be opened again.
int
    agent_sync_end (agent_t *self, const kc_proto_msg_t *msg, kc_why_t *why);

//  kc_agent_apply.c: entries checked and written to the cache
//  Each verifies one entry following (prev_seq, prev_chain) under root, the
//  root in force at its seq: a batch (view: no copy, the caller keeps the
//  bytes), a grant (known, revoked: the state of its key), a registration
//  by grant (against the grant's state; cold: keys are looked up in the
//  cold sync's index), a root change (the successor of root). What it
//  decodes, or NULL with a reason.
kc_batch_t *
    agent_verify_entry (const kc_entry_t *entry, uint64_t prev_seq, const uint8_t prev_chain [static KC_HASH_BYTES],
                        bool view, const kc_root_t *root, kc_why_t *why);
kc_grant_t *
    agent_verify_grant_entry (const kc_entry_t *entry, uint64_t prev_seq,
                              const uint8_t prev_chain [static KC_HASH_BYTES], const kc_root_t *root, bool known,
                              bool revoked, kc_why_t *why);
kc_batch_t *
    agent_verify_use_entry (agent_t *self, bool cold, const kc_entry_t *entry, uint64_t prev_seq,
                            const uint8_t prev_chain [static KC_HASH_BYTES], const kc_grant_t *grant, uint64_t used,
                            bool revoked, kc_why_t *why);
kc_root_t *
    agent_verify_root_entry (const kc_entry_t *entry, uint64_t prev_seq,
                             const uint8_t prev_chain [static KC_HASH_BYTES], const kc_root_t *current,
                             kc_why_t *why);
//  The grant key a grant or a registration by grant names, or NULL.
const uint8_t *
    agent_grant_key_of (const kc_entry_t *entry);
//  Applies msg's entries after the cache's seq inside the open transaction
//  (group). 0, or -1 with a reason (the caller rolls back).
int
    agent_apply_entries (agent_t *self, const kc_proto_msg_t *msg, agent_group_t *group, kc_why_t *why);
//  Commits the transaction and emits its events. 0, or -1 (logged, rolled
//  back; the caller rebuilds a damaged cache).
int
    agent_commit_group (agent_t *self, agent_group_t *group);
void
    agent_group_abort (agent_t *self, agent_group_t *group);    //  rolled back: the root as before
void
    agent_group_clear (agent_group_t *group);
//  A root names the server's CURVE key: it goes first in those the agent
//  connects with (a kc_cache_current_root callback; arg: the agent).
void
    agent_learn_server_key (const kc_root_t *root, void *arg);
void
    agent_note_head_key (agent_t *self, const kc_root_t *before);   //  a head key rotated: the old one
void
    agent_store_head_keys (agent_t *self);  //  the root in force's, for kc_lookup_check_head
void
    agent_root_changed (agent_t *self, uint64_t seq);   //  logged, witnesses, an event
void
    agent_share_cache (agent_t *self);      //  the cache files get the configured group

//  kc_agent_service.c: the local service, the event stream, the state
int
    agent_service_bind (agent_t *self);
int
    agent_on_local (zloop_t *loop, zsock_t *socket, void *arg);
void
    agent_event (agent_t *self, const char *event, const uint8_t *key, const char *name,
                 uint64_t seq);
void
    agent_head_event (agent_t *self, const kc_head_t *head);
const char *
    agent_state_name (agent_state_t state);
//  The agent's state changes (why: said when it goes stale): logged, and
//  an event (stale, fresh). Nothing when it is in that state already.
void
    agent_set_state (agent_t *self, agent_state_t state, const char *why);
//  A warning about what a server sent, rate-limited by its first words.
void
    agent_warn (agent_t *self, const char *format, ...) KC_PRINTF (2, 3);

//  kc_agent_witness.c: witnesses and proofs of equivocation (docs/protocol.md 9)
void
    agent_witness_extend (agent_t *self);   //  the cache moved: remember (seq, chain)
void
    agent_take_cosigs (agent_t *self, const uint8_t *const *cosigs, size_t count);
int64_t
    agent_witness_left (agent_t *self);     //  ms the witnesses still vouch (INT64_MAX: none needed)
void
    agent_witness_shortfall (agent_t *self, char *text, size_t size);
void
    agent_load_proof (agent_t *self);       //  a proof kept by an earlier run
bool
    agent_refused (agent_t *self, const uint8_t head_key [static KC_KEY_BYTES]);
int
    agent_witness_start (agent_t *self);    //  --witness: load the key, connect
void
    agent_witness_connect (agent_t *self);  //  the root's servers changed
void
    agent_witness_stop (agent_t *self);
void
    agent_witness_keep_floor (agent_t *self);   //  the copy is about to be rebuilt
void
    agent_cosign (agent_t *self, const kc_head_t *head);   //  a head naming our copy came
void
    agent_witness_json (agent_t *self, FILE *out);      //  STATUS fields
void
    agent_witness_text (agent_t *self, FILE *human);    //  STATUS lines
//  A proof of equivocation (two heads), from the local service's PROOF (ops.take_proof):
//  checked against the root in force, kept and its server refused when it
//  holds. Returns 0, or -1 with a reason.
int
    agent_take_proof (agent_t *self, const kc_head_t *a, const kc_head_t *b, const char *source,
                      kc_why_t *why);

//  kc_agent_enrol.c: the enrolment of --enrol NAME, asked in its own thread;
//  it sends "REGISTERED" seq or "REJECTED" reason, then waits for $TERM
zactor_t *
    agent_enrol_new (agent_t *self);

#endif
