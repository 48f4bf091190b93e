-- keyclone server store, migration 0005: enrolment requests waiting for an
-- operator (docs/protocol.md 6.4). Never trusted for anything: a pending key
-- is not a member. Bounded in number by the server, and deleted when they
-- expire or when their key is registered. data is the request's canonical
-- encoding (lib/kc_enrol.h).
CREATE TABLE enrolments (
    key        BLOB    PRIMARY KEY CHECK (length (key) = 32),
    expires    INTEGER NOT NULL,            -- unix ms
    data       BLOB    NOT NULL
) WITHOUT ROWID;
CREATE INDEX enrolments_expires ON enrolments (expires);
