/*  =========================================================================
    keyclone - the operator and node command line: table-driven dispatch to
    one function per subcommand. Thin: parses arguments and calls libkeyclone.
    =========================================================================
*/
#include "cli.h"

#include <unistd.h>

#include <assert.h>
#include <dirent.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

//  The options every online command (register ... status) accepts; each uses
//  those it needs.
#define ONLINE_HELP \
    "\n" \
    "Common options of the online commands (each accepts all of them and ignores\n" \
    "those it has no use for):\n" \
    "  --dir DIR          keyclone directory (root, operators; default $KEYCLONE_DIR, else\n" \
    "                     'dir' in the configuration file, else .)\n" \
    "  --root FILE        the root (default DIR/root): names the server and its key\n" \
    "  --server EP        the server's submission endpoint (which also answers\n" \
    "                     queries and status) instead of the root's\n" \
    "  --agent EP         the local agent (default $KEYCLONE_AGENT, else 'agent' in the\n" \
    "                     configuration file, else the first that exists of\n" \
    "                     ipc://DIR/agent/agent.ipc, ipc://DIR/agent.ipc and\n" \
    "                     ipc:///var/lib/keyclone/agent/agent.ipc)\n" \
    "  --operator NAME|PATH  an operator key to sign with, by name under\n" \
    "                     DIR/operators or by path (repeatable; default: the only\n" \
    "                     key in DIR/operators)\n" \
    "  --timeout MS       how long to wait for a reply (default 10000)\n" \
    "  --client-key FILE  authenticate with this CURVE key pair (default\n" \
    "                     $KEYCLONE_CLIENT_KEY, else a throw-away one)\n" \
    "  --json             machine-readable output\n" \
    "\n" \
    "Reading (list, show, status --server, revoke NAME) from a server with read =\n" \
    "members needs a registered member's key (--client-key, e.g. a console key\n" \
    "registered with the tag role=console) or an operator key: the first --operator,\n" \
    "or the first readable key in DIR/operators, signs each read request.\n" \
    "\n" \
    "Defaults come from a configuration file when there is one: $KEYCLONE_CONFIG, else\n" \
    "$KEYCLONE_DIR/keyclone.conf, else /etc/keyclone/keyclone.conf (ZPL: a section\n" \
    "'keyclone' with dir, agent, root and operator, e.g. operator = \"alice,bob\").\n" \
    "Options and the environment win. Without DIR/root, the root is the configured\n" \
    "one, else /etc/keyclone/root (a node's).\n"

static const char *s_main_help =
    "Usage: keyclone COMMAND [OPTIONS]\n"
    "\n"
    "keyclone distributes operator-signed ZeroMQ CURVE public keys to every node.\n"
    "\n"
    "Commands:\n";

const cli_command_t cli_commands [] = {
    { "init", cmd_init, "create operator keys, server keys and the genesis root",
      "Usage: keyclone init [--dir DIR] [--operators N] [--threshold K]\n"
      "                     [--names NAME,...] [--endpoint tcp://HOST:PORT] [--expires DURATION]\n"
      "                     [--members NAME=tcp://HOST:PORT,...] [--witnesses N]\n"
      "                     [--witness-threshold K]\n"
      "\n"
      "Creates a new keyclone directory in DIR (default: $KEYCLONE_DIR or .):\n"
      "  DIR/root                      the signed genesis root: copy to every node\n"
      "  DIR/operators/NAME[_secret]   Ed25519 operator keys: move the _secret files\n"
      "                                to the operators' machines and keep them offline\n"
      "  DIR/server/curve[_secret]     the server's CURVE key pair (czmq certificate)\n"
      "  DIR/server/head[_secret]      the server's head-signing key\n"
      "and prints the directory id.\n"
      "\n"
      "Options:\n"
      "  --operators N          number of operator keys to create (default 1, max 32)\n"
      "  --threshold K          signatures needed to register, revoke and change the\n"
      "                         root (default 1); override one with --threshold-register,\n"
      "                         --threshold-revoke, --threshold-root\n"
      "  --names A,B,...        operator names (default op1, op2, ...)\n"
      "  --endpoint URL         base endpoint tcp://HOST:PORT: the snapshot channel uses\n"
      "                         PORT, updates PORT+1, submissions PORT+2\n"
      "                         (default tcp://127.0.0.1:5550)\n"
      "  --witnesses N          N witness keys w1..wN in DIR/witnesses (max 16), named\n"
      "                         in the root: agents are fresh only on heads cosigned\n"
      "                         by the witness threshold of them (docs/protocol.md 9)\n"
      "  --witness-threshold K  cosignatures an agent needs (default: a majority;\n"
      "                         0 names witnesses without needing them)\n"
      "  --members NAME=tcp://HOST:PORT,...\n"
      "                         a cluster of 3 to 8 members instead of one server\n"
      "                         (docs/cluster.md): each gets its endpoints from its\n"
      "                         URL as --endpoint does, its Raft address HOST:PORT+3,\n"
      "                         and a directory DIR/servers/NAME (keys, root and a\n"
      "                         server.cfg naming every member) to run it from\n"
      "  --expires DURATION     root lifetime, e.g. 365d, 2y (default 1y)\n"
      "  --json                 print the result as JSON\n" },
    { "keygen", cmd_keygen, "create a CURVE key pair (czmq certificate files)",
      "Usage: keyclone keygen NAME [--operator|--witness] [--dir DIR] [--force] [--json]\n"
      "\n"
      "Writes DIR/NAME (public) and DIR/NAME_secret (mode 0600) in czmq's certificate\n"
      "format, so zcert_load and pyzmq's zmq.auth.load_certificate read them, and prints\n"
      "the public key in Z85. DIR defaults to the current directory. An existing\n"
      "key is never overwritten unless --force is given.\n"
      "With --operator: an operator's Ed25519 signing key instead (same file layout),\n"
      "whose public file DIR/NAME is what 'keyclone root add-operator' takes.\n"
      "With --witness: a witness's Ed25519 key (same layout), for 'keyclone root\n"
      "add-witness' and 'keyclone-agent --witness DIR/NAME_secret'.\n" },
    { "sign", cmd_sign, "build and sign a batch of registrations and revocations offline",
      "Usage: keyclone sign [--register NAME=KEY[,OPTION...]]... [--revoke KEY[,OPTION...]]...\n"
      "                     [--from FILE] --out FILE [--operator NAME|PATH]... [--root FILE]\n"
      "                     [--dir DIR] [--json]\n"
      "\n"
      "Builds one batch and signs it with the operator key(s). KEY is a 40-character\n"
      "Z85 CURVE public key (quote it: Z85 uses shell characters) or a certificate\n"
      "file (czmq's or pyzmq's; only its public key is read). Offline, fingerprints\n"
      "cannot be looked up: 'register' and 'revoke' take them.\n"
      "  register options: tag=TAG (repeatable, e.g. tag=role=db), expires=DURATION,\n"
      "                    version=N\n"
      "  revoke options:   name=NAME, version=N, reason=TEXT (must come last: the rest\n"
      "                    of the argument is the reason)\n"
      "The version defaults to the signing time in microseconds, so a later signature\n"
      "for a key supersedes an earlier one. --from FILE reads one record per line in\n"
      "the same syntax, as 'NAME=KEY,...' or 'register NAME=KEY,...' or\n"
      "'revoke KEY,...'; '#' starts a comment; '-' reads standard input.\n"
      "The operator defaults to the only key in DIR/operators; give --operator several\n"
      "times to sign with several keys. Use 'keyclone cosign' to add signatures later.\n" },
    { "cosign", cmd_cosign, "add an operator signature to a batch or root file",
      "Usage: keyclone cosign FILE [--operator NAME|PATH]... [--out FILE] [--root FILE]\n"
      "                       [--dir DIR] [--json]\n"
      "\n"
      "Adds the operator's signature to a batch (or a root) and writes it back (or to\n"
      "--out). Reports how many valid signatures the result has against the root.\n"
      "\n"
      "Options:\n"
      "  --operator NAME|PATH  the key to sign with, by name under DIR/operators or\n"
      "                     by path (repeatable; default: the only key in DIR/operators)\n"
      "  --out FILE         write the result here instead of over FILE\n"
      "  --root FILE        the root to check against (default DIR/root)\n"
      "  --dir DIR          keyclone directory (default $KEYCLONE_DIR or .)\n"
      "  --json             print the report as JSON\n" },
    { "verify", cmd_verify, "check a batch or root and print what it contains",
      "Usage: keyclone verify [--root ROOT] [--dir DIR] [--json] [--quiet] FILE\n"
      "\n"
      "FILE is a batch or a root. A batch is checked against ROOT (default DIR/root):\n"
      "directory, root expiry, and the operator signature thresholds. A root is\n"
      "checked on its own (its own operators' signatures and expiry) and, when it is a\n"
      "newer version than ROOT, as ROOT's successor. Prints the contents, or the\n"
      "reason the file is rejected. --quiet prints only the verdict.\n"
      "Exit status: 0 valid, 1 rejected or unreadable, 2 usage.\n" },
    { "register", cmd_register, "sign and submit node registrations to the server",
      "Usage: keyclone register NAME --key KEY [--tag TAG]... [--expires DURATION]\n"
      "                         [--version N] [--force] [--operator NAME|PATH]...\n"
      "                         [COMMON OPTIONS]\n"
      "       keyclone register --from FILE [--batch-size N] [--operator ...] [COMMON OPTIONS]\n"
      "\n"
      "Signs a registration with the operator key(s) and submits it to the server, which\n"
      "replies once it is durably committed; prints the sequence number. --from reads\n"
      "one record per line as 'keyclone sign' does and submits them in batches of\n"
      "--batch-size (default 10000), showing progress on a terminal (records done of\n"
      "the file's total, records/s, the time left). When the root needs more signatures\n"
      "than the operators given, use 'keyclone sign', 'cosign' and 'submit' instead.\n"
      "\n"
      "Options:\n"
      "  --key KEY          the node's CURVE public key: Z85 (from 'keyclone keygen'), a\n"
      "                     certificate file (czmq or pyzmq; only its public key is\n"
      "                     read), or the fingerprint of a registered key (a unique hex\n"
      "                     prefix of at least 8 digits)\n"
      "  --force            register a key already registered under another name (a move;\n"
      "                     with --from, a run without it stops at the first such record,\n"
      "                     after the batches before it)\n"
      "  --tag TAG          a tag such as role=db (repeatable, at most 16)\n"
      "  --expires DURATION the key is no longer trusted after this long, e.g. 90d\n"
      "  --version N        the record's version (default: the time in microseconds)\n"
      "  --from FILE        records, one a line ('-': standard input)\n"
      "  --batch-size N     records per batch with --from (default 10000)\n"
      ONLINE_HELP },
    { "revoke", cmd_revoke, "sign and submit the revocation of a key, or of a node's keys",
      "Usage: keyclone revoke (KEY|NAME) [--reason TEXT] [--force] [--operator NAME|PATH]...\n"
      "                       [COMMON OPTIONS]\n"
      "\n"
      "Revokes one key, or every unrevoked key registered for a node NAME (the server\n"
      "is asked which). Revocation is terminal: the key can never be registered again.\n"
      "Prints the sequence number; agents apply it within milliseconds. KEY is a Z85\n"
      "key, a certificate file, or a fingerprint (a unique hex prefix of at least 8\n"
      "digits of a registered key; an ambiguous one lists the matches).\n"
      "\n"
      "Options:\n"
      "  --reason TEXT      why (printable ASCII, at most 255 bytes), kept in the tombstone\n"
      "  --force            revoke a key that was never registered (a pre-emptive\n"
      "                     tombstone: it can never be registered afterwards)\n"
      ONLINE_HELP },
    { "submit", cmd_submit, "submit batches made offline with 'keyclone sign'",
      "Usage: keyclone submit FILE... [COMMON OPTIONS]\n"
      "\n"
      "Submits each batch file; prints its sequence number, or 'already accepted' with\n"
      "the original one when the same batch was submitted before. Exit 1 if any is\n"
      "refused (the reason is printed).\n"
      ONLINE_HELP },
    { "list", cmd_list, "list the keys the server holds",
      "Usage: keyclone list [--revoked] [COMMON OPTIONS]\n"
      "\n"
      "Lists the server's active keys (or, with --revoked, the revoked ones) in key\n"
      "order.\n"
      ONLINE_HELP },
    { "show", cmd_show, "show the server's records for a key or a node name",
      "Usage: keyclone show (KEY|NAME) [COMMON OPTIONS]\n"
      "\n"
      "Prints every record the server holds for a key, or for every key of a node\n"
      "NAME, revoked ones included. KEY is a Z85 key, a certificate file, or a\n"
      "fingerprint (a unique hex prefix of at least 8 digits).\n"
      ONLINE_HELP },
    { "lookup", cmd_lookup, "ask the local agent about a key or a node name",
      "Usage: keyclone lookup (Z85KEY|CERTFILE|FINGERPRINT|NAME) [--agent EP] [--json]\n"
      "                       [COMMON OPTIONS]\n"
      "\n"
      "Prints the agent's verdict (trusted, revoked, expired, not-yet-valid, unknown,\n"
      "or stale under the fail-closed policy) with the name, tags and sequence. A\n"
      "FINGERPRINT is 8 or more hex digits of a key in the agent's cache (a name made\n"
      "of hex digits is looked up as a name first); several matches are listed.\n"
      "Exit 0 if a trusted key was found, 4 if not, 1 on failure (an ambiguous\n"
      "fingerprint).\n"
      ONLINE_HELP },
    { "status", cmd_status, "show the local agent's or the server's status",
      "Usage: keyclone status [--server [EP]] [--agent EP] [--json] [COMMON OPTIONS]\n"
      "\n"
      "Without --server: the local agent's state (fresh, stale or syncing), its sequence,\n"
      "last head and server. With --server: the server's sequence and every agent with\n"
      "the head it has applied, and which are behind; --server EP asks the server\n"
      "at that endpoint instead of the root's.\n"
      "Exit status: 0; 1 on failure; 2 usage; 3 when the root in force expires within\n"
      "7 days or has expired (renew it: 'keyclone root renew'), for monitoring.\n"
      ONLINE_HELP },
    { "metrics", cmd_metrics, "the agent's or the server's metrics, in Prometheus text format",
      "Usage: keyclone metrics [--server] [--agent EP] [COMMON OPTIONS]\n"
      "\n"
      "Prints the local agent's metrics (or, with --server, the server's, read like\n"
      "'keyclone status --server') in the Prometheus text exposition format 0.0.4, for\n"
      "a node exporter's textfile collector or a scrape wrapper. The agent's: state,\n"
      "sequence, keys, last head's age, clock offset, root expiry, entries applied and\n"
      "rejected by class of reason, syncs. The server's: sequence, keys, submissions\n"
      "accepted and refused by class of reason, handshakes allowed and denied,\n"
      "readers' connections closed by revocation or expiry, syncs and bytes in flight,\n"
      "enrolment requests, and each agent's lag and acknowledgement age.\n"
      ONLINE_HELP },
    { "enrol", cmd_enrol, "on a node: ask to join the directory, and wait for an operator's answer",
      "Usage: keyclone enrol NAME [--tag TAG]... [--wait] [--key FILE] [--token FILE [--out FILE]]\n"
      "                      [--json] [COMMON OPTIONS]\n"
      "\n"
      "Asks the server to let this node join as NAME. The request is sent over the\n"
      "submission channel with the node's own CURVE key (the handshake proves it holds\n"
      "the secret): the agent's key, DIR/node_secret if it exists, else on a node laid\n"
      "out as packaged /var/lib/keyclone/agent/node_secret, made now if there is none\n"
      "(or --key FILE); made by root in the agent's directory, it belongs to the\n"
      "agent's user. Prints the key, its fingerprint and a comparison code: give them to\n"
      "an operator, who checks the code (keyclone approve's code option) before signing\n"
      "the registration. A pending request is not a member: nothing trusts it.\n"
      "Asking again shows where the request stands. With --wait it returns once the key\n"
      "is registered and the node's agent (--agent) has synced to it (it asks the agent\n"
      "to connect again at once; up to --timeout), or fails with the operator's reason\n"
      "when rejected, or when the request expires (24 h by default on the server).\n"
      "With --token FILE (from 'keyclone grant create': FILE_secret and FILE.grant) the\n"
      "node signs its own registration with the token and is registered at once, with\n"
      "the grant's tags, if its name matches the grant's pattern and uses are left;\n"
      "with --out FILE it writes that registration for 'keyclone submit' instead.\n"
      "Exit status: 0 pending or registered; 1 refused, rejected or expired; 2 usage.\n"
      ONLINE_HELP },
    { "rotate", cmd_rotate, "on a node: replace its key with a new one, the old one valid for an overlap",
      "Usage: keyclone rotate [--overlap DURATION] [--wait | --token FILE [--out FILE]] [--key FILE]\n"
      "                       [--json] [COMMON OPTIONS]\n"
      "       keyclone rotate --replace OLD --new NEW [--overlap DURATION] [--out FILE]\n"
      "                       [--operator NAME|PATH]... [COMMON OPTIONS]\n"
      "\n"
      "Makes a new key pair for this node (kept as KEY.next until it is in place; KEY is\n"
      "the agent's, found as by enrol, or --key FILE) and asks the server, authenticated by the\n"
      "current key, for the new one to replace it under the same name and tags. Operators\n"
      "approve it as an enrolment ('keyclone pending', 'keyclone approve'): one batch\n"
      "registers the new key and ends the old one DURATION later (--overlap, default\n"
      "1h). Once registered, the new key goes in place of KEY and KEY_secret (each\n"
      "file replaced by a rename), the old pair kept as KEY.old until the overlap ends,\n"
      "then removed. The node's agent does it as soon as its cache holds the new key,\n"
      "and connects with it; so does this command run again after the approval, or\n"
      "with --wait, which returns once the new key is in place. Run again while the\n"
      "old key's overlap lasts, it says the rotation is done and starts no other.\n"
      "Clients reading KEY switch to the new key; connections still using the old key\n"
      "are closed when it expires.\n"
      "\n"
      "With --token FILE (a grant's token, as for 'enrol --token') the node signs its\n"
      "rotation itself and it is registered at once, without an operator, if the grant\n"
      "allows its name (the new key takes the grant's tags); it counts one use. With\n"
      "--out FILE it writes that rotation for 'keyclone submit --client-key KEY' instead.\n"
      "\n"
      "With --replace and --new, operators rotate a node's key without a request: one\n"
      "batch, signed like 'approve', registers NEW under OLD's name and tags and ends\n"
      "OLD DURATION later. OLD and NEW are each a Z85 key, a certificate file (the\n"
      "node's KEY.next) or a fingerprint (OLD: 8 or more hex digits of a registered key).\n"
      "With --out FILE it writes the signed batch for 'keyclone cosign' and 'submit'.\n"
      "Exit status: 0 pending or rotated; 1 refused, rejected or expired; 2 usage.\n"
      ONLINE_HELP },
    { "grant", cmd_grant, "let a token register nodes by itself: create or revoke an enrolment grant",
      "Usage: keyclone grant create --token FILE --pattern PATTERN --uses N [--tag TAG]...\n"
      "                             [--expires DURATION] [--out FILE] [--operator NAME|PATH]...\n"
      "       keyclone grant revoke --token FILE [--reason TEXT] [--out FILE] [--operator ...]\n"
      "                             [COMMON OPTIONS]\n"
      "\n"
      "create makes a grant key: its secret half, the token, goes to FILE_secret (mode\n"
      "0600), its public half to FILE, and the grant the operators sign (names matching\n"
      "PATTERN, '*' for any run of characters; at most N registrations; the tags every\n"
      "such node gets; until --expires, default 7d) to FILE.grant. A node given\n"
      "FILE_secret and FILE.grant registers itself with 'keyclone enrol NAME --token\n"
      "FILE': the server and every agent check each registration against the grant, in\n"
      "log order; the token never travels. revoke ends the grant (FILE: its public\n"
      "half). With a threshold above the operators given, --out writes the grant for\n"
      "'keyclone cosign' and 'keyclone submit'.\n"
      ONLINE_HELP },
    { "pending", cmd_pending, "list the enrolment requests waiting for an operator",
      "Usage: keyclone pending [--json] [COMMON OPTIONS]\n"
      "\n"
      "Lists the requests the server keeps (read like 'keyclone list'): node name,\n"
      "fingerprint, comparison code (computed here from the key, name and tags the\n"
      "request holds, not taken from the server), state, age, time left before it\n"
      "expires, source address and tags. Rejected requests stay listed, with the\n"
      "reason, until they expire, so their node learns why.\n"
      ONLINE_HELP },
    { "approve", cmd_approve, "sign the registration of a pending enrolment request",
      "Usage: keyclone approve (FINGERPRINT|KEY|NAME) [--code CODE] [--tag TAG]...\n"
      "                        [--expires DURATION] [--out FILE] [--operator NAME|PATH]...\n"
      "                        [COMMON OPTIONS]\n"
      "\n"
      "Finds the pending request (by fingerprint prefix of at least 8 hex digits, key,\n"
      "certificate file or node name; an ambiguous one lists the matches), signs its\n"
      "registration with the --operator keys and submits it, as 'register' would. With\n"
      "--code, the code the node printed must equal the request's, else nothing is\n"
      "signed: a different key, name or tag changes the code. --tag replaces the tags\n"
      "the node asked for. When the root needs more signatures than the operators\n"
      "given, --out FILE writes the signed registration for the others to 'keyclone\n"
      "cosign', then 'keyclone submit'.\n"
      ONLINE_HELP },
    { "reject", cmd_reject, "refuse a pending enrolment request",
      "Usage: keyclone reject (FINGERPRINT|KEY|NAME) [--reason TEXT] [COMMON OPTIONS]\n"
      "\n"
      "Refuses the request, signed by an operator key (--operator, or the first in\n"
      "DIR/operators). The node's 'keyclone enrol' (waiting or not) then prints the reason;\n"
      "the request is kept as rejected until it expires, and the same key cannot ask\n"
      "again before then.\n"
      ONLINE_HELP },
    { "import", cmd_import, "register every certificate of a czmq or pyzmq certificate directory",
      "Usage: keyclone import CERTDIR [--tag TAG]... [--batch-size N] [--force] [--json]\n"
      "                       [COMMON OPTIONS]\n"
      "\n"
      "Registers the public key of every CURVE certificate in CERTDIR (czmq's zcertstore\n"
      "layout, and pyzmq's zmq.auth: every file but *_secret is a public certificate),\n"
      "in batches signed with the --operator keys, as a bulk registration. The name is\n"
      "the certificate's metadata name, else the file name without '.key'; --tag adds\n"
      "tags to every record. Files it cannot use are skipped, each with the reason on\n"
      "stderr: secret key files (never read), files that are not public certificates,\n"
      "a key already read from another file, a file with no valid name. A key registered\n"
      "under another name stops the run unless --force moves it. On a terminal it shows\n"
      "its progress: certificates done of the files to read, records/s, the time left.\n"
      "Exit status: 0; 1 if nothing could be imported or a batch was refused.\n"
      ONLINE_HELP },
    { "export", cmd_export, "write the directory's keys as czmq certificates (zcertstore, zmq.auth)",
      "Usage: keyclone export DIR [--trusted] [--json] [COMMON OPTIONS]\n"
      "\n"
      "Writes every registered key of the directory (read from the server, like 'keyclone\n"
      "list') to DIR as a czmq public certificate NAME.key (NAME-FINGERPRINT.key for a\n"
      "second key of one name), with its name and tags as metadata (a tag k=v as k), so\n"
      "czmq's zcertstore/zauth and pyzmq's zmq.auth.load_certificates can read them.\n"
      "Revoked keys are never written; --trusted also leaves out keys that are expired\n"
      "or not yet valid now. Certificates an earlier export of this directory wrote to\n"
      "DIR that this one did not (keys revoked or expired since) are removed; other\n"
      "files are left alone. Run it again whenever the directory changes (the agent's\n"
      "event stream says when): a copied folder does not follow revocations by itself.\n"
      "Exit status: 0; 1 if the server cannot be read or DIR written.\n"
      ONLINE_HELP },
    { "recover", cmd_recover, "give a server that lost log entries (an old backup restored) them back from an agent",
      "Usage: keyclone recover [--agent EP] [--client-key FILE] [COMMON OPTIONS]\n"
      "\n"
      "After the server's store was restored from an older backup, agents that had\n"
      "synced past it are ahead of the server: they keep their caches (a revocation\n"
      "may be among what the server lost) and say so in 'keyclone status'. Run on one\n"
      "of those nodes, recover reads the agent's history after the server's last\n"
      "sequence, checks that it continues the server's log to the agent's chain, and\n"
      "submits each entry in order: the server checks each one as any submission and\n"
      "takes it at the sequence it had, so every agent is fresh again with nothing lost.\n"
      "Nothing is submitted when the logs differ (entries accepted after the restore)\n"
      "or the history no longer holds all the server lost (it keeps the newest 10,000).\n"
      "Reading the server's status needs read access as for 'list' (--client-key:\n"
      "the node's own key is a member).\n"
      "Exit status: 0 recovered or nothing to do; 1 refused or not recoverable;\n"
      "5 the server or the agent did not answer.\n"
      ONLINE_HELP },
    { "log", cmd_log, "the audit trail: every log entry, who signed it, who submitted it",
      "Usage: keyclone log [--since SEQ] [--name NAME] [--json] [--agent EP] [COMMON OPTIONS]\n"
      "\n"
      "Reads the server's log (read like 'keyclone list') and prints every entry from\n"
      "sequence SEQ on (default 1): when the server accepted it (a date), its kind\n"
      "(register, revoke, or a root change with what it changed), the operators who\n"
      "signed it (by name, from the root in force at that sequence), the fingerprint of\n"
      "the key that submitted it, and its records (name, key, tags, reason). Each entry\n"
      "is verified against the root in force at its sequence, followed from the pinned\n"
      "root (--root). --name NAME shows only entries with a record for that node.\n"
      "With --agent EP it reads a node's history from its agent instead: the same\n"
      "entries, as the agent verified and kept them (the newest 10,000, up to 8 MiB),\n"
      "so a node without access to the server sees who did what.\n"
      "Exit status: 0; 1 if an entry does not verify or the server or agent cannot be\n"
      "read.\n"
      ONLINE_HELP },
    { "cluster", cmd_cluster, "a server cluster: each member's state; add or remove a member",
      "Usage: keyclone cluster [status] [--json] [COMMON OPTIONS]\n"
      "       keyclone cluster add NAME=tcp://HOST:PORT [COMMON OPTIONS]\n"
      "       keyclone cluster remove NAME [COMMON OPTIONS]\n"
      "\n"
      "status (the default) asks every server of the root in force (a cluster's\n"
      "members, docs/cluster.md) for its status, each on its own and within 2 s: its\n"
      "role (leader, follower, candidate; 'single' for a server that is not a member\n"
      "of a cluster), the term, its sequence and how far it is behind the most\n"
      "advanced member (lag). A member that does not answer is shown DOWN with the\n"
      "reason. Exit status: 0 when a member leads; 1 when none does (a majority is\n"
      "down or cut off: submissions are refused, reads still served); 2 usage.\n"
      "\n"
      "add makes a new member's directory, DIR/servers/NAME (its keys, the root, a\n"
      "server.cfg), and submits a root change naming it, signed with the --operator\n"
      "keys (a root-change threshold of them; otherwise the change is written for\n"
      "'keyclone cosign'). Copy the directory to the member's host and start\n"
      "'keyclone-server --dir' there: the leader adds it, and it catches up from the\n"
      "others. Its endpoints come from the URL as for 'keyclone init' (PORT, PORT+1,\n"
      "PORT+2 for snapshot, updates and submissions), its Raft address is PORT+3.\n"
      "remove submits a root change without the member; the\n"
      "leader takes it out of the cluster (handing over first if it leads), and the\n"
      "member stops when it applies the change; stop its process if it was cut off\n"
      "before. A cluster keeps 3 members or more.\n"
      ONLINE_HELP },
    { "root", cmd_root, "show the root in force; renew it, change its operators, thresholds or keys",
      "Usage: keyclone root show [--out FILE] [--json] [COMMON OPTIONS]\n"
      "       keyclone root renew [--expires DURATION] [--out FILE] [COMMON OPTIONS]\n"
      "       keyclone root add-operator NAME --key FILE [--out FILE] [COMMON OPTIONS]\n"
      "       keyclone root remove-operator NAME [--out FILE] [COMMON OPTIONS]\n"
      "       keyclone root add-witness NAME --key FILE [--out FILE] [COMMON OPTIONS]\n"
      "       keyclone root remove-witness NAME [--out FILE] [COMMON OPTIONS]\n"
      "       keyclone root set-threshold register=K,revoke=K,root=K,witness=K [--out FILE]\n"
      "                                   [COMMON OPTIONS]\n"
      "       keyclone root rotate-head-key [--out FILE] [COMMON OPTIONS]\n"
      "       keyclone root rotate-server-key [--overlap DURATION] [--out FILE]\n"
      "                                       [COMMON OPTIONS]\n"
      "\n"
      "show (the default): the root in force at the server, followed from the pinned\n"
      "root (--root, default DIR/root) through every root change in the log, each\n"
      "checked (the server is not trusted for them): version, expiry (a date and in\n"
      "how many days), operators, thresholds, servers and witnesses. --out FILE also\n"
      "writes it there, for 'keyclone sign --root FILE' offline.\n"
      "\n"
      "The others build the successor of that root (version + 1) with one change: a\n"
      "later expiry (renew: DURATION from now, default 1y), one more operator (its\n"
      "public key file from 'keyclone keygen NAME --operator'), one fewer, one more\n"
      "witness (a witness key made by 'keyclone keygen') or one fewer, or other\n"
      "thresholds (any of the four; witness=K: agents are fresh only on heads that K\n"
      "witnesses cosigned, 0 for none). They print what changes, sign it with the\n"
      "--operator keys, and submit it when a root-change threshold of the old\n"
      "operators and one of the new operators have signed; every agent uses it from\n"
      "its sequence number on. Otherwise they write it to --out (default\n"
      "DIR/root-vN.pending) for 'keyclone cosign' and 'keyclone submit'. A change\n"
      "that would leave a threshold above the number of operators (or witnesses) is\n"
      "refused.\n"
      "rotate-head-key runs on the server's host (--dir its directory): it stages a new\n"
      "head-signing key in DIR/server/head-next and names it in the successor; once the\n"
      "change is in force the server signs heads with it, and for ten minutes with the\n"
      "old key as well, so agents that have not applied the change yet stay fresh.\n"
      "rotate-server-key, also on the server's host, stages a new CURVE key in\n"
      "DIR/server/curve-next and names it in the successor; once the change is in\n"
      "force the server goes on serving the old key for the --overlap (default 1d, at\n"
      "least 2 s), then switches to the new one. Agents, and this command, connect with\n"
      "the newest key they know and fall back to the one before it, so a node that\n"
      "was offline for less than the overlap catches up by itself.\n"
      ONLINE_HELP },
    { NULL, NULL, NULL, NULL }
};

//  The last error said, for the exit status and the --json error object.
static char s_last_error [2048];

int
cli_fail (const char *command, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (s_last_error, sizeof s_last_error, format, args);
    va_end (args);
    fprintf (stderr, "keyclone %s: %s\n", command, s_last_error);
    return CLI_FAIL;
}

int
cli_usage (const char *command, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (s_last_error, sizeof s_last_error, format, args);
    va_end (args);
    fprintf (stderr, "keyclone %s: %s\nTry 'keyclone %s --help'.\n", command, s_last_error, command);
    return CLI_USAGE;
}

static const struct option *
    s_find_option (const char *arg, const struct option *longs);

int
cli_getopt (int argc, char *const argv [], const char *shorts, const struct option *longs, int *index)
{
    opterr = 0;                             //  said below, as every usage error
    int c = getopt_long (argc, argv, shorts, longs, index);
    if (c != '?' && c != ':') {
        return c;
    }
    const char *arg = optind > 0 && optind <= argc ? argv [optind - 1] : "";
    char text [256];
    kc_escape (arg, strlen (arg), text, sizeof text, 0);
    const struct option *option = s_find_option (arg, longs);
    if (strncmp (arg, "--", 2) != 0) {
        char shown [2] = { (char) optopt, 0 };
        kc_escape (shown, 1, text, sizeof text, 0);
        cli_usage (argv [0], optopt && strchr (shorts, optopt) ? "option '-%s' requires an argument" : "invalid option '-%s'",
                   text);
    }
    else
    if (option && option->has_arg == required_argument) {
        cli_usage (argv [0], "option '--%s' requires an argument", option->name);
    }
    else
    if (option && option->has_arg == no_argument && strchr (arg, '=')) {
        cli_usage (argv [0], "option '--%s' takes no argument", option->name);
    }
    else {
        size_t length = strcspn (arg + 2, "="), prefixed = 0;
        for (const struct option *o = longs; o->name; o++) {
            prefixed += strncmp (o->name, arg + 2, length) == 0;
        }
        cli_usage (argv [0], prefixed > 1 ? "ambiguous option '%s'" : "unrecognized option '%s'", text);
    }
    return '?';
}

//  A failure is "unreachable" when the server or the agent did not answer
//  (nothing listening, no reply in time), as opposed to a refusal.
static int
s_exit_status (int rc)
{
    static const char *unreachable [] = { "no reply from ", "no answer from ", "no agent at ", "cannot send to ",
                                          "cannot connect to ", NULL };
    for (int i = 0; rc == CLI_FAIL && unreachable [i]; i++) {
        if (strstr (s_last_error, unreachable [i])) {
            return CLI_UNREACHABLE;
        }
    }
    return rc;
}

int
cli_help (const char *command)
{
    for (int i = 0; cli_commands [i].name; i++) {
        if (KC_STREQ (cli_commands [i].name, command)) {
            fputs (cli_commands [i].help, stdout);
            return CLI_OK;
        }
    }
    return CLI_USAGE;
}

//  The long option that arg names (--name, --name=value or a unique prefix).
static const struct option *
s_find_option (const char *arg, const struct option *longs)
{
    if (strncmp (arg, "--", 2) != 0) {
        return NULL;
    }
    const char *name = arg + 2;
    size_t length = strcspn (name, "=");
    const struct option *found = NULL;
    for (const struct option *option = longs; option->name; option++) {
        if (strlen (option->name) == length && strncmp (option->name, name, length) == 0) {
            return option;
        }
        if (length > 0 && strncmp (option->name, name, length) == 0) {
            if (found) {
                return NULL;                //  ambiguous: getopt says so
            }
            found = option;
        }
    }
    return found;
}

void
cli_args (int *argc, char ***argv, const struct option *longs)
{
    static char **rewritten = NULL;
    int count = *argc;
    char **in = *argv;
    char **out = calloc ((size_t) count + 2, sizeof (char *));
    char **positional = calloc ((size_t) count + 1, sizeof (char *));
    assert (out && positional);
    int outs = 0, positionals = 0;
    out [outs++] = in [0];
    bool rest = false;
    for (int i = 1; i < count; i++) {
        char *arg = in [i];
        uint8_t key [KC_KEY_BYTES];
        kc_why_t why;
        if (rest) {
            positional [positionals++] = arg;
        }
        else
        if (KC_STREQ (arg, "--")) {
            rest = true;
        }
        else
        if (arg [0] == '-' && strlen (arg) == KC_Z85_KEY_CHARS && kc_z85_key (arg, key, &why) == 0) {
            positional [positionals++] = arg;
        }
        else
        if (arg [0] == '-' && arg [1]) {
            out [outs++] = arg;
            const struct option *option = s_find_option (arg, longs);
            if (option && option->has_arg == required_argument && !strchr (arg, '=')
            &&  i + 1 < count) {
                out [outs++] = in [++i];
            }
        }
        else {
            positional [positionals++] = arg;
        }
    }
    if (positionals) {
        out [outs++] = "--";
        memcpy (out + outs, positional, (size_t) positionals * sizeof (char *));
        outs += positionals;
    }
    out [outs] = NULL;
    free (positional);
    *argc = outs;
    *argv = out;
    free (rewritten);                       //  in may be it: out holds its pointers
    rewritten = out;
}

//  The CLI's configuration file (ZPL, section 'keyclone': dir, agent,
//  operator, root), loaded once: $KEYCLONE_CONFIG, else
//  $KEYCLONE_DIR/keyclone.conf, else /etc/keyclone/keyclone.conf, if it
//  exists. NULL when there is none. Options and the environment win.
static zconfig_t *
s_config (void)
{
    static zconfig_t *config;
    static bool loaded;
    if (!loaded) {
        loaded = true;
        char path [CLI_PATH_MAX];
        const char *named = getenv ("KEYCLONE_CONFIG"), *dir = getenv ("KEYCLONE_DIR");
        if (named && *named) {
            snprintf (path, sizeof path, "%s", named);
        }
        else
        if (dir && *dir) {
            snprintf (path, sizeof path, "%s/keyclone.conf", dir);
        }
        else {
            snprintf (path, sizeof path, "/etc/keyclone/keyclone.conf");
        }
        if (kc_file_exists (path)) {
            //  Read here, parsed from memory: czmq's zconfig_load leaks its
            //  file handle when the text does not parse
            size_t size = 0;
            uint8_t *text = kc_file_read (path, 64 * 1024, false, &size, NULL);
            char *string = text ? malloc (size + 1) : NULL;
            if (string) {
                memcpy (string, text, size);
                string [size] = 0;
                config = zconfig_str_load (string);
            }
            free (string);
            kc_file_free (&text, false);
            if (!config) {
                fprintf (stderr, "keyclone: cannot read the configuration '%s' (ZPL, section 'keyclone'); "
                         "going on without it\n", path);
            }
        }
    }
    return config;
}

const char *
cli_config (const char *name)
{
    zconfig_t *config = s_config ();
    char key [64];
    snprintf (key, sizeof key, "keyclone/%s", name);
    const char *value = config ? zconfig_get (config, key, NULL) : NULL;
    return value && *value ? value : NULL;
}

char *
cli_relative (uint64_t when, char text [static 40])
{
    return kc_time_relative (when, kc_now (), text);
}

const char *
cli_dir (const char *option)
{
    if (option) {
        return option;
    }
    const char *env = getenv ("KEYCLONE_DIR");
    if (env && *env) {
        return env;
    }
    const char *configured = cli_config ("dir");
    return configured ? configured : ".";
}

const char *
cli_path (char buffer [static CLI_PATH_MAX], const char *dir, const char *name)
{
    snprintf (buffer, CLI_PATH_MAX, "%s/%s", dir, name);
    return buffer;
}

//  Loads the root at path and verifies it as of now (0: as of its own
//  creation). NULL after printing why.
static kc_root_t *
s_load_root (const char *command, const char *path, uint64_t now)
{
    kc_why_t why;
    kc_root_t *root = kc_root_load (path, &why);
    if (!root && !kc_file_exists (path)) {
        cli_fail (command, "%s: name the keyclone directory with --dir or KEYCLONE_DIR (or 'dir' in "
                  "/etc/keyclone/keyclone.conf), or the root with --root", why.text);
        return NULL;
    }
    if (!root) {
        cli_fail (command, "%s", why.text);
        return NULL;
    }
    if (kc_root_verify (root, now ? now : kc_root_created (root), &why)) {
        cli_fail (command, "root '%s' rejected: %s", path, why.text);
        kc_root_destroy (&root);
    }
    return root;
}

kc_root_t *
cli_load_pinned_root (const char *command, const char *path)
{
    return s_load_root (command, path, 0);
}

kc_root_t *
cli_load_root (const char *command, const char *path)
{
    return s_load_root (command, path, kc_now ());
}

static int
s_find_single_operator (const char *command, const char *dir, char *path, size_t size)
{
    char folder [CLI_PATH_MAX];
    cli_path (folder, dir, "operators");
    DIR *handle = opendir (folder);
    if (!handle) {
        cli_fail (command, "no operator key given and no '%s' directory "
                  "(use --operator PATH)", folder);
        return -1;
    }
    int found = 0;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        size_t length = strlen (entry->d_name);
        if (length > 7 && KC_STREQ (entry->d_name + length - 7, "_secret")) {
            if (found++ == 0 && (size_t) snprintf (path, size, "%.3000s/%.255s",
                                                   folder, entry->d_name) >= size) {
                found = -1000;
            }
        }
    }
    closedir (handle);
    if (found == 0) {
        cli_fail (command, "no operator secret key in '%s' (use --operator PATH)", folder);
        return -1;
    }
    if (found > 1) {
        cli_fail (command, "%d operator keys in '%s': choose with --operator NAME "
                  "(repeat it to sign with several)", found, folder);
        return -1;
    }
    return 0;
}

int
cli_load_operators (const char *command, const char *dir, char *const *names,
                    int name_count, kc_signer_t *signers [CLI_OPERATORS_MAX])
{
    char path [4096];
    kc_why_t why;
    if (name_count == 0) {
        if (s_find_single_operator (command, dir, path, sizeof path)) {
            return -1;
        }
        signers [0] = kc_signer_load (path, &why);
        if (!signers [0]) {
            cli_fail (command, "%s", why.text);
            return -1;
        }
        return 1;
    }
    for (int i = 0; i < name_count; i++) {
        if (strchr (names [i], '/')) {
            snprintf (path, sizeof path, "%s", names [i]);
        }
        else {
            snprintf (path, sizeof path, "%s/operators/%s", dir, names [i]);
        }
        signers [i] = kc_signer_load (path, &why);
        if (!signers [i]) {
            cli_fail (command, "%s", why.text);
            while (i-- > 0) {
                kc_signer_destroy (&signers [i]);
            }
            return -1;
        }
    }
    return name_count;
}

kc_signer_t *
cli_reader_operator (const char *dir, char *const *names, int name_count)
{
    char path [CLI_PATH_MAX + 300];
    kc_why_t why;
    if (name_count > 0) {
        if (strchr (names [0], '/')) {
            snprintf (path, sizeof path, "%s", names [0]);
        }
        else {
            snprintf (path, sizeof path, "%s/operators/%s", dir, names [0]);
        }
        return kc_signer_load (path, &why);
    }
    //  The first operator secret in DIR/operators this user can read, in
    //  name order; none is not an error (a member key or read = any may do)
    char folder [CLI_PATH_MAX];
    cli_path (folder, dir, "operators");
    struct dirent **entries = NULL;
    int count = scandir (folder, &entries, NULL, alphasort);
    kc_signer_t *signer = NULL;
    for (int i = 0; i < count; i++) {
        size_t length = strlen (entries [i]->d_name);
        if (!signer && length > 7 && KC_STREQ (entries [i]->d_name + length - 7, "_secret")) {
            snprintf (path, sizeof path, "%s/%s", folder, entries [i]->d_name);
            if (access (path, R_OK) == 0) {
                signer = kc_signer_load (path, &why);
            }
        }
        free (entries [i]);
    }
    free (entries);
    return signer;
}

//  Where "name": starts in json, or NULL.
static const char *
s_status_field (const char *json, const char *name, const char *opening)
{
    char key [64];
    snprintf (key, sizeof key, "\"%s\": %s", name, opening);
    const char *field = json ? strstr (json, key) : NULL;
    return field ? field + strlen (key) : NULL;
}

bool
cli_status_u64 (const char *json, const char *name, uint64_t *value)
{
    const char *field = s_status_field (json, name, "");
    char *end;
    if (!field) {
        return false;
    }
    *value = strtoull (field, &end, 10);
    return end != field;
}

bool
cli_status_hash (const char *json, const char *name, uint8_t hash [static KC_HASH_BYTES])
{
    const char *field = s_status_field (json, name, "\"");
    if (!field || strnlen (field, 2 * KC_HASH_BYTES + 1) < 2 * KC_HASH_BYTES + 1 || field [2 * KC_HASH_BYTES] != '"') {
        return false;
    }
    char hex [2 * KC_HASH_BYTES + 1];
    memcpy (hex, field, 2 * KC_HASH_BYTES);
    hex [2 * KC_HASH_BYTES] = 0;
    return kc_unhex (hex, hash, KC_HASH_BYTES) == 0;
}

void
cli_print_reply (const char *reply, bool json)
{
    char *text = kc_escape_dup (reply, strlen (reply), KC_ESCAPE_NEWLINES);
    fputs (text, stdout);
    if (json) {
        fputc ('\n', stdout);
    }
    free (text);
}

const char *
cli_operator_name (const kc_root_t *root, const uint8_t *key, char buffer [static 80])
{
    char fp [KC_FINGERPRINT_CHARS + 1];
    int index = root ? kc_root_operator_index (root, key) : -1;
    if (index >= 0) {
        snprintf (buffer, 80, "%s (%s)", kc_root_operator (root, (size_t) index)->name,
                  kc_fingerprint (key, fp));
    }
    else {
        snprintf (buffer, 80, "unknown key %s", kc_fingerprint (key, fp));
    }
    return buffer;
}

void
cli_print_record (FILE *out, const kc_record_t *record, bool json)
{
    char z85 [KC_Z85_KEY_CHARS + 1], name [KC_RECORD_NAME_MAX + 1];
    char tags [KC_RECORD_TAGS_TEXT_MAX], fp [KC_FINGERPRINT_CHARS + 1], when [32];
    kc_z85_encode (record->key, KC_KEY_BYTES, z85);
    kc_record_name (record, name);
    bool active = record->status == KC_STATUS_ACTIVE;
    if (json) {
        fputc ('{', out);
        kc_json_field_str (out, true, "key", z85);
        kc_json_field_str (out, false, "fingerprint", kc_fingerprint (record->key, fp));
        kc_json_field_str (out, false, "name", name);
        kc_json_field_str (out, false, "status", active ? "active" : "revoked");
        kc_json_field_u64 (out, false, "version", record->version);
        kc_json_field_u64 (out, false, "not_before", record->not_before);
        kc_json_field_u64 (out, false, "not_after", record->not_after);
        fputs (", \"tags\": [", out);
        const uint8_t *p = record->tags;
        for (int i = 0; i < record->tag_count; i++) {
            fputs (i ? ", " : "", out);
            kc_json_string (out, (const char *) p + 1, *p);
            p += 1 + *p;
        }
        fputs ("]", out);
        if (!active) {
            fputs (", \"reason\": ", out);
            kc_json_string (out, record->reason, record->reason_size);
        }
        fputc ('}', out);
    }
    else {
        fprintf (out, "  %-7s %s  %-20s v%-16llu", active ? "active" : "REVOKED", z85,
                 *name ? name : "-", (unsigned long long) record->version);
        if (active) {
            fprintf (out, " expires %s", kc_time_format (record->not_after, when));
            if (record->not_after) {
                char relative [40];
                fprintf (out, " (%s)", cli_relative (record->not_after, relative));
            }
            if (record->tag_count) {
                fprintf (out, " tags %s", kc_record_tags (record, ',', tags, sizeof tags));
            }
        }
        else
        if (record->reason_size) {
            fprintf (out, " reason \"%.*s\"", (int) record->reason_size, record->reason);
        }
        fputc ('\n', out);
    }
}

static void
s_print_main_help (FILE *out)
{
    fputs (s_main_help, out);
    for (int i = 0; cli_commands [i].name; i++) {
        fprintf (out, "  %-10s %s\n", cli_commands [i].name, cli_commands [i].summary);
    }
    fputs ("\nRun 'keyclone COMMAND --help' for a command's options, 'keyclone --version' for\n"
           "the version. See README.md and docs/ for the full guide.\n"
           "\n"
           "Exit status (every command):\n"
           "  0  done (lookup: the key is trusted)\n"
           "  1  failed: refused, invalid, not found (the reason is on stderr)\n"
           "  2  usage: an unknown option, a missing argument, an invalid value\n"
           "  3  status: the root in force expires within 7 days, or has expired\n"
           "  4  lookup: the key is not trusted (unknown, revoked, expired, not yet valid)\n"
           "  5  the server or the agent did not answer (not running, wrong endpoint)\n"
           "With --json a failure also prints {\"error\", \"command\", \"exit\"} on stdout.\n", out);
}

int
main (int argc, char *argv [])
{
    if (sodium_init () < 0) {
        fprintf (stderr, "keyclone: libsodium failed to initialise\n");
        return CLI_FAIL;
    }
    if (argc < 2) {
        s_print_main_help (stderr);
        return CLI_USAGE;
    }
    if (KC_STREQ (argv [1], "--help") || KC_STREQ (argv [1], "-h") || KC_STREQ (argv [1], "help")) {
        if (argc > 2 && cli_help (argv [2]) == CLI_OK) {
            return CLI_OK;
        }
        s_print_main_help (stdout);
        return CLI_OK;
    }
    if (KC_STREQ (argv [1], "--version") || KC_STREQ (argv [1], "version")) {
        char text [KC_VERSION_TEXT_MAX];
        puts (kc_version_text ("keyclone", text, sizeof text));
        return CLI_OK;
    }
    for (int i = 0; cli_commands [i].name; i++) {
        if (KC_STREQ (cli_commands [i].name, argv [1])) {
            for (int arg = 2; arg < argc; arg++) {
                if (KC_STREQ (argv [arg], "--help") || KC_STREQ (argv [arg], "-h")) {
                    return cli_help (argv [1]);
                }
                if (KC_STREQ (argv [arg], "--")) {
                    break;
                }
            }
            bool json = false;
            for (int arg = 2; arg < argc && !KC_STREQ (argv [arg], "--"); arg++) {
                json |= KC_STREQ (argv [arg], "--json");
            }
            int rc = s_exit_status (cli_commands [i].run (argc - 1, argv + 1));
            if (json && *s_last_error && rc != CLI_OK && rc != CLI_NOT_TRUSTED && rc != CLI_ROOT_EXPIRING) {
                //  Scripts reading stdout get the failure too, not an empty output
                printf ("{");
                kc_json_field_str (stdout, true, "error", s_last_error);
                kc_json_field_str (stdout, false, "command", cli_commands [i].name);
                kc_json_field_u64 (stdout, false, "exit", (uint64_t) rc);
                printf ("}\n");
            }
            return rc;
        }
    }
    char command [256];
    kc_escape (argv [1], strlen (argv [1]), command, sizeof command, 0);
    fprintf (stderr, "keyclone: unknown command '%s'\n", command);
    s_print_main_help (stderr);
    for (int arg = 2; arg < argc && !KC_STREQ (argv [arg], "--"); arg++) {
        if (KC_STREQ (argv [arg], "--json")) {
            snprintf (s_last_error, sizeof s_last_error, "unknown command '%s'", command);
            printf ("{");
            kc_json_field_str (stdout, true, "error", s_last_error);
            kc_json_field_str (stdout, false, "command", command);
            kc_json_field_u64 (stdout, false, "exit", (uint64_t) CLI_USAGE);
            printf ("}\n");
            break;
        }
    }
    return CLI_USAGE;
}
