/*  =========================================================================
    cmd_enrol - a node asks to join, operators answer: enrol (on the node),
    pending, approve and reject (operators). docs/protocol.md 6.4 and
    docs/operator.md section 4.
    =========================================================================
*/
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_EVERY_MS   1000                //  --wait asks again this often (with jitter)
#define MATCHES_MAX     16                  //  ambiguous matches listed
#define AGENT_POLL_MS   100                 //  waiting for the agent: its status this often

static const char (*s_tags (const kc_enrolment_t *e)) [KC_RECORD_TAG_MAX + 1]
{
    return (const char (*)[KC_RECORD_TAG_MAX + 1]) e->tags;
}

//  PATH with a suffix, into buffer.
static const char *
s_with (char buffer [static CLI_PATH_MAX], const char *path, const char *suffix)
{
    snprintf (buffer, CLI_PATH_MAX, "%s%s", path, suffix);
    return buffer;
}

static char *
s_code (const kc_enrolment_t *e, char code [static KC_ENROL_CODE_CHARS + 1])
{
    return kc_enrol_code (e->key, e->name, s_tags (e), e->tag_count, code);
}

static char *
s_tag_text (const kc_enrolment_t *e, char text [static KC_RECORD_TAGS_TEXT_MAX])
{
    size_t at = 0;
    text [0] = 0;
    for (size_t i = 0; i < e->tag_count; i++) {
        at += (size_t) snprintf (text + at, KC_RECORD_TAGS_TEXT_MAX - at, "%s%s", i ? "," : "", e->tags [i]);
    }
    return text;
}

//  "3h" / "12m" / "40s": a duration in ms for people.
static char *
s_span (uint64_t ms, char text [static 24])
{
    uint64_t s = ms / 1000;
    if (s >= 2 * 86400) {
        snprintf (text, 24, "%llud", (unsigned long long) (s / 86400));
    }
    else
    if (s >= 2 * 3600) {
        snprintf (text, 24, "%lluh", (unsigned long long) (s / 3600));
    }
    else
    if (s >= 120) {
        snprintf (text, 24, "%llum", (unsigned long long) (s / 60));
    }
    else {
        snprintf (text, 24, "%llus", (unsigned long long) s);
    }
    return text;
}

static void
s_print_json (const kc_enrolment_t *e, uint64_t now_ms)
{
    char z85 [KC_Z85_KEY_CHARS + 1], fp [KC_FINGERPRINT_CHARS + 1], code [KC_ENROL_CODE_CHARS + 1];
    printf ("{");
    kc_json_field_str (stdout, true, "state", kc_enrol_state_name (e->state));
    kc_json_field_str (stdout, false, "name", e->name);
    kc_json_field_str (stdout, false, "key", kc_z85_encode (e->key, KC_KEY_BYTES, z85));
    kc_json_field_str (stdout, false, "fingerprint", kc_fingerprint (e->key, fp));
    kc_json_field_str (stdout, false, "code", s_code (e, code));
    printf (", \"tags\": [");
    for (size_t i = 0; i < e->tag_count; i++) {
        printf ("%s", i ? ", " : "");
        kc_json_cstr (stdout, e->tags [i]);
    }
    printf ("]");
    kc_json_field_str (stdout, false, "source", e->source);
    kc_json_field_u64 (stdout, false, "requested", e->requested);
    kc_json_field_u64 (stdout, false, "expires", e->expires);
    kc_json_field_u64 (stdout, false, "age_ms", e->requested && now_ms > e->requested ? now_ms - e->requested : 0);
    kc_json_field_u64 (stdout, false, "seq", e->seq);
    kc_json_field_str (stdout, false, "reason", e->reason);
    kc_json_field_str (stdout, false, "replaces", e->rotation ? kc_fingerprint (e->replaces, fp) : "");
    kc_json_field_u64 (stdout, false, "overlap", e->overlap);
    printf ("}");
}

//  --- enrol (the node) ----------------------------------------------------------

//  The agent's key when --key is not given: DIR/node when it is there,
//  else the packaged node's (operator.md 2a) when that directory exists,
//  else DIR/node (made there by enrol).
static const char *
s_default_key (char path [static CLI_PATH_MAX], const char *dir)
{
    cli_path (path, dir, "node");
    char secret [CLI_PATH_MAX];
    snprintf (secret, sizeof secret, "%s%s", path, KC_SECRET_SUFFIX);
    if (!kc_file_exists (path) && !kc_file_exists (secret) && kc_file_exists (CLI_NODE_AGENT_DIR)) {
        snprintf (path, CLI_PATH_MAX, "%s/node", CLI_NODE_AGENT_DIR);
    }
    return path;
}

//  The node's key pair: DIR/node_secret (the agent's), made when missing.
static kc_cert_t *
s_node_key (const char *path, bool *made)
{
    kc_why_t why;
    char secret [CLI_PATH_MAX];
    snprintf (secret, sizeof secret, "%s%s", path, KC_SECRET_SUFFIX);
    *made = false;
    if (!kc_file_exists (path) && !kc_file_exists (secret)) {
        kc_cert_t *cert = kc_cert_new (NULL);
        if (kc_cert_save (cert, path, &why)) {
            kc_cert_destroy (&cert);
            cli_fail ("enrol", "cannot create the node's key: %s", why.text);
            return NULL;
        }
        kc_cert_destroy (&cert);
        *made = true;
    }
    kc_cert_t *cert = kc_cert_load_secret (path, &why);
    if (!cert) {
        cli_fail ("enrol", "%s", why.text);
    }
    return cert;
}

//  Prints where the request stands; returns the exit status it means.
static int
s_report (const kc_enrolment_t *e, bool json, bool first)
{
    uint64_t now = kc_now_ms ();
    if (json) {
        s_print_json (e, now);
        printf ("\n");
    }
    else
    if (e->state == KC_ENROL_REGISTERED) {
        printf ("%s is registered (seq %llu): the agent on this node can sync now\n", e->name,
                (unsigned long long) e->seq);
    }
    else
    if (e->state == KC_ENROL_REJECTED) {
        printf ("the enrolment of %s was rejected: %s\n", e->name, e->reason);
    }
    else
    if (first) {
        char z85 [KC_Z85_KEY_CHARS + 1], fp [KC_FINGERPRINT_CHARS + 1], code [KC_ENROL_CODE_CHARS + 1];
        char tags [KC_RECORD_TAGS_TEXT_MAX], left [24];
        printf ("enrolment of %s pending (expires in %s)\n", e->name,
                s_span (e->expires > now ? e->expires - now : 0, left));
        printf ("  key          %s\n", kc_z85_encode (e->key, KC_KEY_BYTES, z85));
        printf ("  fingerprint  %s\n", kc_fingerprint (e->key, fp));
        printf ("  code         %s   (give it to the operator, who checks it before approving)\n",
                s_code (e, code));
        if (e->tag_count) {
            printf ("  tags         %s\n", s_tag_text (e, tags));
        }
    }
    fflush (stdout);
    return e->state == KC_ENROL_REJECTED ? CLI_FAIL : CLI_OK;
}

//  The node's key was just admitted or replaced: asks the node's agent
//  (--agent) to connect again now, not at its next retry (up to a minute
//  after a refusal, docs/agent.md section 1), and with a seq, waits up to
//  --timeout for its cache to reach it. Says what happened (text output
//  only); never fails the command: the key is registered whatever the agent
//  does.
static void
s_wake_agent (const cli_online_t *online, uint64_t seq, bool json)
{
    kc_why_t why;
    char agent [sizeof online->agent_buffer * 4];       //  from an option or a config file: escaped
    kc_escape (online->agent, strlen (online->agent), agent, sizeof agent, 0);
    char *reply = kc_agent_request (online->agent, online->timeout_ms, "RECONNECT", NULL, 0, true, &why);
    if (!reply) {
        if (!json) {
            printf ("no agent answered at %s (%s): it connects with this key when it starts\n", agent,
                    why.text);
        }
        return;
    }
    bool asked = !strstr (reply, "\"reconnect\": \"none\"");
    free (reply);
    int64_t deadline = zclock_mono () + online->timeout_ms;
    uint64_t reached = 0;
    while (seq && reached < seq && zclock_mono () < deadline) {
        reply = kc_agent_request (online->agent, online->timeout_ms, "STATUS", NULL, 0, true, &why);
        if (!cli_status_u64 (reply, "seq", &reached)) {
            reached = 0;
        }
        free (reply);
        if (reached < seq) {
            usleep (AGENT_POLL_MS * 1000);
        }
    }
    if (json) {
        return;
    }
    if (seq && reached >= seq) {
        printf ("the agent at %s has synced to seq %llu%s\n", agent, (unsigned long long) reached,
                asked ? " (asked to connect again at once)" : "");
    }
    else
    if (seq) {
        printf ("the agent at %s has not reached seq %llu after %d ms: see its log\n", agent,
                (unsigned long long) seq, online->timeout_ms);
    }
    else
    if (asked) {
        printf ("asked the agent at %s to connect again with this node's key\n", agent);
    }
    fflush (stdout);
}

//  The grant a token file comes with (TOKEN.grant, written by 'keyclone
//  grant create'), or NULL with a reason.
static kc_grant_t *
s_token_grant (const char *token_path, kc_why_t *why)
{
    char path [CLI_PATH_MAX];
    size_t size;
    uint8_t *data = kc_file_read (s_with (path, token_path, ".grant"), KC_GRANT_BYTES_MAX, false, &size, why);
    kc_grant_t *grant = data ? kc_grant_decode (data, size, why) : NULL;
    kc_file_free (&data, false);
    return grant;
}

//  enrol --token: the node signs its own registration with the token and
//  submits it; the server and every agent check it against the grant.
static int
s_enrol_by_grant (kc_client_t *client, const kc_root_t *root, const kc_cert_t *cert, const char *name,
                  const char **tags, size_t tag_count, const char *token_path, const char *out,
                  const cli_online_t *online)
{
    bool json = online->json;
    kc_why_t why;
    kc_signer_t *token = kc_signer_load (token_path, &why);
    kc_grant_t *grant = token ? s_token_grant (token_path, &why) : NULL;
    kc_grant_use_t *use = NULL;
    int rc = CLI_FAIL;
    char fp [KC_FINGERPRINT_CHARS + 1], gfp [KC_FINGERPRINT_CHARS + 1];
    if (!grant) {
        cli_fail ("enrol", "--token: %s", why.text);
        goto done;
    }
    if (memcmp (grant->grant_key, kc_signer_public_key (token), KC_KEY_BYTES)) {
        cli_fail ("enrol", "--token: the token is not the grant's (%s.grant names another key)", token_path);
        goto done;
    }
    //  The grant's tags, unless --tag says otherwise (the server and the
    //  agents refuse other tags anyway)
    const char *granted [KC_RECORD_TAGS_MAX];
    for (size_t i = 0; i < grant->tag_count; i++) {
        granted [i] = grant->tags [i];
    }
    kc_record_spec_t spec = { .key = kc_cert_public_key (cert), .name = name, .tags = tag_count ? tags : granted,
                              .tag_count = tag_count ? tag_count : grant->tag_count };
    use = kc_grant_use_new (kc_root_directory (root), token, kc_now (), &spec, &why);
    uint64_t seq;
    bool duplicate;
    if (use && out) {
        //  Provisioning offline: the signed registration, for 'keyclone submit'
        if (kc_file_write_atomic (out, use->data, use->size, 0644, &why)) {
            cli_fail ("enrol", "%s", why.text);
        }
        else {
            printf ("wrote %s: the registration of %s signed with the token; 'keyclone submit' it\n", out, name);
            rc = CLI_OK;
        }
        goto done;
    }
    if (!use || kc_client_submit_data (client, use->data, use->size, &seq, &duplicate, &why)) {
        cli_fail ("enrol", "%s%s", use ? "the server refused the registration: " : "", why.text);
        goto done;
    }
    kc_fingerprint (kc_cert_public_key (cert), fp);
    kc_fingerprint (grant->grant_key, gfp);
    if (json) {
        printf ("{\"state\": \"registered\", \"name\": \"%s\", \"fingerprint\": \"%s\", \"grant\": \"%s\", "
                "\"seq\": %llu}\n", name, fp, gfp, (unsigned long long) seq);
    }
    else {
        printf ("%s is registered (seq %llu) by grant %s: the agent on this node can sync now\n", name,
                (unsigned long long) seq, gfp);
    }
    s_wake_agent (online, seq, json);
    rc = CLI_OK;
done:
    kc_grant_use_destroy (&use);
    kc_grant_destroy (&grant);
    kc_signer_destroy (&token);
    return rc;
}

//  --- Options --------------------------------------------------------------------

//  Every option of these commands (each lists only its own in longs).
typedef struct {
    const char *tags [KC_RECORD_TAGS_MAX];
    size_t tag_count;
    bool wait;
    const char *key, *token, *out, *overlap, *code, *expires, *reason, *pattern, *uses;
    const char *replace, *new_key;          //  rotate by operators: the old key, the new one
} s_opts_t;

//  Parses the online options into online and the others into opts, expects
//  positional arguments (0 or 1; usage says what otherwise), and finishes
//  online. Returns the index of the positional argument, or -1 after a usage
//  error.
static int
s_args (const char *command, int *argc, char ***argv, const struct option *longs, cli_online_t *online,
        s_opts_t *opts, int positional, const char *usage)
{
    int c, handled;
    cli_args (argc, argv, longs);
    while ((c = cli_getopt (*argc, *argv, "", longs, NULL)) != -1) {
        if ((handled = cli_online_option (command, c, online))) {
            if (handled < 0) {
                return -1;
            }
            continue;
        }
        switch (c) {
            case 't':
                if (opts->tag_count == KC_RECORD_TAGS_MAX) {
                    cli_usage (command, "at most %d tags", KC_RECORD_TAGS_MAX);
                    return -1;
                }
                opts->tags [opts->tag_count++] = optarg;
                break;
            case 'w': opts->wait = true; break;
            case 'k': opts->key = optarg; break;
            case 'g': opts->token = optarg; break;
            case 'o': opts->out = optarg; break;
            case 'O': opts->overlap = optarg; break;
            case 'c': opts->code = optarg; break;
            case 'x': opts->expires = optarg; break;
            case 'R': opts->reason = optarg; break;
            case 'P': opts->pattern = optarg; break;
            case 'u': opts->uses = optarg; break;
            case 'e': opts->replace = optarg; break;
            case 'n': opts->new_key = optarg; break;
            default: return -1;
        }
    }
    if (optind != *argc - positional) {
        cli_usage (command, "%s", usage);
        return -1;
    }
    cli_online_finish (online);
    return optind;
}

//  --wait: a pause of about WAIT_EVERY_MS between questions (jitter keeps a
//  fleet from asking in step), never past the request's expiry (asked
//  after it, the server would take the question for a new request), or
//  false after saying the request expired.
static bool
s_wait_again (const char *command, const kc_enrolment_t *e)
{
    uint64_t now = kc_now_ms ();
    if (now >= e->expires) {
        cli_fail (command, "the request expired unanswered; run 'keyclone %s' again to ask again", command);
        return false;
    }
    uint64_t pause = WAIT_EVERY_MS / 2 + randombytes_uniform (WAIT_EVERY_MS);
    if (pause > e->expires - now) {
        pause = e->expires - now;
    }
    usleep ((useconds_t) pause * 1000);
    return kc_now_ms () < e->expires || s_wait_again (command, e);
}

//  --wait asked again and the server answered with another request than
//  the one waited for (the clocks differ: it had expired there): says so.
static bool
s_same_request (const char *command, const kc_enrolment_t *first, const kc_enrolment_t *e)
{
    if (e->state == KC_ENROL_PENDING && e->requested != first->requested) {
        cli_fail (command, "the request expired unanswered (the server holds a new one since: run 'keyclone %s' "
                  "again to wait for it)", command);
        return false;
    }
    return true;
}

int
cmd_enrol (int argc, char *argv [])
{
    static const struct option longs [] = {
        CLI_ONLINE_OPTIONS, { "tag", required_argument, NULL, 't' }, { "wait", no_argument, NULL, 'w' },
        { "key", required_argument, NULL, 'k' }, { "token", required_argument, NULL, 'g' },
        { "out", required_argument, NULL, 'o' }, { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    s_opts_t o = { 0 };
    int first = s_args ("enrol", &argc, &argv, longs, &online, &o, 1, "expected the node's NAME");
    if (first < 0) {
        return CLI_USAGE;
    }
    const char **tags = o.tags, *key_path = o.key, *token_path = o.token, *out = o.out;
    size_t tag_count = o.tag_count;
    bool wait = o.wait;
    if (token_path && wait) {
        return cli_usage ("enrol", "--token registers at once: it does not wait");
    }
    if (out && !token_path) {
        return cli_usage ("enrol", "--out writes a registration signed with --token");
    }
    const char *name = argv [first];
    if (!kc_record_name_valid (name, strlen (name))) {
        return cli_usage ("enrol", "invalid NAME (letters, digits, '.', '-', '_', starting with a letter or digit)");
    }
    for (size_t i = 0; i < tag_count; i++) {
        if (!kc_record_tag_valid (tags [i], strlen (tags [i]))) {
            return cli_usage ("enrol", "invalid tag '%s'", tags [i]);
        }
    }
    char path [CLI_PATH_MAX];
    if (!key_path) {
        key_path = s_default_key (path, online.dir);
    }
    bool made;
    kc_cert_t *cert = s_node_key (key_path, &made);
    if (!cert) {
        return CLI_FAIL;
    }
    if (made && !online.json) {
        printf ("made the node's key %s (and %s%s)\n", key_path, key_path, KC_SECRET_SUFFIX);
    }
    kc_root_t *root = cli_load_pinned_root ("enrol", online.root_path);
    if (!root) {
        kc_cert_destroy (&cert);
        return CLI_FAIL;
    }
    kc_client_t *client = cli_client_new (online.root_path, root, online.server, online.timeout_ms);
    kc_client_set_key (client, cert);
    kc_enrolment_t e;
    kc_why_t why;
    int rc = CLI_FAIL;
    if (token_path) {
        rc = s_enrol_by_grant (client, root, cert, name, tags, tag_count, token_path, out, &online);
        goto done;
    }
    if (kc_client_enrol (client, name, tags, tag_count, &e, &why)) {
        cli_fail ("enrol", "%s", why.text);
        goto done;
    }
    rc = s_report (&e, online.json && !wait, true);
    kc_enrolment_t asked = e;
    while (wait && e.state == KC_ENROL_PENDING) {
        if (!s_wait_again ("enrol", &e)) {
            rc = CLI_FAIL;
            goto done;
        }
        if (kc_client_enrol (client, name, tags, tag_count, &e, &why)) {
            rc = cli_fail ("enrol", "%s", why.text);
            goto done;
        }
        if (!s_same_request ("enrol", &asked, &e)) {
            rc = CLI_FAIL;
            goto done;
        }
        if (e.state != KC_ENROL_PENDING) {
            rc = s_report (&e, online.json, false);
        }
    }
    if (e.state == KC_ENROL_REGISTERED) {
        s_wake_agent (&online, wait ? e.seq : 0, online.json);
    }
done:
    kc_client_destroy (&client);
    kc_root_destroy (&root);
    kc_cert_destroy (&cert);
    return rc;
}

//  --- rotate (the node) ----------------------------------------------------------

//  After the overlap, the old key's files go (KEY.old, KEY.old_secret).
static void
s_forget_old (const char *path, bool json)
{
    kc_why_t why;
    uint64_t until;
    int removed = kc_nodekey_forget_old (path, kc_now (), &until, &why);
    if (removed < 0) {
        cli_fail ("rotate", "%s", why.text);
    }
    else
    if (removed && !json) {
        printf ("removed %s.old and its secret: the old key's overlap is over\n", path);
    }
}

//  The new key becomes the node's key (kc_nodekey_swap): 0, or -1 after
//  saying why. Done already (by the node's agent, which swaps as soon as
//  its cache holds the new key) counts as done.
static int
s_swap (const char *path, const kc_cert_t *fresh, uint64_t overlap)
{
    kc_why_t why;
    int rc = kc_nodekey_swap (path, kc_cert_public_key (fresh), kc_now () + overlap, &why);
    kc_cert_t *now = rc == 1 ? kc_cert_load_secret (path, &why) : NULL;
    bool in_place = now && memcmp (kc_cert_public_key (now), kc_cert_public_key (fresh), KC_KEY_BYTES) == 0;
    kc_cert_destroy (&now);
    if (rc < 0 || (rc == 1 && !in_place)) {
        return cli_fail ("rotate", "cannot put the new key in place of %s: %s", path,
                         rc < 0 ? why.text : "its file holds another key");
    }
    return 0;
}

static int s_rotate_signed (cli_online_t *online, const s_opts_t *o, uint64_t overlap);
static int s_rotate_by_grant (kc_client_t *client, const kc_root_t *root, const kc_cert_t *current,
                              const kc_cert_t *fresh, const char *token_path, const char *out, uint64_t overlap,
                              kc_enrolment_t *e);

int
cmd_rotate (int argc, char *argv [])
{
    static const struct option longs [] = {
        CLI_ONLINE_OPTIONS, { "overlap", required_argument, NULL, 'O' }, { "wait", no_argument, NULL, 'w' },
        { "key", required_argument, NULL, 'k' }, { "replace", required_argument, NULL, 'e' },
        { "new", required_argument, NULL, 'n' }, { "out", required_argument, NULL, 'o' },
        { "token", required_argument, NULL, 'g' }, { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    s_opts_t o = { .overlap = "1h" };
    if (s_args ("rotate", &argc, &argv, longs, &online, &o, 0, "takes no arguments") < 0) {
        return CLI_USAGE;
    }
    const char *key_path = o.key;
    bool wait = o.wait;
    uint64_t overlap;
    kc_why_t why;
    if (kc_duration_parse (o.overlap, &overlap, &why) || overlap > KC_ENROL_OVERLAP_MAX) {
        return cli_usage ("rotate", "--overlap: a duration of at most 366d (%s)", why.text);
    }
    if (o.replace || o.new_key) {
        if (!o.replace || !o.new_key || o.wait || o.key) {
            return cli_usage ("rotate", "operators rotate a key with --replace OLD --new NEW (not --wait or --key)");
        }
        return s_rotate_signed (&online, &o, overlap);
    }
    if (o.out && !o.token) {
        return cli_usage ("rotate", "--out writes a rotation signed by operators (--replace OLD --new NEW) or "
                          "with --token");
    }
    if (o.token && o.wait) {
        return cli_usage ("rotate", "--token rotates at once: it does not wait");
    }
    char path [CLI_PATH_MAX], next [CLI_PATH_MAX], next_secret [CLI_PATH_MAX];
    if (!key_path) {
        key_path = s_default_key (path, online.dir);
    }
    s_forget_old (key_path, online.json);
    kc_cert_t *current = kc_cert_load_secret (key_path, &why), *fresh = NULL;
    if (!current) {
        return cli_fail ("rotate", "%s", why.text);
    }
    //  The new key: made once, kept (KEY.next) until it is in place. When
    //  it is in place already (the node's agent swapped it) and the old
    //  key's overlap still runs, this is the rotation done, not a new one
    s_with (next, key_path, ".next");
    uint64_t until;
    if (!kc_file_exists (s_with (next_secret, key_path, ".next" KC_SECRET_SUFFIX))
    &&  kc_nodekey_old_until (key_path, &until) && until > kc_now ()) {
        char to [KC_FINGERPRINT_CHARS + 1], when [32];
        kc_fingerprint (kc_cert_public_key (current), to);
        if (online.json) {
            printf ("{\"state\": \"rotated\", \"to\": \"%s\", \"old_until\": %llu}\n", to,
                    (unsigned long long) until);
        }
        else {
            printf ("%s holds the new key %s already; the old one (%s.old) stays valid until %s. "
                    "Rotate again after that\n", key_path, to, key_path, kc_time_format (until, when));
        }
        kc_cert_destroy (&current);
        return CLI_OK;
    }
    if (!kc_file_exists (next_secret)) {
        fresh = kc_cert_new (NULL);
        if (kc_cert_save (fresh, next, &why)) {
            kc_cert_destroy (&fresh);
            kc_cert_destroy (&current);
            return cli_fail ("rotate", "cannot write the new key: %s", why.text);
        }
        kc_cert_destroy (&fresh);
    }
    fresh = kc_cert_load_secret (next, &why);
    kc_root_t *root = fresh ? cli_load_pinned_root ("rotate", online.root_path) : NULL;
    kc_client_t *client = NULL;
    int rc = CLI_FAIL;
    if (!fresh) {
        cli_fail ("rotate", "%s", why.text);
        goto done;
    }
    if (!root) {
        goto done;
    }
    client = cli_client_new (online.root_path, root, online.server, online.timeout_ms);
    kc_client_set_key (client, current);
    kc_enrolment_t e;
    bool first = true;
    if (o.token) {
        int made = s_rotate_by_grant (client, root, current, fresh, o.token, o.out, overlap, &e);
        if (made) {
            rc = made > 0 ? CLI_OK : CLI_FAIL;
            goto done;
        }
    }
    kc_enrolment_t asked = { 0 };
    while (!o.token) {
        if (kc_client_rotate (client, kc_cert_public_key (fresh), overlap, &e, &why)) {
            cli_fail ("rotate", "%s", why.text);
            goto done;
        }
        if (first) {
            asked = e;
        }
        else
        if (!s_same_request ("rotate", &asked, &e)) {
            goto done;
        }
        if (e.state != KC_ENROL_PENDING || !wait) {
            break;
        }
        if (first) {
            s_report (&e, false, true);
            first = false;
        }
        if (!s_wait_again ("rotate", &e)) {
            goto done;
        }
    }
    char from [KC_FINGERPRINT_CHARS + 1], to [KC_FINGERPRINT_CHARS + 1], span [24];
    kc_fingerprint (kc_cert_public_key (current), from);
    kc_fingerprint (kc_cert_public_key (fresh), to);
    if (e.state == KC_ENROL_REGISTERED) {
        if (s_swap (key_path, fresh, overlap) == 0) {
            rc = CLI_OK;
            if (online.json) {
                printf ("{\"state\": \"rotated\", \"name\": \"%s\", \"from\": \"%s\", \"to\": \"%s\", "
                        "\"seq\": %llu}\n", e.name, from, to, (unsigned long long) e.seq);
            }
            else {
                printf ("%s now uses its new key %s (seq %llu) in %s; the old key %s (now %s.old) stays valid "
                        "about %s more, then its connections are closed\n", e.name, to, (unsigned long long) e.seq,
                        key_path, from, key_path, s_span (overlap * 1000, span));
            }
            s_wake_agent (&online, 0, online.json);
        }
    }
    else {
        rc = s_report (&e, online.json, first);
        if (e.state == KC_ENROL_PENDING && !online.json) {
            printf ("  replaces     %s (valid %s more once approved)\n"
                    "once it is approved, the node's agent puts the new key in place (or run 'keyclone rotate' "
                    "again, or give --wait)\n",
                    from, s_span (overlap * 1000, span));
        }
    }
done:
    kc_client_destroy (&client);
    kc_root_destroy (&root);
    kc_cert_destroy (&fresh);
    kc_cert_destroy (&current);
    return rc;
}

//  --- pending, approve, reject (operators) ---------------------------------------

typedef struct {
    kc_enrolment_t *list;
    size_t count, capacity;
} s_requests_t;

static int
s_collect (const kc_enrolment_t *e, void *arg)
{
    s_requests_t *self = arg;
    if (self->count == self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 16;
        self->list = realloc (self->list, self->capacity * sizeof *self->list);
        assert (self->list);
    }
    self->list [self->count++] = *e;
    return 0;
}

//  The server's requests, or -1 after printing why.
static int
s_requests (const char *command, kc_client_t *client, s_requests_t *requests)
{
    kc_why_t why;
    if (kc_client_pending (client, s_collect, requests, &why) < 0) {
        return cli_fail (command, "%s", why.text);
    }
    return 0;
}

//  Does what (a Z85 key, a certificate file, a hex fingerprint prefix of at
//  least 8 digits, or a node name) name e?
static bool
s_matches (const kc_enrolment_t *e, const char *what, const uint8_t *key)
{
    if (key) {
        return memcmp (e->key, key, KC_KEY_BYTES) == 0;
    }
    size_t size = strlen (what);
    bool hex = size >= 8 && size <= 2 * KC_KEY_BYTES;
    for (size_t i = 0; hex && i < size; i++) {
        hex = isxdigit ((unsigned char) what [i]);
    }
    if (hex) {
        char text [2 * KC_KEY_BYTES + 1];
        kc_hex (e->key, KC_KEY_BYTES, text);
        if (strncasecmp (text, what, size) == 0) {
            return true;
        }
    }
    return KC_STREQ (e->name, what);
}

//  The one request what names among those still pending; NULL after
//  printing why (none, or several: listed).
static const kc_enrolment_t *
s_find (const char *command, const s_requests_t *requests, const char *what)
{
    uint8_t raw [KC_KEY_BYTES];
    const uint8_t *key = NULL;
    kc_why_t why;
    if (strlen (what) == KC_Z85_KEY_CHARS && kc_z85_key (what, raw, NULL) == 0) {
        key = raw;
    }
    else
    if (strchr (what, '/') || (kc_file_exists (what) && !kc_record_name_valid (what, strlen (what)))) {
        kc_cert_t *cert = kc_cert_load_public (what, &why);
        if (!cert) {
            cli_fail (command, "%s", why.text);
            return NULL;
        }
        memcpy (raw, kc_cert_public_key (cert), KC_KEY_BYTES);
        kc_cert_destroy (&cert);
        key = raw;
    }
    const kc_enrolment_t *found [MATCHES_MAX];
    size_t count = 0;
    for (size_t i = 0; i < requests->count; i++) {
        const kc_enrolment_t *e = &requests->list [i];
        if (e->state == KC_ENROL_PENDING && s_matches (e, what, key)) {
            if (count < MATCHES_MAX) {
                found [count] = e;
            }
            count++;
        }
    }
    if (count == 1) {
        return found [0];
    }
    char shown [256];
    kc_escape (what, strlen (what), shown, sizeof shown, 0);
    if (count == 0) {
        cli_fail (command, "no pending enrolment request matches '%s' (requests expire; the node can "
                  "run 'keyclone enrol' again): see 'keyclone pending'", shown);
        return NULL;
    }
    cli_fail (command, "'%s' matches %zu pending requests; give the fingerprint or the key:", shown, count);
    for (size_t i = 0; i < count && i < MATCHES_MAX; i++) {
        char fp [KC_FINGERPRINT_CHARS + 1];
        fprintf (stderr, "  %s  %s\n", kc_fingerprint (found [i]->key, fp), found [i]->name);
    }
    return NULL;
}

//  The client, the pinned root, the requests: 0, or -1 after printing why.
typedef struct {
    kc_root_t *root;
    kc_client_t *client;
    s_requests_t requests;
} s_session_t;

static int
s_session_open (const char *command, cli_online_t *online, s_session_t *self)
{
    memset (self, 0, sizeof *self);
    self->root = cli_load_pinned_root (command, online->root_path);
    if (!self->root) {
        return -1;
    }
    self->client = cli_online_client (command, online, self->root);
    if (!self->client || s_requests (command, self->client, &self->requests)) {
        return -1;
    }
    return 0;
}

static void
s_session_close (s_session_t *self, cli_online_t *online)
{
    kc_client_destroy (&self->client);
    kc_root_destroy (&self->root);
    free (self->requests.list);
    cli_online_release (online);
}

int
cmd_pending (int argc, char *argv [])
{
    static const struct option longs [] = { CLI_ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    cli_online_t online = { 0 };
    s_opts_t o = { 0 };
    if (s_args ("pending", &argc, &argv, longs, &online, &o, 0, "takes no arguments") < 0) {
        return CLI_USAGE;
    }
    s_session_t session;
    if (s_session_open ("pending", &online, &session)) {
        s_session_close (&session, &online);
        return CLI_FAIL;
    }
    uint64_t now = kc_now_ms ();
    const s_requests_t *r = &session.requests;
    if (online.json) {
        printf ("[");
        for (size_t i = 0; i < r->count; i++) {
            printf ("%s", i ? ",\n " : "");
            s_print_json (&r->list [i], now);
        }
        printf ("]\n");
    }
    else
    if (r->count == 0) {
        printf ("no enrolment requests are waiting\n");
    }
    else {
        printf ("%-20s %-9s %-10s %-9s %-5s %-8s %-22s %s\n", "NAME", "KEY", "CODE", "STATE", "AGE",
                "EXPIRES", "SOURCE", "TAGS");
        for (size_t i = 0; i < r->count; i++) {
            const kc_enrolment_t *e = &r->list [i];
            char fp [KC_FINGERPRINT_CHARS + 1], code [KC_ENROL_CODE_CHARS + 1], tags [KC_RECORD_TAGS_TEXT_MAX];
            char age [24], left [24];
            printf ("%-20s %-9s %-10s %-9s %-5s %-8s %-22s %s", e->name, kc_fingerprint (e->key, fp),
                    s_code (e, code), kc_enrol_state_name (e->state),
                    s_span (now > e->requested ? now - e->requested : 0, age),
                    s_span (e->expires > now ? e->expires - now : 0, left), e->source, s_tag_text (e, tags));
            if (e->rotation) {
                char old [KC_FINGERPRINT_CHARS + 1], overlap [24];
                printf ("  (replaces %s, valid %s more)", kc_fingerprint (e->replaces, old),
                        s_span (e->overlap * 1000, overlap));
            }
            if (e->state == KC_ENROL_REJECTED) {
                printf ("  (rejected: %s)", e->reason);
            }
            printf ("\n");
        }
    }
    s_session_close (&session, &online);
    return CLI_OK;
}

//  The record a rotation replaces, as the server holds it.
typedef struct {
    bool found;
    uint8_t status;
    uint64_t version, not_after;
    char name [KC_RECORD_NAME_MAX + 1];
    char tags [KC_RECORD_TAGS_MAX][KC_RECORD_TAG_MAX + 1];
    size_t tag_count;
} s_old_t;

static int
s_collect_old (uint64_t seq, const kc_record_t *record, void *arg)
{
    (void) seq;
    s_old_t *self = arg;
    self->found = true;
    self->status = record->status;
    self->version = record->version;
    self->not_after = record->not_after;
    snprintf (self->name, sizeof self->name, "%.*s", record->name_size, record->name);
    const uint8_t *p = record->tags;
    for (size_t i = 0; i < record->tag_count; i++, p += 1 + *p) {
        snprintf (self->tags [i], sizeof self->tags [i], "%.*s", *p, (const char *) p + 1);
    }
    self->tag_count = record->tag_count;
    return 1;
}

//  The registration approve signs: the request's name, and its tags unless
//  --tag gives others. For a rotation, in the same batch, the key it
//  replaces registered again (its name and tags as they are) with a
//  not-after of now + the overlap (or its own, if sooner): one batch, so no
//  agent ever sees the new key without the old one's end. NULL after
//  printing why.
static kc_batch_builder_t *
s_registration (const char *command, kc_client_t *client, const kc_root_t *root, const kc_enrolment_t *e,
                const s_opts_t *answer)
{
    kc_why_t why;
    uint64_t seconds = 0;
    if (answer->expires && kc_duration_parse (answer->expires, &seconds, &why)) {
        cli_usage (command, "--expires: %s", why.text);
        return NULL;
    }
    static s_old_t old;
    memset (&old, 0, sizeof old);
    char fp [KC_FINGERPRINT_CHARS + 1];
    if (e->rotation && kc_client_query (client, "key", e->replaces, KC_KEY_BYTES, s_collect_old, &old, &why) < 0) {
        cli_fail (command, "%s", why.text);
        return NULL;
    }
    if (e->rotation && (!old.found || old.status != KC_STATUS_ACTIVE)) {
        cli_fail (command, "the key this request replaces, %s, is not registered any more: not approved "
                  "(the node can enrol its new key instead)", kc_fingerprint (e->replaces, fp));
        return NULL;
    }
    const char *tags [KC_RECORD_TAGS_MAX], *old_tags [KC_RECORD_TAGS_MAX];
    size_t count = answer->tag_count ? answer->tag_count : e->tag_count;
    for (size_t i = 0; i < count; i++) {
        tags [i] = answer->tag_count ? answer->tags [i] : e->tags [i];
    }
    for (size_t i = 0; i < old.tag_count; i++) {
        old_tags [i] = old.tags [i];
    }
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    uint64_t version = (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000;
    kc_record_spec_t spec = {
        .directory = kc_root_directory (root), .key = e->key, .version = version,
        .status = KC_STATUS_ACTIVE, .not_after = seconds ? (uint64_t) now.tv_sec + seconds : 0,
        .name = e->name, .tags = tags, .tag_count = count
    };
    uint64_t until = (uint64_t) now.tv_sec + (e->overlap ? e->overlap : 1);
    kc_record_spec_t ending = {
        .directory = kc_root_directory (root), .key = e->replaces, .version = version,
        .status = KC_STATUS_ACTIVE, .name = old.name, .tags = old_tags, .tag_count = old.tag_count,
        .not_after = old.not_after && old.not_after < until ? old.not_after : until
    };
    kc_batch_builder_t *builder = kc_batch_builder_new (kc_root_directory (root), (uint64_t) now.tv_sec);
    if (kc_batch_builder_add (builder, &spec, &why)
    ||  (e->rotation && kc_batch_builder_add (builder, &ending, &why))) {
        cli_fail (command, "%s", why.text);
        kc_batch_builder_destroy (&builder);
    }
    return builder;
}

//  With --out: the registration signed by the operators given, written for
//  the others to cosign ('keyclone cosign', then 'keyclone submit').
static int
s_write_partial (const char *command, const kc_root_t *root, kc_batch_builder_t *builder, kc_signer_t **signers,
                 int count, const char *out)
{
    kc_why_t why;
    kc_batch_t *batch = kc_batch_builder_finish (builder, signers, (size_t) count, &why);
    if (!batch) {
        return cli_fail (command, "%s", why.text);
    }
    size_t size;
    const uint8_t *data = kc_batch_data (batch, &size);
    int rc = kc_file_write_atomic (out, data, size, 0644, &why);
    if (rc) {
        cli_fail (command, "%s", why.text);
    }
    else {
        bool complete = kc_batch_verify (batch, root, kc_now (), &why) == 0;
        printf ("wrote %s: %s\n", out, complete ? "complete; submit it with 'keyclone submit'"
                                                : "cosign it ('keyclone cosign'), then 'keyclone submit' it");
    }
    kc_batch_destroy (&batch);
    return rc ? CLI_FAIL : CLI_OK;
}

//  rotate --replace OLD --new NEW (operators): what approving a node's
//  rotation request signs, without a request: NEW registered under OLD's
//  name and tags, and OLD registered again ending after the overlap, in
//  one batch (s_registration). For a node whose new key came another way
//  (made by 'keyclone rotate', which leaves it in KEY.next, or provisioned
//  by configuration management); the node's agent swaps KEY.next in once
//  its cache holds it.
static int
s_rotate_signed (cli_online_t *online, const s_opts_t *o, uint64_t overlap)
{
    kc_why_t why;
    int rc = CLI_FAIL, count = -1;
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    kc_batch_builder_t *builder = NULL;
    kc_root_t *root = cli_load_pinned_root ("rotate", online->root_path);
    kc_client_t *client = root ? cli_online_client ("rotate", online, root) : NULL;
    kc_enrolment_t e = { .rotation = true, .overlap = overlap ? overlap : 1 };
    static s_old_t old;
    memset (&old, 0, sizeof old);
    if (!client) {
        goto done;
    }
    if (cli_key_input (client, o->replace, e.replaces, &why) || cli_key_input (client, o->new_key, e.key, &why)) {
        cli_fail ("rotate", "%s", why.text);
        goto done;
    }
    char fp [KC_FINGERPRINT_CHARS + 1], next [KC_FINGERPRINT_CHARS + 1], span [24];
    kc_fingerprint (e.replaces, fp);
    kc_fingerprint (e.key, next);
    if (memcmp (e.key, e.replaces, KC_KEY_BYTES) == 0) {
        cli_fail ("rotate", "--new is the key --replace names (%s): a rotation needs another key", fp);
        goto done;
    }
    if (kc_client_query (client, "key", e.replaces, KC_KEY_BYTES, s_collect_old, &old, &why) < 0) {
        cli_fail ("rotate", "%s", why.text);
        goto done;
    }
    if (!old.found || old.status != KC_STATUS_ACTIVE) {
        cli_fail ("rotate", "%s is not a registered key: nothing to rotate (register the new key instead)", fp);
        goto done;
    }
    snprintf (e.name, sizeof e.name, "%s", old.name);
    for (size_t i = 0; i < old.tag_count; i++) {
        snprintf (e.tags [i], sizeof e.tags [i], "%s", old.tags [i]);
    }
    e.tag_count = old.tag_count;
    builder = s_registration ("rotate", client, root, &e, o);
    count = builder ? cli_load_operators ("rotate", online->dir, online->operators, online->operator_count, signers)
                    : -1;
    if (count < 0) {
        goto done;
    }
    if (o->out) {
        rc = s_write_partial ("rotate", root, builder, signers, count, o->out);
        goto done;
    }
    uint64_t seq;
    bool duplicate;
    if (cli_sign_submit ("rotate", client, root, builder, signers, count, &seq, &duplicate)) {
        goto done;
    }
    if (online->json) {
        printf ("{\"state\": \"rotated\", \"name\": \"%s\", \"from\": \"%s\", \"to\": \"%s\", \"seq\": %llu}\n",
                e.name, fp, next, (unsigned long long) seq);
    }
    else {
        printf ("rotated %s: %s registered at seq %llu; the key it replaces, %s, stays valid %s more\n", e.name,
                next, (unsigned long long) seq, fp, s_span (e.overlap * 1000, span));
    }
    rc = CLI_OK;
done:
    for (int i = 0; i < count; i++) {
        kc_signer_destroy (&signers [i]);
    }
    kc_batch_builder_destroy (&builder);
    kc_client_destroy (&client);
    kc_root_destroy (&root);
    cli_online_release (online);
    return rc;
}

//  rotate --token FILE (a node): the node signs its own rotation with a
//  grant's token (docs/records.md 8.5): its new key registered under its
//  name with the grant's tags, and its current key (the one the request is
//  authenticated with, which the server requires) registered again ending
//  after the overlap, in one log entry every agent checks against the
//  grant. Sets e (registered, seq, name) and returns 0; with out, writes
//  the entry there (for 'keyclone submit --client-key' with the current
//  key) and returns 1; or says why and returns -1.
static int
s_rotate_by_grant (kc_client_t *client, const kc_root_t *root, const kc_cert_t *current, const kc_cert_t *fresh,
                   const char *token_path, const char *out, uint64_t overlap, kc_enrolment_t *e)
{
    kc_why_t why;
    int rc = -1;
    kc_signer_t *token = kc_signer_load (token_path, &why);
    kc_grant_t *grant = token ? s_token_grant (token_path, &why) : NULL;
    kc_grant_use_t *use = NULL;
    static s_old_t old;
    memset (&old, 0, sizeof old);
    char fp [KC_FINGERPRINT_CHARS + 1];
    kc_fingerprint (kc_cert_public_key (current), fp);
    if (!grant) {
        cli_fail ("rotate", "--token: %s", why.text);
        goto done;
    }
    if (memcmp (grant->grant_key, kc_signer_public_key (token), KC_KEY_BYTES)) {
        cli_fail ("rotate", "--token: the token is not the grant's (%s.grant names another key)", token_path);
        goto done;
    }
    if (kc_client_query (client, "key", kc_cert_public_key (current), KC_KEY_BYTES, s_collect_old, &old, &why) < 0) {
        cli_fail ("rotate", "%s", why.text);
        goto done;
    }
    if (!old.found || old.status != KC_STATUS_ACTIVE) {
        cli_fail ("rotate", "this node's key %s is not registered: enrol it ('keyclone enrol --token')", fp);
        goto done;
    }
    const char *tags [KC_RECORD_TAGS_MAX];
    for (size_t i = 0; i < grant->tag_count; i++) {
        tags [i] = grant->tags [i];
    }
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    uint64_t created = (uint64_t) now.tv_sec, until = created + (overlap ? overlap : 1);
    uint64_t version = (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000;
    kc_record_spec_t spec = { .key = kc_cert_public_key (fresh), .name = old.name, .tags = tags,
                              .tag_count = grant->tag_count };
    kc_record_spec_t ending = { .key = kc_cert_public_key (current), .name = old.name, .tags = tags,
                                .tag_count = grant->tag_count,
                                .version = version > old.version ? version : old.version + 1,
                                .not_after = old.not_after && old.not_after < until ? old.not_after : until };
    use = kc_grant_use_new_rotation (kc_root_directory (root), token, created, &spec, &ending, &why);
    uint64_t seq;
    bool duplicate;
    if (use && out) {
        if (kc_file_write_atomic (out, use->data, use->size, 0644, &why)) {
            cli_fail ("rotate", "%s", why.text);
        }
        else {
            printf ("wrote %s: the rotation of %s (%s) signed with the token; 'keyclone submit' it with "
                    "--client-key and this key\n", out, old.name, fp);
            rc = 1;
        }
        goto done;
    }
    if (!use || kc_client_submit_data (client, use->data, use->size, &seq, &duplicate, &why)) {
        cli_fail ("rotate", "%s%s", use ? "the server refused the rotation: " : "", why.text);
        goto done;
    }
    *e = (kc_enrolment_t) { .state = KC_ENROL_REGISTERED, .seq = seq };
    snprintf (e->name, sizeof e->name, "%s", old.name);
    rc = 0;
done:
    kc_grant_use_destroy (&use);
    kc_grant_destroy (&grant);
    kc_signer_destroy (&token);
    return rc;
}

int
cmd_approve (int argc, char *argv [])
{
    static const struct option longs [] = {
        CLI_ONLINE_OPTIONS, { "code", required_argument, NULL, 'c' }, { "tag", required_argument, NULL, 't' },
        { "expires", required_argument, NULL, 'x' }, { "out", required_argument, NULL, 'o' },
        { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    s_opts_t answer = { 0 };
    int first = s_args ("approve", &argc, &argv, longs, &online, &answer, 1,
                        "expected the request: a fingerprint, a key or a node NAME");
    if (first < 0) {
        return CLI_USAGE;
    }
    char wanted [KC_ENROL_CODE_CHARS + 1];
    if (answer.code && kc_enrol_code_parse (answer.code, wanted)) {
        return cli_usage ("approve", "--code: not a comparison code (8 characters, as 7KQ2-M9XD)");
    }
    s_session_t session;
    int rc = CLI_FAIL;
    kc_batch_builder_t *builder = NULL;
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    int count = -1;
    if (s_session_open ("approve", &online, &session)) {
        goto done;
    }
    const kc_enrolment_t *e = s_find ("approve", &session.requests, argv [first]);
    if (!e) {
        goto done;
    }
    //  The code computed here from what the request says, not taken from
    //  the server: it matches what the node printed only if the key, the
    //  name and the tags are the ones the node sent
    char code [KC_ENROL_CODE_CHARS + 1], fp [KC_FINGERPRINT_CHARS + 1];
    s_code (e, code);
    kc_fingerprint (e->key, fp);
    if (answer.code && !KC_STREQ (code, wanted)) {
        cli_fail ("approve", "the request of '%s' (%s) has code %s, not %s: it is not the request the node "
                  "made (or a key, name or tag differs); not approved. Compare again, or reject it",
                  e->name, fp, code, wanted);
        goto done;
    }
    builder = s_registration ("approve", session.client, session.root, e, &answer);
    count = builder ? cli_load_operators ("approve", online.dir, online.operators, online.operator_count,
                                          signers) : -1;
    if (count < 0) {
        goto done;
    }
    if (answer.out) {
        rc = s_write_partial ("approve", session.root, builder, signers, count, answer.out);
        goto done;
    }
    uint64_t seq;
    bool duplicate;
    if (cli_sign_submit ("approve", session.client, session.root, builder, signers, count, &seq, &duplicate)) {
        goto done;
    }
    if (online.json) {
        printf ("{\"name\": \"%s\", \"fingerprint\": \"%s\", \"code\": \"%s\", \"seq\": %llu}\n", e->name, fp,
                code, (unsigned long long) seq);
    }
    else {
        char old [KC_FINGERPRINT_CHARS + 1], overlap [24];
        printf ("approved %s (%s, code %s): registered at seq %llu%s", e->name, fp, code,
                (unsigned long long) seq, answer.code ? "" : "; the code was not checked (--code)");
        if (e->rotation) {
            printf ("; the key it replaces, %s, stays valid %s more", kc_fingerprint (e->replaces, old),
                    s_span (e->overlap * 1000, overlap));
        }
        printf ("\n");
    }
    rc = CLI_OK;
done:
    for (int i = 0; i < count; i++) {
        kc_signer_destroy (&signers [i]);
    }
    kc_batch_builder_destroy (&builder);
    s_session_close (&session, &online);
    return rc;
}

int
cmd_reject (int argc, char *argv [])
{
    static const struct option longs [] = {
        CLI_ONLINE_OPTIONS, { "reason", required_argument, NULL, 'R' }, { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    s_opts_t answer = { 0 };
    int first = s_args ("reject", &argc, &argv, longs, &online, &answer, 1,
                        "expected the request: a fingerprint, a key or a node NAME");
    if (first < 0) {
        return CLI_USAGE;
    }
    const char *reason = answer.reason ? answer.reason : "";
    if (!kc_record_reason_valid (reason, strlen (reason))) {
        return cli_usage ("reject", "--reason: at most %d characters of printable ASCII", KC_RECORD_REASON_MAX);
    }
    s_session_t session;
    int rc = CLI_FAIL;
    if (s_session_open ("reject", &online, &session) == 0) {
        const kc_enrolment_t *e = s_find ("reject", &session.requests, argv [first]);
        kc_enrolment_t out;
        kc_why_t why;
        char fp [KC_FINGERPRINT_CHARS + 1];
        if (e && kc_client_reject (session.client, e->key, reason, &out, &why)) {
            cli_fail ("reject", "%s", why.text);
        }
        else
        if (e) {
            printf ("rejected %s (%s): %s\n", out.name, kc_fingerprint (out.key, fp), out.reason);
            rc = CLI_OK;
        }
    }
    s_session_close (&session, &online);
    return rc;
}

//  --- grant (operators) ------------------------------------------------------------

//  Signs and submits a grant (or writes it with --out for cosigning).
static int
s_grant_submit (cli_online_t *online, const kc_grant_t *fields, const char *out, kc_grant_t **made)
{
    kc_why_t why;
    kc_signer_t *signers [CLI_OPERATORS_MAX];
    int count = cli_load_operators ("grant", online->dir, online->operators, online->operator_count, signers);
    if (count < 0) {
        return CLI_FAIL;
    }
    kc_root_t *root = cli_load_pinned_root ("grant", online->root_path);
    kc_client_t *client = root ? cli_client_new (online->root_path, root, online->server, online->timeout_ms) : NULL;
    kc_grant_t g = *fields;
    int rc = CLI_FAIL;
    bool followed = client && cli_follow_root ("grant", client, &root);
    if (followed) {
        memcpy (g.directory, kc_root_directory (root), KC_HASH_BYTES);
        *made = kc_grant_new (&g, signers, (size_t) count, &why);
    }
    uint64_t seq;
    bool duplicate;
    if (!followed) {
        ;                                   //  said why
    }
    else
    if (!*made) {
        cli_fail ("grant", "%s", why.text);
    }
    else
    if (out) {
        if (kc_file_write_atomic (out, (*made)->data, (*made)->size, 0644, &why)) {
            cli_fail ("grant", "%s", why.text);
        }
        else {
            bool complete = kc_grant_verify (*made, root, &why) == 0;
            printf ("wrote %s: %s\n", out, complete ? "complete; submit it with 'keyclone submit'"
                                                    : "cosign it ('keyclone cosign'), then 'keyclone submit' it");
            rc = CLI_OK;
        }
    }
    else
    if (kc_grant_verify (*made, root, &why)) {
        cli_fail ("grant", "%s: give more operators with --operator, or --out FILE and 'keyclone cosign'", why.text);
    }
    else
    if (kc_client_submit_data (client, (*made)->data, (*made)->size, &seq, &duplicate, &why)) {
        cli_fail ("grant", "server refused the grant: %s", why.text);
    }
    else {
        char fp [KC_FINGERPRINT_CHARS + 1];
        printf ("%s grant %s at seq %llu\n", fields->status == KC_STATUS_ACTIVE ? "granted" : "revoked",
                kc_fingerprint ((*made)->grant_key, fp), (unsigned long long) seq);
        rc = CLI_OK;
    }
    for (int i = 0; i < count; i++) {
        kc_signer_destroy (&signers [i]);
    }
    kc_client_destroy (&client);
    kc_root_destroy (&root);
    return rc;
}

int
cmd_grant (int argc, char *argv [])
{
    static const struct option longs [] = {
        CLI_ONLINE_OPTIONS, { "pattern", required_argument, NULL, 'P' }, { "tag", required_argument, NULL, 't' },
        { "uses", required_argument, NULL, 'u' }, { "expires", required_argument, NULL, 'x' },
        { "token", required_argument, NULL, 'g' }, { "out", required_argument, NULL, 'o' },
        { "reason", required_argument, NULL, 'R' }, { NULL, 0, NULL, 0 }
    };
    cli_online_t online = { 0 };
    kc_grant_t fields = { .status = KC_STATUS_ACTIVE };
    s_opts_t o = { .expires = "7d", .reason = "" };
    static const char *usage = "expected 'create' or 'revoke', and --token FILE";
    int first = s_args ("grant", &argc, &argv, longs, &online, &o, 1, usage);
    if (first < 0) {
        return CLI_USAGE;
    }
    const char *action = argv [first], *pattern = o.pattern, *expires = o.expires, *token_path = o.token;
    const char *out = o.out, *reason = o.reason;
    long uses = o.uses ? strtol (o.uses, NULL, 10) : 0;
    if ((!KC_STREQ (action, "create") && !KC_STREQ (action, "revoke")) || !token_path) {
        return cli_usage ("grant", "%s", usage);
    }
    for (size_t i = 0; i < o.tag_count; i++) {
        if (strlen (o.tags [i]) > KC_RECORD_TAG_MAX) {
            return cli_usage ("grant", "at most %d tags of %d characters", KC_RECORD_TAGS_MAX, KC_RECORD_TAG_MAX);
        }
        snprintf (fields.tags [fields.tag_count++], sizeof fields.tags [0], "%s", o.tags [i]);
    }
    kc_why_t why;
    char secret [CLI_PATH_MAX], grant_path [CLI_PATH_MAX], fp [KC_FINGERPRINT_CHARS + 1], when [KC_TIME_WHEN_BYTES];
    kc_grant_t *made = NULL;
    int rc = CLI_FAIL;
    if (KC_STREQ (action, "revoke")) {
        char name [KC_KEY_NAME_MAX + 1];
        fields = (kc_grant_t) { .status = KC_STATUS_REVOKED };
        if (!kc_record_reason_valid (reason, strlen (reason))) {
            return cli_usage ("grant", "--reason: at most %d characters of printable ASCII", KC_RECORD_REASON_MAX);
        }
        snprintf (fields.reason, sizeof fields.reason, "%s", reason);
        if (kc_signer_load_public (token_path, fields.grant_key, name, &why)) {
            return cli_fail ("grant", "--token: %s", why.text);
        }
        rc = s_grant_submit (&online, &fields, out, &made);
        kc_grant_destroy (&made);
        return rc;
    }
    uint64_t seconds;
    if (!pattern || uses < 1 || uses > KC_GRANT_USES_MAX || kc_duration_parse (expires, &seconds, &why)) {
        return cli_usage ("grant", "create needs --pattern, --uses 1..%d and a valid --expires", KC_GRANT_USES_MAX);
    }
    if (kc_file_exists (s_with (secret, token_path, KC_SECRET_SUFFIX)) || kc_file_exists (token_path)) {
        return cli_fail ("grant", "'%s' exists: a new grant needs a new token (a new file)", token_path);
    }
    snprintf (fields.pattern, sizeof fields.pattern, "%s", pattern);
    fields.uses = (uint32_t) uses;
    fields.created = kc_now ();
    fields.not_after = fields.created + seconds;
    kc_signer_t *token = kc_signer_new ("grant", "keyclone-grant");
    memcpy (fields.grant_key, kc_signer_public_key (token), KC_KEY_BYTES);
    //  The token first: a grant in the log whose token was lost helps no one
    if (kc_signer_save (token, token_path, &why)) {
        cli_fail ("grant", "cannot write the token: %s", why.text);
    }
    else {
        rc = s_grant_submit (&online, &fields, out, &made);
        if (made && kc_file_write_atomic (s_with (grant_path, token_path, ".grant"), made->data, made->size, 0644, &why)) {
            rc = cli_fail ("grant", "%s", why.text);
        }
        if (rc == CLI_OK) {
            printf ("  grant        %s: names '%s', at most %u, until %s\n", kc_fingerprint (fields.grant_key, fp),
                    made->pattern, made->uses, kc_time_when (made->not_after, kc_now (), when));
            printf ("  token        %s (secret: give it to the fleet's provisioning, with %s)\n", secret, grant_path);
        }
    }
    if (rc != CLI_OK) {
        unlink (secret);                    //  no grant: no token either
        unlink (token_path);
    }
    kc_signer_destroy (&token);
    kc_grant_destroy (&made);
    return rc;
}
