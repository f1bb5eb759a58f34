-- laned lane store, migration 6: the lane's figures kept as they change.
--
-- The status report, the page and /metrics show sales per state and the
-- net amount waiting per currency. Counting them from `sales` reads every
-- sale the lane ever stored, and a lane keeps years of history. Instead
-- these triggers keep one row per (state, currency) up to date in the same
-- transaction as the change itself, so the figures are exact whenever the
-- sale is, through any crash. `laned doctor` compares them with a full
-- recount.

CREATE TABLE sale_tally (
    state    TEXT    NOT NULL,
    currency TEXT    NOT NULL,
    -- Sales, returns and voids in this state and currency.
    n        INTEGER NOT NULL CHECK (n >= 0),
    -- Their net amount in minor units: sales add, returns subtract, voids
    -- count zero.
    net      INTEGER NOT NULL,
    PRIMARY KEY (state, currency)
) STRICT, WITHOUT ROWID;

INSERT INTO sale_tally (state, currency, n, net)
SELECT state, currency, count(*),
       coalesce(sum(CASE kind WHEN 'sale' THEN total WHEN 'return' THEN -total ELSE 0 END), 0)
FROM sales GROUP BY state, currency;

CREATE TRIGGER sale_tally_insert AFTER INSERT ON sales
BEGIN
    INSERT INTO sale_tally (state, currency, n, net)
    VALUES (NEW.state, NEW.currency, 1,
            CASE NEW.kind WHEN 'sale' THEN NEW.total WHEN 'return' THEN -NEW.total ELSE 0 END)
    ON CONFLICT (state, currency) DO UPDATE SET n = n + 1, net = net + excluded.net;
END;

-- Only a sale's state changes after it is stored; the other columns are
-- covered too so that no update can leave the figures behind.
CREATE TRIGGER sale_tally_update
AFTER UPDATE OF state, currency, kind, total ON sales
WHEN OLD.state IS NOT NEW.state OR OLD.currency IS NOT NEW.currency
  OR OLD.kind IS NOT NEW.kind OR OLD.total IS NOT NEW.total
BEGIN
    UPDATE sale_tally
    SET n = n - 1,
        net = net - CASE OLD.kind WHEN 'sale' THEN OLD.total WHEN 'return' THEN -OLD.total ELSE 0 END
    WHERE state = OLD.state AND currency = OLD.currency;
    INSERT INTO sale_tally (state, currency, n, net)
    VALUES (NEW.state, NEW.currency, 1,
            CASE NEW.kind WHEN 'sale' THEN NEW.total WHEN 'return' THEN -NEW.total ELSE 0 END)
    ON CONFLICT (state, currency) DO UPDATE SET n = n + 1, net = net + excluded.net;
END;

-- `laned report --date D` reads one business day: without this index it
-- read every sale of every day.
CREATE INDEX sales_business_date ON sales (business_date);
