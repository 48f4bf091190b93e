-- keyclone agent cache, migration 0001: the verified copy of the directory
-- that every lookup and handshake decision on this node reads
-- (docs/agent.md section 4). Writer: keyclone-agent only. Readers: the agent
-- and libkeyclone lookups, on read-only connections.

-- Every key lives in the bucket numbered by its first two bytes (0..65535).
-- data holds the bucket's entries sorted by key, each "u16 size, u64 seq,
-- record": the record exactly as operators signed it and the log sequence of
-- the batch that set it. Revoked keys stay as tombstones.
CREATE TABLE key_buckets (
    bucket  INTEGER PRIMARY KEY CHECK (bucket BETWEEN 0 AND 65535),
    data    BLOB    NOT NULL
);

-- (name, key) pairs of every named key, in the bucket numbered by the low 16
-- bits of the FNV-1a hash of the name, each pair once, in no particular order.
CREATE TABLE name_buckets (
    bucket  INTEGER PRIMARY KEY CHECK (bucket BETWEEN 0 AND 65535),
    data    BLOB    NOT NULL
);

-- The change feed for readers that keep their own copy: each key an
-- incremental apply changed, with the sequence of its batch. Pruned to the
-- most recent changes; state.changes_from says from which seq it is complete.
CREATE TABLE changes (
    seq     INTEGER NOT NULL,
    key     BLOB    NOT NULL CHECK (length (key) = 32),
    PRIMARY KEY (seq, key)
) WITHOUT ROWID;

-- Where the cache stands in the server's log: one row. head is the last
-- accepted signed head (docs/protocol.md section 2.2), NULL before the first.
CREATE TABLE state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    directory     BLOB    NOT NULL CHECK (length (directory) = 32),
    seq           INTEGER NOT NULL,
    chain         BLOB    NOT NULL CHECK (length (chain) = 32),
    head          BLOB,
    keys          INTEGER NOT NULL,
    revoked       INTEGER NOT NULL,
    changes_from  INTEGER NOT NULL          -- changes hold every seq > this
);
