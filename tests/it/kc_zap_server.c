/*  =========================================================================
    kc_zap_server - a server application protected by keyclone, for the
    integration tests and benchmarks.

    zap mode (default): a libzmq CURVE ROUTER or REP socket served by
    kc_auth. It echoes every message as "echo:PAYLOAD|User-Id|name|tags" so
    clients can check the identity the handler attached.

    codec mode (--codec): a NULL-security ROUTER carrying kc_curve sessions
    (RFC 26 in the messages); clients are authorised with
    kc_auth_curve_authorizer, and every session is revalidated when the
    agent publishes an event, so a revoked key's session is dropped. Each
    side sends its agent's head in the handshake's metadata: a client whose
    head conflicts with ours is reported to the agent at --agent EP and,
    with --fail-closed, denied (docs/protocol.md 9.4).

    malformed mode (--malformed): sends malformed ZAP requests to its own
    handler, prints each reply's status and text, and exits 0 if every one
    got a well-formed error reply.

    With --control EP (zap mode) it also binds an unrelated plain ROUTER at
    EP that answers PING with PONG and STOP-HANDLER by destroying the
    kc_auth actor while the protected socket stays open (the handler gone,
    the socket must refuse everyone and the process keep working).

    Prints "ready" when it serves, and "zap_enforce_domain N" as read back
    from libzmq; "closed ..." lines come from kc_auth.
    Usage: kc_zap_server --cert SECRET --cache DB [--events EP] --bind EP
             [--type ROUTER|REP] [--domain D] [--require TAGS] [--fail-closed]
             [--stale-after MS] [--codec] [--malformed] [--control EP]
             [--agent EP]
    =========================================================================
*/
#include "kc_all.h"

#include <getopt.h>
#include <sodium.h>

typedef struct {
    const char *cert, *cache, *events, *bind, *type, *domain, *require, *control, *agent;
    bool fail_closed, codec, malformed;
    int stale_after;
} s_options_t;

static void
s_echo (zsock_t *socket, zmsg_t *msg, bool router)
{
    zframe_t *identity = router ? zmsg_pop (msg) : NULL;
    zframe_t *body = zmsg_last (msg);
    const char *user = body ? zframe_meta (body, "User-Id") : NULL;
    const char *name = body ? zframe_meta (body, KC_ZAP_PROPERTY_NAME) : NULL;
    const char *tags = body ? zframe_meta (body, KC_ZAP_PROPERTY_TAGS) : NULL;
    char text [1024];
    snprintf (text, sizeof text, "echo:%.*s|%s|%s|%s", body ? (int) zframe_size (body) : 0,
              body ? (const char *) zframe_data (body) : "", user ? user : "",
              name ? name : "", tags ? tags : "");
    zmsg_t *reply = zmsg_new ();
    if (identity) {
        zmsg_append (reply, &identity);
    }
    zmsg_addstr (reply, text);
    zmsg_send (&reply, socket);
}

static int
s_malformed (void)
{
    static const char *cases [][8] = {
        { "2.0", "1", "d", "127.0.0.1", "", "CURVE", "key", NULL },
        { "1.0", "1", "d", NULL },
        { "1.0", "1", "d", "127.0.0.1", "", "PLAIN", "user", "pass" },
        { "1.0", "1", "d", "127.0.0.1", "", "CURVE", "short", NULL },
        { "1.0", "1", "d", "127.0.0.1", "", "CURVE", "0123456789abcdef0123456789abcdef", "extra" },
        { "1.0", NULL },
    };
    zsock_t *req = zsock_new_req ("inproc://zeromq.zap.01");
    zsock_set_rcvtimeo (req, 2000);
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        zmsg_t *msg = zmsg_new ();
        for (int f = 0; f < 8 && cases [i][f]; f++) {
            zmsg_addstr (msg, cases [i][f]);
        }
        zmsg_send (&msg, req);
        zmsg_t *reply = zmsg_recv (req);
        char *version = reply ? zmsg_popstr (reply) : NULL, *id = reply ? zmsg_popstr (reply) : NULL;
        char *status = reply ? zmsg_popstr (reply) : NULL, *text = reply ? zmsg_popstr (reply) : NULL;
        bool ok = reply && zmsg_size (reply) == 2 && status && (status [0] == '4' || status [0] == '5');
        printf ("malformed case %zu: %s %s\n", i + 1, status ? status : "no reply", text ? text : "");
        bad += !ok;
        zstr_free (&version);
        zstr_free (&id);
        zstr_free (&status);
        zstr_free (&text);
        zmsg_destroy (&reply);
    }
    zsock_destroy (&req);
    return bad;
}

//  --- codec mode -------------------------------------------------------------

typedef struct {
    kc_curve_t *codec;
} s_session_t;

static void
s_session_free (void **item)
{
    s_session_t *session = *item;
    if (session) {
        kc_curve_destroy (&session->codec);
        free (session);
        *item = NULL;
    }
}

static void
s_send (zsock_t *router, zframe_t *identity, const uint8_t *data, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zframe_t *copy = zframe_dup (identity);
    zmsg_append (msg, &copy);
    zmsg_addmem (msg, data, size);
    zmsg_send (&msg, router);
}

static void
s_codec_message (zsock_t *router, zhashx_t *sessions, kc_cert_t *cert, kc_lookup_t *lookup,
                 zmsg_t *msg)
{
    zframe_t *identity = zmsg_pop (msg), *body = zmsg_pop (msg);
    char *id = identity ? zframe_strhex (identity) : NULL;
    s_session_t *session = id ? zhashx_lookup (sessions, id) : NULL;
    kc_why_t why;
    if (body && !session && zframe_size (body) == KC_CURVE_HELLO_BYTES) {
        session = calloc (1, sizeof *session);
        session->codec = kc_curve_new_server (kc_cert_public_key (cert), kc_cert_secret_key (cert));
        kc_curve_set_authorizer (session->codec, kc_auth_curve_authorizer, lookup);
        uint8_t head [KC_HEAD_BYTES];
        if (kc_lookup_head (lookup, head) == 0
        &&  kc_curve_set_metadata (session->codec, KC_CURVE_HEAD, head, KC_HEAD_BYTES, &why)) {
            printf ("cannot send our head: %s\n", why.text);
        }
        zhashx_update (sessions, id, session);
    }
    if (body && session) {
        if (kc_curve_connected (session->codec)) {
            uint8_t *payload;
            size_t size;
            int flags;
            if (kc_curve_decode (session->codec, zframe_data (body), zframe_size (body), &payload,
                                 &size, &flags, &why) == 0) {
                char text [512];
                int n = snprintf (text, sizeof text, "echo:%.*s|%s", (int) size, payload,
                                  kc_curve_identity (session->codec)->name);
                uint8_t *command = malloc ((size_t) n + KC_CURVE_MESSAGE_OVERHEAD);
                if (kc_curve_encode (session->codec, text, (size_t) n, 0, command, &why) == 0) {
                    s_send (router, identity, command, (size_t) n + KC_CURVE_MESSAGE_OVERHEAD);
                }
                free (command);
            }
            else {
                zhashx_delete (sessions, id);
            }
        }
        else {
            const uint8_t *out;
            size_t out_size;
            int rc = kc_curve_handshake (session->codec, zframe_data (body), zframe_size (body),
                                         &out, &out_size, &why);
            if (out) {
                s_send (router, identity, out, out_size);
            }
            if (rc) {
                printf ("denied codec session: %s\n", why.text);
                zhashx_delete (sessions, id);
            }
        }
    }
    fflush (stdout);
    zstr_free (&id);
    zframe_destroy (&identity);
    zframe_destroy (&body);
}

//  Drops every session whose key is no longer trusted.
static void
s_revalidate (zhashx_t *sessions, kc_lookup_t *lookup)
{
    kc_why_t why;
    if (kc_lookup_refresh (lookup, &why) < 0) {
        return;
    }
    zlistx_t *drop = zlistx_new ();
    for (s_session_t *session = zhashx_first (sessions); session; session = zhashx_next (sessions)) {
        const kc_curve_identity_t *identity = kc_curve_identity (session->codec);
        if (identity && kc_lookup_key (lookup, identity->key, NULL) != KC_VERDICT_TRUSTED) {
            zlistx_add_end (drop, (void *) zhashx_cursor (sessions));
        }
    }
    for (const char *id = zlistx_first (drop); id; id = zlistx_next (drop)) {
        printf ("closed codec session %.10s: key no longer trusted\n", id);
        zhashx_delete (sessions, id);
    }
    fflush (stdout);
    zlistx_destroy (&drop);
}

static int
s_codec (const s_options_t *o, kc_cert_t *cert)
{
    kc_why_t why;
    kc_lookup_t *lookup = kc_lookup_new (o->cache, &why);
    if (!lookup) {
        fprintf (stderr, "kc_zap_server: %s\n", why.text);
        return 1;
    }
    kc_lookup_set_fail_closed (lookup, o->fail_closed);
    kc_lookup_set_agent (lookup, o->agent);
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_t *events = o->events ? zsock_new_sub (o->events, "") : NULL;
    if (zsock_bind (router, "%s", o->bind) < 0) {
        return 1;
    }
    zhashx_t *sessions = zhashx_new ();
    zhashx_set_destructor (sessions, s_session_free);
    zpoller_t *poller = zpoller_new (router, events, NULL);
    printf ("ready\n");
    fflush (stdout);
    while (!zsys_interrupted) {
        void *which = zpoller_wait (poller, 100);
        if (which == router) {
            zmsg_t *msg = zmsg_recv (router);
            s_codec_message (router, sessions, cert, lookup, msg);
            zmsg_destroy (&msg);
        }
        else {
            if (events && which == events) {
                zmsg_t *event = zmsg_recv (events);
                zmsg_destroy (&event);
            }
            s_revalidate (sessions, lookup);
        }
    }
    zpoller_destroy (&poller);
    zhashx_destroy (&sessions);
    zsock_destroy (&events);
    zsock_destroy (&router);
    kc_lookup_destroy (&lookup);
    return 0;
}

int
main (int argc, char *argv [])
{
    static const struct option longs [] = {
        { "cert", required_argument, NULL, 'c' }, { "cache", required_argument, NULL, 'C' },
        { "events", required_argument, NULL, 'e' }, { "bind", required_argument, NULL, 'b' },
        { "type", required_argument, NULL, 't' }, { "domain", required_argument, NULL, 'd' },
        { "require", required_argument, NULL, 'r' }, { "fail-closed", no_argument, NULL, 'f' },
        { "stale-after", required_argument, NULL, 's' }, { "codec", no_argument, NULL, 'x' },
        { "malformed", no_argument, NULL, 'm' }, { "control", required_argument, NULL, 'k' },
        { "agent", required_argument, NULL, 'a' }, { NULL, 0, NULL, 0 }
    };
    s_options_t o = { .type = "ROUTER", .domain = "keyclone", .stale_after = 5000 };
    int c;
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'c': o.cert = optarg; break;
            case 'C': o.cache = optarg; break;
            case 'e': o.events = optarg; break;
            case 'b': o.bind = optarg; break;
            case 't': o.type = optarg; break;
            case 'd': o.domain = optarg; break;
            case 'r': o.require = optarg; break;
            case 'f': o.fail_closed = true; break;
            case 's': o.stale_after = atoi (optarg); break;
            case 'x': o.codec = true; break;
            case 'm': o.malformed = true; break;
            case 'k': o.control = optarg; break;
            case 'a': o.agent = optarg; break;
            default: return 2;
        }
    }
    if (!o.cert || !o.cache || (!o.bind && !o.malformed) || sodium_init () < 0) {
        fprintf (stderr, "kc_zap_server: --cert, --cache and --bind are required\n");
        return 2;
    }
    kc_why_t why;
    kc_cert_t *cert = kc_cert_load_secret (o.cert, &why);
    if (!cert) {
        fprintf (stderr, "kc_zap_server: %s\n", why.text);
        return 1;
    }
    if (o.codec) {
        int rc = s_codec (&o, cert);
        kc_cert_destroy (&cert);
        return rc;
    }
    kc_auth_config_t config;
    kc_auth_config_defaults (&config);
    config.cache_path = o.cache;
    config.events_endpoint = o.events;
    config.fail_closed = o.fail_closed;
    config.stale_after_ms = o.stale_after;
    zactor_t *auth = kc_auth_new (&config, &why);
    if (!auth) {
        fprintf (stderr, "kc_zap_server: %s\n", why.text);
        return 1;
    }
    if (o.malformed) {
        int bad = s_malformed ();
        zactor_destroy (&auth);
        kc_cert_destroy (&cert);
        return bad ? 1 : 0;
    }
    if (o.require && kc_auth_policy (auth, o.domain, o.require)) {
        return 1;
    }
    bool router = KC_STREQ (o.type, "ROUTER");
    zsock_t *server = zsock_new (router ? ZMQ_ROUTER : ZMQ_REP);
    zsock_set_curve_server (server, 1);
    kc_cert_apply (cert, server);
    if (kc_auth_protect (auth, server, o.domain, &why) || zsock_bind (server, "%s", o.bind) < 0) {
        fprintf (stderr, "kc_zap_server: cannot serve: %s\n", why.text);
        return 1;
    }
    int enforce = -1;
    size_t size = sizeof enforce;
    zmq_getsockopt (zsock_resolve (server), KC_SOCKOPT_ZAP_ENFORCE_DOMAIN, &enforce, &size);
    zsock_t *control = o.control ? zsock_new (ZMQ_ROUTER) : NULL;
    if (control && zsock_bind (control, "%s", o.control) < 0) {
        return 1;
    }
    printf ("zap_enforce_domain %d\nready\n", enforce);
    fflush (stdout);
    zpoller_t *poller = zpoller_new (server, control, NULL);
    while (!zsys_interrupted) {
        void *which = zpoller_wait (poller, 200);
        zmsg_t *msg = which ? zmsg_recv (which) : NULL;
        if (msg && which == server) {
            s_echo (server, msg, router);
        }
        else
        if (msg) {
            zframe_t *identity = zmsg_pop (msg);
            char *command = zmsg_popstr (msg);
            const char *answer = "?";
            if (command && KC_STREQ (command, "PING")) {
                answer = "PONG";
            }
            else
            if (command && KC_STREQ (command, "STOP-HANDLER")) {
                zactor_destroy (&auth);
                answer = "handler stopped";
                printf ("handler stopped\n");
                fflush (stdout);
            }
            zmsg_t *reply = zmsg_new ();
            zmsg_append (reply, &identity);
            zmsg_addstr (reply, answer);
            zmsg_send (&reply, control);
            zstr_free (&command);
        }
        zmsg_destroy (&msg);
    }
    kc_auth_stats_t stats;
    if (auth && kc_auth_stats (auth, &stats) == 0) {
        printf ("stats allowed %llu denied %llu malformed %llu closed %llu unmatched %llu\n",
                (unsigned long long) stats.allowed, (unsigned long long) stats.denied,
                (unsigned long long) stats.malformed, (unsigned long long) stats.closed,
                (unsigned long long) stats.unmatched);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&control);
    zsock_destroy (&server);
    zactor_destroy (&auth);
    kc_cert_destroy (&cert);
    return 0;
}
