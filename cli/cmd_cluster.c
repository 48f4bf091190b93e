/*  =========================================================================
    cmd_cluster - keyclone cluster status: every member of a server cluster
    (the root's servers, docs/cluster.md) asked for its STATUS on its own:
    its role, the leader it follows and the term, its sequence and how far
    behind the most advanced member it is.
    =========================================================================
*/
#include "cli.h"

#include <getopt.h>

#define MEMBER_TIMEOUT_MS   2000            //  per member, unless --timeout is lower

typedef struct {
    const kc_root_server_t *server;
    bool answered;
    char why [KC_WHY_BYTES];
    char state [16], leader [KC_ROOT_OPERATOR_NAME_MAX + 1];
    uint64_t seq, term, refused;
    uint8_t chain [KC_HASH_BYTES];
} s_member_t;

//  A string field "name": "value" of a STATUS reply's JSON, into out (a
//  name or a word: no escapes). false when missing.
static bool
s_status_str (const char *json, const char *name, char *out, size_t size)
{
    char key [64];
    snprintf (key, sizeof key, "\"%s\": \"", name);
    const char *field = strstr (json, key);
    if (!field) {
        return false;
    }
    field += strlen (key);
    size_t length = strcspn (field, "\"\\");
    snprintf (out, size, "%.*s", (int) (length < size ? length : size - 1), field);
    return true;
}

static void
s_ask (const char *command, cli_online_t *online, const kc_root_t *root, s_member_t *member)
{
    online->server = member->server->endpoints [KC_ENDPOINT_SUBMIT];
    kc_client_t *client = cli_online_client (command, online, root);
    if (!client) {
        snprintf (member->why, sizeof member->why, "cannot make a client");
        return;
    }
    kc_why_t why;
    char *text = NULL;
    char *json = kc_client_status_both (client, &text, &why);
    kc_client_destroy (&client);
    cli_online_release (online);
    if (!json) {
        snprintf (member->why, sizeof member->why, "%s", why.text);
        return;
    }
    const char *cluster = strstr (json, "\"cluster\": {");
    member->answered = cli_status_u64 (json, "seq", &member->seq) && cli_status_hash (json, "chain", member->chain);
    if (!member->answered) {
        snprintf (member->why, sizeof member->why, "its status has no seq");
    }
    else
    if (!cluster) {
        snprintf (member->state, sizeof member->state, "single");   //  not started with --cluster
    }
    else {
        s_status_str (cluster, "state", member->state, sizeof member->state);
        s_status_str (cluster, "leader", member->leader, sizeof member->leader);
        cli_status_u64 (cluster, "term", &member->term);
        cli_status_u64 (cluster, "refused", &member->refused);
    }
    free (json);
    free (text);
}

int
cmd_cluster (int argc, char *argv [])
{
    static const struct option longs [] = { CLI_ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    if (argc >= 2 && (KC_STREQ (argv [1], "--help") || KC_STREQ (argv [1], "-h"))) {
        return cli_help ("cluster");
    }
    if (argc >= 2 && argv [1][0] != '-' && !KC_STREQ (argv [1], "status")) {
        return cli_usage ("cluster", "unknown subcommand '%s' (the one there is: status)", argv [1]);
    }
    if (argc >= 2 && argv [1][0] != '-') {
        static char name [] = "cluster";    //  "cluster status ...": options from argv [2]
        argv [1] = name;
        argc--;
        argv++;
    }
    cli_online_t online = { 0 };
    int c;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if (c == 'S') {
            return cli_usage ("cluster", "--server: every member of the root is asked");
        }
        if (cli_online_option ("cluster", c, &online) != 1) {
            return CLI_USAGE;
        }
    }
    if (optind != argc) {
        return cli_usage ("cluster", "unexpected argument '%s'", argv [optind]);
    }
    cli_online_finish (&online);
    if (online.timeout_ms > MEMBER_TIMEOUT_MS) {
        online.timeout_ms = MEMBER_TIMEOUT_MS;
    }
    kc_root_t *root = cli_load_pinned_root ("cluster", online.root_path);
    if (!root) {
        return CLI_FAIL;
    }
    size_t count = kc_root_server_count (root);
    s_member_t members [KC_ROOT_SERVERS_MAX];
    uint64_t top = 0, term = 0;
    const char *leader = NULL;
    size_t answered = 0, leading = 0;
    for (size_t i = 0; i < count; i++) {
        members [i] = (s_member_t) { .server = kc_root_server (root, i) };
        s_ask ("cluster", &online, root, &members [i]);
        if (members [i].answered) {
            answered++;
            top = members [i].seq > top ? members [i].seq : top;
            if (KC_STREQ (members [i].state, "leader") && members [i].term >= term) {
                leader = members [i].server->name;
                term = members [i].term;
                leading++;
            }
        }
    }
    char hex [65];
    if (online.json) {
        printf ("{");
        kc_json_field_str (stdout, true, "leader", leader ? leader : "");
        kc_json_field_u64 (stdout, false, "term", term);
        kc_json_field_u64 (stdout, false, "members", count);
        kc_json_field_u64 (stdout, false, "answered", answered);
        kc_json_field_u64 (stdout, false, "seq", top);
        printf (", \"servers\": [");
        for (size_t i = 0; i < count; i++) {
            const s_member_t *m = &members [i];
            printf ("%s{", i ? ", " : "");
            kc_json_field_str (stdout, true, "name", m->server->name);
            kc_json_field_str (stdout, false, "submit", m->server->endpoints [KC_ENDPOINT_SUBMIT]);
            printf (", \"answered\": %s", m->answered ? "true" : "false");
            if (m->answered) {
                kc_json_field_str (stdout, false, "state", m->state);
                kc_json_field_str (stdout, false, "leader", m->leader);
                kc_json_field_u64 (stdout, false, "term", m->term);
                kc_json_field_u64 (stdout, false, "seq", m->seq);
                kc_json_field_str (stdout, false, "chain", kc_hex (m->chain, KC_HASH_BYTES, hex));
                kc_json_field_u64 (stdout, false, "lag", top - m->seq);
                kc_json_field_u64 (stdout, false, "raft_refused", m->refused);
            }
            else {
                kc_json_field_str (stdout, false, "error", m->why);
            }
            printf ("}");
        }
        printf ("]}\n");
    }
    else {
        if (leader) {
            printf ("cluster of %zu members: leader %s, term %llu; %zu answered\n", count, leader,
                    (unsigned long long) term, answered);
        }
        else {
            printf ("cluster of %zu members: NO LEADER (%zu answered; a majority is %zu)\n", count, answered,
                    count / 2 + 1);
        }
        printf ("  %-12s %-10s %10s %6s  %s\n", "member", "state", "seq", "lag", "submit");
        for (size_t i = 0; i < count; i++) {
            const s_member_t *m = &members [i];
            if (m->answered) {
                printf ("  %-12s %-10s %10llu %6llu  %s\n", m->server->name, m->state, (unsigned long long) m->seq,
                        (unsigned long long) (top - m->seq), m->server->endpoints [KC_ENDPOINT_SUBMIT]);
            }
            else {
                char *why = kc_escape_dup (m->why, strlen (m->why), 0);
                printf ("  %-12s %-10s %10s %6s  %s: %s\n", m->server->name, "DOWN", "-", "-",
                        m->server->endpoints [KC_ENDPOINT_SUBMIT], why);
                free (why);
            }
        }
    }
    kc_root_destroy (&root);
    //  0 with a leader, 1 without one (a majority is down or cut off)
    return leader && leading >= 1 ? CLI_OK : CLI_FAIL;
}
