/*  =========================================================================
    kc_metrics - the Prometheus text exposition format (version 0.0.4) for
    the daemons' METRICS replies, and the classes of refusal reasons that
    label the rejected-entry counters.
    =========================================================================
*/
#ifndef KC_METRICS_H_INCLUDED
#define KC_METRICS_H_INCLUDED

#include "kc_util.h"
#include <stdio.h>

//  Classes of why an entry was refused (a bounded label set).
typedef enum {
    KC_REASON_SIGNATURE, KC_REASON_THRESHOLD, KC_REASON_VERSION, KC_REASON_REVOKED,
    KC_REASON_EXPIRED, KC_REASON_CHAIN, KC_REASON_SEQUENCE, KC_REASON_GRANT, KC_REASON_MALFORMED,
    KC_REASON_OTHER, KC_REASONS
} kc_reason_t;

//  The class of a refusal's reason text, and its label value.
kc_reason_t
    kc_reason_class (const char *why);
const char *
    kc_reason_name (kc_reason_t reason);

//  A reply being written: the stream, and the metric written last.
typedef struct {
    FILE *out;
    char last [128];
} kc_metrics_t;

//  Writes one sample: "# HELP" and "# TYPE" lines before the first sample
//  of a metric (its name differs from the one written last), then
//  "name{labels} value". labels is "" or 'key="value",...' made of fixed
//  words, numbers and hex only.
void
    kc_metric (kc_metrics_t *self, const char *name, const char *type, const char *help, const char *labels,
               double value);

//  Self test of this module.
void
    kc_metrics_test (bool verbose);

#endif
