-- keyclone server store, migration 0004: who submitted each log entry (the
-- CURVE public key of the connection that sent SUBMIT), for the audit view
-- (keyclone log, docs/protocol.md 6.1 LOG). NULL for entries accepted
-- before this migration.
ALTER TABLE batches ADD COLUMN submitter BLOB CHECK (submitter IS NULL OR length (submitter) = 32);
ALTER TABLE roots ADD COLUMN submitter BLOB CHECK (submitter IS NULL OR length (submitter) = 32);
