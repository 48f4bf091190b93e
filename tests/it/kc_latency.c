/*  =========================================================================
    kc_latency - register-to-applied latency probe for benchmarks: signs N
    single-record registrations up front, then submits them one at a time;
    each is timed from just before its SUBMIT is sent until every agent's
    event stream (ipc://DIR/events.ipc, topic "registered") has reported
    its key. The next is sent only after that (plus --gap-ms). The first
    --warmup registrations are not counted; the last of them must reach
    every agent, which proves every subscription is live.

    Usage: kc_latency --root ROOT --operator SECRET --events EP [--events EP
                      ...] [--count N] [--warmup W] [--gap-ms MS]
                      [--timeout MS] [--samples FILE]
    Prints one JSON object (milliseconds). Exit 0 if every registration was
    accepted and reached every agent within --timeout.
    =========================================================================
*/
#include "kc_all.h"

#include <getopt.h>
#include <sodium.h>

#define AGENTS_MAX 256

typedef struct {
    const char *root_path, *operator_path, *samples_path;
    const char *events [AGENTS_MAX];
    int agents;
    long count, warmup, gap_ms, timeout_ms;
} s_options_t;

typedef struct {
    double all, first, ack;                 //  ms after the send; < 0 if never
} s_sample_t;

static int
s_options (int argc, char *argv [], s_options_t *o)
{
    static const struct option longs [] = {
        { "root", required_argument, NULL, 'r' }, { "operator", required_argument, NULL, 'o' },
        { "events", required_argument, NULL, 'e' }, { "count", required_argument, NULL, 'n' },
        { "warmup", required_argument, NULL, 'w' }, { "gap-ms", required_argument, NULL, 'g' },
        { "timeout", required_argument, NULL, 't' }, { "samples", required_argument, NULL, 's' },
        { NULL, 0, NULL, 0 }
    };
    *o = (s_options_t) { .count = 200, .warmup = 5, .timeout_ms = 5000 };
    int c;
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'r': o->root_path = optarg; break;
            case 'o': o->operator_path = optarg; break;
            case 'e':
                if (o->agents == AGENTS_MAX) {
                    return -1;
                }
                o->events [o->agents++] = optarg;
                break;
            case 'n': o->count = atol (optarg); break;
            case 'w': o->warmup = atol (optarg); break;
            case 'g': o->gap_ms = atol (optarg); break;
            case 't': o->timeout_ms = atol (optarg); break;
            case 's': o->samples_path = optarg; break;
            default: return -1;
        }
    }
    if (!o->root_path || !o->operator_path || !o->agents || o->count < 1 || o->warmup < 1
    ||  o->gap_ms < 0 || o->timeout_ms < 1) {
        fprintf (stderr, "kc_latency: --root, --operator, --events (1..%d), --count >= 1 and "
                 "--warmup >= 1 needed\n", AGENTS_MAX);
        return -1;
    }
    return 0;
}

//  Single-record registrations of fresh keys; keys [i] is the Z85 of batch i.
static kc_batch_t **
s_registrations (const kc_root_t *root, kc_signer_t *signer, long count,
                 char (*keys) [KC_Z85_KEY_CHARS + 1])
{
    kc_batch_t **batches = calloc ((size_t) count, sizeof (kc_batch_t *));
    assert (batches);
    uint64_t version = (uint64_t) kc_now_ms () * 1000;
    kc_why_t why;
    for (long i = 0; i < count; i++) {
        uint8_t key [32];
        char name [64];
        randombytes_buf (key, sizeof key);
        snprintf (name, sizeof name, "latency-%ld-%llu", i, (unsigned long long) version);
        kc_record_spec_t spec = { .key = key, .version = version + (uint64_t) i,
                                  .status = KC_STATUS_ACTIVE, .name = name };
        kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), kc_now ());
        if (kc_batch_builder_add (builder, &spec, &why)) {
            fprintf (stderr, "kc_latency: %s\n", why.text);
            exit (1);
        }
        batches [i] = kc_batch_builder_finish (builder, &signer, 1, &why);
        kc_batch_builder_destroy (&builder);
        kc_z85_encode (key, 32, keys [i]);
    }
    return batches;
}

//  True if the event body names this key.
static bool
s_event_is (zmsg_t *event, const char *key)
{
    zframe_t *body = zmsg_last (event);
    if (!body || zframe_size (body) > 4096) {
        return false;
    }
    char text [4097];
    memcpy (text, zframe_data (body), zframe_size (body));
    text [zframe_size (body)] = 0;
    char wanted [KC_Z85_KEY_CHARS + 16];
    snprintf (wanted, sizeof wanted, "\"key\": \"%s\"", key);
    return strstr (text, wanted) != NULL;
}

//  Submits one batch and waits until it is acknowledged and every agent
//  has reported it. Returns 0, or -1 on a rejection or timeout.
static int
s_one (zsock_t *dealer, zsock_t **subs, int agents, zmq_pollitem_t *items, const kc_batch_t *batch,
       const char *key, long timeout_ms, s_sample_t *sample)
{
    bool seen [AGENTS_MAX] = { false };
    int reported = 0;
    *sample = (s_sample_t) { -1, -1, -1 };
    size_t size;
    const uint8_t *data = kc_batch_data (batch, &size);
    zmsg_t *submit = kc_proto_submit (data, size);
    int64_t start = zclock_usecs ();
    zmsg_send (&submit, dealer);
    while (reported < agents || sample->ack < 0) {
        long left = timeout_ms - (long) ((zclock_usecs () - start) / 1000);
        if (left <= 0 || zmq_poll (items, agents + 1, left) < 0) {
            return -1;
        }
        double ms = (double) (zclock_usecs () - start) / 1000.0;
        if (items [0].revents & ZMQ_POLLIN) {
            zmsg_t *reply = zmsg_recv (dealer);
            kc_proto_msg_t decoded;
            kc_why_t why;
            bool ok = reply && kc_proto_decode (reply, KC_CHANNEL_SUBMIT_CLIENT, &decoded, &why) == 0;
            if (ok && decoded.type != KC_MSG_OK) {
                fprintf (stderr, "kc_latency: rejected: %.*s\n", (int) decoded.text_size, decoded.text);
                ok = false;
            }
            if (ok) {
                kc_proto_msg_reset (&decoded);
            }
            zmsg_destroy (&reply);
            if (!ok) {
                return -1;
            }
            sample->ack = ms;
        }
        for (int i = 0; i < agents; i++) {
            if (!(items [i + 1].revents & ZMQ_POLLIN)) {
                continue;
            }
            zmsg_t *event = zmsg_recv (subs [i]);
            if (event && !seen [i] && s_event_is (event, key)) {
                seen [i] = true;
                if (reported++ == 0) {
                    sample->first = ms;
                }
                sample->all = ms;
            }
            zmsg_destroy (&event);
        }
    }
    return 0;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  Nearest-rank percentile of sorted values.
static double
s_rank (const double *sorted, long count, double p)
{
    long index = (long) (p * (double) count + 0.999999) - 1;
    return sorted [index < 0 ? 0 : index >= count ? count - 1 : index];
}

static void
s_report (const s_options_t *o, const s_sample_t *samples, long lost)
{
    long n = o->count;
    double *all = malloc ((size_t) n * sizeof (double)), *first = malloc ((size_t) n * sizeof (double));
    double *ack = malloc ((size_t) n * sizeof (double));
    assert (all && first && ack);
    double sum = 0;
    for (long i = 0; i < n; i++) {
        all [i] = samples [i].all;
        first [i] = samples [i].first;
        ack [i] = samples [i].ack;
        sum += all [i];
    }
    qsort (all, (size_t) n, sizeof (double), s_compare);
    qsort (first, (size_t) n, sizeof (double), s_compare);
    qsort (ack, (size_t) n, sizeof (double), s_compare);
    printf ("{\"count\": %ld, \"agents\": %d, \"lost\": %ld, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
            "\"p99_ms\": %.3f, \"max_ms\": %.3f, \"mean_ms\": %.3f, \"first_p50_ms\": %.3f, "
            "\"first_p99_ms\": %.3f, \"ack_p50_ms\": %.3f, \"ack_p99_ms\": %.3f}\n",
            n, o->agents, lost, s_rank (all, n, 0.50), s_rank (all, n, 0.90), s_rank (all, n, 0.99),
            all [n - 1], sum / (double) n, s_rank (first, n, 0.50), s_rank (first, n, 0.99),
            s_rank (ack, n, 0.50), s_rank (ack, n, 0.99));
    free (all);
    free (first);
    free (ack);
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
        fprintf (stderr, "kc_latency: %s\n", why.text);
        return 1;
    }
    long total = o.warmup + o.count;
    char (*keys) [KC_Z85_KEY_CHARS + 1] = calloc ((size_t) total, KC_Z85_KEY_CHARS + 1);
    assert (keys);
    kc_batch_t **batches = s_registrations (root, signer, total, keys);
    s_sample_t *samples = calloc ((size_t) total, sizeof (s_sample_t));
    zsock_t *subs [AGENTS_MAX];
    zmq_pollitem_t items [AGENTS_MAX + 1];
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    kc_cert_t *cert = kc_cert_new (NULL);
    assert (samples && dealer && cert);
    kc_cert_apply (cert, dealer);
    zsock_set_curve_serverkey_bin (dealer, kc_root_server_key (root));
    zsock_set_linger (dealer, 0);
    zsock_connect (dealer, "%s", kc_root_endpoint (root, KC_ENDPOINT_SUBMIT));
    items [0] = (zmq_pollitem_t) { .socket = zsock_resolve (dealer), .events = ZMQ_POLLIN };
    for (int i = 0; i < o.agents; i++) {
        subs [i] = zsock_new_sub (o.events [i], "registered");
        assert (subs [i]);
        items [i + 1] = (zmq_pollitem_t) { .socket = zsock_resolve (subs [i]), .events = ZMQ_POLLIN };
    }
    zclock_sleep (300);                     //  let the subscriptions reach the agents
    long lost = 0, warm = 0;
    for (long i = 0; i < total && !zsys_interrupted; i++) {
        int rc = s_one (dealer, subs, o.agents, items, batches [i], keys [i], o.timeout_ms,
                        &samples [i]);
        if (i < o.warmup) {
            warm = rc == 0 ? warm + 1 : 0;  //  the last warm-ups must all arrive
        }
        else
        if (rc) {
            lost++;
            samples [i].all = samples [i].first = (double) o.timeout_ms;
        }
        if (i == o.warmup - 1 && warm == 0) {
            fprintf (stderr, "kc_latency: the last warm-up did not reach every agent\n");
            lost = total;
            break;
        }
        if (o.gap_ms) {
            zclock_sleep ((int) o.gap_ms);
        }
    }
    if (lost < total) {
        s_report (&o, samples + o.warmup, lost);
    }
    if (o.samples_path) {
        FILE *file = fopen (o.samples_path, "w");
        for (long i = o.warmup; file && i < total; i++) {
            fprintf (file, "%.3f %.3f %.3f\n", samples [i].ack, samples [i].first, samples [i].all);
        }
        if (file) {
            fclose (file);
        }
    }
    for (int i = 0; i < o.agents; i++) {
        zsock_destroy (&subs [i]);
    }
    zsock_destroy (&dealer);
    kc_cert_destroy (&cert);
    for (long i = 0; i < total; i++) {
        kc_batch_destroy (&batches [i]);
    }
    free (batches);
    free (keys);
    free (samples);
    kc_signer_destroy (&signer);
    kc_root_destroy (&root);
    return lost ? 1 : 0;
}
