/*  =========================================================================
    cmd_cluster - keyclone cluster status: every member of a server cluster
    (the root's servers, docs/cluster.md) asked for its STATUS on its own:
    its role, the leader it follows and the term, its sequence and how far
    behind the most advanced member it is; keyclone cluster add and remove:
    the root changes that change the members.
    =========================================================================
*/
#include "cli.h"

#include <ctype.h>
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
//  name or a word; what a server sent, so anything but a letter, a digit,
//  '-', '_' or '.' becomes '?'). false when missing.
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
    for (char *c = out; *c; c++) {
        *c = isalnum ((unsigned char) *c) || *c == '-' || *c == '_' || *c == '.' ? *c : '?';
    }
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

//  cluster add NAME=tcp://HOST:PORT, cluster remove NAME: a root change
//  naming one server more (its directory made in DIR/servers/NAME) or one
//  fewer; the members' leader then changes Raft's configuration to match.
static int
s_change_members (const char *command, int argc, char *argv [], bool add)
{
    static const struct option longs [] = { CLI_ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    cli_online_t online = { 0 };
    int c;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if (cli_online_option (command, c, &online) != 1) {
            return CLI_USAGE;
        }
    }
    if (optind + 1 != argc) {
        return cli_usage (command, add ? "which member: NAME=tcp://HOST:PORT" : "which member: NAME");
    }
    char name [KC_ROOT_OPERATOR_NAME_MAX + 1], endpoints [KC_ENDPOINTS][300];
    const char *arg = argv [optind], *equals = strchr (arg, '=');
    size_t length = add ? (equals ? (size_t) (equals - arg) : 0) : strlen (arg);
    if (length == 0 || length > KC_ROOT_OPERATOR_NAME_MAX
    ||  (add && (strncmp (equals + 1, "tcp://", 6) || cli_endpoints (equals + 1, endpoints)))) {
        return cli_usage (command, add ? "'%s' is not NAME=tcp://HOST:PORT" : "'%s' is not a member name", arg);
    }
    snprintf (name, sizeof name, "%.*s", (int) length, arg);
    cli_online_finish (&online);
    kc_why_t why;
    kc_root_t *pinned = kc_root_load (online.root_path, &why);
    if (!pinned) {
        return cli_fail (command, "%s", why.text);
    }
    kc_root_t *current = kc_root_dup (pinned);
    kc_client_t *client = cli_online_client (command, &online, pinned);
    int rc = CLI_FAIL;
    kc_cert_t *curve = NULL;
    kc_signer_t *head = NULL;
    if (!client || !cli_follow_root (command, client, &current)) {
        goto done;
    }
    static kc_root_spec_t spec;
    static kc_root_storage_t storage;
    kc_root_successor_spec (current, &spec, &storage);
    spec.created = kc_now () > kc_root_created (current) ? kc_now () : kc_root_created (current);
    size_t at = spec.server_count;
    for (size_t i = 0; i < spec.server_count; i++) {
        at = KC_STREQ (storage.servers [i].name, name) ? i : at;
    }
    if (add && at < spec.server_count) {
        cli_fail (command, "root v%llu already names a server '%s'", (unsigned long long) kc_root_version (current),
                  name);
        goto done;
    }
    if (!add && at == spec.server_count) {
        cli_fail (command, "root v%llu names no server '%s'", (unsigned long long) kc_root_version (current), name);
        goto done;
    }
    if (add && spec.server_count == KC_ROOT_SERVERS_MAX) {
        cli_fail (command, "root v%llu names %d servers already, the most it may", 
                  (unsigned long long) kc_root_version (current), KC_ROOT_SERVERS_MAX);
        goto done;
    }
    if (!add && spec.server_count <= 3) {
        cli_fail (command, "a cluster keeps 3 members or more: add one before removing '%s'", name);
        goto done;
    }
    if (add) {
        //  In its place: a root lists its servers in ascending name order
        size_t place = 0;
        while (place < spec.server_count && strcmp (storage.servers [place].name, name) < 0) {
            place++;
        }
        memmove (&storage.servers [place + 1], &storage.servers [place],
                 (spec.server_count - place) * sizeof storage.servers [0]);
        spec.server_count++;
        kc_root_server_t *server = &storage.servers [place];
        memset (server, 0, sizeof *server);
        snprintf (server->name, sizeof server->name, "%s", name);
        curve = kc_cert_new ("keyclone-server");
        head = kc_signer_new ("head", "keyclone-head");
        memcpy (server->server_key, kc_cert_public_key (curve), KC_KEY_BYTES);
        memcpy (server->head_key, kc_signer_public_key (head), KC_KEY_BYTES);
        for (int i = 0; i < KC_ENDPOINTS; i++) {
            snprintf (server->endpoints [i], sizeof server->endpoints [i], "%.250s", endpoints [i]);
        }
        //  The new member's directory first: it holds the only copy of its keys
        char cluster [2048] = "", address [300];
        for (size_t i = 0, used = 0; i < spec.server_count && used < sizeof cluster; i++) {
            if (kc_root_raft_address (storage.servers [i].endpoints [KC_ENDPOINT_SUBMIT], address, sizeof address)) {
                snprintf (address, sizeof address, "?");
            }
            used += (size_t) snprintf (cluster + used, sizeof cluster - used, "%s%s=%s", i ? "," : "",
                                       storage.servers [i].name, address);
        }
        if (cli_save_member (online.dir, name, curve, head, pinned, cluster, endpoints, &why)) {
            cli_fail (command, "%s", why.text);
            goto done;
        }
    }
    else {
        memmove (&storage.servers [at], &storage.servers [at + 1],
                 (spec.server_count - at - 1) * sizeof storage.servers [0]);
        spec.server_count--;
    }
    spec.servers = storage.servers;
    rc = cli_root_change (command, online.dir, online.operators, online.operator_count, NULL, online.json, client,
                          current, &spec);
    if (rc == CLI_OK && add && !online.json) {
        printf ("member %s: its directory is %s/servers/%s; copy it to its host and start it there:\n"
                "  keyclone-server --dir DIR/servers/%s\n"
                "the leader adds it to the cluster, and it catches up from the others\n", name, online.dir, name,
                name);
    }
    if (rc == CLI_OK && !add && !online.json) {
        printf ("member %s leaves the cluster: the leader removes it, and it stops once it applies the change\n",
                name);
    }
done:
    kc_cert_destroy (&curve);
    kc_signer_destroy (&head);
    kc_client_destroy (&client);
    cli_online_release (&online);
    kc_root_destroy (&current);
    kc_root_destroy (&pinned);
    return rc;
}

int
cmd_cluster (int argc, char *argv [])
{
    static const struct option longs [] = { CLI_ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    if (argc >= 2 && (KC_STREQ (argv [1], "--help") || KC_STREQ (argv [1], "-h"))) {
        return cli_help ("cluster");
    }
    if (argc >= 2 && (KC_STREQ (argv [1], "add") || KC_STREQ (argv [1], "remove"))) {
        bool add = KC_STREQ (argv [1], "add");
        static char name [] = "cluster";
        argv [1] = name;
        return s_change_members (add ? "cluster add" : "cluster remove", argc - 1, argv + 1, add);
    }
    if (argc >= 2 && argv [1][0] != '-' && !KC_STREQ (argv [1], "status")) {
        return cli_usage ("cluster", "unknown subcommand '%s' (status, add, remove)", argv [1]);
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
    //  The members are the servers of the root in force: followed from the
    //  pinned one through the log (any member answers), checked each step
    kc_client_t *client = cli_online_client ("cluster", &online, root);
    kc_why_t why;
    kc_root_t *current = client ? kc_client_root (client, root, NULL, NULL, &why) : NULL;
    kc_client_destroy (&client);
    cli_online_release (&online);
    if (current) {
        cli_remember_root ("cluster", root, current);
        kc_root_destroy (&root);
        root = current;
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
                char *reason = kc_escape_dup (m->why, strlen (m->why), 0);
                printf ("  %-12s %-10s %10s %6s  %s: %s\n", m->server->name, "DOWN", "-", "-",
                        m->server->endpoints [KC_ENDPOINT_SUBMIT], reason);
                free (reason);
            }
        }
    }
    kc_root_destroy (&root);
    //  0 with a leader, 1 without one (a majority is down or cut off)
    return leader && leading >= 1 ? CLI_OK : CLI_FAIL;
}
