-- keyclone server store, migration 0006: enrolment grants (docs/records.md
-- section 8). A grant or a grant revocation is a log entry of its own
-- (grant_log, beside batches and roots); a grant use registers one key and
-- is kept in batches (its record in keys, like any). grants holds the state
-- every use is checked against: the active grant, how often it was used,
-- and whether it was revoked.
CREATE TABLE grant_log (
    seq        INTEGER PRIMARY KEY CHECK (seq >= 1),
    digest     BLOB    NOT NULL UNIQUE CHECK (length (digest) = 32),
    chain      BLOB    NOT NULL CHECK (length (chain) = 32),
    accepted   INTEGER NOT NULL,            -- unix milliseconds
    submitter  BLOB    CHECK (submitter IS NULL OR length (submitter) = 32),
    data       BLOB    NOT NULL
);
CREATE TABLE grants (
    key        BLOB    PRIMARY KEY CHECK (length (key) = 32),
    seq        INTEGER NOT NULL,            -- the grant's entry
    used       INTEGER NOT NULL CHECK (used >= 0),
    revoked    INTEGER NOT NULL CHECK (revoked IN (0, 1)),
    data       BLOB    NOT NULL             -- the grant as signed
) WITHOUT ROWID;
