/*  =========================================================================
    kc_metrics - Prometheus text exposition, refusal reason classes.
    =========================================================================
*/
#include "kc_metrics.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    const char *words [6];                  //  any of them in the reason text
} s_reasons [KC_REASONS] = {
    [KC_REASON_SIGNATURE] = { "signature", { "bad signature", "not an operator", "not signed", "signature does not" } },
    [KC_REASON_THRESHOLD] = { "threshold", { "threshold" } },
    [KC_REASON_VERSION] = { "version", { "version" } },
    [KC_REASON_REVOKED] = { "revoked", { "revoked" } },
    [KC_REASON_EXPIRED] = { "expired", { "expired" } },
    [KC_REASON_CHAIN] = { "chain", { "chain" } },
    [KC_REASON_SEQUENCE] = { "sequence", { "does not follow", "gap" } },
    [KC_REASON_GRANT] = { "grant", { "grant" } },
    [KC_REASON_MALFORMED] = { "malformed", { "malformed", "truncated", "bad magic", "not a ", "bytes after" } },
    [KC_REASON_OTHER] = { "other", { NULL } }
};

kc_reason_t
kc_reason_class (const char *why)
{
    for (int r = 0; r < KC_REASON_OTHER; r++) {
        for (int w = 0; w < 6 && s_reasons [r].words [w]; w++) {
            if (strstr (why, s_reasons [r].words [w])) {
                return (kc_reason_t) r;
            }
        }
    }
    return KC_REASON_OTHER;
}

const char *
kc_reason_name (kc_reason_t reason)
{
    return reason < KC_REASONS ? s_reasons [reason].name : "other";
}

void
kc_metric (kc_metrics_t *self, const char *name, const char *type, const char *help, const char *labels,
           double value)
{
    FILE *out = self->out;
    if (strcmp (self->last, name)) {
        fprintf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
        snprintf (self->last, sizeof self->last, "%s", name);
    }
    if (value == (double) (long long) value) {
        fprintf (out, "%s%s%s%s %lld\n", name, *labels ? "{" : "", labels, *labels ? "}" : "", (long long) value);
    }
    else {
        fprintf (out, "%s%s%s%s %.6f\n", name, *labels ? "{" : "", labels, *labels ? "}" : "", value);
    }
}

void
kc_metrics_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_metrics: ");
    }
    assert (kc_reason_class ("bad signature by operator alice (1234ABCD)") == KC_REASON_SIGNATURE);
    assert (kc_reason_class ("signature threshold 2 not met (1 valid)") == KC_REASON_THRESHOLD);
    assert (kc_reason_class ("batch 7: chain hash does not match") == KC_REASON_CHAIN);
    assert (kc_reason_class ("grant 1234ABCD is used up (3 uses)") == KC_REASON_GRANT);
    assert (kc_reason_class ("something new") == KC_REASON_OTHER);
    assert (KC_STREQ (kc_reason_name (KC_REASON_EXPIRED), "expired"));
    char *text = NULL;
    size_t size = 0;
    kc_metrics_t m = { .out = open_memstream (&text, &size) };
    kc_metric (&m, "kc_test_total", "counter", "A test.", "reason=\"chain\"", 3);
    kc_metric (&m, "kc_test_total", "counter", "A test.", "reason=\"grant\"", 1);
    kc_metric (&m, "kc_test_seconds", "gauge", "Seconds.", "", 0.25);
    fclose (m.out);
    assert (KC_STREQ (text, "# HELP kc_test_total A test.\n# TYPE kc_test_total counter\n"
                            "kc_test_total{reason=\"chain\"} 3\nkc_test_total{reason=\"grant\"} 1\n"
                            "# HELP kc_test_seconds Seconds.\n# TYPE kc_test_seconds gauge\n"
                            "kc_test_seconds 0.250000\n"));
    free (text);
    if (verbose) {
        printf ("OK\n");
    }
}
