/*  =========================================================================
    cmd_recover - gives a server back the log entries it lost (its store
    restored from an older backup) from a node whose agent holds them:
    docs/operator.md section 8.

    The entries are taken from the agent's history, shown to continue the
    server's log exactly (each one's chain computed from the server's chain
    at its last seq reaches the agent's chain), and submitted in order: the
    server accepts each at the sequence it had before, so the chain is the
    same and every agent that kept the entries is fresh again. The server
    checks every entry as it checks any submission; nothing here is trusted
    for more than where the entries sit.
    =========================================================================
*/
#include "cli.h"

#include <sodium.h>
#include <string.h>

//  One entry of the agent's history, copied out of the reply.
typedef struct {
    uint64_t seq;
    zchunk_t *data;
} s_entry_t;

static void
s_entry_destroy (void **item)
{
    s_entry_t *entry = *item;
    zchunk_destroy (&entry->data);
    free (entry);
    *item = NULL;
}

static int
s_keep_entry (const kc_entry_t *entry, void *arg)
{
    s_entry_t *kept = malloc (sizeof *kept);
    assert (kept);
    *kept = (s_entry_t) { .seq = entry->seq, .data = zchunk_new (entry->data, entry->size) };
    zlistx_add_end ((zlistx_t *) arg, kept);
    return 0;
}

//  Where one side stands: seq and chain from its STATUS JSON.
static int
s_position (const char *json, const char *who, uint64_t *seq, uint8_t chain [static KC_HASH_BYTES])
{
    if (!cli_status_u64 (json, "seq", seq) || !cli_status_hash (json, "chain", chain)) {
        return cli_fail ("recover", "%s's status has no seq and chain", who);
    }
    return 0;
}

int
cmd_recover (int argc, char *argv [])
{
    static const struct option longs [] = { CLI_ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    cli_online_t online = { 0 };
    int c, handled;
    cli_args (&argc, &argv, longs);
    while ((c = cli_getopt (argc, argv, "", longs, NULL)) != -1) {
        if ((handled = cli_online_option ("recover", c, &online)) != 1) {
            return CLI_USAGE;
        }
    }
    if (optind != argc) {
        return cli_usage ("recover", "unexpected argument '%s'", argv [optind]);
    }
    cli_online_finish (&online);
    kc_root_t *pinned = cli_load_pinned_root ("recover", online.root_path);
    if (!pinned) {
        return CLI_FAIL;
    }
    kc_why_t why;
    zlistx_t *entries = zlistx_new ();
    zlistx_set_destructor (entries, s_entry_destroy);
    kc_client_t *server = cli_online_client ("recover", &online, pinned);
    kc_client_t *agent = kc_client_new_agent (online.agent, online.timeout_ms);
    char *server_json = NULL, *agent_json = NULL;
    int rc = CLI_FAIL;
    uint64_t server_seq, agent_seq;
    uint8_t server_chain [KC_HASH_BYTES], agent_chain [KC_HASH_BYTES], chain [KC_HASH_BYTES];
    if (!server) {
        goto done;
    }
    if (!(server_json = kc_client_status (server, true, &why))) {
        cli_fail ("recover", "the server: %s", why.text);
        goto done;
    }
    if (!(agent_json = kc_agent_request (online.agent, online.timeout_ms, "STATUS", NULL, 0, true, &why))) {
        cli_fail ("recover", "the agent: %s", why.text);
        goto done;
    }
    if (s_position (server_json, "the server", &server_seq, server_chain)
    ||  s_position (agent_json, "the agent", &agent_seq, agent_chain)) {
        goto done;
    }
    if (agent_seq == server_seq && sodium_memcmp (agent_chain, server_chain, KC_HASH_BYTES)) {
        cli_fail ("recover", "the server's log and this node's differ at seq %llu (a fork: entries accepted after "
                  "the restore?); nothing submitted", (unsigned long long) agent_seq);
        goto done;
    }
    if (agent_seq <= server_seq) {
        if (online.json) {
            printf ("{\"recovered\": 0, \"seq\": %llu}\n", (unsigned long long) server_seq);
        }
        else {
            printf ("nothing to recover: the server is at seq %llu, the agent at %llu\n",
                    (unsigned long long) server_seq, (unsigned long long) agent_seq);
        }
        rc = CLI_OK;
        goto done;
    }
    //  The agent's entries after the server's last, in order, continuing
    //  its chain exactly
    if (kc_client_log (agent, server_seq, s_keep_entry, entries, &why) < 0) {
        cli_fail ("recover", "the agent's history: %s", why.text);
        goto done;
    }
    s_entry_t *first = zlistx_first (entries);
    if (!first || first->seq != server_seq + 1) {
        cli_fail ("recover", "the agent's history starts at seq %llu, not %llu: it no longer holds all the "
                  "server lost (it keeps the newest %d entries); not recovered",
                  first ? (unsigned long long) first->seq : 0ULL, (unsigned long long) server_seq + 1,
                  KC_CACHE_HISTORY_ENTRIES);
        goto done;
    }
    memcpy (chain, server_chain, KC_HASH_BYTES);
    size_t wanted = 0;
    for (s_entry_t *entry = first; entry && entry->seq <= agent_seq; entry = zlistx_next (entries), wanted++) {
        if (entry->seq != server_seq + 1 + wanted) {
            cli_fail ("recover", "the agent's history skips from seq %llu to %llu; not recovered",
                      (unsigned long long) server_seq + wanted, (unsigned long long) entry->seq);
            goto done;
        }
        if (kc_log_entry_chain (chain, entry->seq, zchunk_data (entry->data), zchunk_size (entry->data), chain,
                                &why)) {
            cli_fail ("recover", "seq %llu in the agent's history: %s; not recovered",
                      (unsigned long long) entry->seq, why.text);
            goto done;
        }
    }
    if (wanted != agent_seq - server_seq || sodium_memcmp (chain, agent_chain, KC_HASH_BYTES)) {
        cli_fail ("recover", "the agent's entries after seq %llu do not continue the server's log to the agent's "
                  "chain at seq %llu: the server's log and this node's differ (a fork: entries accepted after "
                  "the restore?); nothing submitted", (unsigned long long) server_seq,
                  (unsigned long long) agent_seq);
        goto done;
    }
    //  Each at the sequence it had: the server must take it there
    size_t given = 0;
    for (s_entry_t *entry = zlistx_first (entries); given < wanted; entry = zlistx_next (entries), given++) {
        uint64_t seq;
        bool duplicate;
        if (kc_client_submit_data (server, zchunk_data (entry->data), zchunk_size (entry->data), &seq, &duplicate,
                                   &why)) {
            cli_fail ("recover", "seq %llu refused by the server: %s; %zu of %zu entries given back",
                      (unsigned long long) entry->seq, why.text, given, wanted);
            goto done;
        }
        if (seq != entry->seq || duplicate) {
            cli_fail ("recover", "the server took seq %llu as %s %llu (something else was submitted meanwhile); "
                      "%zu of %zu entries given back", (unsigned long long) entry->seq,
                      duplicate ? "a duplicate of" : "seq", (unsigned long long) seq, given, wanted);
            goto done;
        }
    }
    if (online.json) {
        printf ("{\"recovered\": %zu, \"from\": %llu, \"seq\": %llu}\n", wanted,
                (unsigned long long) server_seq + 1, (unsigned long long) agent_seq);
    }
    else {
        char hex [2 * KC_HASH_BYTES + 1];
        printf ("gave the server back %zu entr%s (seq %llu to %llu) from the agent's history; it is at seq %llu "
                "with chain %.16s..., as the agent\n", wanted, wanted == 1 ? "y" : "ies",
                (unsigned long long) server_seq + 1, (unsigned long long) agent_seq,
                (unsigned long long) agent_seq, kc_hex (agent_chain, KC_HASH_BYTES, hex));
    }
    rc = CLI_OK;
done:
    zlistx_destroy (&entries);
    free (server_json);
    free (agent_json);
    kc_client_destroy (&agent);
    kc_client_destroy (&server);
    cli_online_release (&online);
    kc_root_destroy (&pinned);
    return rc;
}
