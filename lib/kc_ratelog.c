/*  =========================================================================
    kc_ratelog - rate-limited log lines with per-kind summaries.
    =========================================================================
*/
#include "kc_ratelog.h"

#include <czmq.h>

typedef struct {
    int64_t start;                          //  kc_mono_ms when the window began
    uint32_t logged;                        //  lines logged in this window
    bool suppressing;                       //  counted as a suppressing peer
} s_peer_t;

typedef struct {
    int64_t start;
    uint32_t logged;
    uint64_t suppressed;                    //  in this window
    uint32_t peers;                         //  peers that had lines suppressed
    kc_log_level_t level;
    char last [KC_WHY_BYTES];               //  the last suppressed line
} s_kind_t;

struct _kc_ratelog_t {
    char name [32];
    int period_ms, per_peer, per_kind;
    zhashx_t *peers;                        //  "kind|peer" -> s_peer_t
    zhashx_t *kinds;                        //  kind -> s_kind_t
    uint64_t logged, suppressed;
};

static void
s_free (void **item)
{
    free (*item);
    *item = NULL;
}

kc_ratelog_t *
kc_ratelog_new (const char *name, int period_ms, int per_peer, int per_kind)
{
    kc_ratelog_t *self = calloc (1, sizeof *self);
    assert (self);
    snprintf (self->name, sizeof self->name, "%s", name);
    self->period_ms = period_ms;
    self->per_peer = per_peer;
    self->per_kind = per_kind;
    self->peers = zhashx_new ();
    zhashx_set_destructor (self->peers, s_free);
    self->kinds = zhashx_new ();
    zhashx_set_destructor (self->kinds, s_free);
    return self;
}

static void
s_emit (kc_log_level_t level, const char *text)
{
    if (level == KC_LOG_ERROR) {
        zsys_error ("%s", text);
    }
    else
    if (level == KC_LOG_WARNING) {
        zsys_warning ("%s", text);
    }
    else {
        zsys_info ("%s", text);
    }
}

//  Ends a kind's window: its summary, if it suppressed anything.
static void
s_end_window (kc_ratelog_t *self, const char *kind, s_kind_t *window, int64_t now)
{
    if (window->suppressed) {
        char text [KC_WHY_BYTES + 200];
        snprintf (text, sizeof text, "%s: suppressed %llu similar lines (%s) in %lld s from %u "
                  "peer%s; the last: %s", self->name, (unsigned long long) window->suppressed,
                  kind, (long long) ((now - window->start + 999) / 1000), window->peers,
                  window->peers == 1 ? "" : "s", window->last);
        s_emit (window->level, text);
    }
    window->start = now;
    window->logged = 0;
    window->suppressed = 0;
    window->peers = 0;
}

bool
kc_ratelog (kc_ratelog_t *self, kc_log_level_t level, const char *kind, const char *peer,
            const char *format, ...)
{
    int64_t now = kc_mono_ms ();
    s_kind_t *window = zhashx_lookup (self->kinds, kind);
    if (!window && zhashx_size (self->kinds) >= KC_RATELOG_KINDS_MAX) {
        kind = "other kinds";               //  beyond the limit, kinds share one window
        window = zhashx_lookup (self->kinds, kind);
    }
    if (!window) {
        window = calloc (1, sizeof *window);
        assert (window);
        window->start = now;
        zhashx_insert (self->kinds, kind, window);
    }
    char key [KC_WHY_BYTES];
    snprintf (key, sizeof key, "%.60s|%.120s", kind, peer);
    s_peer_t *entry = zhashx_lookup (self->peers, key);
    if (!entry && zhashx_size (self->peers) < KC_RATELOG_PEERS_MAX) {
        entry = calloc (1, sizeof *entry);
        assert (entry);
        entry->start = now;
        zhashx_insert (self->peers, key, entry);
    }
    if (now - window->start >= self->period_ms) {
        s_end_window (self, kind, window, now);
    }
    if (entry && now - entry->start >= self->period_ms) {
        *entry = (s_peer_t) { .start = now };
    }
    //  A peer not tracked one by one has only the kind's allowance
    bool allowed = (int) window->logged < self->per_kind
                && (!entry || (int) entry->logged < self->per_peer);
    kc_why_t line;
    va_list args;
    va_start (args, format);
    char raw [KC_WHY_BYTES];
    vsnprintf (raw, sizeof raw, format, args);
    va_end (args);
    kc_why (&line, "%s", raw);              //  escaped, one line
    if (allowed) {
        s_emit (level, line.text);
        self->logged++;
        window->logged++;
        if (entry) {
            entry->logged++;
        }
        return true;
    }
    self->suppressed++;
    window->suppressed++;
    window->level = level;
    snprintf (window->last, sizeof window->last, "%s", line.text);
    if (!entry || !entry->suppressing) {
        window->peers++;
    }
    if (entry) {
        entry->suppressing = true;
    }
    return false;
}

void
kc_ratelog_flush (kc_ratelog_t *self)
{
    int64_t now = kc_mono_ms ();
    for (s_kind_t *window = zhashx_first (self->kinds); window; window = zhashx_next (self->kinds)) {
        if (now - window->start >= self->period_ms) {
            s_end_window (self, (const char *) zhashx_cursor (self->kinds), window, now);
        }
    }
    zlistx_t *idle = zlistx_new ();
    for (s_peer_t *entry = zhashx_first (self->peers); entry; entry = zhashx_next (self->peers)) {
        if (now - entry->start >= self->period_ms) {
            zlistx_add_end (idle, (void *) zhashx_cursor (self->peers));
        }
    }
    for (const char *key = zlistx_first (idle); key; key = zlistx_next (idle)) {
        zhashx_delete (self->peers, key);
    }
    zlistx_destroy (&idle);
}

void
kc_ratelog_counts (kc_ratelog_t *self, uint64_t *logged, uint64_t *suppressed)
{
    *logged = self->logged;
    *suppressed = self->suppressed;
}

void
kc_ratelog_destroy (kc_ratelog_t **self_p)
{
    if (self_p && *self_p) {
        kc_ratelog_t *self = *self_p;
        int64_t end = kc_mono_ms () + self->period_ms;
        for (s_kind_t *window = zhashx_first (self->kinds); window;
             window = zhashx_next (self->kinds)) {
            s_end_window (self, (const char *) zhashx_cursor (self->kinds), window, end);
        }
        zhashx_destroy (&self->peers);
        zhashx_destroy (&self->kinds);
        free (self);
        *self_p = NULL;
    }
}

//  --- Self test -----------------------------------------------------------------

void
kc_ratelog_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_ratelog: ");
    }
    //  Silence the lines this test logs on purpose
    FILE *sink = fopen ("/dev/null", "w");
    assert (sink);
    zsys_set_logstream (sink);
    kc_ratelog_t *log = kc_ratelog_new ("test", 60000, 2, 5);
    //  One noisy peer: two lines, the rest counted
    int logged = 0;
    for (int i = 0; i < 1000; i++) {
        logged += kc_ratelog (log, KC_LOG_WARNING, "bad", "peer-1", "bad thing %d", i);
    }
    assert (logged == 2);
    //  Many peers: the kind's allowance (5) caps them all together
    for (int p = 0; p < 100; p++) {
        char peer [24];
        snprintf (peer, sizeof peer, "peer-%d", p + 2);
        logged += kc_ratelog (log, KC_LOG_WARNING, "bad", peer, "bad thing from %s", peer);
    }
    assert (logged == 5);
    //  Another kind has its own allowance
    assert (kc_ratelog (log, KC_LOG_INFO, "other", "peer-1", "other thing"));
    uint64_t total, suppressed;
    kc_ratelog_counts (log, &total, &suppressed);
    assert (total == 6 && suppressed == 1095);
    //  Beyond KC_RATELOG_PEERS_MAX, peers share the kind's allowance and
    //  memory stays bounded
    for (int p = 0; p < KC_RATELOG_PEERS_MAX + 100; p++) {
        char peer [24];
        snprintf (peer, sizeof peer, "x-%d", p);
        kc_ratelog (log, KC_LOG_WARNING, "flood", peer, "flood");
    }
    kc_ratelog_counts (log, &total, &suppressed);
    assert (total == 11 && suppressed == 1095 + KC_RATELOG_PEERS_MAX + 100 - 5);
    //  Beyond KC_RATELOG_KINDS_MAX kinds, the rest share one allowance
    uint64_t before = total;
    for (int k = 0; k < KC_RATELOG_KINDS_MAX + 50; k++) {
        char kind [24];
        snprintf (kind, sizeof kind, "kind-%d", k);
        kc_ratelog (log, KC_LOG_WARNING, kind, "peer-1", "line");
    }
    kc_ratelog_counts (log, &total, &suppressed);
    assert (total - before <= KC_RATELOG_KINDS_MAX + 5);
    kc_ratelog_destroy (&log);
    assert (log == NULL);
    //  Windows end: a new window allows lines again
    log = kc_ratelog_new ("test", 20, 1, 10);
    assert (kc_ratelog (log, KC_LOG_INFO, "k", "p", "one"));
    assert (!kc_ratelog (log, KC_LOG_INFO, "k", "p", "two"));
    zclock_sleep (30);
    kc_ratelog_flush (log);
    assert (kc_ratelog (log, KC_LOG_INFO, "k", "p", "three"));
    kc_ratelog_destroy (&log);
    zsys_set_logstream (stdout);
    fclose (sink);
    if (verbose) {
        printf ("OK\n");
    }
}
