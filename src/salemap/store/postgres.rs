//! The posted sale map on PostgreSQL, for fleets: many lanes posting at
//! once through a pool of connections.
//!
//! Each post is one READ COMMITTED transaction. A concurrent duplicate's
//! `INSERT … ON CONFLICT DO NOTHING` waits on the winner's uncommitted row
//! (the unique index is the mutex); when the winner commits, the loser
//! inserts nothing and reads the winner's row in a separate statement; when
//! it rolls back, the loser inserts and wins. A waiter gives up after
//! `lock_timeout` and the request is answered `409 in_flight` (a batch as a
//! whole). A database that cannot be reached is `503`, never an outcome.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::chain::{self, Facts, Held, Link, Verdict};
use super::marks::{self, Conflict, Hole, LaneDetail, LaneMarks, SeriesMarks, Uncertified};
use super::{
    Aborts, Certified, ClosingItem, Day, Item, Outcome, StoreError, Stored, VoidedDoc,
    closing_doc_no,
};
use crate::common::migrate::{self, Migration};
use crate::contract::Kind;
use crate::contract::Posted;

/// The schema, one file per version.
const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_initial",
        sql: include_str!("../../../schema/salemap/postgres/0001_initial.sql"),
    },
    Migration {
        name: "0002_series_owner",
        sql: include_str!("../../../schema/salemap/postgres/0002_series_owner.sql"),
    },
    Migration {
        name: "0003_closings",
        sql: include_str!("../../../schema/salemap/postgres/0003_closings.sql"),
    },
    Migration {
        name: "0004_chains",
        sql: include_str!("../../../schema/salemap/postgres/0004_chains.sql"),
    },
    Migration {
        name: "0005_watermarks",
        sql: include_str!("../../../schema/salemap/postgres/0005_watermarks.sql"),
    },
    Migration {
        name: "0006_links_by_prev",
        sql: include_str!("../../../schema/salemap/postgres/0006_links_by_prev.sql"),
    },
];

/// Key of the advisory lock that serialises migrations between salemaps
/// starting at once ("SMAP").
const MIGRATION_LOCK: i64 = 0x534D_4150;

/// Connections in the pool.
pub const POOL_SIZE: usize = 16;

/// How long a request waits for a connection, or for one to be made.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

fn pg(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { what, source }
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// `SET LOCAL lock_timeout` of each post, in milliseconds.
    lock_timeout_ms: u64,
    aborts: Aborts,
}

impl PgStore {
    /// Connects (a pool to `url`, `postgres://user:pass@host:port/db`) and
    /// migrates. `lock_timeout` bounds how long a duplicate waits for the
    /// transaction posting the same id before it answers `in_flight`.
    pub async fn open(url: &str, lock_timeout: Duration) -> Result<PgStore, StoreError> {
        let cfg =
            tokio_postgres::Config::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::BadUrl(e.to_string()))?;
        let store = PgStore {
            pool,
            lock_timeout_ms: u64::try_from(lock_timeout.as_millis()).unwrap_or(u64::MAX),
            aborts: Aborts::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub(super) fn aborts(&self) -> &Aborts {
        &self.aborts
    }

    /// A round trip through the pool to the database (the watchdog's check).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(pg("ping"))
    }

    /// A posting transaction: READ COMMITTED, with the lock timeout that
    /// turns a wait on a duplicate into `in_flight`.
    ///
    /// Its statements are planned for their arguments and the tables as
    /// they are, every time (`plan_cache_mode`): a prepared statement's
    /// generic plan is kept for the connection's life, and one made on a
    /// fresh database's empty tables looked a sale up by tenant alone,
    /// reading every document held for each one posted (BENCHMARKS.md).
    /// Set here, not at connect, so that it holds through a connection
    /// pooler too.
    async fn begin<'a>(
        &self,
        client: &'a mut deadpool_postgres::Object,
    ) -> Result<deadpool_postgres::Transaction<'a>, StoreError> {
        let tx = client.transaction().await.map_err(pg("begin"))?;
        tx.batch_execute(&format!(
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = {};
             SET LOCAL plan_cache_mode = force_custom_plan",
            self.lock_timeout_ms
        ))
        .await
        .map_err(pg("set the transaction up"))?;
        Ok(tx)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(StoreError::Pool)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("begin a migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg("lock the schema"))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS salemap_schema (version integer NOT NULL)")
            .await
            .map_err(pg("create the schema table"))?;
        let version: i32 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM salemap_schema", &[])
            .await
            .map_err(pg("read the schema version"))?
            .get(0);
        let pending = migrate::pending(MIGRATIONS, i64::from(version)).map_err(|source| {
            StoreError::Schema {
                database: "the PostgreSQL database".into(),
                source,
            }
        })?;
        for (version, m) in pending {
            tx.batch_execute(m.sql)
                .await
                .map_err(pg("apply a migration"))?;
            let v = i32::try_from(version).unwrap_or(i32::MAX);
            tx.execute("INSERT INTO salemap_schema (version) VALUES ($1)", &[&v])
                .await
                .map_err(pg("record a migration"))?;
            migrate::applied("salemap", m);
        }
        tx.commit().await.map_err(pg("commit the migrations"))
    }

    /// Posts `items` in one transaction; one outcome per item, in order.
    ///
    /// The statements of a batch are pipelined on the connection (sent
    /// together, run in order): every gate insert, then the numbers of the
    /// winners in batch order and the lookups of the repeats. A batch costs
    /// a handful of round trips rather than several per sale.
    pub async fn post<T: Send + 'static>(
        &self,
        tenant: &str,
        items: &[Item],
        posted_at: &str,
        during_commit: impl FnOnce(&[Outcome]) -> T + Send + 'static,
    ) -> Result<(Vec<Outcome>, T), StoreError> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        // The chains first, under a lock per series (the request's series
        // in one order, so two requests cannot wait on each other), then
        // the gate for every document its chain does not refuse.
        lock_series(&tx, tenant, items.iter().map(|i| i.series.as_str())).await?;
        let mut referenced = BTreeMap::new();
        for r in items.iter().filter_map(|i| i.references.as_deref()) {
            if let Some(v) = voided(&tx, tenant, r).await? {
                referenced.insert(r.to_owned(), v);
            }
        }
        let effects = super::effects(items, |id| referenced.get(id).cloned());
        let links: Vec<Link> = items.iter().zip(effects).map(|(i, e)| i.link(e)).collect();
        let facts = super::super::join_all(links.iter().map(|l| facts(&tx, tenant, l)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let verdicts = chain::judge(&links, &facts);
        let gated: Vec<Item> = items
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| !matches!(v, Verdict::Refuse(_)))
            .map(|(i, _)| i.clone())
            .collect();
        let mut gate = post_all(&tx, tenant, &gated, posted_at).await?.into_iter();
        let mut out = Vec::with_capacity(items.len());
        // The links of the documents that won the gate, inserted pipelined.
        let mut kept = Vec::new();
        for (item, verdict) in items.iter().zip(verdicts) {
            let chained = item.prev_hash.is_some();
            out.push(match verdict {
                Verdict::Refuse(r) => Outcome::refused(r),
                Verdict::Repeat => gate.next().ok_or(StoreError::Task)?.chained(chained),
                Verdict::Accept {
                    link,
                    out_of_order,
                    forked,
                    successor_problems,
                } => {
                    let o = gate.next().ok_or(StoreError::Task)?.chained(chained);
                    if matches!(o, Outcome::Posted(_)) {
                        note_problems(&tx, tenant, &link, &successor_problems).await?;
                        kept.push((link, out_of_order, forked));
                    }
                    o
                }
            });
        }
        super::super::join_all(
            kept.iter()
                .map(|(l, o, f)| keep_link(&tx, tenant, l, *o, *f, posted_at)),
        )
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
        let kept: Vec<(Link, bool)> = kept.into_iter().map(|(l, _, f)| (l, f)).collect();
        note_marks(&tx, tenant, &kept, posted_at).await?;
        note_refused(&tx, tenant, &marks::refused(&links, &out), posted_at).await?;
        note_lanes(
            &tx,
            tenant,
            items.iter().map(|i| i.lane_id.as_str()),
            posted_at,
        )
        .await?;
        advance(&tx, tenant, &kept, posted_at).await?;
        if self.aborts.now() {
            // Dropping the transaction rolls everything back.
            return Err(StoreError::Injected);
        }
        // The server flushes the commit while this process works on
        // the outcomes.
        let making = tokio::task::spawn_blocking(move || {
            let t = during_commit(&out);
            (out, t)
        });
        let (committed, made) = tokio::join!(tx.commit(), making);
        committed.map_err(pg("commit"))?;
        made.map_err(|_| StoreError::Task)
    }

    /// Stores a day closing, in one transaction under its series' lock:
    /// its chain first, then the insert is the gate.
    pub async fn post_closing(
        &self,
        tenant: &str,
        c: &ClosingItem,
        posted_at: &str,
    ) -> Result<Outcome, StoreError> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        lock_series(&tx, tenant, std::iter::once(c.series.as_str())).await?;
        let link = c.link();
        let f = facts(&tx, tenant, &link).await?;
        let verdict = chain::judge(std::slice::from_ref(&link), &[f])
            .pop()
            .unwrap_or(Verdict::Repeat);
        let o = match verdict {
            Verdict::Refuse(r) => Outcome::refused(r),
            Verdict::Repeat => closing_gate(&tx, tenant, c, posted_at).await?.chained(true),
            Verdict::Accept {
                link,
                out_of_order,
                forked,
                successor_problems,
            } => {
                let o = closing_gate(&tx, tenant, c, posted_at).await?.chained(true);
                if matches!(o, Outcome::Posted(_)) {
                    keep_link(&tx, tenant, &link, out_of_order, forked, posted_at).await?;
                    note_problems(&tx, tenant, &link, &successor_problems).await?;
                    let kept = [(link, forked)];
                    note_marks(&tx, tenant, &kept, posted_at).await?;
                    advance(&tx, tenant, &kept, posted_at).await?;
                }
                o
            }
        };
        let refused = marks::refused(std::slice::from_ref(&link), std::slice::from_ref(&o));
        note_refused(&tx, tenant, &refused, posted_at).await?;
        note_lanes(&tx, tenant, [c.lane_id.as_str()], posted_at).await?;
        tx.commit().await.map_err(pg("commit"))?;
        Ok(o)
    }

    /// Highest receipt number per series of `lane_id`.
    pub async fn last_receipt_no(
        &self,
        tenant: &str,
        lane_id: &str,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let client = self.client().await?;
        // One index step per series of the lane, whatever it holds.
        let rows = client
            .query(
                "SELECT d.series,
                        (SELECT p.receipt_no FROM posted p
                         WHERE p.tenant = d.tenant AND p.lane_id = $2 AND p.series = d.series
                         ORDER BY p.receipt_no DESC LIMIT 1)
                 FROM doc_counters d WHERE d.tenant = $1 AND d.lane_id = $2",
                &[&tenant, &lane_id],
            )
            .await
            .map_err(pg("read the last receipt numbers"))?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get(0), r.get::<_, Option<i64>>(1)?)))
            .collect())
    }

    /// The certificate of a lane's closing, if its day is certified.
    pub async fn certificate(
        &self,
        tenant: &str,
        lane_id: &str,
        series: &str,
        closing_no: i64,
    ) -> Result<Option<Certified>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT business_date, closing_hash, certified_at FROM certificates
                 WHERE tenant = $1 AND lane_id = $2 AND series = $3 AND closing_no = $4",
                &[&tenant, &lane_id, &series, &closing_no],
            )
            .await
            .map_err(pg("read a certificate"))?
            .map(|r| Certified {
                business_date: r.get(0),
                closing_hash: r.get(1),
                certified_at: r.get(2),
            }))
    }

    /// One document, for support.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Option<Stored>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT transaction_id, doc_no, posted_at, lane_id, series, receipt_no, kind,
                        voided_by, envelope
                 FROM posted WHERE tenant = $1 AND transaction_id = $2",
                &[&tenant, &id],
            )
            .await
            .map_err(pg("read a document"))?;
        Ok(row.and_then(|r| {
            let envelope: String = r.get(8);
            Some(Stored {
                doc: Posted {
                    // Only version 4 UUIDs are ever stored.
                    transaction_id: r.get::<_, String>(0).parse().ok()?,
                    doc_no: r.get::<_, Option<String>>(1).unwrap_or_default(),
                    posted_at: r.get(2),
                    ack: None,
                    certificate: None,
                },
                lane_id: r.get(3),
                series: r.get(4),
                receipt_no: r.get(5),
                kind: r.get(6),
                voided_by: r.get(7),
                envelope: serde_json::value::RawValue::from_string(envelope).ok()?,
            })
        }))
    }

    /// Notes a lane's heartbeat.
    pub async fn heard(&self, tenant: &str, lane_id: &str, at: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO lanes_seen (tenant, lane_id, last_heartbeat) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, lane_id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat",
                &[&tenant, &lane_id, &at],
            )
            .await
            .map(drop)
            .map_err(pg("note a heartbeat"))
    }

    /// Every lane's marks (or one lane's).
    pub async fn marks(
        &self,
        tenant: &str,
        lane: Option<&str>,
    ) -> Result<Vec<LaneMarks>, StoreError> {
        let client = self.client().await?;
        lane_marks(&client, tenant, lane).await
    }

    /// One lane in full: its marks, its holes and its refused documents.
    pub async fn detail(&self, tenant: &str, lane: &str) -> Result<Option<LaneDetail>, StoreError> {
        let client = self.client().await?;
        let Some(marks) = lane_marks(&client, tenant, Some(lane)).await?.pop() else {
            return Ok(None);
        };
        let e = pg("read a lane's holes");
        let holes = client
            .query(
                "SELECT series, first_no, last_no, opened_at FROM holes
                 WHERE tenant = $1 AND lane_id = $2 ORDER BY series, first_no LIMIT $3",
                &[&tenant, &lane, &marks::DETAIL_ROWS],
            )
            .await
            .map_err(&e)?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    Hole {
                        first_no: r.get(1),
                        last_no: r.get(2),
                        opened_at: r.get(3),
                    },
                )
            })
            .collect();
        let conflicts = client
            .query(
                "SELECT transaction_id, series, numbered_by, number, hash, code, holder,
                        first_seen, last_seen, attempts
                 FROM conflicts WHERE tenant = $1 AND lane_id = $2
                 ORDER BY last_seen DESC LIMIT $3",
                &[&tenant, &lane, &marks::DETAIL_ROWS],
            )
            .await
            .map_err(&e)?
            .iter()
            .map(|r| Conflict {
                transaction_id: r.get(0),
                series: r.get(1),
                numbered_by: r.get(2),
                number: r.get(3),
                hash: r.get(4),
                code: r.get(5),
                holder: r.get(6),
                first_seen: r.get(7),
                last_seen: r.get(8),
                attempts: r.get(9),
            })
            .collect();
        Ok(Some(LaneDetail {
            marks,
            holes,
            conflicts,
        }))
    }

    /// One page of the documents of a lane's business day, after the
    /// document `after` (`None` if it is not one of them).
    pub async fn day_documents(
        &self,
        tenant: &str,
        lane_id: &str,
        business_date: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Option<Vec<crate::contract::HeldDocument>>, StoreError> {
        let client = self.client().await?;
        let e = pg("read a day's documents");
        let from = match after {
            None => (String::new(), 0_i64, String::new()),
            Some(id) => {
                let at = client
                    .query_opt(
                        "SELECT series, receipt_no FROM posted
                         WHERE tenant = $1 AND transaction_id = $2 AND lane_id = $3
                           AND business_date = $4",
                        &[&tenant, &id, &lane_id, &business_date],
                    )
                    .await
                    .map_err(&e)?;
                let Some(r) = at else { return Ok(None) };
                (r.get(0), r.get(1), id.to_owned())
            }
        };
        let rows = client
            .query(
                "SELECT transaction_id, series, receipt_no, kind, fingerprint, doc_no
                 FROM posted
                 WHERE tenant = $1 AND lane_id = $2 AND business_date = $3
                   AND (series, receipt_no, transaction_id) > ($4, $5, $6)
                 ORDER BY series, receipt_no, transaction_id LIMIT $7",
                &[
                    &tenant,
                    &lane_id,
                    &business_date,
                    &from.0,
                    &from.1,
                    &from.2,
                    &limit,
                ],
            )
            .await
            .map_err(&e)?;
        Ok(Some(
            rows.iter()
                .map(|r| crate::contract::HeldDocument {
                    transaction_id: r.get(0),
                    series: r.get(1),
                    receipt_no: r.get(2),
                    kind: r.get(3),
                    hash: r.get(4),
                    doc_no: r.get::<_, Option<String>>(5).unwrap_or_default(),
                })
                .collect(),
        ))
    }

    /// Per series, the last place in lane order of a document of a day up
    /// to `to`.
    pub async fn audit_ends(
        &self,
        tenant: &str,
        lane_id: &str,
        to: &str,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT l.series, MAX(l.lane_seq) FROM links l
                     LEFT JOIN posted p ON l.numbered_by = 'receipt'
                          AND p.tenant = l.tenant AND p.transaction_id = l.transaction_id
                     LEFT JOIN closings c ON l.numbered_by = 'closing'
                          AND c.tenant = l.tenant AND c.transaction_id = l.transaction_id
                     WHERE l.tenant = $1 AND l.lane_id = $2
                       AND COALESCE(p.business_date, c.business_date) <= $3
                     GROUP BY l.series",
                &[&tenant, &lane_id, &to],
            )
            .await
            .map_err(pg("read where the audit ends"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// One page of the lane's documents, by series and lane order.
    pub async fn audit_page(
        &self,
        tenant: &str,
        lane_id: &str,
        after: super::AuditCursor,
        limit: i64,
    ) -> Result<Vec<super::AuditDoc>, StoreError> {
        let client = self.client().await?;
        let (series, seq, hash) = after.unwrap_or((String::new(), i64::MIN, String::new()));
        Ok(client
            .query(
                "SELECT l.series, l.lane_seq, l.hash, l.numbered_by = 'closing', l.number,
                            COALESCE(p.envelope, c.envelope), COALESCE(p.doc_no, c.doc_no, ''),
                            COALESCE(p.posted_at, c.posted_at)
                     FROM links l
                     LEFT JOIN posted p ON l.numbered_by = 'receipt'
                          AND p.tenant = l.tenant AND p.transaction_id = l.transaction_id
                     LEFT JOIN closings c ON l.numbered_by = 'closing'
                          AND c.tenant = l.tenant AND c.transaction_id = l.transaction_id
                     WHERE l.tenant = $1 AND l.lane_id = $2
                       AND (l.series, l.lane_seq, l.hash) > ($3, $4, $5)
                     ORDER BY l.series, l.lane_seq, l.hash LIMIT $6",
                &[&tenant, &lane_id, &series, &seq, &hash, &limit],
            )
            .await
            .map_err(pg("read the lane's documents"))?
            .iter()
            .map(|r| {
                let n: i64 = r.get(4);
                super::AuditDoc {
                    series: r.get(0),
                    lane_seq: r.get(1),
                    hash: r.get(2),
                    number: if r.get::<_, bool>(3) {
                        crate::contract::ack::Number::Closing(n)
                    } else {
                        crate::contract::ack::Number::Receipt(n)
                    },
                    envelope: r.get(5),
                    doc_no: r.get(6),
                    posted_at: r.get(7),
                }
            })
            .collect())
    }

    /// The lane's day certificates of days up to `to`.
    pub async fn audit_certificates(
        &self,
        tenant: &str,
        lane_id: &str,
        to: &str,
    ) -> Result<Vec<super::AuditCertificate>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT series, closing_no, business_date, closing_hash, certified_at
                     FROM certificates WHERE tenant = $1 AND lane_id = $2 AND business_date <= $3
                     ORDER BY series, closing_no",
                &[&tenant, &lane_id, &to],
            )
            .await
            .map_err(pg("read the lane's certificates"))?
            .iter()
            .map(|r| super::AuditCertificate {
                series: r.get(0),
                closing_no: r.get(1),
                business_date: r.get(2),
                closing_hash: r.get(3),
                certified_at: r.get(4),
            })
            .collect())
    }

    /// Count and totals of one lane's business day.
    pub async fn day(
        &self,
        tenant: &str,
        lane_id: &str,
        business_date: &str,
    ) -> Result<Day, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT kind, voided_by IS NOT NULL, currency, COUNT(*), SUM(total)::bigint
                 FROM posted WHERE tenant = $1 AND lane_id = $2 AND business_date = $3
                 GROUP BY kind, voided_by IS NOT NULL, currency",
                &[&tenant, &lane_id, &business_date],
            )
            .await
            .map_err(pg("read a day"))?;
        let mut day = Day {
            lane_id: lane_id.to_owned(),
            business_date: business_date.to_owned(),
            ..Day::default()
        };
        for r in rows {
            let kind: String = r.get(0);
            day.add(&kind, r.get(1), r.get(2), r.get(3), r.get(4));
        }
        Ok(day)
    }
}

/// A closing's gate: the series' owner, then the insert (a concurrent
/// duplicate waits on the unique index, then finds the row).
async fn closing_gate(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    c: &ClosingItem,
    posted_at: &str,
) -> Result<Outcome, StoreError> {
    let key = c.transaction_id.to_string();
    let owner = tx
        .query_opt(
            "SELECT lane_id FROM doc_counters WHERE tenant = $1 AND series = $2",
            &[&tenant, &c.series],
        )
        .await
        .map_err(gate_error("read the series' owner"))?
        .and_then(|r| r.get::<_, Option<String>>(0));
    if let Some(owner) = owner.filter(|o| *o != c.lane_id) {
        return Err(StoreError::SeriesOfAnotherLane {
            series: c.series.clone(),
            owner,
            lane: c.lane_id.clone(),
        });
    }
    let doc_no = closing_doc_no(&c.series, c.closing_no);
    let inserted = tx
        .execute(
            "INSERT INTO closings (tenant, transaction_id, lane_id, series, closing_no,
                                   business_date, fingerprint, envelope, doc_no, posted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            &[
                &tenant,
                &key,
                &c.lane_id,
                &c.series,
                &c.closing_no,
                &c.business_date,
                &c.fingerprint,
                &c.envelope,
                &doc_no,
                &posted_at,
            ],
        )
        .await
        .map_err(gate_error("store the closing"))?;
    if inserted == 1 {
        return Ok(Outcome::Posted(Posted {
            transaction_id: c.transaction_id,
            doc_no,
            posted_at: posted_at.to_owned(),
            ack: None,
            certificate: None,
        }));
    }
    if let Some(r) = tx
        .query_opt(
            "SELECT fingerprint, doc_no, posted_at FROM closings
             WHERE tenant = $1 AND transaction_id = $2",
            &[&tenant, &key],
        )
        .await
        .map_err(gate_error("look up the closing"))?
    {
        return Ok(if r.get::<_, String>(0) == c.fingerprint {
            Outcome::Replayed(Posted {
                transaction_id: c.transaction_id,
                doc_no: r.get(1),
                posted_at: r.get(2),
                ack: None,
                certificate: None,
            })
        } else {
            Outcome::Mismatch
        });
    }
    let holder = tx
        .query_opt(
            "SELECT transaction_id FROM closings
             WHERE tenant = $1 AND lane_id = $2 AND series = $3 AND closing_no = $4",
            &[&tenant, &c.lane_id, &c.series, &c.closing_no],
        )
        .await
        .map_err(gate_error("look up the closing number"))?
        .map(|r| r.get(0))
        .unwrap_or_default();
    Ok(Outcome::ChainConflict {
        holder,
        reason: chain::ConflictReason::Forked,
    })
}

/// Takes the transaction-long lock of each series, in sorted order: the
/// chain of a series is checked and extended by one transaction at a time.
async fn lock_series<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    series: impl Iterator<Item = &'a str>,
) -> Result<(), StoreError> {
    let series: std::collections::BTreeSet<&str> = series.collect();
    let lock = statement(
        tx,
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 0))",
    )
    .await?;
    for s in series {
        tx.execute(&lock, &[&tenant, &s])
            .await
            .map_err(gate_error("lock the series"))?;
    }
    Ok(())
}

/// The document a void names, if salemap holds it.
async fn voided(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    id: &str,
) -> Result<Option<VoidedDoc>, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT lane_id, series, lane_seq, kind, total FROM posted
             WHERE tenant = $1 AND transaction_id = $2",
            &[&tenant, &id],
        )
        .await
        .map_err(gate_error("read the voided document"))?
        .map(|r| VoidedDoc {
            lane_id: r.get(0),
            series: r.get(1),
            lane_seq: r.get(2),
            kind: Kind::parse(r.get(3)).unwrap_or(Kind::Sale),
            total: r.get(4),
        }))
}

/// A held link, from `SELECT transaction_id, hash, lane_seq, grand_total,
/// currency, effect`.
fn held(r: &tokio_postgres::Row) -> Held {
    Held {
        transaction_id: r.get(0),
        hash: r.get(1),
        lane_seq: r.get(2),
        grand_total: chain::parse_total(r.get::<_, Option<&str>>(3)),
        currency: r.get(4),
        effect: r.get(5),
    }
}

/// What salemap holds around one new document of its chain: index steps
/// only, pipelined.
async fn facts(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    l: &Link,
) -> Result<Facts, StoreError> {
    use crate::contract::ack::Number;
    let read = gate_error("read the chain");
    let (held_sql, highest_sql) = match l.number {
        Number::Receipt(_) => (
            "SELECT 1 FROM posted WHERE tenant = $1 AND transaction_id = $2",
            "SELECT receipt_no FROM posted WHERE tenant = $1 AND lane_id = $2 AND series = $3
             ORDER BY receipt_no DESC LIMIT 1",
        ),
        Number::Closing(_) => (
            "SELECT 1 FROM closings WHERE tenant = $1 AND transaction_id = $2",
            "SELECT closing_no FROM closings WHERE tenant = $1 AND lane_id = $2 AND series = $3
             ORDER BY closing_no DESC LIMIT 1",
        ),
    };
    let held_st = statement(tx, held_sql).await?;
    let held_id = tx
        .query_opt(&held_st, &[&tenant, &l.transaction_id])
        .await
        .map_err(&read)?
        .is_some();
    let mut f = Facts {
        held: held_id,
        ..Facts::default()
    };
    let Some(prev) = l.prev_hash.as_deref().filter(|_| !held_id) else {
        return Ok(f);
    };
    let (lane, series) = (&l.lane_id, &l.series);
    let before_it: [&(dyn ToSql + Sync); 4] = [&tenant, lane, series, &l.lane_seq];
    let siblings_of: [&(dyn ToSql + Sync); 5] = [&tenant, lane, series, &prev, &l.transaction_id];
    let after_it: [&(dyn ToSql + Sync); 4] = [&tenant, lane, series, &l.hash];
    let in_series: [&(dyn ToSql + Sync); 3] = [&tenant, lane, series];
    let before_st = statement(
        tx,
        "SELECT transaction_id, hash, lane_seq, grand_total, currency, effect FROM links
         WHERE tenant = $1 AND lane_id = $2 AND series = $3 AND lane_seq < $4
         ORDER BY lane_seq DESC LIMIT 4",
    )
    .await?;
    // Found by the hash they name (`links_prev`); the lane and series are
    // compared with IS NOT DISTINCT FROM (the same for these NOT NULL
    // columns), which no index serves: the primary key, which leads with
    // them, cannot be chosen to read the whole series instead
    // (schema/salemap/postgres/0006_links_by_prev.sql).
    let siblings_st = statement(
        tx,
        "SELECT transaction_id FROM links
         WHERE tenant = $1 AND prev_hash = $4
           AND lane_id IS NOT DISTINCT FROM $2 AND series IS NOT DISTINCT FROM $3
           AND transaction_id <> $5 LIMIT 1",
    )
    .await?;
    let successors_st = statement(
        tx,
        "SELECT transaction_id, hash, lane_seq, grand_total, currency, effect FROM links
         WHERE tenant = $1 AND prev_hash = $4
           AND lane_id IS NOT DISTINCT FROM $2 AND series IS NOT DISTINCT FROM $3",
    )
    .await?;
    let highest_st = statement(tx, highest_sql).await?;
    let (before, siblings, successors, highest) = tokio::join!(
        tx.query(&before_st, &before_it),
        tx.query(&siblings_st, &siblings_of),
        tx.query(&successors_st, &after_it),
        tx.query_opt(&highest_st, &in_series),
    );
    // The document before it in lane order (those sharing its lane_seq
    // told apart by hash) is its predecessor if its hash is the one named.
    let before: Vec<Held> = before.map_err(&read)?.iter().map(held).collect();
    f.predecessor = before
        .iter()
        .take_while(|h| Some(h.lane_seq) == before.first().map(|b| b.lane_seq))
        .find(|h| h.hash == prev)
        .cloned();
    f.siblings = siblings.map_err(&read)?.iter().map(|r| r.get(0)).collect();
    f.successors = successors.map_err(&read)?.iter().map(held).collect();
    f.highest = highest.map_err(&read)?.map(|r| r.get(0));
    Ok(f)
}

/// Keeps an accepted document's link.
async fn keep_link(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    l: &Link,
    out_of_order: bool,
    forked: bool,
    held_at: &str,
) -> Result<(), StoreError> {
    let (numbered_by, number) = match l.number {
        crate::contract::ack::Number::Receipt(n) => ("receipt", n),
        crate::contract::ack::Number::Closing(n) => ("closing", n),
    };
    let total = l.grand_total.as_ref().map(chain::json);
    let insert = statement(
        tx,
        "INSERT INTO links (tenant, transaction_id, lane_id, series, lane_seq, numbered_by,
                            number, hash, prev_hash, grand_total, currency, effect,
                            out_of_order, forked, held_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .await?;
    tx.execute(
        &insert,
        &[
            &tenant,
            &l.transaction_id,
            &l.lane_id,
            &l.series,
            &l.lane_seq,
            &numbered_by,
            &number,
            &l.hash,
            &l.prev_hash,
            &total,
            &l.currency,
            &l.effect,
            &out_of_order,
            &forked,
            &held_at,
        ],
    )
    .await
    .map(drop)
    .map_err(gate_error("keep the link"))
}

/// Moves the proven head of each series `kept` touches forward through the
/// documents now held (those of the request first, in memory, then any held
/// that arrived early), and certifies each closing it reaches.
async fn advance(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    kept: &[(Link, bool)],
    at: &str,
) -> Result<(), StoreError> {
    let read = gate_error("move the chain's proven head");
    for (lane, series) in chain::touched(kept) {
        let head_st = statement(
            tx,
            "SELECT head_hash FROM chain_heads WHERE tenant = $1 AND lane_id = $2 AND series = $3",
        )
        .await?;
        let head: Option<String> = tx
            .query_opt(&head_st, &[&tenant, &lane, &series])
            .await
            .map_err(&read)?
            .map(|r| r.get(0));
        let mut cur = head.unwrap_or_else(|| crate::contract::journal::GENESIS.to_owned());
        if chain::next_kept(kept, &lane, &series, &cur).is_none() {
            continue;
        }
        let mut last = None;
        for _ in 0..chain::MAX_WALK {
            let next = match chain::next_kept(kept, &lane, &series, &cur) {
                Some(l) => Some(chain::Step::of(l)),
                None => tx
                    .query_opt(
                        &statement(
                            tx,
                            // By `links_prev`, as in `facts`.
                            "SELECT transaction_id, hash, lane_seq, numbered_by = 'closing'
                             FROM links
                             WHERE tenant = $1 AND prev_hash = $4
                               AND lane_id IS NOT DISTINCT FROM $2
                               AND series IS NOT DISTINCT FROM $3
                               AND NOT forked AND problem IS NULL
                             ORDER BY lane_seq LIMIT 1",
                        )
                        .await?,
                        &[&tenant, &lane, &series, &cur],
                    )
                    .await
                    .map_err(&read)?
                    .map(|r| chain::Step {
                        transaction_id: r.get(0),
                        hash: r.get(1),
                        lane_seq: r.get(2),
                        closing: r.get(3),
                    }),
            };
            let Some(step) = next else { break };
            if step.closing {
                let certified = tx.execute(
                    "INSERT INTO certificates (tenant, lane_id, series, closing_no, business_date,
                                               closing_id, closing_hash, certified_at)
                     SELECT tenant, lane_id, series, closing_no, business_date, transaction_id,
                            fingerprint, $3
                     FROM closings WHERE tenant = $1 AND transaction_id = $2
                     ON CONFLICT DO NOTHING",
                    &[&tenant, &step.transaction_id, &at],
                )
                .await
                .map_err(gate_error("certify a day"))?;
                if certified == 1 {
                    tx.execute(
                        &statement(
                            tx,
                            "UPDATE series_marks SET certified = certified + 1,
                                    last_certified_no = c.closing_no,
                                    last_certified_date = c.business_date
                             FROM (SELECT closing_no, business_date FROM closings
                                   WHERE tenant = $1 AND transaction_id = $2) AS c
                             WHERE tenant = $1 AND lane_id = $3 AND series = $4",
                        )
                        .await?,
                        &[&tenant, &step.transaction_id, &lane, &series],
                    )
                    .await
                    .map_err(gate_error("count a certified day"))?;
                }
            }
            cur = step.hash.clone();
            last = Some(step);
        }
        if let Some(step) = last {
            tx.execute(
                &statement(
                    tx,
                    "INSERT INTO chain_heads (tenant, lane_id, series, head_hash, head_id,
                                          head_lane_seq, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (tenant, lane_id, series) DO UPDATE SET
                     head_hash = excluded.head_hash, head_id = excluded.head_id,
                     head_lane_seq = excluded.head_lane_seq, updated_at = excluded.updated_at",
                )
                .await?,
                &[
                    &tenant,
                    &lane,
                    &series,
                    &step.hash,
                    &step.transaction_id,
                    &step.lane_seq,
                    &at,
                ],
            )
            .await
            .map_err(&read)?;
        }
    }
    Ok(())
}

/// Moves the watermarks and holes of each series `kept` adds to
/// (docs/backend-contract.md, "What head office sees"), and counts its
/// closings. Under the series' lock.
async fn note_marks(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    kept: &[(Link, bool)],
    at: &str,
) -> Result<(), StoreError> {
    let e = gate_error("keep the watermarks");
    let read_st = statement(
        tx,
        "SELECT highest, missing FROM series_marks
         WHERE tenant = $1 AND lane_id = $2 AND series = $3",
    )
    .await?;
    let hole_st = statement(
        tx,
        "SELECT first_no, last_no, opened_at FROM holes
         WHERE tenant = $1 AND lane_id = $2 AND series = $3 AND first_no <= $4
         ORDER BY first_no DESC LIMIT 1",
    )
    .await?;
    for ((lane, series), added) in marks::added(kept.iter().map(|(l, _)| l)) {
        let (highest, missing): (i64, i64) = tx
            .query_opt(&read_st, &[&tenant, &lane, &series])
            .await
            .map_err(&e)?
            .map_or((0, 0), |r| (r.get(0), r.get(1)));
        // The plan asks for holes one at a time, in order: read those the
        // request's numbers below `highest` can fall in first.
        let mut found = BTreeMap::new();
        for n in added.receipts.iter().filter(|n| **n <= highest) {
            let h = tx
                .query_opt(&hole_st, &[&tenant, &lane, &series, n])
                .await
                .map_err(&e)?
                .map(|r| Hole {
                    first_no: r.get(0),
                    last_no: r.get(1),
                    opened_at: r.get(2),
                });
            found.insert(*n, h);
        }
        let plan = marks::plan(highest, missing, &added.receipts, at, |n| {
            Ok::<_, StoreError>(found.get(&n).cloned().flatten())
        })?;
        for first in &plan.remove {
            tx.execute(
                &statement(
                    tx,
                    "DELETE FROM holes
                     WHERE tenant = $1 AND lane_id = $2 AND series = $3 AND first_no = $4",
                )
                .await?,
                &[&tenant, &lane, &series, first],
            )
            .await
            .map_err(&e)?;
        }
        for h in &plan.write {
            tx.execute(
                &statement(
                    tx,
                    "INSERT INTO holes (tenant, lane_id, series, first_no, last_no, opened_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await?,
                &[
                    &tenant,
                    &lane,
                    &series,
                    &h.first_no,
                    &h.last_no,
                    &h.opened_at,
                ],
            )
            .await
            .map_err(&e)?;
        }
        tx.execute(
            &statement(
                tx,
                "INSERT INTO series_marks (tenant, lane_id, series, watermark, highest, missing,
                                           closings, updated_at)
                 VALUES ($1, $2, $3,
                         COALESCE((SELECT first_no - 1 FROM holes
                                   WHERE tenant = $1 AND lane_id = $2 AND series = $3
                                   ORDER BY first_no LIMIT 1), $4),
                         $4, $5, $6, $7)
                 ON CONFLICT (tenant, lane_id, series) DO UPDATE SET
                     watermark = excluded.watermark, highest = excluded.highest,
                     missing = excluded.missing,
                     closings = series_marks.closings + excluded.closings,
                     updated_at = excluded.updated_at",
            )
            .await?,
            &[
                &tenant,
                &lane,
                &series,
                &plan.highest,
                &plan.missing,
                &added.closings,
                &at,
            ],
        )
        .await
        .map_err(&e)?;
    }
    Ok(())
}

/// Records documents refused as a forked lane, for head office.
async fn note_refused(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    refused: &[marks::Refused<'_>],
    at: &str,
) -> Result<(), StoreError> {
    let e = gate_error("record a refused document");
    for r in refused {
        let l = r.link;
        let (numbered_by, number) = marks::numbered(l);
        let attempts: i64 = tx
            .query_one(
                &statement(
                    tx,
                    "INSERT INTO conflicts (tenant, transaction_id, lane_id, series, numbered_by,
                                            number, hash, code, holder, first_seen, last_seen)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
                     ON CONFLICT (tenant, transaction_id) DO UPDATE SET
                         last_seen = excluded.last_seen, attempts = conflicts.attempts + 1
                     RETURNING attempts",
                )
                .await?,
                &[
                    &tenant,
                    &l.transaction_id,
                    &l.lane_id,
                    &l.series,
                    &numbered_by,
                    &number,
                    &l.hash,
                    &r.code,
                    &r.holder,
                    &at,
                ],
            )
            .await
            .map_err(&e)?
            .get(0);
        tx.execute(
            &statement(
                tx,
                "INSERT INTO series_marks (tenant, lane_id, series, conflicts, last_conflict_at,
                                           updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (tenant, lane_id, series) DO UPDATE SET
                     conflicts = series_marks.conflicts + excluded.conflicts,
                     last_conflict_at = excluded.last_conflict_at",
            )
            .await?,
            &[
                &tenant,
                &l.lane_id,
                &l.series,
                &i64::from(attempts == 1),
                &at,
            ],
        )
        .await
        .map_err(&e)?;
    }
    Ok(())
}

/// Notes when each lane of a request last posted.
async fn note_lanes<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    lanes: impl IntoIterator<Item = &'a str>,
    at: &str,
) -> Result<(), StoreError> {
    let lanes: std::collections::BTreeSet<&str> = lanes.into_iter().collect();
    for lane in lanes {
        tx.execute(
            &statement(
                tx,
                "INSERT INTO lanes_seen (tenant, lane_id, last_posted) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, lane_id) DO UPDATE SET last_posted = excluded.last_posted",
            )
            .await?,
            &[&tenant, &lane, &at],
        )
        .await
        .map_err(gate_error("note when the lane posted"))?;
    }
    Ok(())
}

/// Every lane's marks, or one lane's, with each series' lowest hole and
/// first uncertified closing (one index step each).
async fn lane_marks(
    c: &deadpool_postgres::Object,
    tenant: &str,
    lane: Option<&str>,
) -> Result<Vec<LaneMarks>, StoreError> {
    let e = pg("read the watermarks");
    let (lo, hi) = marks::lanes_between(lane);
    let lanes = c
        .query(
            "SELECT lane_id, last_heartbeat, last_posted FROM lanes_seen
             WHERE tenant = $1 AND lane_id BETWEEN $2 AND $3",
            &[&tenant, &lo, &hi],
        )
        .await
        .map_err(&e)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let rows = c
        .query(
            "SELECT lane_id, series, watermark, highest, missing, closings, certified,
                    last_certified_no, last_certified_date, conflicts, last_conflict_at
             FROM series_marks WHERE tenant = $1 AND lane_id BETWEEN $2 AND $3
             ORDER BY lane_id, series",
            &[&tenant, &lo, &hi],
        )
        .await
        .map_err(&e)?;
    let hole_st = c
        .prepare_cached(
            "SELECT first_no, last_no, opened_at FROM holes
             WHERE tenant = $1 AND lane_id = $2 AND series = $3 ORDER BY first_no LIMIT 1",
        )
        .await
        .map_err(&e)?;
    let uncertified_st = c
        .prepare_cached(
            "SELECT closing_no, business_date, posted_at FROM closings
             WHERE tenant = $1 AND lane_id = $2 AND series = $3 AND closing_no > $4
             ORDER BY closing_no LIMIT 1",
        )
        .await
        .map_err(&e)?;
    let mut series = Vec::with_capacity(rows.len());
    for r in rows {
        let lane_id: String = r.get(0);
        let name: String = r.get(1);
        let closings: i64 = r.get(5);
        let certified: i64 = r.get(6);
        let last_certified_no: Option<i64> = r.get(7);
        let oldest_hole = c
            .query_opt(&hole_st, &[&tenant, &lane_id, &name])
            .await
            .map_err(&e)?
            .map(|h| Hole {
                first_no: h.get(0),
                last_no: h.get(1),
                opened_at: h.get(2),
            });
        let oldest_uncertified = if closings > certified {
            c.query_opt(
                &uncertified_st,
                &[&tenant, &lane_id, &name, &last_certified_no.unwrap_or(0)],
            )
            .await
            .map_err(&e)?
            .map(|u| Uncertified {
                closing_no: u.get(0),
                business_date: u.get(1),
                posted_at: u.get(2),
            })
        } else {
            None
        };
        let last_certified = last_certified_no.zip(r.get::<_, Option<String>>(8));
        series.push((
            lane_id,
            SeriesMarks {
                series: name,
                watermark: r.get(2),
                highest: r.get(3),
                missing: r.get(4),
                oldest_hole,
                closings,
                certified,
                last_certified,
                oldest_uncertified,
                conflicts: r.get(9),
                last_conflict_at: r.get(10),
            },
        ));
    }
    Ok(marks::assemble(lanes, series))
}

/// Records what a late predecessor showed to be wrong with documents that
/// arrived before it.
async fn note_problems(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    link: &Link,
    problems: &[(Held, String)],
) -> Result<(), StoreError> {
    for (h, problem) in problems {
        tracing::error!(transaction_id = %h.transaction_id, problem = %problem, "a held document does not fit its chain");
        tx.execute(
            "UPDATE links SET problem = $6
             WHERE tenant = $1 AND lane_id = $2 AND series = $3 AND lane_seq = $4 AND hash = $5",
            &[
                &tenant,
                &link.lane_id,
                &link.series,
                &h.lane_seq,
                &h.hash,
                problem,
            ],
        )
        .await
        .map_err(gate_error("note a chain problem"))?;
    }
    Ok(())
}

/// A statement prepared once per connection (parsing and planning every
/// time cost more than the query).
async fn statement(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
) -> Result<tokio_postgres::Statement, StoreError> {
    tx.prepare_cached(sql)
        .await
        .map_err(gate_error("prepare a statement"))
}

/// A lock timeout aborts the transaction: the request is `in_flight`.
fn gate_error(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| {
        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            StoreError::InFlight
        } else {
            StoreError::Postgres { what, source: e }
        }
    }
}

/// The first row of a query (for pipelining: the future owns its
/// parameters).
async fn first_row(
    tx: &deadpool_postgres::Transaction<'_>,
    st: &tokio_postgres::Statement,
    params: Vec<&(dyn ToSql + Sync)>,
) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
    tx.query_opt(st, &params).await
}

/// The INSERT-first algorithm for a batch. No savepoints (each costs a
/// round trip): nothing here is expected to fail but a lock timeout, which
/// aborts the whole transaction and is answered `in_flight`.
async fn post_all(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    items: &[Item],
    posted_at: &str,
) -> Result<Vec<Outcome>, StoreError> {
    // The gate: insert the id rows first. Without a conflict target, DO
    // NOTHING also covers the live receipt number index, so a restored
    // lane's number is found below instead of failing the transaction.
    let insert = tx
        .prepare_cached(
            "INSERT INTO posted (tenant, transaction_id, lane_id, series, receipt_no, lane_seq,
                                 kind, references_id, business_date, currency, total,
                                 fingerprint, envelope, posted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg("prepare the insert"))?;
    // The winner's number (the series counter, in this transaction) and
    // its document, in one statement; the counter row also names the lane
    // that owns the series (the first to post in it).
    let number = tx
        .prepare_cached(
            "WITH n AS (
                 INSERT INTO doc_counters (tenant, series, last_no, lane_id)
                 VALUES ($1, $2, 1, $4)
                 ON CONFLICT (tenant, series)
                 DO UPDATE SET last_no = doc_counters.last_no + 1,
                     lane_id = COALESCE(doc_counters.lane_id, excluded.lane_id)
                 RETURNING last_no, lane_id)
             UPDATE posted SET doc_no = $2 || '/' || CASE
                     WHEN n.last_no < 100000000 THEN lpad(n.last_no::text, 8, '0')
                     ELSE n.last_no::text END
             FROM n WHERE tenant = $1 AND transaction_id = $3
             RETURNING doc_no, n.lane_id",
        )
        .await
        .map_err(pg("prepare the numbering"))?;
    let lookup = tx
        .prepare_cached(
            "SELECT fingerprint, doc_no, posted_at FROM posted
             WHERE tenant = $1 AND transaction_id = $2",
        )
        .await
        .map_err(pg("prepare the lookup"))?;
    let kinds: Vec<&str> = items.iter().map(|i| i.kind.as_str()).collect();
    // The ids as the table keeps them (lowercase hyphenated text).
    let keys: Vec<String> = items.iter().map(|i| i.transaction_id.to_string()).collect();
    let inserted = super::super::join_all(items.iter().zip(&kinds).zip(&keys).map(
        |((it, kind), key)| {
            let params: Vec<&(dyn ToSql + Sync)> = vec![
                &tenant,
                key,
                &it.lane_id,
                &it.series,
                &it.receipt_no,
                &it.lane_seq,
                kind,
                &it.references,
                &it.business_date,
                &it.currency,
                &it.total,
                &it.fingerprint,
                &it.envelope,
                &posted_at,
            ];
            let insert = &insert;
            async move { tx.execute(insert, &params).await }
        },
    ))
    .await
    .into_iter()
    .collect::<Result<Vec<u64>, _>>()
    .map_err(gate_error("insert"))?;
    // Whoever held an id or number has committed (we waited for it), so
    // these statements see it. Winners are numbered in batch order.
    let winners: Vec<(&Item, &String)> = items
        .iter()
        .zip(&keys)
        .zip(&inserted)
        .filter(|(_, n)| **n > 0)
        .map(|(it, _)| it)
        .collect();
    let losers: Vec<&String> = keys
        .iter()
        .zip(&inserted)
        .filter(|(_, n)| **n == 0)
        .map(|(key, _)| key)
        .collect();
    let numbered = super::super::join_all(
        winners
            .iter()
            .map(|(it, key)| first_row(tx, &number, vec![&tenant, &it.series, *key, &it.lane_id])),
    );
    let found = super::super::join_all(
        losers
            .iter()
            .map(|key| first_row(tx, &lookup, vec![&tenant, *key])),
    );
    let (numbered, found) = tokio::join!(numbered, found);
    let mut numbered = numbered.into_iter();
    let mut found = found.into_iter();
    let mut out = Vec::with_capacity(items.len());
    for ((it, key), n) in items.iter().zip(&keys).zip(&inserted) {
        if *n > 0 {
            let (doc_no, owner): (String, Option<String>) = numbered
                .next()
                .transpose()
                .map_err(gate_error("number a document"))?
                .flatten()
                .map(|r| (r.get(0), r.get(1)))
                .unwrap_or_default();
            if let Some(owner) = owner.filter(|o| *o != it.lane_id) {
                // The whole request is refused: dropping the transaction
                // rolls it back.
                return Err(StoreError::SeriesOfAnotherLane {
                    series: it.series.clone(),
                    owner,
                    lane: it.lane_id.clone(),
                });
            }
            if let (Kind::Void, Some(original)) = (it.kind, &it.references) {
                tx.execute(
                    "UPDATE posted SET voided_by = $3
                     WHERE tenant = $1 AND transaction_id = $2 AND voided_by IS NULL",
                    &[&tenant, original, key],
                )
                .await
                .map_err(gate_error("mark the original voided"))?;
            }
            out.push(Outcome::Posted(Posted {
                transaction_id: it.transaction_id,
                doc_no,
                posted_at: posted_at.to_owned(),
                ack: None,
                certificate: None,
            }));
            continue;
        }
        let row = found
            .next()
            .transpose()
            .map_err(gate_error("read the posted document"))?
            .flatten();
        out.push(match row {
            Some(r) => {
                let fingerprint: String = r.get(0);
                if fingerprint == it.fingerprint {
                    Outcome::Replayed(Posted {
                        transaction_id: it.transaction_id,
                        doc_no: r.get::<_, Option<String>>(1).unwrap_or_default(),
                        posted_at: r.get(2),
                        ack: None,
                        certificate: None,
                    })
                } else {
                    Outcome::Mismatch
                }
            }
            // Not this id: the lane's receipt number is live under another.
            None => {
                let holder: Option<String> = tx
                    .query_opt(
                        "SELECT transaction_id FROM posted
                         WHERE tenant = $1 AND lane_id = $2 AND series = $3
                           AND receipt_no = $4 AND voided_by IS NULL",
                        &[&tenant, &it.lane_id, &it.series, &it.receipt_no],
                    )
                    .await
                    .map_err(gate_error("find the receipt number's holder"))?
                    .map(|r| r.get(0));
                Outcome::ReceiptConflict {
                    holder: holder.unwrap_or_default(),
                }
            }
        });
    }
    Ok(out)
}
