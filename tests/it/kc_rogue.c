/*  =========================================================================
    kc_rogue - a malicious or broken clone server for the agent's tests. It
    binds the real snapshot and updates endpoints of a keyclone directory
    (the real server stopped) and serves one kind of bad data:

        wrong-key      a CURVE key other than the root's: no handshake
        forged         a batch with a corrupted operator signature
        rollback       an operator-signed record with a lower version
        replay         an old batch of the real log, re-sent with a new seq
        broken-chain   a valid new batch with the wrong chain hash
        bad-head       heads and END signed by a key that is not the root's
        rolled-back    heads saying the log is shorter than the agent's cache
        old-heads      the real log's head, replayed: signed with the real head
                       key but with a time from before the rogue started (older
                       than what the agent accepted), still "valid" for minutes
        forked-head    a validly signed head for the agent's own sequence that
                       names another chain (equivocation)
        late-end       the real log, honestly, but the sync's END head is signed
                       20 minutes ago (an agent that was slow to read it): the
                       agent must keep the verified batches, just not be fresh
        withhold       the real log without its last batch, with fresh heads
                       for that shorter log (hiding, e.g., a revocation)
        extend         the real log and then BATCH_FILE (a genuine, operator-
                       signed batch) as the next entry, correctly chained, with
                       fresh heads: run two on other endpoints with two batches
                       and two agents see two histories (a split view). The
                       file may be a registration by grant instead (made with
                       'keyclone enrol --token --out'): one the grant does not
                       allow (used up, forged) is what the server cannot mint
        replay-snapshot  to a sync from 0, the real log's first batch again
                       and again (seq 1, 2, 3, ... with correct chain hashes),
                       one copy per credit, up to 1,000 copies: a cold sync
                       that would hold them all until END

    As the compromised server it holds the server's own keys and, for the
    rollback scenario, an operator key (a stolen operator key can sign, but
    not make versions go backwards). Runs until SIGTERM.

    Witness cosignatures, as the best a compromised server can do with them:
    it appends to every HEAD and END the cosignatures in the file named by
    $KC_ROGUE_COSIGS (181 bytes each, captured from the real server's heads
    before, e.g., the revocation it now withholds) and the newest one each
    witness sent it (COSIGN, each logged as "cosign from KEY for seq N").

    As a rogue mirror: $KC_ROGUE_CURVE names the CURVE key (secret file) to
    serve with, $KC_ROGUE_SNAPSHOT and $KC_ROGUE_UPDATES the endpoints.

    Usage: kc_rogue DIR SCENARIO [BATCH_FILE [SNAPSHOT_EP UPDATES_EP]]
    =========================================================================
*/
#include "kc_all.h"

#include <sodium.h>

typedef struct {
    const char *scenario;
    kc_root_t *root;
    kc_signer_t *head_signer;
    kc_signer_t *forger;                    //  signs heads in bad-head
    kc_signer_t *operator;
    kc_store_t *store;                      //  the real log, read only
    uint64_t seq;
    uint8_t chain [KC_HASH_BYTES];
    kc_batch_t *bad;                        //  the entry served at seq + 1, or
    kc_grant_use_t *bad_use;                //  a registration by grant served there
    uint8_t bad_chain [KC_HASH_BYTES];
    uint64_t started;                       //  kc_now_ms at start
    const char *batch_file;                 //  extend: the batch served next
    kc_batch_t *copy;                       //  replay-snapshot: the batch replayed
    uint64_t copies;                        //  and how many copies went out
    uint8_t copy_chain [KC_HASH_BYTES];
    uint8_t cosigs [KC_PROTO_COSIGS_MAX][KC_COSIG_BYTES];   //  appended to heads
    size_t cosig_count;
} s_rogue_t;

//  Appends the cosignatures held to a HEAD or END.
static zmsg_t *
s_cosigned (s_rogue_t *self, zmsg_t *msg)
{
    for (size_t i = 0; i < self->cosig_count; i++) {
        kc_proto_add_cosig (msg, self->cosigs [i]);
    }
    return msg;
}

//  A witness's COSIGN: logged and kept (replacing that witness's last).
static void
s_take_cosign (s_rogue_t *self, const uint8_t *bytes)
{
    kc_cosig_t cosig;
    kc_why_t why;
    if (kc_cosig_decode (bytes, KC_COSIG_BYTES, &cosig, &why)) {
        return;
    }
    char fp [KC_FINGERPRINT_CHARS + 1];
    printf ("kc_rogue: cosign from %s for seq %llu\n", kc_fingerprint (cosig.witness, fp),
            (unsigned long long) cosig.seq);
    fflush (stdout);
    size_t slot = self->cosig_count;
    for (size_t i = 0; i < self->cosig_count; i++) {
        if (memcmp (self->cosigs [i] + 5, cosig.witness, KC_KEY_BYTES) == 0) {
            slot = i;
        }
    }
    if (slot < KC_PROTO_COSIGS_MAX) {
        memcpy (self->cosigs [slot], bytes, KC_COSIG_BYTES);
        self->cosig_count += slot == self->cosig_count;
    }
}

#define COPIES_MAX  1000

static kc_batch_t *
s_signed (s_rogue_t *self, const uint8_t *key, uint64_t version, const char *name)
{
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (self->root), kc_now ());
    kc_record_spec_t spec = { .key = key, .version = version, .status = KC_STATUS_ACTIVE,
                              .name = name };
    kc_why_t why;
    kc_batch_t *batch = NULL;
    if (kc_batch_builder_add (builder, &spec, &why) == 0) {
        batch = kc_batch_builder_finish (builder, &self->operator, 1, &why);
    }
    kc_batch_builder_destroy (&builder);
    return batch;
}

static int
s_first_batch (uint64_t seq, const uint8_t *chain, const uint8_t *data, size_t size,
               uint64_t accepted, const uint8_t *submitter, void *arg)
{
    (void) accepted;
    (void) submitter;
    (void) seq;
    (void) chain;
    *(kc_batch_t **) arg = kc_batch_decode (data, size, NULL);
    return -1;
}

static int
s_take_chain (uint64_t seq, const uint8_t *chain, const uint8_t *data, size_t size,
              uint64_t accepted, const uint8_t *submitter, void *arg)
{
    (void) accepted;
    (void) submitter;
    (void) seq;
    (void) data;
    (void) size;
    memcpy (arg, chain, KC_HASH_BYTES);
    return 0;
}

//  Sets self->chain to the chain after batch seq of the real log.
static void
s_chain_at (s_rogue_t *self, uint64_t seq)
{
    kc_why_t why;
    kc_store_read (self->store, seq - 1, 1, 64 << 20, s_take_chain, self->chain, &why);
}

//  Prepares the bad entry for the scenario; returns 0 or -1.
static int
s_prepare (s_rogue_t *self)
{
    uint8_t key [32];
    randombytes_buf (key, sizeof key);
    const char *s = self->scenario;
    kc_why_t why;
    if (KC_STREQ (s, "forged")) {
        kc_batch_t *good = s_signed (self, key, kc_now_ms () * 1000, "forged");
        size_t size;
        const uint8_t *data = kc_batch_data (good, &size);
        uint8_t *copy = malloc (size);
        memcpy (copy, data, size);
        copy [size - 1] ^= 0x01;            //  last byte of the signature
        self->bad = kc_batch_decode (copy, size, &why);
        free (copy);
        kc_batch_destroy (&good);
    }
    else
    if (KC_STREQ (s, "rollback")) {
        //  The first key the real log registered, at version 1
        kc_batch_t *first = NULL;
        if (kc_store_read (self->store, 0, 1, 1 << 20, s_first_batch, &first, &why) < 0 || !first) {
            return -1;
        }
        self->bad = s_signed (self, kc_batch_record (first, 0)->key, 1, "rolled-back");
        kc_batch_destroy (&first);
    }
    else
    if (KC_STREQ (s, "replay")) {
        if (kc_store_read (self->store, 0, 1, 1 << 20, s_first_batch, &self->bad, &why) < 0) {
            return -1;
        }
    }
    else
    if (KC_STREQ (s, "replay-snapshot")) {
        if (kc_store_read (self->store, 0, 1, 64 << 20, s_first_batch, &self->copy, &why) < 0
        ||  !self->copy) {
            return -1;
        }
    }
    else
    if (KC_STREQ (s, "extend")) {
        size_t size = 0;
        uint8_t *data = self->batch_file ? kc_file_read (self->batch_file, KC_BATCH_BYTES_MAX, false, &size, &why)
                                         : NULL;
        if (data && kc_grant_is_use (data, size)) {
            self->bad_use = kc_grant_use_decode (data, size, &why);
        }
        else
        if (data) {
            self->bad = kc_batch_decode (data, size, &why);
        }
        kc_file_free (&data, false);
        if (!self->bad && !self->bad_use) {
            return -1;
        }
        if (self->bad_use) {
            kc_chain_next_signed (self->chain, self->seq + 1, self->bad_use->digest,
                                  self->bad_use->data + self->bad_use->body_size,
                                  self->bad_use->size - self->bad_use->body_size, self->bad_chain);
        }
    }
    else
    if (KC_STREQ (s, "withhold")) {
        //  Pretend the log ends one batch earlier: its chain is that batch's
        //  predecessor's, read from the batch before it
        if (self->seq < 2) {
            return -1;
        }
        s_chain_at (self, self->seq - 1);
        self->seq--;
    }
    else
    if (KC_STREQ (s, "broken-chain")) {
        self->bad = s_signed (self, key, kc_now_ms () * 1000, "broken-chain");
    }
    if (self->bad) {
        kc_chain_next (self->chain, self->seq + 1, self->bad, self->bad_chain);
        if (KC_STREQ (s, "broken-chain")) {
            self->bad_chain [0] ^= 0xff;
        }
    }
    return 0;
}

static void
s_head (s_rogue_t *self, kc_head_t *head)
{
    memset (head, 0, sizeof *head);
    memcpy (head->directory, kc_root_directory (self->root), KC_HASH_BYTES);
    bool rolled = KC_STREQ (self->scenario, "rolled-back");
    bool bad = self->bad || self->bad_use;
    head->seq = bad ? self->seq + 1 : rolled ? self->seq - 1 : self->seq;
    memcpy (head->chain, bad ? self->bad_chain : self->chain, KC_HASH_BYTES);
    head->time = kc_now_ms ();
    head->valid_until = head->time + 5000;
    if (KC_STREQ (self->scenario, "old-heads")) {
        head->time = self->started - 10000;
        head->valid_until = self->started + 600000;
    }
    if (KC_STREQ (self->scenario, "forked-head")) {
        head->chain [0] ^= 0x5a;
    }
    kc_head_sign (head, KC_STREQ (self->scenario, "bad-head") ? self->forger : self->head_signer);
}

static void
s_add_bad (s_rogue_t *self, zmsg_t *msg)
{
    size_t size = self->bad_use ? self->bad_use->size : 0;
    const uint8_t *data = self->bad_use ? self->bad_use->data : kc_batch_data (self->bad, &size);
    kc_proto_add_entry (msg, self->seq + 1, self->bad_chain, data, size);
}

//  replay-snapshot: sends the next copies of the batch, one per credit;
//  after COPIES_MAX, the END that would make the agent keep them all.
static void
s_send_copies (s_rogue_t *self, zsock_t *snapshot, zframe_t *identity, uint32_t credit)
{
    size_t size;
    const uint8_t *data = kc_batch_data (self->copy, &size);
    for (uint32_t i = 0; i < credit && self->copies < COPIES_MAX; i++) {
        self->copies++;
        kc_chain_next (self->copy_chain, self->copies, self->copy, self->copy_chain);
        zmsg_t *msg = kc_proto_entries ("BATCHES");
        kc_proto_add_entry (msg, self->copies, self->copy_chain, data, size);
        zframe_t *copy = zframe_dup (identity);
        zmsg_prepend (msg, &copy);
        zmsg_send (&msg, snapshot);
    }
    if (self->copies == COPIES_MAX) {
        kc_head_t head = { .seq = self->copies, .time = kc_now_ms () };
        head.valid_until = head.time + 5000;
        memcpy (head.directory, kc_root_directory (self->root), KC_HASH_BYTES);
        memcpy (head.chain, self->copy_chain, KC_HASH_BYTES);
        kc_head_sign (&head, self->head_signer);
        zmsg_t *msg = s_cosigned (self, kc_proto_end (self->copies, self->copies * kc_batch_count (self->copy), &head));
        zframe_t *copy = zframe_dup (identity);
        zmsg_prepend (msg, &copy);
        zmsg_send (&msg, snapshot);
        self->copies++;
    }
}

typedef struct {
    zmsg_t *msg;
    uint64_t batches, records;
} s_fill_t;

static int
s_fill (uint64_t seq, const uint8_t *chain, const uint8_t *data, size_t size,
        uint64_t accepted, const uint8_t *submitter, void *arg)
{
    (void) accepted;
    (void) submitter;
    s_fill_t *fill = arg;
    kc_proto_add_entry (fill->msg, seq, chain, data, size);
    fill->batches++;
    fill->records += kc_batch_peek_count (data, size);
    return 0;
}

//  late-end: the real batches after from, then an END whose head is old.
static void
s_late_end (s_rogue_t *self, zsock_t *snapshot, zframe_t *identity, uint64_t from)
{
    s_fill_t fill = { kc_proto_entries ("BATCHES"), 0, 0 };
    kc_why_t why;
    if (from < self->seq
    &&  kc_store_read (self->store, from, KC_PROTO_BATCHES_MAX, 16 << 20, s_fill, &fill, &why) > 0) {
        zframe_t *copy = zframe_dup (identity);
        zmsg_prepend (fill.msg, &copy);
        zmsg_send (&fill.msg, snapshot);
    }
    zmsg_destroy (&fill.msg);
    kc_head_t head = { .seq = from + fill.batches, .time = kc_now_ms () - 20 * 60 * 1000 };
    head.valid_until = head.time + 5000;
    memcpy (head.directory, kc_root_directory (self->root), KC_HASH_BYTES);
    memcpy (head.chain, self->chain, KC_HASH_BYTES);
    kc_head_sign (&head, self->head_signer);
    zmsg_t *end = s_cosigned (self, kc_proto_end (fill.batches, fill.records, &head));
    zframe_t *copy = zframe_dup (identity);
    zmsg_prepend (end, &copy);
    zmsg_send (&end, snapshot);
}

static void
s_on_sync (s_rogue_t *self, zsock_t *snapshot, zframe_t *identity, kc_proto_msg_t *sync)
{
    if (KC_STREQ (self->scenario, "late-end")) {
        s_late_end (self, snapshot, identity, sync->seq);
        return;
    }
    if (self->copy) {
        self->copies = 0;
        kc_chain_genesis (kc_root_directory (self->root), self->copy_chain);
        if (sync->seq == 0) {
            s_send_copies (self, snapshot, identity, sync->credit);
        }
        return;
    }
    zmsg_t *reply;
    uint64_t batches = 0, records = 0;
    //  A sync from below its seq gets the real log up to there (without
    //  what it withholds), then what the scenario serves
    if (sync->seq < self->seq) {
        s_fill_t fill = { kc_proto_entries ("BATCHES"), 0, 0 };
        kc_why_t why;
        size_t count = self->seq - sync->seq < KC_PROTO_BATCHES_MAX ? self->seq - sync->seq : KC_PROTO_BATCHES_MAX;
        if (kc_store_read (self->store, sync->seq, count, 16 << 20, s_fill, &fill, &why) > 0) {
            zframe_t *copy = zframe_dup (identity);
            zmsg_prepend (fill.msg, &copy);
            zmsg_send (&fill.msg, snapshot);
            batches = fill.batches;
            records = fill.records;
        }
        zmsg_destroy (&fill.msg);
    }
    if ((self->bad || self->bad_use) && sync->seq + batches == self->seq) {
        reply = kc_proto_entries ("BATCHES");
        s_add_bad (self, reply);
        zframe_t *copy = zframe_dup (identity);
        zmsg_prepend (reply, &copy);
        zmsg_send (&reply, snapshot);
        batches++;
        records += self->bad ? kc_batch_count (self->bad) : 0;
    }
    kc_head_t head;
    s_head (self, &head);
    reply = s_cosigned (self, kc_proto_end (batches, records, &head));
    zframe_t *copy = zframe_dup (identity);
    zmsg_prepend (reply, &copy);
    zmsg_send (&reply, snapshot);
}

int
main (int argc, char *argv [])
{
    if ((argc != 3 && argc != 4 && argc != 6) || sodium_init () < 0) {
        fprintf (stderr, "usage: kc_rogue DIR SCENARIO [BATCH_FILE [SNAPSHOT_EP UPDATES_EP]]\n");
        return 2;
    }
    char path [4096];
    kc_why_t why;
    s_rogue_t self = { .scenario = argv [2], .started = kc_now_ms (),
                       .batch_file = argc > 3 ? argv [3] : NULL };
    snprintf (path, sizeof path, "%s/root", argv [1]);
    self.root = kc_root_load (path, &why);
    snprintf (path, sizeof path, "%s/server/curve", argv [1]);
    //  A rogue mirror serves with a key of its own (agents pin it in --mirror)
    const char *curve = getenv ("KC_ROGUE_CURVE");
    kc_cert_t *cert = KC_STREQ (self.scenario, "wrong-key") ? kc_cert_new ("rogue")
                                                           : kc_cert_load_secret (curve ? curve : path, &why);
    snprintf (path, sizeof path, "%s/server/head", argv [1]);
    self.head_signer = kc_signer_load (path, &why);
    snprintf (path, sizeof path, "%s/operators/op1", argv [1]);
    self.operator = kc_signer_load (path, &why);
    self.forger = kc_signer_new ("forger", "keyclone-head");
    snprintf (path, sizeof path, "%s/server/store.db", argv [1]);
    self.store = self.root ? kc_store_open (path, self.root, &why) : NULL;
    if (!self.root || !cert || !self.head_signer || !self.operator || !self.store) {
        fprintf (stderr, "kc_rogue: %s\n", why.text);
        return 1;
    }
    const char *cosigs = getenv ("KC_ROGUE_COSIGS");
    if (cosigs) {
        size_t size;
        uint8_t *data = kc_file_read (cosigs, sizeof self.cosigs, false, &size, &why);
        if (!data || size % KC_COSIG_BYTES) {
            fprintf (stderr, "kc_rogue: %s: not whole cosignatures\n", cosigs);
            return 1;
        }
        memcpy (self.cosigs, data, size);
        self.cosig_count = size / KC_COSIG_BYTES;
        kc_file_free (&data, false);
    }
    self.seq = kc_store_seq (self.store);
    memcpy (self.chain, kc_store_chain (self.store), KC_HASH_BYTES);
    if (s_prepare (&self)) {
        fprintf (stderr, "kc_rogue: cannot prepare %s\n", self.scenario);
        return 1;
    }
    zsock_t *snapshot = zsock_new (ZMQ_ROUTER), *updates = zsock_new (ZMQ_PUB);
    zsock_t *sockets [2] = { snapshot, updates };
    for (int i = 0; i < 2; i++) {
        zsock_set_curve_server (sockets [i], 1);
        kc_cert_apply (cert, sockets [i]);
        const char *bind = getenv (i ? "KC_ROGUE_UPDATES" : "KC_ROGUE_SNAPSHOT");
        const char *endpoint = argc == 6 ? argv [4 + i] : bind ? bind
                             : kc_root_endpoint (self.root, (kc_endpoint_t) i);
        if (zsock_bind (sockets [i], "%s", endpoint) < 0) {
            fprintf (stderr, "kc_rogue: cannot bind\n");
            return 1;
        }
    }
    printf ("kc_rogue: serving '%s' at seq %llu\n", self.scenario, (unsigned long long) self.seq);
    fflush (stdout);
    zpoller_t *poller = zpoller_new (snapshot, NULL);
    int64_t next_publish = 0;
    while (!zsys_interrupted) {
        if (zclock_mono () >= next_publish && !self.copy && !KC_STREQ (self.scenario, "late-end")) {
            if (self.bad || self.bad_use) {
                zmsg_t *update = kc_proto_entries ("UPDATE");
                s_add_bad (&self, update);
                zmsg_send (&update, updates);
            }
            kc_head_t head;
            s_head (&self, &head);
            zmsg_t *msg = s_cosigned (&self, kc_proto_head (&head));
            zmsg_send (&msg, updates);
            next_publish = zclock_mono () + 200;
        }
        if (!zpoller_wait (poller, 50)) {
            continue;
        }
        zmsg_t *msg = zmsg_recv (snapshot);
        zframe_t *identity = msg ? zmsg_pop (msg) : NULL;
        kc_proto_msg_t decoded;
        if (msg && kc_proto_decode (msg, KC_CHANNEL_SNAPSHOT_SERVER, &decoded, &why) == 0) {
            if (decoded.type == KC_MSG_SYNC) {
                s_on_sync (&self, snapshot, identity, &decoded);
            }
            else
            if (decoded.type == KC_MSG_CREDIT && self.copy && self.copies) {
                s_send_copies (&self, snapshot, identity, decoded.credit);
            }
            else
            if (decoded.type == KC_MSG_COSIGN) {
                s_take_cosign (&self, decoded.cosigs [0]);
            }
            kc_proto_msg_reset (&decoded);
        }
        zframe_destroy (&identity);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&snapshot);
    zsock_destroy (&updates);
    kc_batch_destroy (&self.bad);
    kc_grant_use_destroy (&self.bad_use);
    kc_batch_destroy (&self.copy);
    kc_store_destroy (&self.store);
    kc_signer_destroy (&self.forger);
    kc_signer_destroy (&self.operator);
    kc_signer_destroy (&self.head_signer);
    kc_cert_destroy (&cert);
    kc_root_destroy (&self.root);
    return 0;
}
