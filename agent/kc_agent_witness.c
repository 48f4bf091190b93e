/*  =========================================================================
    kc_agent_witness - witnesses in the agent (docs/protocol.md section 9):
    the freshness a root with a witness threshold asks for, proofs of
    equivocation, and --witness, the agent as one of the root's witnesses,
    cosigning the heads its own verified copy of the log ends at.
    =========================================================================
*/
#include "kc_agent_internal.h"

#include <sodium.h>

#define PROOF_SUFFIX        ".equivocation" //  the cache path + this: the proof kept
#define FLOOR_SUFFIX        ".witness-floor"    //  the cache path + this: the highest
                                            //  (seq, chain) cosigned, kept over a rebuild


//  --- Freshness from cosignatures -----------------------------------------------

void
agent_witness_extend (agent_t *self)
{
    kc_witness_view_extend (self->witnesses, kc_cache_seq (self->cache), kc_cache_chain (self->cache));
}

void
agent_take_cosigs (agent_t *self, const uint8_t *const *cosigs, size_t count)
{
    uint64_t now = kc_now_ms ();
    for (size_t i = 0; i < count; i++) {
        kc_why_t why;
        kc_cosig_verdict_t verdict = kc_witness_view_add (self->witnesses, cosigs [i], KC_COSIG_BYTES, self->root,
                                                          now, (uint64_t) self->config.clock_skew_ms, &why);
        if (verdict == KC_COSIG_COUNTED) {
            self->cosigs_counted++;
        }
        else
        if (verdict == KC_COSIG_INVALID) {
            self->cosigs_refused++;
            kc_ratelog (self->log, KC_LOG_WARNING, "cosignature refused", "server",
                        "kc_agent: cosignature refused: %s", why.text);
        }
        else
        if (verdict == KC_COSIG_FORK) {
            //  A witness saw another history at a seq this copy holds: the
            //  server shows us a log the witnesses do not see
            self->cosigs_forked++;
            kc_ratelog (self->log, KC_LOG_ERROR, "witness saw another log", "server",
                        "kc_agent: %s: the server shows this node a different log from the witnesses'", why.text);
        }
    }
}

int64_t
agent_witness_left (agent_t *self)
{
    uint64_t until = kc_witness_view_fresh_until (self->witnesses, self->root,
                                                  (uint64_t) self->config.stale_after_ms);
    if (until == UINT64_MAX) {
        return INT64_MAX;
    }
    uint64_t now = kc_now_ms ();
    return until > now ? (int64_t) (until - now) : 0;
}

void
agent_witness_shortfall (agent_t *self, char *text, size_t size)
{
    size_t fresh = kc_witness_view_count (self->witnesses, self->root, kc_now_ms (),
                                          (uint64_t) self->config.stale_after_ms);
    snprintf (text, size, "%zu of the %u witness cosignatures needed within %d ms (the server may be "
              "withholding entries the witnesses have seen)", fresh, kc_root_witness_threshold (self->root),
              self->config.stale_after_ms);
}

//  --- Equivocation proofs ---------------------------------------------------------



static void
s_proof_path (agent_t *self, char *path, size_t size)
{
    snprintf (path, size, "%s%s", self->config.cache_path, PROOF_SUFFIX);
}

//  The server of the root in force whose head key signed both heads, or NULL.
static const kc_root_server_t *
s_signer_of (agent_t *self, const kc_head_t *a, const kc_head_t *b)
{
    for (size_t i = 0; i < kc_root_server_count (self->root); i++) {
        const kc_root_server_t *server = kc_root_server (self->root, i);
        kc_why_t why;
        if (kc_head_verify_signature (a, kc_root_directory (self->root), server->head_key, &why) == 0
        &&  kc_head_verify_signature (b, kc_root_directory (self->root), server->head_key, &why) == 0) {
            return server;
        }
    }
    return NULL;
}

int
agent_take_proof (agent_t *self, const kc_head_t *a, const kc_head_t *b, const char *source, kc_why_t *why)
{
    if (a->seq != b->seq || memcmp (a->chain, b->chain, KC_HASH_BYTES) == 0) {
        return kc_why (why, "not an equivocation: the heads name %s", a->seq != b->seq ? "different seqs"
                       : "the same chain");
    }
    const kc_root_server_t *server = s_signer_of (self, a, b);
    if (!server) {
        return kc_why (why, "not an equivocation: the two heads are not both signed by one head key of "
                       "root v%llu", (unsigned long long) kc_root_version (self->root));
    }
    char hex_a [17], hex_b [17];
    kc_hex (a->chain, 8, hex_a);
    kc_hex (b->chain, 8, hex_b);
    bool known = self->refusing && memcmp (self->refused_head_key, server->head_key, KC_KEY_BYTES) == 0;
    self->proof [0] = *a;
    self->proof [1] = *b;
    self->proofs++;
    memcpy (self->refused_head_key, server->head_key, KC_KEY_BYTES);
    snprintf (self->refused_server, sizeof self->refused_server, "%s", server->name);
    self->refusing = true;
    //  Kept on disk beside the cache, so a restart goes on refusing that
    //  server (delete the file, or rotate its head key, to take it back)
    uint8_t bytes [2 * KC_HEAD_BYTES];
    kc_head_encode (a, bytes);
    kc_head_encode (b, bytes + KC_HEAD_BYTES);
    char path [4096];
    s_proof_path (self, path, sizeof path);
    kc_why_t ignored;
    if (kc_file_write_atomic (path, bytes, sizeof bytes, KC_FILE_MODE_PUBLIC, &ignored)) {
        zsys_error ("kc_agent: cannot keep the proof of equivocation in %s: %s", path, ignored.text);
    }
    if (!known) {
        zsys_error ("kc_agent: server %s EQUIVOCATED (%s): two heads it signed for seq %llu name different "
                    "chains (%s... and %s...); proof kept in %s; refusing that server", server->name, source,
                    (unsigned long long) a->seq, hex_a, hex_b, path);
        agent_event (self, "equivocation", NULL, server->name, a->seq);
    }
    if (agent_refused (self, agent_member (self)->head_key)) {
        agent_set_state (self, AGENT_STALE, "the server equivocated: refused");
    }
    return 0;
}

void
agent_load_proof (agent_t *self)
{
    char path [4096];
    s_proof_path (self, path, sizeof path);
    size_t size = 0;
    kc_why_t why;
    if (!kc_file_exists (path)) {
        return;                             //  none kept
    }
    uint8_t *data = kc_file_read (path, 2 * KC_HEAD_BYTES, false, &size, &why);
    if (!data) {
        zsys_warning ("kc_agent: %s", why.text);
        return;
    }
    kc_head_t a, b;
    if (size != 2 * KC_HEAD_BYTES || kc_head_decode (data, KC_HEAD_BYTES, &a, &why)
    ||  kc_head_decode (data + KC_HEAD_BYTES, KC_HEAD_BYTES, &b, &why)
    ||  agent_take_proof (self, &a, &b, "kept from an earlier run", &why)) {
        zsys_warning ("kc_agent: %s holds no proof of equivocation for root v%llu (%s); ignored", path,
                      (unsigned long long) kc_root_version (self->root), size != 2 * KC_HEAD_BYTES
                      ? "wrong size" : why.text);
    }
    else {
        zsys_warning ("kc_agent: refusing server %s: it equivocated (proof in %s)", self->refused_server, path);
    }
    kc_file_free (&data, false);
}

bool
agent_refused (agent_t *self, const uint8_t head_key [static KC_KEY_BYTES])
{
    return self->refusing && memcmp (self->refused_head_key, head_key, KC_KEY_BYTES) == 0;
}

//  --- The agent as a witness (--witness): lib/kc_cosigner ---------------------------

int
agent_witness_start (agent_t *self)
{
    if (!self->config.witness_path) {
        return 0;
    }
    kc_why_t why;
    char floor [4096];
    snprintf (floor, sizeof floor, "%s%s", self->config.cache_path, FLOOR_SUFFIX);
    self->witness = kc_cosigner_new ("kc_agent", self->config.witness_path, floor, self->log, &why);
    if (!self->witness) {
        zsys_error ("kc_agent: --witness: %s", why.text);
        return -1;
    }
    //  What this witness holds is the floor of what it will ever cosign
    kc_cosigner_set_copy (self->witness, kc_cache_seq (self->cache), kc_cache_chain (self->cache));
    agent_witness_connect (self);
    return 0;
}

void
agent_witness_connect (agent_t *self)
{
    if (self->witness) {
        kc_cosigner_connect (self->witness, self->root, kc_cert_public_key (self->cert), kc_cert_secret_key (self->cert),
                            self->config.connect [0]);
    }
}

void
agent_witness_keep_floor (agent_t *self)
{
    if (self->witness) {
        kc_cosigner_keep_floor (self->witness);
    }
}

void
agent_witness_stop (agent_t *self)
{
    kc_cosigner_destroy (&self->witness);
}

void
agent_cosign (agent_t *self, const kc_head_t *head)
{
    if (self->witness) {
        kc_cosigner_cosign (self->witness, head->directory, kc_cache_seq (self->cache), kc_cache_chain (self->cache));
    }
}

//  --- Status ------------------------------------------------------------------------

void
agent_witness_json (agent_t *self, FILE *out)
{
    uint64_t now = kc_now_ms (), window = (uint64_t) self->config.stale_after_ms;
    size_t count = kc_root_witness_count (self->root);
    char hex [2 * KC_HEAD_BYTES + 1], fp [KC_FINGERPRINT_CHARS + 1];
    fprintf (out, ", \"witness_threshold\": %u, \"witnesses_fresh\": %zu, \"witness_short\": %s",
             kc_root_witness_threshold (self->root), kc_witness_view_count (self->witnesses, self->root, now, window),
             self->witness_short ? "true" : "false");
    kc_json_field_u64 (out, false, "cosignatures", self->cosigs_counted);
    kc_json_field_u64 (out, false, "cosignatures_refused", self->cosigs_refused);
    kc_json_field_u64 (out, false, "cosignatures_forked", self->cosigs_forked);
    fprintf (out, ", \"witnesses\": [");
    for (size_t w = 0; w < count; w++) {
        const kc_witness_t *witness = kc_root_witness (self->root, w);
        uint64_t seq = 0, time = 0;
        for (size_t slot = 0; slot < KC_ROOT_WITNESSES_MAX; slot++) {
            const uint8_t *key = kc_witness_view_key (self->witnesses, slot);
            if (key && memcmp (key, witness->key, KC_KEY_BYTES) == 0) {
                kc_witness_view_get (self->witnesses, slot, &seq, &time);
            }
        }
        fprintf (out, "%s{", w ? ", " : "");
        kc_json_field_str (out, true, "name", witness->name);
        kc_json_field_u64 (out, false, "seq", seq);
        kc_json_field_u64 (out, false, "age_ms", time && now > time ? now - time : 0);
        fprintf (out, ", \"cosigned\": %s}", time ? "true" : "false");
    }
    fprintf (out, "]");
    kc_json_field_u64 (out, false, "equivocations", self->proofs);
    if (self->proofs) {
        fprintf (out, ", \"equivocation\": {");
        kc_json_field_str (out, true, "server", self->refused_server);
        kc_json_field_u64 (out, false, "seq", self->proof [0].seq);
        for (int i = 0; i < 2; i++) {
            uint8_t bytes [KC_HEAD_BYTES];
            kc_head_encode (&self->proof [i], bytes);
            kc_json_field_str (out, false, i ? "head_b" : "head_a", kc_hex (bytes, KC_HEAD_BYTES, hex));
        }
        fprintf (out, "}");
    }
    if (self->witness) {
        fprintf (out, ", \"witness\": {");
        kc_json_field_str (out, true, "key", kc_fingerprint (kc_cosigner_key (self->witness), fp));
        kc_json_field_u64 (out, false, "cosigned", kc_cosigner_cosigned (self->witness));
        kc_json_field_u64 (out, false, "cosigned_seq", kc_cosigner_floor (self->witness));
        kc_json_field_u64 (out, false, "refusals", kc_cosigner_refusals (self->witness));
        fprintf (out, "}");
    }
}

void
agent_witness_text (agent_t *self, FILE *human)
{
    uint64_t now = kc_now_ms (), window = (uint64_t) self->config.stale_after_ms;
    char fp [KC_FINGERPRINT_CHARS + 1];
    if (kc_root_witness_threshold (self->root)) {
        fprintf (human, "  witnesses: %zu of %zu cosigned within %llu ms, %u needed%s\n",
                 kc_witness_view_count (self->witnesses, self->root, now, window),
                 kc_root_witness_count (self->root), (unsigned long long) window,
                 kc_root_witness_threshold (self->root),
                 self->witness_short ? ": STALE (the server may be withholding entries the witnesses saw)" : "");
    }
    if (self->proofs) {
        fprintf (human, "  EQUIVOCATION: server %s signed two heads for seq %llu with different chains; "
                 "refusing it (proof in %s%s)\n", self->refused_server, (unsigned long long) self->proof [0].seq,
                 self->config.cache_path, PROOF_SUFFIX);
    }
    if (self->witness) {
        fprintf (human, "  witness %s: %llu cosignatures sent, up to seq %llu; %llu heads not cosigned\n",
                 kc_fingerprint (kc_cosigner_key (self->witness), fp),
                 (unsigned long long) kc_cosigner_cosigned (self->witness),
                 (unsigned long long) kc_cosigner_floor (self->witness),
                 (unsigned long long) kc_cosigner_refusals (self->witness));
    }
}
