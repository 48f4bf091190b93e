-- keyclone server store, migration 0001: the batch log, the current state of
-- every key, pending enrolments and store metadata.
-- Applied in one transaction; PRAGMA user_version records the last migration.

-- Every accepted batch, in sequence order. chain is the chain hash after this
-- batch: BLAKE2b-256("keyclone chain v1" || 0 || previous chain || seq || batch)
-- (docs/protocol.md). digest is the batch body digest that operators signed;
-- resubmitting the same body finds its original sequence through it.
CREATE TABLE batches (
    seq       INTEGER PRIMARY KEY CHECK (seq >= 1),
    digest    BLOB    NOT NULL UNIQUE CHECK (length (digest) = 32),
    chain     BLOB    NOT NULL CHECK (length (chain) = 32),
    records   INTEGER NOT NULL CHECK (records >= 1),
    accepted  INTEGER NOT NULL,             -- unix milliseconds
    data      BLOB    NOT NULL              -- the batch exactly as signed
);

-- The current record of every key ever registered. Revoked keys stay here
-- forever as tombstones: revocation is terminal. record is the record's exact
-- encoding (docs/records.md section 3); the other columns are copies of its
-- fields for lookups and the submission checks.
CREATE TABLE keys (
    key        BLOB    PRIMARY KEY CHECK (length (key) = 32),
    name       TEXT    NOT NULL,
    status     INTEGER NOT NULL CHECK (status IN (1, 2)),   -- 1 active, 2 revoked
    version    INTEGER NOT NULL CHECK (version >= 1),
    not_before INTEGER NOT NULL,
    not_after  INTEGER NOT NULL,            -- 0 = no expiry
    seq        INTEGER NOT NULL REFERENCES batches (seq),
    record     BLOB    NOT NULL
) WITHOUT ROWID;
CREATE INDEX keys_by_name ON keys (name);

-- Enrolment requests waiting for an operator to approve (sign) or reject.
CREATE TABLE pending (
    key        BLOB    PRIMARY KEY CHECK (length (key) = 32),
    name       TEXT    NOT NULL,
    tags       TEXT    NOT NULL,
    address    TEXT    NOT NULL,            -- where the request came from
    requested  INTEGER NOT NULL             -- unix seconds
) WITHOUT ROWID;

-- Store-wide facts: the directory id and the root in force.
CREATE TABLE meta (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);
