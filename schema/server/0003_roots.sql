-- keyclone server store, migration 0003: root changes in the log
-- (docs/protocol.md 2.3). A root change takes a sequence number like a batch
-- and extends the same chain; the log is batches and roots merged by seq.
-- data is the root exactly as its operators signed it; from its seq on, the
-- server verifies with it.
CREATE TABLE roots (
    seq       INTEGER PRIMARY KEY CHECK (seq >= 1),
    version   INTEGER NOT NULL UNIQUE CHECK (version >= 2),
    digest    BLOB    NOT NULL UNIQUE CHECK (length (digest) = 32),
    chain     BLOB    NOT NULL CHECK (length (chain) = 32),
    accepted  INTEGER NOT NULL,             -- unix milliseconds
    data      BLOB    NOT NULL
);
