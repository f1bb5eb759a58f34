-- salemap on PostgreSQL, migration 1: the posted sale map (DESIGN §7).
-- The same tables as schema/salemap/sqlite/0001_initial.sql; the comments
-- there explain each.

CREATE TABLE posted (
    tenant         text   NOT NULL,
    transaction_id text   NOT NULL,
    lane_id        text   NOT NULL,
    series         text   NOT NULL,
    receipt_no     bigint NOT NULL CHECK (receipt_no > 0),
    lane_seq       bigint NOT NULL,
    kind           text   NOT NULL CHECK (kind IN ('sale', 'return', 'void')),
    references_id  text,
    business_date  text   NOT NULL,
    currency       text   NOT NULL,
    total          bigint NOT NULL,
    fingerprint    text   NOT NULL,
    envelope       text   NOT NULL,
    doc_no         text,
    posted_at      text   NOT NULL,
    voided_by      text,
    PRIMARY KEY (tenant, transaction_id)
);

CREATE UNIQUE INDEX posted_live_receipt
    ON posted (tenant, lane_id, series, receipt_no) WHERE voided_by IS NULL;
CREATE INDEX posted_lane_series ON posted (tenant, lane_id, series, receipt_no);
CREATE INDEX posted_lane_day ON posted (tenant, lane_id, business_date);

CREATE TABLE doc_counters (
    tenant  text   NOT NULL,
    series  text   NOT NULL,
    last_no bigint NOT NULL DEFAULT 0 CHECK (last_no >= 0),
    PRIMARY KEY (tenant, series)
);

CREATE FUNCTION posted_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'posted documents are never deleted';
END
$$;

CREATE TRIGGER posted_no_delete BEFORE DELETE ON posted
    FOR EACH ROW EXECUTE FUNCTION posted_no_delete();
