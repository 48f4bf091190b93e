-- keyclone agent cache, migration 0004: enrolment grants (docs/records.md
-- section 8), as the log built them: each grant with how often it was
-- used and whether it was revoked, so every later use is checked in log
-- order.
CREATE TABLE grants (
    key        BLOB    PRIMARY KEY CHECK (length (key) = 32),
    seq        INTEGER NOT NULL,
    used       INTEGER NOT NULL CHECK (used >= 0),
    revoked    INTEGER NOT NULL CHECK (revoked IN (0, 1)),
    data       BLOB    NOT NULL
) WITHOUT ROWID;
