/*  =========================================================================
    kc_db - opening keyclone's sqlite databases: WAL, pragmas, and the
    numbered migrations of schema/<kind>/ applied in one transaction and
    tracked by PRAGMA user_version.
    =========================================================================
*/
#ifndef KC_DB_H_INCLUDED
#define KC_DB_H_INCLUDED

#include "kc_util.h"
#include "kc_root.h"
#include "kc_grant.h"
#include <sqlite3.h>

//  A set of migrations, generated from schema/<kind>/NNNN_name.sql.
typedef struct {
    const char *kind;                   //  "server", "agent"
    const char *const *migrations;      //  SQL texts, NULL-terminated, in order
} kc_schema_t;

extern const kc_schema_t kc_schema_server;
extern const kc_schema_t kc_schema_agent;

#define KC_DB_FILE_MODE 0640        //  owner reads and writes, its group reads

typedef enum {
    KC_DB_READWRITE = 0,                //  create if missing, migrate, WAL
    KC_DB_READONLY = 1,                 //  must exist and be current
    KC_DB_BUILD = 2                     //  a new file being filled in one go: no
                                        //  journal, no syncs (the caller fsyncs
                                        //  and renames it into place)
} kc_db_mode_t;

//  Opens (creating if needed) the database at path in WAL mode with the
//  given synchronous level ("FULL" or "NORMAL"), and brings its schema up to
//  date in one transaction. Refuses a database whose user_version is newer
//  than this program knows. Returns the handle, or NULL with a reason.
sqlite3 *
    kc_db_open (const char *path, const kc_schema_t *schema, kc_db_mode_t mode,
                const char *synchronous, kc_why_t *why);

//  True when the last kc_db_open failure in this thread was a damaged or
//  foreign file (SQLITE_CORRUPT or SQLITE_NOTADB), as opposed to, say, a
//  permission problem or a schema newer than this program.
bool
    kc_db_last_open_corrupt (void);

//  Closes a handle (finalizing nothing: callers finalize their statements).
void
    kc_db_close (sqlite3 **db_p);

//  Runs SQL without results; returns 0 or -1 with sqlite's message.
int
    kc_db_exec (sqlite3 *db, const char *sql, kc_why_t *why) KC_WUR;

//  Prepares a statement; returns it or NULL with sqlite's message.
sqlite3_stmt *
    kc_db_prepare (sqlite3 *db, const char *sql, kc_why_t *why);

//  The schema version in the file (PRAGMA user_version), or -1.
int
    kc_db_version (sqlite3 *db);

//  Number of migrations a schema has.
int
    kc_schema_count (const kc_schema_t *schema);

//  Grants as the server store and the agent cache keep them (a table
//  grants (key, seq, used, revoked, data)). read_grant steps a statement
//  bound to select (data, used, revoked) of one key: 1 with the grant
//  (the caller destroys it), how often it was used and whether it was
//  revoked; 0 when there is none; -1 with a reason. put_grant steps a
//  statement inserting (key, seq, used, revoked, data) for grant: 0 or -1.
//  Both reset the statement.
#define KC_DB_GRANT_SELECT  "SELECT data, used, revoked FROM grants WHERE key = ?"
#define KC_DB_GRANT_UPSERT  "INSERT INTO grants (key, seq, used, revoked, data) VALUES (?1, ?2, ?3, ?4, ?5) " \
                            "ON CONFLICT (key) DO UPDATE SET used = excluded.used, revoked = excluded.revoked"
int
    kc_db_read_grant (sqlite3_stmt *stmt, kc_grant_t **grant, uint64_t *used, bool *revoked, kc_why_t *why);
int
    kc_db_put_grant (sqlite3_stmt *stmt, const kc_grant_t *grant, uint64_t seq, uint64_t used, bool revoked,
                     kc_why_t *why);

//  Self test of this module.
void
    kc_db_test (bool verbose);

//  The root in force after the root changes a statement yields as rows of
//  (seq, root encoding) in log order: pinned followed through them
//  (kc_root_follow). The statement is stepped to its end and reset. NULL
//  with a reason ("WHAT: root change at seq N: ...") if one does not follow
//  or the read fails. fn, when given, sees pinned and each root followed to,
//  in order.
kc_root_t *
    kc_db_follow_roots (sqlite3_stmt *stmt, const kc_root_t *pinned, const char *what,
                        kc_root_visit_fn *fn, void *arg, kc_why_t *why);

#endif
