/*  =========================================================================
    kc_burst - a pipelined submitter for tests and benchmarks: signs N
    batches of R fresh keys up front, then submits them over one CURVE DEALER
    with a bounded window in flight, optionally paced, and reports what the
    server acknowledged.

    Usage: kc_burst --root ROOT --operator SECRET [--server EP] --batches N
                    [--records R] [--window W] [--rate BATCHES_PER_S]
                    [--prefix NAME] [--keys-out FILE] [--acks-out FILE]
                    [--revoke-keys FILE] [--timeout MS]
    Prints one JSON object. Exit 0 if every batch was acknowledged.
    =========================================================================
*/
#include "kc_all.h"

#include <getopt.h>
#include <sodium.h>

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

typedef struct {
    const char *root_path, *operator_path, *server, *prefix, *keys_out, *acks_out, *revoke_keys;
    long batches, records, window, rate, timeout_ms;
} s_options_t;

static int
s_options (int argc, char *argv [], s_options_t *o)
{
    static const struct option longs [] = {
        { "root", required_argument, NULL, 'r' }, { "operator", required_argument, NULL, 'o' },
        { "server", required_argument, NULL, 's' }, { "batches", required_argument, NULL, 'n' },
        { "records", required_argument, NULL, 'R' }, { "window", required_argument, NULL, 'w' },
        { "rate", required_argument, NULL, 'x' }, { "prefix", required_argument, NULL, 'p' },
        { "keys-out", required_argument, NULL, 'k' }, { "acks-out", required_argument, NULL, 'a' },
        { "revoke-keys", required_argument, NULL, 'V' }, { "timeout", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 }
    };
    *o = (s_options_t) { .prefix = "burst", .batches = 1, .records = 1, .window = 64,
                         .timeout_ms = 30000 };
    int c;
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'r': o->root_path = optarg; break;
            case 'o': o->operator_path = optarg; break;
            case 's': o->server = optarg; break;
            case 'n': o->batches = atol (optarg); break;
            case 'R': o->records = atol (optarg); break;
            case 'w': o->window = atol (optarg); break;
            case 'x': o->rate = atol (optarg); break;
            case 'p': o->prefix = optarg; break;
            case 'k': o->keys_out = optarg; break;
            case 'a': o->acks_out = optarg; break;
            case 'V': o->revoke_keys = optarg; break;
            case 't': o->timeout_ms = atol (optarg); break;
            default: return -1;
        }
    }
    if (!o->root_path || !o->operator_path || o->batches < 1 || o->records < 1
    ||  o->records > KC_BATCH_RECORDS_MAX || o->window < 1) {
        fprintf (stderr, "kc_burst: --root, --operator, --batches >= 1, --records 1..%d needed\n",
                 KC_BATCH_RECORDS_MAX);
        return -1;
    }
    return 0;
}

//  Revocations of keys listed in a file (one Z85 per line), batched.
static kc_batch_t **
s_revocations (const s_options_t *o, const kc_root_t *root, kc_signer_t *signer, long *count)
{
    FILE *file = fopen (o->revoke_keys, "r");
    if (!file) {
        return NULL;
    }
    char line [128];
    long n = 0, capacity = 64;
    kc_batch_t **batches = calloc ((size_t) capacity, sizeof (kc_batch_t *));
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), kc_now ());
    kc_why_t why;
    uint64_t version = (uint64_t) kc_now_ms () * 1000000;
    while (fgets (line, sizeof line, file)) {
        line [strcspn (line, "\r\n")] = 0;
        uint8_t key [32];
        if (kc_z85_key (line, key, &why)) {
            continue;
        }
        kc_record_spec_t spec = { .key = key, .version = version++, .status = KC_STATUS_REVOKED,
                                  .reason = "kc_burst" };
        if (kc_batch_builder_add (builder, &spec, &why) == 0
        &&  (long) kc_batch_builder_count (builder) == o->records) {
            if (n == capacity) {
                capacity *= 2;
                batches = realloc (batches, (size_t) capacity * sizeof (kc_batch_t *));
            }
            batches [n++] = kc_batch_builder_finish (builder, &signer, 1, &why);
            kc_batch_builder_destroy (&builder);
            builder = kc_batch_builder_new (kc_root_directory (root), kc_now ());
        }
    }
    if (kc_batch_builder_count (builder)) {
        if (n == capacity) {
            batches = realloc (batches, (size_t) (capacity + 1) * sizeof (kc_batch_t *));
        }
        batches [n++] = kc_batch_builder_finish (builder, &signer, 1, &why);
    }
    kc_batch_builder_destroy (&builder);
    fclose (file);
    *count = n;
    return batches;
}

static kc_batch_t **
s_registrations (const s_options_t *o, const kc_root_t *root, kc_signer_t *signer, FILE *keys)
{
    kc_batch_t **batches = calloc ((size_t) o->batches, sizeof (kc_batch_t *));
    kc_why_t why;
    char name [64], z85 [KC_Z85_KEY_CHARS + 1];
    uint64_t version = (uint64_t) kc_now_ms () * 1000;
    for (long b = 0; b < o->batches; b++) {
        kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), kc_now ());
        for (long r = 0; r < o->records; r++) {
            uint8_t key [32];
            randombytes_buf (key, sizeof key);
            snprintf (name, sizeof name, "%s-%ld", o->prefix, b * o->records + r);
            kc_record_spec_t spec = { .key = key, .version = version++,
                                      .status = KC_STATUS_ACTIVE, .name = name };
            if (kc_batch_builder_add (builder, &spec, &why)) {
                fprintf (stderr, "kc_burst: %s\n", why.text);
                exit (1);
            }
            if (keys) {
                fprintf (keys, "%s %s\n", kc_z85_encode (key, 32, z85), name);
            }
        }
        batches [b] = kc_batch_builder_finish (builder, &signer, 1, &why);
        kc_batch_builder_destroy (&builder);
    }
    return batches;
}

int
main (int argc, char *argv [])
{
    s_options_t o;
    if (s_options (argc, argv, &o) || sodium_init () < 0) {
        return 2;
    }
    kc_why_t why;
    kc_root_t *root = kc_root_load (o.root_path, &why);
    kc_signer_t *signer = root ? kc_signer_load (o.operator_path, &why) : NULL;
    if (!signer) {
        fprintf (stderr, "kc_burst: %s\n", why.text);
        return 1;
    }
    FILE *keys = o.keys_out ? fopen (o.keys_out, "w") : NULL;
    kc_batch_t **batches = NULL;
    long count = o.batches;
    if (o.revoke_keys) {
        batches = s_revocations (&o, root, signer, &count);
    }
    else {
        batches = s_registrations (&o, root, signer, keys);
    }
    if (keys) {
        fclose (keys);
    }
    if (!batches) {
        fprintf (stderr, "kc_burst: cannot read %s\n", o.revoke_keys);
        return 1;
    }
    FILE *acks = o.acks_out ? fopen (o.acks_out, "w") : NULL;
    if (acks) {
        setvbuf (acks, NULL, _IOLBF, 0);        //  each ack on disk at once
    }
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    kc_cert_t *cert = kc_cert_new (NULL);
    kc_cert_apply (cert, dealer);
    //  --server names one of the root's servers (a cluster's member): its key
    const uint8_t *server_key = kc_root_server_key (root);
    for (size_t i = 0; o.server && i < kc_root_server_count (root); i++) {
        if (KC_STREQ (o.server, kc_root_server (root, i)->endpoints [KC_ENDPOINT_SUBMIT])) {
            server_key = kc_root_server (root, i)->server_key;
        }
    }
    zsock_set_curve_serverkey_bin (dealer, server_key);
    zsock_set_sndhwm (dealer, 0);
    zsock_connect (dealer, "%s", o.server ? o.server : kc_root_endpoint (root, KC_ENDPOINT_SUBMIT));
    int64_t start = zclock_usecs ();
    long sent = 0, answered = 0, accepted = 0, errors = 0;
    //  Replies come in the order of the submissions (one server, group
    //  commits answered in order): each one's latency from its send time
    int64_t *sent_at = calloc ((size_t) count, sizeof *sent_at);
    double *latency_ms = calloc ((size_t) count, sizeof *latency_ms);
    assert (sent_at && latency_ms);
    uint64_t first_seq = 0, last_seq = 0;
    zpoller_t *poller = zpoller_new (dealer, NULL);
    while (answered < count && !zsys_interrupted) {
        //  Send while the window and the pacing allow
        while (sent < count && sent - answered < o.window
           && (!o.rate || sent < (zclock_usecs () - start) * o.rate / 1000000 + 1)) {
            size_t size;
            const uint8_t *data = kc_batch_data (batches [sent], &size);
            zmsg_t *msg = kc_proto_submit (data, size);
            sent_at [sent] = zclock_usecs ();
            zmsg_send (&msg, dealer);
            sent++;
        }
        int wait = sent < count && sent - answered < o.window ? 1 : (int) o.timeout_ms;
        if (!zpoller_wait (poller, wait)) {
            if (zpoller_expired (poller) && wait == o.timeout_ms) {
                fprintf (stderr, "kc_burst: no reply for %ld ms\n", o.timeout_ms);
                break;
            }
            continue;
        }
        zmsg_t *reply = zmsg_recv (dealer);
        kc_proto_msg_t decoded;
        if (reply && kc_proto_decode (reply, KC_CHANNEL_SUBMIT_CLIENT, &decoded, &why) == 0) {
            if (decoded.type == KC_MSG_OK) {
                accepted++;
                first_seq = first_seq && first_seq < decoded.seq ? first_seq : decoded.seq;
                last_seq = decoded.seq > last_seq ? decoded.seq : last_seq;
                if (acks) {
                    fprintf (acks, "%llu\n", (unsigned long long) decoded.seq);
                }
            }
            else {
                if (errors++ < 5) {
                    fprintf (stderr, "kc_burst: %.*s\n", (int) decoded.text_size, decoded.text);
                }
            }
            kc_proto_msg_reset (&decoded);
        }
        latency_ms [answered] = (double) (zclock_usecs () - sent_at [answered]) / 1000.0;
        answered++;
        zmsg_destroy (&reply);
    }
    qsort (latency_ms, (size_t) answered, sizeof *latency_ms, s_compare);
    double p50 = answered ? latency_ms [answered / 2] : 0;
    double p99 = answered ? latency_ms [(answered * 99) / 100 < answered ? (answered * 99) / 100 : answered - 1] : 0;
    free (sent_at);
    free (latency_ms);
    double seconds = (double) (zclock_usecs () - start) / 1e6;
    printf ("{\"batches\": %ld, \"records\": %ld, \"accepted\": %ld, \"errors\": %ld, "
            "\"seconds\": %.3f, \"batches_per_s\": %.0f, \"first_seq\": %llu, \"last_seq\": %llu, "
            "\"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
            count, o.revoke_keys ? 0 : count * o.records, accepted, errors, seconds,
            (double) answered / seconds, (unsigned long long) first_seq, (unsigned long long) last_seq, p50, p99);
    if (acks) {
        fclose (acks);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
    kc_cert_destroy (&cert);
    for (long i = 0; i < count; i++) {
        kc_batch_destroy (&batches [i]);
    }
    free (batches);
    kc_signer_destroy (&signer);
    kc_root_destroy (&root);
    return accepted == count ? 0 : 1;
}
