-- keyclone server store, migration 0002: the last head each agent
-- acknowledged (docs/protocol.md 6.3), so `keyclone status --server` still
-- shows every agent that ever acknowledged after the server restarts.
-- Written when an agent's sequence or chain changes, not on every ACK.
CREATE TABLE acks (
    key    BLOB    PRIMARY KEY CHECK (length (key) = 32),
    seq    INTEGER NOT NULL CHECK (seq >= 0),
    chain  BLOB    NOT NULL CHECK (length (chain) = 32),
    acked  INTEGER NOT NULL                 -- unix milliseconds
) WITHOUT ROWID;
