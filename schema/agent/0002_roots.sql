-- keyclone agent cache, migration 0002: the root changes the agent accepted
-- from the log (docs/protocol.md 2.3), each with its sequence number. At
-- start the agent follows them from its pinned root to the root in force
-- (docs/agent.md section 2).
CREATE TABLE roots (
    seq      INTEGER PRIMARY KEY CHECK (seq >= 1),
    version  INTEGER NOT NULL UNIQUE CHECK (version >= 2),
    data     BLOB    NOT NULL
);
