/*  =========================================================================
    kc_raft - one cluster member's consensus engine. See the header.

    Threads: the owner's (kc_raft_new, _apply, _applied, _ask_status,
    _destroy, reading events) and the engine's (libuv, libraft, the
    transport, writing events). They share the request queue and the
    answer to the ENTRY being applied, under one mutex; the engine is woken
    by a uv_async, the owner by its events socket.
    =========================================================================
*/
#include "kc_raft.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

typedef enum { S_APPLY, S_STATUS, S_MEMBERS, S_STOP } s_kind_t;

typedef struct _s_request_t s_request_t;
struct _s_request_t {
    s_request_t *next;
    kc_raft_t *engine;
    s_kind_t kind;
    uint64_t tag;
    struct raft_apply apply;            //  S_APPLY, while libraft has it
    struct raft_buffer buffer;          //  raft_malloc'd, padded; libraft's once applied
    kc_raft_member_t members [KC_RAFT_MEMBERS_MAX];     //  S_MEMBERS
    size_t count;
};

struct _kc_raft_t {
    //  Set before the thread starts, then read-only
    raft_id id;
    char *dir;
    char address [KC_RAFT_ADDRESS_MAX + 1];
    kc_raft_member_t members [KC_RAFT_MEMBERS_MAX];
    size_t count;
    unsigned election_ms, heartbeat_ms;
    const kc_cert_t *cert;              //  the owner's, during the start only
    zsock_t *events;                    //  the owner's end
    zsock_t *sender;                    //  the engine's end
    pthread_t thread;
    //  Shared, under lock
    pthread_mutex_t lock;
    pthread_cond_t changed;
    s_request_t *queue, *queue_tail;
    bool started;                       //  the thread finished starting (see start_rc)
    int start_rc;
    kc_why_t start_why;
    uint64_t waiting_index;             //  the ENTRY the engine waits on
    bool answered, answer_ok;
    bool stopping;
    //  The engine thread's own
    uv_loop_t loop;
    uv_async_t async;
    struct raft raft;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft_uv_transport transport;
    bool raft_up, io_up, transport_up;
    int (*io_start) (struct raft_io *, unsigned, raft_io_tick_cb, raft_io_recv_cb);
    raft_io_tick_cb raft_tick;          //  libraft's, called from s_on_tick
    kc_raft_member_t voters [KC_RAFT_MEMBERS_MAX];  //  a first start's configuration
    size_t voter_count;                 //  (0: joining, no bootstrap)
    struct raft_change change;          //  the membership change in flight,
    bool changing;                      //  libraft does one at a time
    struct raft_transfer transfer;      //  a leader no longer listed hands over
    raft_id said_who;                   //  the last change s_reconcile logged, so a
    int said_rc;                        //  change refused at every tick is said once
    int sent_state;                     //  in the last STATUS (s_status_changed)
    raft_id sent_leader;
    raft_term sent_term;
};

//  --- Engine thread ------------------------------------------------------------

static int
s_fsm_apply (struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    kc_raft_t *self = fsm->data;
    *result = NULL;
    const uint8_t *entry = buf->base;
    uint64_t size = buf->len >= 8 && buf->len % 8 == 0 ? kc_get_u64 (entry) : UINT64_MAX;
    if (size > buf->len - 8 || buf->len - 8 - size >= 8) {
        zsys_error ("kc_raft: member %llu: a committed entry of %zu bytes is malformed",
                    (unsigned long long) self->id, buf->len);
        return RAFT_MALFORMED;
    }
    uint64_t index = raft_last_applied (&self->raft) + 1;
    pthread_mutex_lock (&self->lock);
    self->waiting_index = index;
    self->answered = false;
    pthread_mutex_unlock (&self->lock);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "ENTRY");
    uint8_t number [8];
    kc_put_u64 (number, index);
    zmsg_addmem (msg, number, 8);
    zmsg_addmem (msg, entry + 8, (size_t) size);
    zmsg_send (&msg, self->sender);
    pthread_mutex_lock (&self->lock);
    while (!self->answered && !self->stopping) {
        pthread_cond_wait (&self->changed, &self->lock);
    }
    bool ok = self->answered && self->answer_ok;
    pthread_mutex_unlock (&self->lock);
    if (!ok) {
        zsys_error ("kc_raft: member %llu: entry %llu was not applied; this member stops applying",
                    (unsigned long long) self->id, (unsigned long long) index);
        return RAFT_SHUTDOWN;
    }
    return 0;
}

static int
s_fsm_snapshot (struct raft_fsm *fsm, struct raft_buffer *bufs [], unsigned *n_bufs)
{
    (void) fsm;
    (void) bufs;
    (void) n_bufs;
    return RAFT_NOTFOUND;               //  no compaction yet: the threshold is never reached
}

static int
s_fsm_restore (struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void) fsm;
    (void) buf;
    return RAFT_MALFORMED;              //  never sent: no member ever takes a snapshot
}

static void
s_add_u64 (zmsg_t *msg, uint64_t value)
{
    uint8_t number [8];
    kc_put_u64 (number, value);
    zmsg_addmem (msg, number, sizeof number);
}

static void
s_send_done (kc_raft_t *self, uint64_t tag, int status, uint64_t index, const char *reason)
{
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader (&self->raft, &leader, &address);
    int32_t code = status;
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "DONE");
    s_add_u64 (msg, tag);
    zmsg_addmem (msg, &code, sizeof code);
    s_add_u64 (msg, index);
    s_add_u64 (msg, leader);
    zmsg_addstr (msg, address ? address : "");
    zmsg_addstr (msg, reason ? reason : "");
    zmsg_send (&msg, self->sender);
}

static void
s_applied_cb (struct raft_apply *apply, int status, void *result)
{
    (void) result;
    s_request_t *request = apply->data;
    s_send_done (request->engine, request->tag, status, status ? 0 : apply->index,
                 status ? raft_strerror (status) : NULL);
    free (request);
}

static void
s_send_status (kc_raft_t *self)
{
    static const char *states [] = { "unavailable", "follower", "candidate", "leader" };
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader (&self->raft, &leader, &address);
    int state = raft_state (&self->raft);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "STATUS");
    zmsg_addstr (msg, state >= 0 && state <= 3 ? states [state] : "unavailable");
    s_add_u64 (msg, leader);
    zmsg_addstr (msg, address ? address : "");
    s_add_u64 (msg, self->raft.current_term);
    s_add_u64 (msg, raft_last_index (&self->raft));
    s_add_u64 (msg, raft_last_applied (&self->raft));
    s_add_u64 (msg, kc_raft_transport_refused (&self->transport));
    zmsg_send (&msg, self->sender);
}

//  The leader brings libraft's configuration to the member list, one
//  change at a time: a member not in it is added (as a spare), then made a
//  voter; a voter no longer listed is removed. Called on a new list, when
//  this member becomes leader, after each change and at each tick.
static void s_reconcile (kc_raft_t *self);

static void
s_changed_cb (struct raft_change *change, int status)
{
    kc_raft_t *self = change->data;
    self->changing = false;
    if (status) {
        zsys_warning ("kc_raft: member %llu: a membership change failed: %s", (unsigned long long) self->id,
                      raft_strerror (status));
    }
    s_reconcile (self);
}

static void
s_transferred_cb (struct raft_transfer *transfer)
{
    kc_raft_t *self = transfer->data;
    self->changing = false;
}

static bool
s_listed (const kc_raft_t *self, raft_id id)
{
    for (size_t i = 0; i < self->count; i++) {
        if (self->members [i].id == id) {
            return true;
        }
    }
    return false;
}

static void
s_reconcile (kc_raft_t *self)
{
    //  Only on what is known committed: a new leader that has not applied
    //  it yet would take a member out that a root change already added
    if (!self->raft_up || self->changing || raft_state (&self->raft) != RAFT_LEADER
    ||  raft_last_applied (&self->raft) < self->raft.commit_index) {
        return;
    }
    const struct raft_configuration *configuration = &self->raft.configuration;
    self->change.data = self;
    int rc = 0;
    const char *what = NULL;
    raft_id who = 0;
    for (size_t i = 0; i < self->count && !what; i++) {
        const struct raft_server *server = NULL;
        for (unsigned j = 0; j < configuration->n; j++) {
            server = configuration->servers [j].id == self->members [i].id ? &configuration->servers [j] : server;
        }
        who = self->members [i].id;
        if (!server) {
            what = "adding";
            rc = raft_add (&self->raft, &self->change, who, self->members [i].address, s_changed_cb);
        }
        else
        if (server->role != RAFT_VOTER) {
            what = "making a voter of";
            rc = raft_assign (&self->raft, &self->change, who, RAFT_VOTER, s_changed_cb);
        }
    }
    for (unsigned j = 0; j < configuration->n && !what; j++) {
        who = configuration->servers [j].id;
        if (!s_listed (self, who) && who != self->id) {
            what = "removing";
            rc = raft_remove (&self->raft, &self->change, who, s_changed_cb);
        }
    }
    if (!what && self->count && !s_listed (self, self->id)) {
        //  This leader is being removed: another voter leads, and removes it
        what = "handing the leadership over before removing";
        who = self->id;
        self->transfer.data = self;
        rc = raft_transfer (&self->raft, &self->transfer, 0, s_transferred_cb);
    }
    if (what) {
        self->changing = rc == 0;
        if (rc == 0 || who != self->said_who || rc != self->said_rc) {
            zsys_info ("kc_raft: member %llu (leader): %s member %llu%s%s", (unsigned long long) self->id, what,
                       (unsigned long long) who, rc ? ": " : "", rc ? raft_strerror (rc) : "");
        }
        self->said_who = who;
        self->said_rc = rc;
    }
}

//  A STATUS whenever role, leader or term changed: checked at each of
//  libraft's own ticks (every heartbeat), so the owner learns of an
//  election within a heartbeat without asking, and is not woken otherwise.
static void
s_on_tick (struct raft_io *io)
{
    kc_raft_t *self = (kc_raft_t *) ((char *) io - offsetof (kc_raft_t, io));
    self->raft_tick (io);
    if (!self->raft_up) {
        return;
    }
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader (&self->raft, &leader, &address);
    int state = raft_state (&self->raft);
    s_reconcile (self);
    if (state != self->sent_state || leader != self->sent_leader || self->raft.current_term != self->sent_term) {
        self->sent_state = state;
        self->sent_leader = leader;
        self->sent_term = self->raft.current_term;
        s_send_status (self);
    }
}

static int
s_io_start (struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    kc_raft_t *self = (kc_raft_t *) ((char *) io - offsetof (kc_raft_t, io));
    self->raft_tick = tick;
    return self->io_start (io, msecs, s_on_tick, recv);
}

static void
s_raft_closed (struct raft *raft)
{
    kc_raft_t *self = raft->data;
    if (self->io_up) {
        raft_uv_close (&self->io);
        self->io_up = false;
    }
    uv_close ((uv_handle_t *) &self->async, NULL);
}

//  Runs what the owner asked for, in order.
static void
s_on_async (uv_async_t *async)
{
    kc_raft_t *self = async->data;
    pthread_mutex_lock (&self->lock);
    s_request_t *request = self->queue;
    self->queue = self->queue_tail = NULL;
    pthread_mutex_unlock (&self->lock);
    while (request) {
        s_request_t *next = request->next;
        if (request->kind == S_APPLY && !self->raft_up) {
            s_send_done (self, request->tag, RAFT_SHUTDOWN, 0, "the member is stopping");
            raft_free (request->buffer.base);
            free (request);
        }
        else
        if (request->kind == S_APPLY) {
            request->apply.data = request;
            int rc = raft_apply (&self->raft, &request->apply, &request->buffer, 1, s_applied_cb);
            if (rc) {
                s_send_done (self, request->tag, rc, 0, raft_errmsg (&self->raft));
                raft_free (request->buffer.base);
                free (request);
            }
        }
        else
        if (request->kind == S_STATUS) {
            if (self->raft_up) {
                s_send_status (self);
            }
            free (request);
        }
        else
        if (request->kind == S_MEMBERS) {
            kc_why_t why;
            if (kc_raft_transport_set_members (&self->transport, request->members, request->count, &why)) {
                zsys_error ("kc_raft: member %llu: the new member list is refused: %s",
                            (unsigned long long) self->id, why.text);
            }
            else {
                memcpy (self->members, request->members, request->count * sizeof *request->members);
                self->count = request->count;
                s_reconcile (self);
            }
            free (request);
        }
        else {
            free (request);
            if (self->raft_up) {
                self->raft_up = false;
                raft_close (&self->raft, s_raft_closed);
            }
        }
        request = next;
    }
}

//  Sets everything up in the engine thread. 0, or -1 with a reason (and
//  whatever was started is stopped again by running the loop out).
static int
s_start (kc_raft_t *self, kc_why_t *why)
{
    uv_loop_init (&self->loop);             //  the thread runs it out whatever happens next
    uv_async_init (&self->loop, &self->async, s_on_async);
    self->async.data = self;
    if (mkdir (self->dir, 0700) && errno != EEXIST) {
        kc_why (why, "cannot make the Raft directory %.200s: %s", self->dir, strerror (errno));
        uv_close ((uv_handle_t *) &self->async, NULL);
        return -1;
    }
    if (kc_raft_transport_init (&self->transport, &self->loop, self->cert, self->members, self->count, why)) {
        uv_close ((uv_handle_t *) &self->async, NULL);
        return -1;
    }
    self->transport_up = true;          //  with its own copy of the key pair
    self->fsm.version = 1;
    self->fsm.data = self;
    self->fsm.apply = s_fsm_apply;
    self->fsm.snapshot = s_fsm_snapshot;
    self->fsm.restore = s_fsm_restore;
    int rc = raft_uv_init (&self->io, &self->loop, self->dir, &self->transport);
    if (rc) {
        kc_why (why, "Raft directory %.200s: %s", self->dir, self->io.errmsg);
        uv_close ((uv_handle_t *) &self->async, NULL);
        return -1;
    }
    self->io_up = true;
    self->io_start = self->io.start;
    self->io.start = s_io_start;
    self->sent_state = -1;
    rc = raft_init (&self->raft, &self->io, &self->fsm, self->id, self->address);
    if (rc) {
        kc_why (why, "raft_init: %s", raft_strerror (rc));
        raft_uv_close (&self->io);
        self->io_up = false;
        uv_close ((uv_handle_t *) &self->async, NULL);
        return -1;
    }
    self->raft.data = self;
    self->raft_up = true;
    struct raft_configuration configuration;
    raft_configuration_init (&configuration);
    for (size_t i = 0; i < self->voter_count && rc == 0; i++) {
        rc = raft_configuration_add (&configuration, self->voters [i].id, self->voters [i].address, RAFT_VOTER);
    }
    if (rc == 0 && self->voter_count) {
        rc = raft_bootstrap (&self->raft, &configuration);
        rc = rc == RAFT_CANTBOOTSTRAP ? 0 : rc;     //  not a first start
    }
    raft_configuration_close (&configuration);
    if (self->election_ms) {
        raft_set_election_timeout (&self->raft, self->election_ms);
    }
    if (self->heartbeat_ms) {
        raft_set_heartbeat_timeout (&self->raft, self->heartbeat_ms);
    }
    raft_set_snapshot_threshold (&self->raft, UINT32_MAX);
    if (rc == 0) {
        rc = raft_start (&self->raft);
    }
    if (rc) {
        kc_why (why, "member %llu cannot start: %s", (unsigned long long) self->id, raft_errmsg (&self->raft));
        self->raft_up = false;
        raft_close (&self->raft, s_raft_closed);
        return -1;
    }
    return 0;
}

static void *
s_engine (void *arg)
{
    kc_raft_t *self = arg;
    sigset_t signals;
    sigfillset (&signals);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);    //  signals are the owner's to take
    kc_why_t why;
    kc_why_clear (&why);
    int rc = s_start (self, &why);
    pthread_mutex_lock (&self->lock);
    self->started = true;
    self->start_rc = rc;
    self->start_why = why;
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
    uv_run (&self->loop, UV_RUN_DEFAULT);           //  until everything is closed
    if (self->transport_up) {
        kc_raft_transport_close (&self->transport);
    }
    uv_loop_close (&self->loop);
    return NULL;
}

//  --- The owner's side ---------------------------------------------------------

static void
s_enqueue (kc_raft_t *self, s_request_t *request)
{
    pthread_mutex_lock (&self->lock);
    if (self->queue_tail) {
        self->queue_tail->next = request;
    }
    else {
        self->queue = request;
    }
    self->queue_tail = request;
    pthread_mutex_unlock (&self->lock);
    uv_async_send (&self->async);
}

static void
s_free (kc_raft_t *self)
{
    while (self->queue) {
        s_request_t *next = self->queue->next;
        raft_free (self->queue->buffer.base);
        free (self->queue);
        self->queue = next;
    }
    zsock_destroy (&self->events);
    zsock_destroy (&self->sender);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->changed);
    free (self->dir);
    free (self);
}

kc_raft_t *
kc_raft_new (const kc_raft_config_t *config, kc_why_t *why)
{
    assert (config && config->dir && config->cert && config->members);
    if (config->count == 0 || config->count > KC_RAFT_MEMBERS_MAX) {
        return kc_why (why, "a cluster has 1 to %d members, not %zu", KC_RAFT_MEMBERS_MAX, config->count), NULL;
    }
    const kc_raft_member_t *me = NULL;
    for (size_t i = 0; i < config->count; i++) {
        if (config->members [i].id == config->id) {
            me = &config->members [i];
        }
    }
    if (!me || config->id == 0) {
        return kc_why (why, "member %llu is not in the cluster's list", (unsigned long long) config->id), NULL;
    }
    kc_raft_t *self = calloc (1, sizeof *self);
    assert (self);
    self->id = config->id;
    self->dir = strdup (config->dir);
    snprintf (self->address, sizeof self->address, "%s", me->address);
    memcpy (self->members, config->members, config->count * sizeof *config->members);
    self->count = config->count;
    if (!config->join) {
        const kc_raft_member_t *voters = config->voters ? config->voters : config->members;
        self->voter_count = config->voters ? config->voter_count : config->count;
        assert (self->voter_count <= KC_RAFT_MEMBERS_MAX);
        memcpy (self->voters, voters, self->voter_count * sizeof *voters);
    }
    self->election_ms = config->election_ms;
    self->heartbeat_ms = config->heartbeat_ms;
    self->cert = config->cert;          //  kc_raft_new returns after the start
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->changed, NULL);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "@inproc://kc-raft-%p", (void *) self);
    self->events = zsock_new_pair (endpoint);
    endpoint [0] = '>';
    self->sender = zsock_new_pair (endpoint);
    zsock_set_sndhwm (self->sender, 0);
    zsock_set_rcvhwm (self->events, 0);
    if (!self->events || !self->sender || !self->dir) {
        self->cert = NULL;
        s_free (self);
        return kc_why (why, "cannot make the engine's sockets"), NULL;
    }
    if (pthread_create (&self->thread, NULL, s_engine, self)) {
        s_free (self);
        return kc_why (why, "cannot start the engine's thread"), NULL;
    }
    pthread_mutex_lock (&self->lock);
    while (!self->started) {
        pthread_cond_wait (&self->changed, &self->lock);
    }
    int rc = self->start_rc;
    kc_why_t start_why = self->start_why;
    pthread_mutex_unlock (&self->lock);
    if (rc) {
        pthread_join (self->thread, NULL);
        s_free (self);
        if (why) {
            *why = start_why;
        }
        return NULL;
    }
    return self;
}

void
kc_raft_destroy (kc_raft_t **self_p)
{
    assert (self_p);
    kc_raft_t *self = *self_p;
    if (!self) {
        return;
    }
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
    s_request_t *stop = calloc (1, sizeof *stop);
    assert (stop);
    stop->engine = self;
    stop->kind = S_STOP;
    s_enqueue (self, stop);
    pthread_join (self->thread, NULL);
    s_free (self);
    *self_p = NULL;
}

zsock_t *
kc_raft_events (kc_raft_t *self)
{
    assert (self);
    return self->events;
}

int
kc_raft_apply (kc_raft_t *self, uint64_t tag, const void *data, size_t size, kc_why_t *why)
{
    assert (self && (data || size == 0));
    if (size > KC_RAFT_ENTRY_MAX) {
        return kc_why (why, "an entry of %zu bytes (at most %u)", size, KC_RAFT_ENTRY_MAX);
    }
    s_request_t *request = calloc (1, sizeof *request);
    size_t padded = 8 + (size + 7) / 8 * 8;
    uint8_t *buffer = raft_calloc (1, padded);
    if (!request || !buffer) {
        free (request);
        raft_free (buffer);
        return kc_why (why, "out of memory");
    }
    kc_put_u64 (buffer, size);
    if (size) {
        memcpy (buffer + 8, data, size);
    }
    request->engine = self;
    request->kind = S_APPLY;
    request->tag = tag;
    request->buffer.base = buffer;
    request->buffer.len = padded;
    s_enqueue (self, request);
    return 0;
}

void
kc_raft_applied (kc_raft_t *self, uint64_t index, bool ok)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    if (self->waiting_index == index && !self->answered) {
        self->answered = true;
        self->answer_ok = ok;
        pthread_cond_broadcast (&self->changed);
    }
    pthread_mutex_unlock (&self->lock);
}

void
kc_raft_set_members (kc_raft_t *self, const kc_raft_member_t *members, size_t count)
{
    assert (self && count <= KC_RAFT_MEMBERS_MAX);
    s_request_t *request = calloc (1, sizeof *request);
    assert (request);
    request->engine = self;
    request->kind = S_MEMBERS;
    memcpy (request->members, members, count * sizeof *members);
    request->count = count;
    s_enqueue (self, request);
}

void
kc_raft_ask_status (kc_raft_t *self)
{
    assert (self);
    s_request_t *request = calloc (1, sizeof *request);
    assert (request);
    request->engine = self;
    request->kind = S_STATUS;
    s_enqueue (self, request);
}
