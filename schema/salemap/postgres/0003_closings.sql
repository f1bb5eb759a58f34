-- salemap on PostgreSQL, migration 3: day closings (docs/backend-contract.md).
-- A lane's closing is a document of its fiscal journal (docs/journal.md):
-- stored once per id, with its exact bytes, and at most one per lane,
-- series and closing number. Closings take no document number of the
-- series' sales; theirs is the series and the closing number.

CREATE TABLE closings (
    tenant         text NOT NULL,
    transaction_id text NOT NULL,
    lane_id        text NOT NULL,
    series         text NOT NULL,
    closing_no     bigint NOT NULL CHECK (closing_no > 0),
    business_date  text NOT NULL,
    -- SHA-256 (hex) of the envelope bytes as received.
    fingerprint    text NOT NULL,
    envelope       text NOT NULL,
    doc_no         text NOT NULL,
    posted_at      text NOT NULL,
    PRIMARY KEY (tenant, transaction_id)
);

CREATE UNIQUE INDEX closings_number ON closings (tenant, lane_id, series, closing_no);

CREATE FUNCTION closings_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'closings are never deleted or changed';
END
$$;

CREATE TRIGGER closings_immutable BEFORE DELETE OR UPDATE ON closings
    FOR EACH ROW EXECUTE FUNCTION closings_immutable();
