/*  =========================================================================
    kc_agent_enrol - the agent's first start with --enrol NAME (docs/agent.md
    section 1): an actor that asks the server to admit this node's key (an
    ENROL request, authenticated by the key: docs/protocol.md 6.4) and asks
    again about every ENROL_EVERY_MS until the key is registered or the
    request rejected, then tells the agent ("REGISTERED" seq, or "REJECTED"
    reason) and waits for $TERM. Its own thread, client and copy of the key:
    the agent's loop never waits for the server.
    =========================================================================
*/
#include "kc_agent_internal.h"

#include <sodium.h>

#define ENROL_EVERY_MS      5000            //  asks again this often (jittered) while pending
#define ENROL_TIMEOUT_MS    5000            //  for one answer

typedef struct {
    char key_path [4200];
    kc_root_t *root;                        //  in force when the agent started
    char name [KC_RECORD_NAME_MAX + 1];
    char tags [KC_RECORD_TAGS_MAX][KC_RECORD_TAG_MAX + 1];
    size_t tag_count;
} s_args_t;

//  Waits ms (-1: for ever) on the pipe; true when $TERM came (or the
//  pipe failed).
static bool
s_wait (zsock_t *pipe, int ms)
{
    zpoller_t *poller = zpoller_new (pipe, NULL);
    bool ended = false;
    int64_t until = zclock_mono () + ms;
    while (!ended && (ms < 0 || zclock_mono () < until)) {
        if (zpoller_wait (poller, ms < 0 ? -1 : (int) (until - zclock_mono ()))) {
            char *command = zstr_recv (pipe);
            ended = !command || KC_STREQ (command, "$TERM");
            zstr_free (&command);
        }
        else {
            ended = zpoller_terminated (poller);
        }
    }
    zpoller_destroy (&poller);
    return ended;
}

//  Asks until the request is answered; returns the message for the agent,
//  or NULL when ended first.
static zmsg_t *
s_ask (zsock_t *pipe, s_args_t *args, kc_client_t *client, const kc_cert_t *cert)
{
    const char *tags [KC_RECORD_TAGS_MAX];
    for (size_t i = 0; i < args->tag_count; i++) {
        tags [i] = args->tags [i];
    }
    bool told = false, failed = false;
    while (true) {
        kc_enrolment_t e;
        kc_why_t why;
        if (kc_client_enrol (client, args->name, tags, args->tag_count, &e, &why)) {
            if (!failed) {              //  once, until it works again
                zsys_warning ("kc_agent: cannot ask for the enrolment of '%s': %s; asking again", args->name,
                              why.text);
            }
            failed = true;
        }
        else
        if (e.state == KC_ENROL_REGISTERED) {
            zmsg_t *msg = zmsg_new ();
            zmsg_addstr (msg, "REGISTERED");
            zmsg_addstrf (msg, "%llu", (unsigned long long) e.seq);
            return msg;
        }
        else
        if (e.state == KC_ENROL_REJECTED) {
            zmsg_t *msg = zmsg_new ();
            zmsg_addstr (msg, "REJECTED");
            zmsg_addstr (msg, e.reason);
            return msg;
        }
        else
        if (!told) {
            char fp [KC_FINGERPRINT_CHARS + 1], code [KC_ENROL_CODE_CHARS + 1];
            zsys_info ("kc_agent: enrolment of %s pending: key %s, fingerprint %s, code %s (give the code to "
                       "the operator, who checks it before 'keyclone approve')", e.name, kc_cert_public_txt (cert),
                       kc_fingerprint (e.key, fp),
                       kc_enrol_code (e.key, e.name, (const char (*)[KC_RECORD_TAG_MAX + 1]) e.tags, e.tag_count,
                                      code));
            told = true;
            failed = false;
        }
        int wait = ENROL_EVERY_MS / 2 + (int) randombytes_uniform (ENROL_EVERY_MS);
        if (s_wait (pipe, wait)) {
            return NULL;
        }
    }
}

static void
s_enroller (zsock_t *pipe, void *arg)
{
    s_args_t *args = arg;
    zsock_signal (pipe, 0);
    kc_why_t why;
    kc_cert_t *cert = kc_cert_load_secret (args->key_path, &why);
    kc_client_t *client = cert ? kc_client_new (args->root, kc_root_endpoint (args->root, KC_ENDPOINT_SUBMIT),
                                                ENROL_TIMEOUT_MS) : NULL;
    zmsg_t *answer = NULL;
    if (!cert) {
        zsys_error ("kc_agent: cannot enrol: %s", why.text);
    }
    else {
        kc_client_set_key (client, cert);
        answer = s_ask (pipe, args, client, cert);
    }
    if (answer) {
        zmsg_send (&answer, pipe);
        s_wait (pipe, -1);
    }
    else
    if (!cert) {
        s_wait (pipe, -1);
    }
    kc_client_destroy (&client);
    kc_cert_destroy (&cert);
    kc_root_destroy (&args->root);
    free (args);
}

zactor_t *
agent_enrol_new (agent_t *self)
{
    s_args_t *args = calloc (1, sizeof *args);
    assert (args);
    snprintf (args->key_path, sizeof args->key_path, "%s", self->config.key_path);
    snprintf (args->name, sizeof args->name, "%s", self->config.enrol_name);
    for (size_t i = 0; i < self->config.enrol_tag_count && i < KC_RECORD_TAGS_MAX; i++) {
        snprintf (args->tags [i], sizeof args->tags [i], "%s", self->config.enrol_tags [i]);
        args->tag_count++;
    }
    args->root = kc_root_dup (self->root);
    return zactor_new (s_enroller, args);
}
