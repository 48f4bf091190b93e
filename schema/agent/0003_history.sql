-- keyclone agent cache, migration 0003: the node's audit history (docs/agent.md
-- section 5, `keyclone log --agent`): the log entries the agent verified and
-- applied, newest last, each exactly as signed (a batch or a root change)
-- with when the server says it accepted it and who submitted it (the
-- server's word, not signed). Bounded: the oldest entries are pruned past
-- KC_CACHE_HISTORY_ENTRIES entries or KC_CACHE_HISTORY_BYTES bytes.
CREATE TABLE history (
    seq        INTEGER PRIMARY KEY CHECK (seq >= 1),
    accepted   INTEGER NOT NULL,            -- unix milliseconds, 0 when unknown
    submitter  BLOB    CHECK (submitter IS NULL OR length (submitter) = 32),
    data       BLOB    NOT NULL
);
