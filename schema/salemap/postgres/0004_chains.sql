-- salemap on PostgreSQL, migration 4: chains checked on intake. The same
-- table as schema/salemap/sqlite/0004_chains.sql; the comments there
-- explain each column.
CREATE TABLE links (
    tenant         text   NOT NULL,
    transaction_id text   NOT NULL,
    lane_id        text   NOT NULL,
    series         text   NOT NULL,
    lane_seq       bigint NOT NULL,
    numbered_by    text   NOT NULL CHECK (numbered_by IN ('receipt', 'closing')),
    number         bigint NOT NULL,
    hash           text   NOT NULL,
    prev_hash      text,
    grand_total    text,
    currency       text,
    effect         bigint,
    out_of_order   boolean NOT NULL DEFAULT false,
    forked         boolean NOT NULL DEFAULT false,
    problem        text,
    held_at        text   NOT NULL,
    PRIMARY KEY (tenant, lane_id, series, lane_seq, hash)
);

CREATE INDEX links_prev ON links (tenant, lane_id, series, prev_hash);

INSERT INTO links (tenant, transaction_id, lane_id, series, lane_seq, numbered_by, number,
                   hash, prev_hash, grand_total, currency, effect, held_at)
SELECT p.tenant, p.transaction_id, p.lane_id, p.series, p.lane_seq, 'receipt', p.receipt_no,
       p.fingerprint, p.envelope::jsonb ->> 'prev_hash',
       (p.envelope::jsonb -> 'grand_total')::text, p.currency,
       CASE p.kind
         WHEN 'sale' THEN p.total
         WHEN 'return' THEN -p.total
         ELSE (SELECT CASE WHEN r.lane_id = p.lane_id AND r.series = p.series
                                AND r.lane_seq < p.lane_seq
                           THEN CASE r.kind WHEN 'sale' THEN -r.total
                                            WHEN 'return' THEN r.total ELSE 0 END
                           ELSE 0 END
               FROM posted r
               WHERE r.tenant = p.tenant AND r.transaction_id = p.references_id)
       END,
       p.posted_at
FROM posted p;

INSERT INTO links (tenant, transaction_id, lane_id, series, lane_seq, numbered_by, number,
                   hash, prev_hash, grand_total, currency, effect, held_at)
SELECT c.tenant, c.transaction_id, c.lane_id, c.series,
       (c.envelope::jsonb ->> 'lane_seq')::bigint, 'closing', c.closing_no,
       c.fingerprint, c.envelope::jsonb ->> 'prev_hash',
       (c.envelope::jsonb -> 'grand_total')::text, NULL, 0, c.posted_at
FROM closings c;

CREATE TABLE chain_heads (
    tenant        text   NOT NULL,
    lane_id       text   NOT NULL,
    series        text   NOT NULL,
    head_hash     text   NOT NULL,
    head_id       text   NOT NULL,
    head_lane_seq bigint NOT NULL,
    updated_at    text   NOT NULL,
    PRIMARY KEY (tenant, lane_id, series)
);

CREATE TABLE certificates (
    tenant        text   NOT NULL,
    lane_id       text   NOT NULL,
    series        text   NOT NULL,
    closing_no    bigint NOT NULL,
    business_date text   NOT NULL,
    closing_id    text   NOT NULL,
    closing_hash  text   NOT NULL,
    certified_at  text   NOT NULL,
    PRIMARY KEY (tenant, lane_id, series, closing_no)
);

CREATE FUNCTION certificates_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'certificates are never changed or deleted';
END
$$;

CREATE TRIGGER certificates_immutable BEFORE DELETE OR UPDATE ON certificates
    FOR EACH ROW EXECUTE FUNCTION certificates_immutable();

CREATE FUNCTION links_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'links are never deleted';
END
$$;

CREATE TRIGGER links_no_delete BEFORE DELETE ON links
    FOR EACH ROW EXECUTE FUNCTION links_no_delete();

CREATE INDEX doc_counters_lane ON doc_counters (tenant, lane_id);
