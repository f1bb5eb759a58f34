-- laned lane store, migration 9: the back-end's signed acknowledgements
-- (docs/backend-contract.md, "Signed acknowledgements").
--
-- The back-end signs what it holds of each document with its Ed25519 key.
-- The lane pins that key at first contact (or takes it from its
-- configuration) and from then on takes no answer as posted unless its
-- acknowledgement verifies against the pinned key.

CREATE TABLE backend_key (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    -- The tenant the acknowledgements bind.
    tenant     TEXT NOT NULL,
    key_id     TEXT NOT NULL CHECK (length(key_id) = 16),
    -- The key's 32 bytes, lowercase hex.
    public_key TEXT NOT NULL CHECK (length(public_key) = 64),
    pinned_at  TEXT NOT NULL,
    -- 'first_contact' (from the back-end's heartbeat) or 'config'.
    source     TEXT NOT NULL CHECK (source IN ('first_contact', 'config'))
) STRICT;

-- The verified acknowledgement of a posted document: JSON
-- {"key_id": …, "signature": …}, NULL when the back-end does not sign.
ALTER TABLE sales ADD COLUMN ack TEXT;
ALTER TABLE closings ADD COLUMN ack TEXT;

-- A closing's day certificate, once the back-end holds the series' chain
-- unbroken through it: JSON {"certified_at", "key_id", "signature"},
-- verified against the pinned key.
ALTER TABLE closings ADD COLUMN certificate TEXT;
