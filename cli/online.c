/*  =========================================================================
    online - what the commands that talk to a server share: their common
    options, the client they build from them, and signing and submitting.
    =========================================================================
*/
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_TIMEOUT_MS  10000

//  Handles a shared option; returns 1 if handled, 0 if not, -1 on error.
int
cli_online_option (const char *command, int c, cli_online_t *o)
{
    switch (c) {
        case 'd': o->dir = optarg; return 1;
        case 'r': o->root_path = optarg; return 1;
        case 'S': o->server = optarg; return 1;
        case 'A': o->agent = optarg; return 1;
        case 'K': o->key_path = optarg; return 1;
        case 'j': o->json = true; return 1;
        case 'T':
            o->timeout_ms = atoi (optarg);
            if (o->timeout_ms < 1) {
                cli_usage (command, "invalid --timeout '%s'", optarg);
                return -1;
            }
            return 1;
        case 'p':
            if (o->operator_count == CLI_OPERATORS_MAX) {
                cli_usage (command, "too many --operator options");
                return -1;
            }
            o->operators [o->operator_count++] = optarg;
            return 1;
        default:
            return 0;
    }
}

//  True if path exists, or may and this user is not allowed to see it (a
//  user outside the agent's group): a lookup then says why it cannot ask.
static bool
s_there (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 || errno == EACCES;
}

//  True if path is a regular file: "root" in the current directory is no
//  root when it is root's home (a command run from /).
static bool
s_file (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 && S_ISREG (st.st_mode);
}

#define SERVER_HOST_DIR "/var/lib/keyclone/server"     //  the packaged server's directory

void
cli_online_finish (cli_online_t *o)
{
    const char *env = getenv ("KEYCLONE_DIR");
    if (!o->dir && !(env && *env) && !cli_config ("dir") && !s_file ("root")
    &&  kc_file_exists (SERVER_HOST_DIR "/root")) {
        o->dir = SERVER_HOST_DIR;           //  on the server's host, as packaged (operator.md 2a)
    }
    o->dir = cli_dir (o->dir);
    if (!o->root_path) {
        //  DIR/root, else the configured one, else a node's documented one
        o->root_path = cli_path (o->root_buffer, o->dir, "root");
        const char *configured = cli_config ("root");
        if (!s_file (o->root_path) && configured) {
            o->root_path = configured;
        }
        else
        if (!s_file (o->root_path) && kc_file_exists ("/etc/keyclone/root")) {
            o->root_path = "/etc/keyclone/root";
        }
    }
    const char *operators = cli_config ("operator");
    if (o->operator_count == 0 && operators) {
        //  "alice" or "alice,bob"
        snprintf (o->operator_buffer, sizeof o->operator_buffer, "%s", operators);
        for (char *name = strtok (o->operator_buffer, ", "); name && o->operator_count < CLI_OPERATORS_MAX;
             name = strtok (NULL, ", ")) {
            o->operators [o->operator_count++] = name;
        }
    }
    if (!o->timeout_ms) {
        o->timeout_ms = DEFAULT_TIMEOUT_MS;
    }
    if (!o->agent) {
        env = getenv ("KEYCLONE_AGENT");
        char ipc [PATH_MAX + 32], beside [PATH_MAX + 32], absolute [PATH_MAX];
        const char *dir = realpath (o->dir, absolute) ? absolute : o->dir;
        snprintf (ipc, sizeof ipc, "%s/agent/agent.ipc", dir);
        snprintf (beside, sizeof beside, "%s/agent.ipc", dir);     //  an agent run with --dir DIR
        if (env && *env) {
            o->agent = env;
        }
        else
        if (cli_config ("agent")) {
            o->agent = cli_config ("agent");
        }
        else
        if (!kc_file_exists (ipc) && kc_file_exists (beside)) {
            snprintf (o->agent_buffer, sizeof o->agent_buffer, "ipc://%s", beside);
            o->agent = o->agent_buffer;
        }
        else
        if (!kc_file_exists (ipc) && s_there (CLI_NODE_AGENT_DIR "/agent.ipc")) {
            o->agent = "ipc://" CLI_NODE_AGENT_DIR "/agent.ipc";    //  a node's documented layout
        }
        else {
            snprintf (o->agent_buffer, sizeof o->agent_buffer, "ipc://%s", ipc);
            o->agent = o->agent_buffer;
        }
    }
}

//  A client of the server, authenticated for reading (QUERY, STATUS) when
//  the server's policy is read = members: with --client-key (or $KEYCLONE_CLIENT_KEY), a
//  registered member's key pair; and with an operator key (the first
//  --operator, or one found in DIR/operators) signing each read request.
//  NULL after printing why when --key cannot be loaded.
kc_client_t *
cli_online_client (const char *command, cli_online_t *o, const kc_root_t *root)
{
    const char *path = o->key_path ? o->key_path : getenv ("KEYCLONE_CLIENT_KEY");
    kc_why_t why;
    if (path && *path && !(o->key = kc_cert_load_secret (path, &why))) {
        cli_fail (command, "--client-key: %s", why.text);
        return NULL;
    }
    kc_client_t *client = cli_client_new (o->root_path, root, o->server, o->timeout_ms);
    if (o->key) {
        kc_client_set_key (client, o->key);
    }
    o->reader = cli_reader_operator (o->dir, o->operators, o->operator_count);
    if (o->reader) {
        kc_client_set_operator (client, o->reader);
    }
    return client;
}

//  Frees what cli_online_client loaded.
void
cli_online_release (cli_online_t *o)
{
    kc_cert_destroy (&o->key);
    kc_signer_destroy (&o->reader);
}

//  Signs a builder's records and submits them. Returns 0 and the seq, or
//  -1 after printing why.
int
cli_sign_submit (const char *command, kc_client_t *client, const kc_root_t *root,
               kc_batch_builder_t *builder, kc_signer_t **signers, int count, uint64_t *seq,
               bool *duplicate)
{
    kc_why_t why;
    kc_batch_t *batch = kc_batch_builder_finish (builder, signers, (size_t) count, &why);
    if (!batch) {
        cli_fail (command, "%s", why.text);
        return -1;
    }
    int rc = -1;
    if (kc_batch_verify (batch, root, kc_now (), &why)) {
        cli_fail (command, "%s: give more operators with --operator, or sign offline with "
                  "'keyclone sign' and 'keyclone cosign', then 'keyclone submit'", why.text);
    }
    else
    if (kc_client_submit (client, batch, seq, duplicate, &why)) {
        cli_fail (command, "server refused the batch: %s", why.text);
    }
    else {
        rc = 0;
    }
    kc_batch_destroy (&batch);
    return rc;
}

