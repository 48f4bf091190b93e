/*  =========================================================================
    cli - shared pieces of the keyclone command: option conventions, paths
    under the keyclone directory, loading keys and roots, printing records.

    Conventions: exit 0 success, 1 failure, 2 usage, 3 the root in force
    expires within a week (status), 4 not trusted (lookup), 5 the server or
    agent did not answer. Errors go to stderr as one line "keyclone COMMAND:
    reason" (with --json, also a JSON object on stdout). Data goes to stdout;
    --json makes it machine-readable.
    =========================================================================
*/
#ifndef KC_CLI_H_INCLUDED
#define KC_CLI_H_INCLUDED

#include "kc_all.h"
#include <getopt.h>
#include <stdio.h>

#define CLI_OK      0
#define CLI_FAIL    1
#define CLI_USAGE   2
#define CLI_ROOT_EXPIRING   3       //  status: the root in force expires within a week
#define CLI_NOT_TRUSTED     4       //  lookup: the key is not trusted (unknown, revoked, expired)
#define CLI_UNREACHABLE     5       //  the server or the agent did not answer
#define CLI_ROOT_WARN_DAYS  7
#define CLI_OPERATORS_MAX 32
//  A node's documented layout (operator.md 2a): the agent's state directory,
//  holding its key (node, node_secret) and its sockets
#define CLI_NODE_AGENT_DIR  "/var/lib/keyclone/agent"

//  One subcommand: its name, function, one-line summary and help text.
typedef struct {
    const char *name;
    int (*run) (int argc, char *argv []);
    const char *summary;
    const char *help;
} cli_command_t;

//  Prints "keyclone COMMAND: message" to stderr; returns CLI_FAIL.
int
    cli_fail (const char *command, const char *format, ...) KC_PRINTF (2, 3);

//  Prints a usage error and a pointer to --help; returns CLI_USAGE.
int
    cli_usage (const char *command, const char *format, ...) KC_PRINTF (2, 3);

//  getopt_long for the commands (argv [0] is the command's name): an
//  unknown option, a missing or unwanted argument is said as cli_usage says
//  any usage error ("keyclone register: unrecognized option '--bogus'"), so
//  that --json prints it as an error object too; returns '?' then.
int
    cli_getopt (int argc, char *const argv [], const char *shorts, const struct option *longs, int *index);

//  Prints the help text of a command to stdout; returns CLI_OK.
int
    cli_help (const char *command);

//  Rewrites argc/argv before getopt_long so that a positional argument that
//  is a Z85 key starting with '-' (Z85 allows it) is not taken for an
//  option: options and their values first, then "--", then the positional
//  arguments in their order. Idempotent.
void
    cli_args (int *argc, char ***argv, const struct option *longs);

//  A value of the CLI's configuration file (ZPL, section 'keyclone': dir,
//  agent, operator, root): $KEYCLONE_CONFIG, else $KEYCLONE_DIR/keyclone.conf,
//  else /etc/keyclone/keyclone.conf. NULL when not set.
const char *
    cli_config (const char *name);
//  A time (unix seconds) relative to now, for people: "in 3 days",
//  "5 hours ago". Returns text.
char *
    cli_relative (uint64_t when, char text [static 40]);
//  The keyclone directory: --dir, else $KEYCLONE_DIR, else the config's
//  'dir', else ".".
const char *
    cli_dir (const char *option);

#define CLI_PATH_MAX 4096

//  Joins dir and name into buffer; returns buffer.
const char *
    cli_path (char buffer [static CLI_PATH_MAX], const char *dir, const char *name);

//  Loads the root at path and checks it on its own (signatures, expiry).
kc_root_t *
    cli_load_root (const char *command, const char *path);

//  Loads the pinned root at path, checked as of its own creation (its
//  signatures): after a renewal in the log it may have expired, and what
//  counts is the root in force, learnt with cli_follow_root.
kc_root_t *
    cli_load_pinned_root (const char *command, const char *path);

//  A client of the server whose pinned root is pinned (loaded from
//  root_path): it connects with the server key of the newest root followed
//  from it before (root_path.followed, a hint), falling back to the pinned
//  root's key (a server key rotation, docs/protocol.md 2.3).
kc_client_t *
    cli_client_new (const char *root_path, const kc_root_t *pinned, const char *server,
                    int timeout_ms);

//  Replaces *root_p (a pinned root) with the root in force at the server,
//  followed from it through the log's root changes (each checked), and
//  remembers it in root_path.followed for cli_client_new. Returns it, or
//  NULL after printing why (*root_p unchanged).
kc_root_t *
    cli_follow_root (const char *command, kc_client_t *client, kc_root_t **root_p);

//  Remembers root (in force at the server: followed, or just accepted) in
//  the hint cli_client_new reads, if it is newer than what is there.
void
    cli_remember_root (const char *command, const kc_root_t *pinned, const kc_root_t *root);

//  The root a root change follows (its version - 1): the pinned root
//  (root_path, default DIR/root) when it is that one, else the root in
//  force at the server if it is. NULL when neither is.
kc_root_t *
    cli_root_before (const char *dir, const char *root_path, const kc_root_t *change);

//  Prints what a root change changes, and whether its signatures are
//  complete (old and new root thresholds) or what is missing.
void
    cli_report_root_change (const kc_root_t *before, const kc_root_t *change);

//  Prints a root as text (a first line "root vN: VERDICT", then its
//  fields) or a JSON object; quiet prints the first line only.
void
    cli_print_root (const kc_root_t *root, bool json, bool quiet, const char *verdict);

//  Loads operator signers: each name is a path (contains '/') or an
//  operator name under DIR/operators. With none given, uses the only operator
//  key in DIR/operators. Returns the count, or -1 after printing why.
int
    cli_load_operators (const char *command, const char *dir, char *const *names,
                        int name_count, kc_signer_t *signers [CLI_OPERATORS_MAX]);

//  An operator key to sign read requests with (QUERY, STATUS; kc_access.h):
//  the first of names if any were given, else the first operator secret in
//  DIR/operators this user can read. NULL if there is none (not an error).
kc_signer_t *
    cli_reader_operator (const char *dir, char *const *names, int name_count);

//  Prints one record as a text line or a JSON object.
void
    cli_print_record (FILE *out, const kc_record_t *record, bool json);

//  Prints a reply that came from a server or an agent (JSON or text) to
//  stdout, escaped (kc_escape, newlines kept) so a rogue peer cannot send
//  terminal escapes or control bytes to the user's terminal; JSON gets a
//  final newline.
void
    cli_print_reply (const char *reply, bool json);

//  A top-level field of a STATUS reply's JSON (the server's or an agent's:
//  both put their own fields before any list), read without a JSON parser:
//  an unsigned number, or a 32-byte hex string. false when it is missing.
bool
    cli_status_u64 (const char *json, const char *name, uint64_t *value);
bool
    cli_status_hash (const char *json, const char *name, uint8_t hash [static KC_HASH_BYTES]);

//  The operator name for a key in root, or its fingerprint.
const char *
    cli_operator_name (const kc_root_t *root, const uint8_t *key, char buffer [static 80]);

//  Called with each record parsed from an argument or a --from file.
typedef int (cli_record_fn) (const kc_record_spec_t *spec, void *arg, kc_why_t *why);

//  Parses "NAME=KEY[,tag=T][,expires=D][,version=N]" (register) or
//  "KEY[,name=N][,version=N][,reason=TEXT]" (revoke) and calls fn.
int
    cli_parse_record (const char *argument, bool revoke, cli_record_fn *fn, void *arg,
                      kc_why_t *why) KC_WUR;

//  Reads a --from file (or - for stdin): one record per line, as above,
//  optionally prefixed by "register " or "revoke "; '#' starts a comment.
int
    cli_read_records (const char *path, cli_record_fn *fn, void *arg, kc_why_t *why) KC_WUR;

//  Checks every signer is an operator of root; prints why not. CLI_OK/FAIL.
int
    cli_check_signers (const char *command, const kc_root_t *root, kc_signer_t **signers,
                       int count);

//  Subcommands.
int cmd_init (int argc, char *argv []);
//  A key as a person gives it: a 40-character Z85 key, a certificate file
//  (public or secret: only the public key is read), or with a client a
//  fingerprint (a unique hex prefix of at least 8 digits of a registered
//  key; several matches are listed). 0, or -1 with a reason.
int
    cli_key_input (kc_client_t *client, const char *text, uint8_t key [static KC_KEY_BYTES], kc_why_t *why);

int cmd_keygen (int argc, char *argv []);
int cmd_sign (int argc, char *argv []);
int cmd_cosign (int argc, char *argv []);
int cmd_verify (int argc, char *argv []);
int cmd_register (int argc, char *argv []);
int cmd_revoke (int argc, char *argv []);
int cmd_submit (int argc, char *argv []);
int cmd_list (int argc, char *argv []);
int cmd_show (int argc, char *argv []);
int cmd_enrol (int argc, char *argv []);
int cmd_pending (int argc, char *argv []);
int cmd_approve (int argc, char *argv []);
int cmd_reject (int argc, char *argv []);
int cmd_rotate (int argc, char *argv []);
int cmd_grant (int argc, char *argv []);
int cmd_metrics (int argc, char *argv []);
int cmd_lookup (int argc, char *argv []);
int cmd_status (int argc, char *argv []);
int cmd_root (int argc, char *argv []);
int cmd_cluster (int argc, char *argv []);
int cmd_log (int argc, char *argv []);
int cmd_recover (int argc, char *argv []);
int cmd_import (int argc, char *argv []);
int cmd_export (int argc, char *argv []);

extern const cli_command_t cli_commands [];


//  Builds the root spec describes (the successor of current), signs it with
//  the operator keys, shows what changes, and submits it, or writes it for
//  more signatures (to out, default DIR/root-vN.pending). CLI_OK or why.
int
    cli_root_change (const char *command, const char *dir, char *const *operators, int operator_count,
                     const char *out, bool json, kc_client_t *client, const kc_root_t *current,
                     const kc_root_spec_t *spec);

//  DIR/servers/NAME: a cluster member's keys, a copy of the root and a
//  server.cfg naming every member's Raft address (cluster: "a=H:P,...");
//  for a member joining (the root does not name it yet) also its name and
//  where it binds (endpoints). 0, or -1 with a reason.
int
    cli_save_member (const char *dir, const char *name, const kc_cert_t *curve, const kc_signer_t *head,
                     const kc_root_t *root, const char *cluster, char endpoints [KC_ENDPOINTS][300],
                     kc_why_t *why);

//  The three endpoints of a server from its base URL: tcp://HOST:PORT gives
//  PORT, PORT+1, PORT+2; ipc://PATH gives PATH.snapshot, .updates, .submit.
int
    cli_endpoints (const char *base, char out [KC_ENDPOINTS][300]);

//  --- The online commands (online.c) ----------------------------------------

#include <limits.h>

//  Options shared by the online commands.
typedef struct {
    const char *dir;
    const char *root_path;
    const char *server;                     //  submit endpoint override
    const char *agent;                      //  agent local endpoint
    const char *key_path;                   //  --client-key: a member's key pair
    kc_cert_t *key;                         //  loaded from key_path
    kc_signer_t *reader;                    //  signs read requests, if found
    char *operators [CLI_OPERATORS_MAX];
    int operator_count;
    int timeout_ms;
    bool json;
    char root_buffer [CLI_PATH_MAX];
    char agent_buffer [PATH_MAX + 64];
    char operator_buffer [1024];            //  the config's operator names
} cli_online_t;

#define CLI_ONLINE_OPTIONS \
    { "dir", required_argument, NULL, 'd' }, { "root", required_argument, NULL, 'r' }, \
    { "server", required_argument, NULL, 'S' }, { "agent", required_argument, NULL, 'A' }, \
    { "operator", required_argument, NULL, 'p' }, { "timeout", required_argument, NULL, 'T' }, \
    { "client-key", required_argument, NULL, 'K' }, { "json", no_argument, NULL, 'j' }

//  Handles a shared option (getopt's c); returns 1 if handled, 0 if not,
//  -1 after a usage error.
int
    cli_online_option (const char *command, int c, cli_online_t *o);
//  Fills the defaults (directory, root path, timeout, agent endpoint).
void
    cli_online_finish (cli_online_t *o);
//  A client of the server, authenticated for reading when the server's
//  policy is read = members: with --client-key (or $KEYCLONE_CLIENT_KEY),
//  a member's key pair; and with an operator key signing each read
//  request. NULL after printing why when --client-key cannot be loaded.
kc_client_t *
    cli_online_client (const char *command, cli_online_t *o, const kc_root_t *root);
//  Frees what cli_online_client loaded.
void
    cli_online_release (cli_online_t *o);
//  Signs a builder's records and submits them. Returns 0 and the seq, or
//  -1 after printing why.
int
    cli_sign_submit (const char *command, kc_client_t *client, const kc_root_t *root,
                     kc_batch_builder_t *builder, kc_signer_t **signers, int count, uint64_t *seq,
                     bool *duplicate);

#endif
