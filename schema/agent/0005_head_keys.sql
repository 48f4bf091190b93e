-- keyclone agent cache, migration 0005: the head keys of the root in
-- force's servers (32 bytes each), written by the agent when the root in
-- force changes, so readers (kc_lookup) can check a head a peer shows them
-- (heads in the CurveZMQ handshake's metadata, docs/protocol.md 9.4).
ALTER TABLE state ADD COLUMN head_keys BLOB;
