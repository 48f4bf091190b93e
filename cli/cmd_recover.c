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

typedef struct {
    uint64_t seq;
    uint8_t *data;
    size_t size;
} s_entry_t;

typedef struct {
    s_entry_t *entries;
    size_t count, capacity;
} s_entries_t;

static int
s_keep_entry (const kc_entry_t *entry, void *arg)
{
    s_entries_t *entries = arg;
    if (entries->count == entries->capacity) {
        entries->capacity = entries->capacity ? 2 * entries->capacity : 64;
        entries->entries = realloc (entries->entries, entries->capacity * sizeof (s_entry_t));
        assert (entries->entries);
    }
    s_entry_t *kept = &entries->entries [entries->count++];
    kept->seq = entry->seq;
    kept->size = entry->size;
    kept->data = malloc (entry->size ? entry->size : 1);
    assert (kept->data);
    memcpy (kept->data, entry->data, entry->size);
    return 0;
}

static void
s_entries_free (s_entries_t *entries)
{
    for (size_t i = 0; i < entries->count; i++) {
        free (entries->entries [i].data);
    }
    free (entries->entries);
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
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
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
    s_entries_t entries = { 0 };
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
    if (kc_client_log (agent, server_seq, s_keep_entry, &entries, &why) < 0) {
        cli_fail ("recover", "the agent's history: %s", why.text);
        goto done;
    }
    if (entries.count == 0 || entries.entries [0].seq != server_seq + 1) {
        cli_fail ("recover", "the agent's history starts at seq %llu, not %llu: it no longer holds all the "
                  "server lost (it keeps the newest %d entries); not recovered",
                  entries.count ? (unsigned long long) entries.entries [0].seq : 0ULL,
                  (unsigned long long) server_seq + 1, KC_CACHE_HISTORY_ENTRIES);
        goto done;
    }
    memcpy (chain, server_chain, KC_HASH_BYTES);
    size_t wanted = 0;
    for (size_t i = 0; i < entries.count && entries.entries [i].seq <= agent_seq; i++, wanted++) {
        s_entry_t *entry = &entries.entries [i];
        if (entry->seq != server_seq + 1 + i) {
            cli_fail ("recover", "the agent's history skips from seq %llu to %llu; not recovered",
                      (unsigned long long) server_seq + i, (unsigned long long) entry->seq);
            goto done;
        }
        if (kc_log_entry_chain (chain, entry->seq, entry->data, entry->size, chain, &why)) {
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
    for (size_t i = 0; i < wanted; i++) {
        s_entry_t *entry = &entries.entries [i];
        uint64_t seq;
        bool duplicate;
        if (kc_client_submit_data (server, entry->data, entry->size, &seq, &duplicate, &why)) {
            cli_fail ("recover", "seq %llu refused by the server: %s; %zu of %zu entries given back",
                      (unsigned long long) entry->seq, why.text, i, wanted);
            goto done;
        }
        if (seq != entry->seq || duplicate) {
            cli_fail ("recover", "the server took seq %llu as %s %llu (something else was submitted meanwhile); "
                      "%zu of %zu entries given back", (unsigned long long) entry->seq,
                      duplicate ? "a duplicate of" : "seq", (unsigned long long) seq, i, wanted);
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
    s_entries_free (&entries);
    free (server_json);
    free (agent_json);
    kc_client_destroy (&agent);
    kc_client_destroy (&server);
    cli_online_release (&online);
    kc_root_destroy (&pinned);
    return rc;
}
