//! The posted sale map on SQLite, embedded. Every post runs in one
//! `BEGIN IMMEDIATE` transaction (a batch is one transaction for all its
//! sales, so one fsync for N). SQLite has one writer at a time, so a
//! concurrent duplicate waits for the winner's commit or rollback and then
//! sees its row, or finds the gate free and posts itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use super::chain::{self, Facts, Held, Link, Verdict};
use super::marks::{self, Conflict, Hole, LaneDetail, LaneMarks, SeriesMarks, Uncertified};
use super::{
    Aborts, Certified, ClosingItem, Day, Item, Outcome, StoreError, Stored, VoidedDoc,
    closing_doc_no, doc_no,
};
use crate::common::migrate::{Migration, Sqlite};
use crate::contract::Posted;
use crate::contract::{HeldDocument, Kind};

/// `PRAGMA application_id` of a salemap database ("SMAP").
pub const APPLICATION_ID: i64 = 0x534D_4150;

/// The schema, one file per version.
const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_initial",
        sql: include_str!("../../../schema/salemap/sqlite/0001_initial.sql"),
    },
    Migration {
        name: "0002_series_owner",
        sql: include_str!("../../../schema/salemap/sqlite/0002_series_owner.sql"),
    },
    Migration {
        name: "0003_closings",
        sql: include_str!("../../../schema/salemap/sqlite/0003_closings.sql"),
    },
    Migration {
        name: "0004_chains",
        sql: include_str!("../../../schema/salemap/sqlite/0004_chains.sql"),
    },
    Migration {
        name: "0005_watermarks",
        sql: include_str!("../../../schema/salemap/sqlite/0005_watermarks.sql"),
    },
];

/// salemap's SQLite store, as the migration runner sees it.
const SALEMAP: Sqlite = Sqlite {
    store: "salemap",
    application_id: APPLICATION_ID,
    migrations: MIGRATIONS,
};

fn sql(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { what, source }
}

/// The SQLite store: one writer connection, one reader (WAL lets reads run
/// beside the writer).
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    aborts: Aborts,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic cannot leave a transaction open: `Transaction` rolls back on
    // drop, so the connection is usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sql("open the database"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql("set the busy timeout"))?;
    // WAL so reads run beside the writer; FULL so a 201 survives a power
    // cut (the lane forgets a sale once it has the answer).
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(sql("set pragmas"))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        use crate::common::owner_only;
        let file = |what| {
            move |source| StoreError::File {
                what,
                path: path.to_owned(),
                source,
            }
        };
        // Sales are private: missing directories are created owner-only
        // (existing ones are left alone: they may be shared), the database
        // is owner-only, and SQLite gives its -wal and -shm files the
        // database's mode.
        owner_only::ensure_parent(path).map_err(file("create the directory of"))?;
        if path.exists() {
            // Another program's database, or a newer salemap's, is refused
            // before anything of it changes (its mode, its journal mode).
            check_before_touching(path)?;
            for f in [
                path.to_owned(),
                sidecar(path, "-wal"),
                sidecar(path, "-shm"),
            ] {
                if f.exists() && owner_only::tighten_file(&f).map_err(file("restrict"))? {
                    tracing::warn!(file = %f.display(), "was readable by others; set it to 0600");
                }
            }
        } else {
            owner_only::create_file(path).map_err(file("create"))?;
        }
        let mut writer = open(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        migrate(&mut writer, path)?;
        let reader = open(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            aborts: Aborts::default(),
        })
    }

    pub(super) fn aborts(&self) -> &Aborts {
        &self.aborts
    }

    /// Posts `items` in one transaction; one outcome per item, in order,
    /// and what `during_commit` made of them while the commit was flushed.
    pub async fn post<T: Send + 'static>(
        &self,
        tenant: String,
        items: Vec<Item>,
        posted_at: String,
        during_commit: impl FnOnce(&[Outcome]) -> T + Send + 'static,
    ) -> Result<(Vec<Outcome>, T), StoreError> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || {
            s.post_blocking(&tenant, &items, &posted_at, during_commit)
        })
        .await
        .map_err(|_| StoreError::Task)?
    }

    fn post_blocking<T: Send>(
        &self,
        tenant: &str,
        items: &[Item],
        posted_at: &str,
        during_commit: impl FnOnce(&[Outcome]) -> T + Send,
    ) -> Result<(Vec<Outcome>, T), StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        // The chains first (one writer: nothing changes under us), then the
        // gate for every document its chain does not refuse.
        let effects = super::effects(items, |id| voided(&tx, tenant, id).ok().flatten());
        let links: Vec<Link> = items.iter().zip(effects).map(|(i, e)| i.link(e)).collect();
        let facts = links
            .iter()
            .map(|l| facts(&tx, tenant, l))
            .collect::<Result<Vec<_>, _>>()?;
        let verdicts = chain::judge(&links, &facts);
        let mut out = Vec::with_capacity(items.len());
        let mut kept = Vec::new();
        for (item, verdict) in items.iter().zip(verdicts) {
            let chained = item.prev_hash.is_some();
            out.push(match verdict {
                Verdict::Refuse(r) => Outcome::refused(r),
                Verdict::Repeat => post_one(&tx, tenant, item, posted_at)?.chained(chained),
                Verdict::Accept {
                    link,
                    out_of_order,
                    forked,
                    successor_problems,
                } => {
                    let o = post_one(&tx, tenant, item, posted_at)?.chained(chained);
                    if matches!(o, Outcome::Posted(_)) {
                        keep_link(&tx, tenant, &link, out_of_order, forked, posted_at)?;
                        note_problems(&tx, tenant, &link, &successor_problems)?;
                        kept.push((link, forked));
                    }
                    o
                }
            });
        }
        note_marks(&tx, tenant, &kept, posted_at)?;
        note_refused(&tx, tenant, &marks::refused(&links, &out), posted_at)?;
        note_lanes(
            &tx,
            tenant,
            items.iter().map(|i| i.lane_id.as_str()),
            posted_at,
        )?;
        advance(&tx, tenant, &kept, posted_at)?;
        if self.aborts.now() {
            // Dropping the transaction rolls everything back.
            return Err(StoreError::Injected);
        }
        let (committed, made) = std::thread::scope(|scope| {
            let making = scope.spawn(|| during_commit(&out));
            let committed = tx.commit().map_err(sql("commit"));
            (committed, making.join())
        });
        committed?;
        match made {
            Ok(t) => Ok((out, t)),
            // A panic in `during_commit` is a bug; carry it on as one.
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// Stores a day closing (one transaction): posted once per id, one per
    /// lane, series and closing number.
    pub async fn post_closing(
        &self,
        tenant: String,
        item: ClosingItem,
        posted_at: String,
    ) -> Result<Outcome, StoreError> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&s.writer);
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql("begin"))?;
            let link = item.link();
            let f = facts(&tx, &tenant, &link)?;
            let verdict = chain::judge(std::slice::from_ref(&link), &[f])
                .pop()
                .unwrap_or(Verdict::Repeat);
            let o = match verdict {
                Verdict::Refuse(r) => Outcome::refused(r),
                Verdict::Repeat => post_closing(&tx, &tenant, &item, &posted_at)?.chained(true),
                Verdict::Accept {
                    link,
                    out_of_order,
                    forked,
                    successor_problems,
                } => {
                    let o = post_closing(&tx, &tenant, &item, &posted_at)?.chained(true);
                    if matches!(o, Outcome::Posted(_)) {
                        keep_link(&tx, &tenant, &link, out_of_order, forked, &posted_at)?;
                        note_problems(&tx, &tenant, &link, &successor_problems)?;
                        let kept = [(link, forked)];
                        note_marks(&tx, &tenant, &kept, &posted_at)?;
                        advance(&tx, &tenant, &kept, &posted_at)?;
                    }
                    o
                }
            };
            let refused = marks::refused(std::slice::from_ref(&link), std::slice::from_ref(&o));
            note_refused(&tx, &tenant, &refused, &posted_at)?;
            note_lanes(&tx, &tenant, [item.lane_id.as_str()], &posted_at)?;
            tx.commit().map_err(sql("commit"))?;
            Ok(o)
        })
        .await
        .map_err(|_| StoreError::Task)?
    }

    /// Highest receipt number per series of `lane_id`.
    pub async fn last_receipt_no(
        &self,
        tenant: String,
        lane_id: String,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        self.read(move |c| {
            // One index step per series of the lane, whatever it holds.
            let mut st = c.prepare_cached(
                "SELECT d.series,
                        (SELECT p.receipt_no FROM posted p
                         WHERE p.tenant = d.tenant AND p.lane_id = ?2 AND p.series = d.series
                         ORDER BY p.receipt_no DESC LIMIT 1)
                 FROM doc_counters d INDEXED BY doc_counters_lane
                 WHERE d.tenant = ?1 AND d.lane_id = ?2",
            )?;
            let rows = st.query_map(params![tenant, lane_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
            })?;
            let mut out = BTreeMap::new();
            for row in rows {
                if let (series, Some(n)) = row? {
                    out.insert(series, n);
                }
            }
            Ok(out)
        })
        .await
    }

    /// The certificate of a lane's closing, if its day is certified.
    pub async fn certificate(
        &self,
        tenant: String,
        lane_id: String,
        series: String,
        closing_no: i64,
    ) -> Result<Option<Certified>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT business_date, closing_hash, certified_at FROM certificates
                 WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND closing_no = ?4",
            )?
            .query_row(params![tenant, lane_id, series, closing_no], |r| {
                Ok(Certified {
                    business_date: r.get(0)?,
                    closing_hash: r.get(1)?,
                    certified_at: r.get(2)?,
                })
            })
            .optional()
        })
        .await
    }

    /// One document, for support.
    pub async fn get(&self, tenant: String, id: String) -> Result<Option<Stored>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT transaction_id, doc_no, posted_at, lane_id, series, receipt_no, kind,
                        voided_by, envelope
                 FROM posted WHERE tenant = ?1 AND transaction_id = ?2",
            )?
            .query_row(params![tenant, id], |r| {
                let envelope: String = r.get(8)?;
                Ok(Stored {
                    doc: Posted {
                        transaction_id: r.get::<_, String>(0)?.parse().map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                0,
                                rusqlite::types::Type::Text,
                                Box::new(e),
                            )
                        })?,
                        doc_no: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        posted_at: r.get(2)?,
                        ack: None,
                        certificate: None,
                    },
                    lane_id: r.get(3)?,
                    series: r.get(4)?,
                    receipt_no: r.get(5)?,
                    kind: r.get(6)?,
                    voided_by: r.get(7)?,
                    envelope: serde_json::value::RawValue::from_string(envelope).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            8,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?,
                })
            })
            .optional()
        })
        .await
    }

    /// Count and totals of one lane's business day.
    pub async fn day(
        &self,
        tenant: String,
        lane_id: String,
        business_date: String,
    ) -> Result<Day, StoreError> {
        self.read(move |c| {
            let mut day = Day {
                lane_id: lane_id.clone(),
                business_date: business_date.clone(),
                ..Day::default()
            };
            let mut st = c.prepare_cached(
                "SELECT kind, voided_by IS NOT NULL, currency, COUNT(*), SUM(total)
                 FROM posted INDEXED BY posted_lane_day_receipts
                 WHERE tenant = ?1 AND lane_id = ?2 AND business_date = ?3
                 GROUP BY kind, voided_by IS NOT NULL, currency",
            )?;
            let mut rows = st.query(params![tenant, lane_id, business_date])?;
            while let Some(r) = rows.next()? {
                let kind: String = r.get(0)?;
                day.add(&kind, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            }
            Ok(day)
        })
        .await
    }

    /// Notes a lane's heartbeat.
    pub async fn heard(
        &self,
        tenant: String,
        lane_id: String,
        at: String,
    ) -> Result<(), StoreError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            lock(&writer)
                .prepare_cached(
                    "INSERT INTO lanes_seen (tenant, lane_id, last_heartbeat) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant, lane_id) DO UPDATE
                     SET last_heartbeat = excluded.last_heartbeat",
                )
                .and_then(|mut st| st.execute(params![tenant, lane_id, at]))
                .map(drop)
                .map_err(sql("note a heartbeat"))
        })
        .await
        .map_err(|_| StoreError::Task)?
    }

    /// Every lane's marks (or one lane's): one row per lane and series.
    pub async fn marks(
        &self,
        tenant: String,
        lane: Option<String>,
    ) -> Result<Vec<LaneMarks>, StoreError> {
        self.read(move |c| lane_marks(c, &tenant, lane.as_deref()))
            .await
    }

    /// One lane in full: its marks, its holes and its refused documents.
    pub async fn detail(
        &self,
        tenant: String,
        lane: String,
    ) -> Result<Option<LaneDetail>, StoreError> {
        self.read(move |c| {
            let Some(marks) = lane_marks(c, &tenant, Some(&lane))?.pop() else {
                return Ok(None);
            };
            let holes = c
                .prepare_cached(
                    "SELECT series, first_no, last_no, opened_at FROM holes
                     WHERE tenant = ?1 AND lane_id = ?2 ORDER BY series, first_no LIMIT ?3",
                )?
                .query_map(params![tenant, lane, marks::DETAIL_ROWS], |r| {
                    Ok((
                        r.get(0)?,
                        Hole {
                            first_no: r.get(1)?,
                            last_no: r.get(2)?,
                            opened_at: r.get(3)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let conflicts = c
                .prepare_cached(
                    "SELECT transaction_id, series, numbered_by, number, hash, code, holder,
                            first_seen, last_seen, attempts
                     FROM conflicts INDEXED BY conflicts_lane
                     WHERE tenant = ?1 AND lane_id = ?2 ORDER BY last_seen DESC LIMIT ?3",
                )?
                .query_map(params![tenant, lane, marks::DETAIL_ROWS], |r| {
                    Ok(Conflict {
                        transaction_id: r.get(0)?,
                        series: r.get(1)?,
                        numbered_by: r.get(2)?,
                        number: r.get(3)?,
                        hash: r.get(4)?,
                        code: r.get(5)?,
                        holder: r.get(6)?,
                        first_seen: r.get(7)?,
                        last_seen: r.get(8)?,
                        attempts: r.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(LaneDetail {
                marks,
                holes,
                conflicts,
            }))
        })
        .await
    }

    /// One page of the documents of a lane's business day, after the
    /// document `after` (`None` if it is not one of them).
    pub async fn day_documents(
        &self,
        tenant: String,
        lane_id: String,
        business_date: String,
        after: Option<String>,
        limit: i64,
    ) -> Result<Option<Vec<HeldDocument>>, StoreError> {
        self.read(move |c| {
            let from = match after {
                None => (String::new(), 0_i64, String::new()),
                Some(id) => {
                    let at = c
                        .prepare_cached(
                            "SELECT series, receipt_no FROM posted
                             WHERE tenant = ?1 AND transaction_id = ?2 AND lane_id = ?3
                               AND business_date = ?4",
                        )?
                        .query_row(params![tenant, id, lane_id, business_date], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .optional()?;
                    let Some((series, receipt_no)) = at else {
                        return Ok(None);
                    };
                    (series, receipt_no, id)
                }
            };
            // One range of the index, whatever the day holds.
            let docs = c
                .prepare_cached(
                    "SELECT transaction_id, series, receipt_no, kind, fingerprint, doc_no
                     FROM posted INDEXED BY posted_lane_day_receipts
                     WHERE tenant = ?1 AND lane_id = ?2 AND business_date = ?3
                       AND (series, receipt_no, transaction_id) > (?4, ?5, ?6)
                     ORDER BY series, receipt_no, transaction_id LIMIT ?7",
                )?
                .query_map(
                    params![
                        tenant,
                        lane_id,
                        business_date,
                        from.0,
                        from.1,
                        from.2,
                        limit
                    ],
                    |r| {
                        Ok(HeldDocument {
                            transaction_id: r.get(0)?,
                            series: r.get(1)?,
                            receipt_no: r.get(2)?,
                            kind: r.get(3)?,
                            hash: r.get(4)?,
                            doc_no: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(docs))
        })
        .await
    }

    /// Per series, the last place in lane order of a document of a day up
    /// to `to`.
    pub async fn audit_ends(
        &self,
        tenant: String,
        lane_id: String,
        to: String,
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT l.series, MAX(l.lane_seq) FROM links l
                     LEFT JOIN posted p ON l.numbered_by = 'receipt'
                          AND p.tenant = l.tenant AND p.transaction_id = l.transaction_id
                     LEFT JOIN closings c ON l.numbered_by = 'closing'
                          AND c.tenant = l.tenant AND c.transaction_id = l.transaction_id
                     WHERE l.tenant = ?1 AND l.lane_id = ?2
                       AND COALESCE(p.business_date, c.business_date) <= ?3
                     GROUP BY l.series",
            )?
            .query_map(params![tenant, lane_id, to], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        })
        .await
    }

    /// One page of the lane's documents, by series and lane order.
    pub async fn audit_page(
        &self,
        tenant: String,
        lane_id: String,
        after: super::AuditCursor,
        limit: i64,
    ) -> Result<Vec<super::AuditDoc>, StoreError> {
        self.read(move |c| {
            let (series, seq, hash) = after.unwrap_or((String::new(), i64::MIN, String::new()));
            c.prepare_cached(
                "SELECT l.series, l.lane_seq, l.hash, l.numbered_by = 'closing', l.number,
                            COALESCE(p.envelope, c.envelope), COALESCE(p.doc_no, c.doc_no, ''),
                            COALESCE(p.posted_at, c.posted_at)
                     FROM links l
                     LEFT JOIN posted p ON l.numbered_by = 'receipt'
                          AND p.tenant = l.tenant AND p.transaction_id = l.transaction_id
                     LEFT JOIN closings c ON l.numbered_by = 'closing'
                          AND c.tenant = l.tenant AND c.transaction_id = l.transaction_id
                     WHERE l.tenant = ?1 AND l.lane_id = ?2
                       AND (l.series, l.lane_seq, l.hash) > (?3, ?4, ?5)
                     ORDER BY l.series, l.lane_seq, l.hash LIMIT ?6",
            )?
            .query_map(params![tenant, lane_id, series, seq, hash, limit], |r| {
                let closing: bool = r.get(3)?;
                let n: i64 = r.get(4)?;
                Ok(super::AuditDoc {
                    series: r.get(0)?,
                    lane_seq: r.get(1)?,
                    hash: r.get(2)?,
                    number: if closing {
                        crate::contract::ack::Number::Closing(n)
                    } else {
                        crate::contract::ack::Number::Receipt(n)
                    },
                    envelope: r.get(5)?,
                    doc_no: r.get(6)?,
                    posted_at: r.get(7)?,
                })
            })?
            .collect()
        })
        .await
    }

    /// The lane's day certificates of days up to `to`.
    pub async fn audit_certificates(
        &self,
        tenant: String,
        lane_id: String,
        to: String,
    ) -> Result<Vec<super::AuditCertificate>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT series, closing_no, business_date, closing_hash, certified_at
                     FROM certificates WHERE tenant = ?1 AND lane_id = ?2 AND business_date <= ?3
                     ORDER BY series, closing_no",
            )?
            .query_map(params![tenant, lane_id, to], |r| {
                Ok(super::AuditCertificate {
                    series: r.get(0)?,
                    closing_no: r.get(1)?,
                    business_date: r.get(2)?,
                    closing_hash: r.get(3)?,
                    certified_at: r.get(4)?,
                })
            })?
            .collect()
        })
        .await
    }

    /// A round trip through the writing connection (the watchdog's check).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            lock(&writer)
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(sql("ping"))
        })
        .await
        .map_err(|_| StoreError::Task)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || f(&lock(&reader)).map_err(sql("read")))
            .await
            .map_err(|_| StoreError::Task)?
    }
}

/// The document a void names, if salemap holds it.
fn voided(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    id: &str,
) -> Result<Option<VoidedDoc>, StoreError> {
    tx.prepare_cached(
        "SELECT lane_id, series, lane_seq, kind, total FROM posted
         WHERE tenant = ?1 AND transaction_id = ?2",
    )
    .and_then(|mut st| {
        st.query_row(params![tenant, id], |r| {
            Ok(VoidedDoc {
                lane_id: r.get(0)?,
                series: r.get(1)?,
                lane_seq: r.get(2)?,
                kind: Kind::parse(&r.get::<_, String>(3)?).unwrap_or(Kind::Sale),
                total: r.get(4)?,
            })
        })
        .optional()
    })
    .map_err(sql("read the voided document"))
}

/// A held link as a check needs it, from `SELECT transaction_id, hash,
/// lane_seq, grand_total, currency, effect`.
fn held(r: &rusqlite::Row<'_>) -> rusqlite::Result<Held> {
    Ok(Held {
        transaction_id: r.get(0)?,
        hash: r.get(1)?,
        lane_seq: r.get(2)?,
        grand_total: chain::parse_total(r.get::<_, Option<String>>(3)?.as_deref()),
        currency: r.get(4)?,
        effect: r.get(5)?,
    })
}

/// What salemap holds around one new document of its chain. Every query is
/// one index step, whatever the size of the map.
fn facts(tx: &rusqlite::Transaction<'_>, tenant: &str, l: &Link) -> Result<Facts, StoreError> {
    use crate::contract::ack::Number;
    let read = sql("read the chain");
    let (held_sql, highest_sql) = match l.number {
        Number::Receipt(_) => (
            "SELECT EXISTS (SELECT 1 FROM posted WHERE tenant = ?1 AND transaction_id = ?2)",
            "SELECT receipt_no FROM posted WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3
             ORDER BY receipt_no DESC LIMIT 1",
        ),
        Number::Closing(_) => (
            "SELECT EXISTS (SELECT 1 FROM closings WHERE tenant = ?1 AND transaction_id = ?2)",
            "SELECT closing_no FROM closings WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3
             ORDER BY closing_no DESC LIMIT 1",
        ),
    };
    let held_id: bool = tx
        .prepare_cached(held_sql)
        .and_then(|mut st| st.query_row(params![tenant, l.transaction_id], |r| r.get(0)))
        .map_err(&read)?;
    let mut f = Facts {
        held: held_id,
        ..Facts::default()
    };
    let Some(prev) = l.prev_hash.as_deref().filter(|_| !held_id) else {
        return Ok(f);
    };
    let (lane, series) = (&l.lane_id, &l.series);
    // The document before it in lane order (those sharing its lane_seq,
    // after a restore, told apart by hash): its predecessor if the hash
    // is the one it names.
    let before: Vec<Held> = tx
        .prepare_cached(
            "SELECT transaction_id, hash, lane_seq, grand_total, currency, effect FROM links
             WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND lane_seq < ?4
             ORDER BY lane_seq DESC LIMIT 4",
        )
        .and_then(|mut st| {
            st.query_map(params![tenant, lane, series, l.lane_seq], held)?
                .collect()
        })
        .map_err(&read)?;
    f.predecessor = before
        .iter()
        .take_while(|h| Some(h.lane_seq) == before.first().map(|b| b.lane_seq))
        .find(|h| h.hash == prev)
        .cloned();
    f.siblings = tx
        .prepare_cached(
            "SELECT transaction_id FROM links INDEXED BY links_prev
             WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND prev_hash = ?4
               AND transaction_id <> ?5 LIMIT 1",
        )
        .and_then(|mut st| {
            st.query_map(params![tenant, lane, series, prev, l.transaction_id], |r| {
                r.get(0)
            })?
            .collect()
        })
        .map_err(&read)?;
    f.successors = tx
        .prepare_cached(
            "SELECT transaction_id, hash, lane_seq, grand_total, currency, effect
             FROM links INDEXED BY links_prev
             WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND prev_hash = ?4",
        )
        .and_then(|mut st| {
            st.query_map(params![tenant, lane, series, l.hash], held)?
                .collect()
        })
        .map_err(&read)?;
    f.highest = tx
        .prepare_cached(highest_sql)
        .and_then(|mut st| {
            st.query_row(params![tenant, lane, series], |r| r.get(0))
                .optional()
        })
        .map_err(&read)?;
    Ok(f)
}

/// Keeps an accepted document's link.
fn keep_link(
    tx: &rusqlite::Transaction<'_>,
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
    tx.prepare_cached(
        "INSERT INTO links (tenant, transaction_id, lane_id, series, lane_seq, numbered_by,
                            number, hash, prev_hash, grand_total, currency, effect,
                            out_of_order, forked, held_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )
    .and_then(|mut st| {
        st.execute(params![
            tenant,
            l.transaction_id,
            l.lane_id,
            l.series,
            l.lane_seq,
            numbered_by,
            number,
            l.hash,
            l.prev_hash,
            l.grand_total.as_ref().map(chain::json),
            l.currency,
            l.effect,
            out_of_order,
            forked,
            held_at,
        ])
    })
    .map(drop)
    .map_err(sql("keep the link"))
}

/// Moves the proven head of each series `kept` touches forward through the
/// documents now held (those of the request first, then any held that
/// arrived early), and certifies each closing it reaches.
fn advance(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    kept: &[(Link, bool)],
    at: &str,
) -> Result<(), StoreError> {
    let read = sql("move the chain's proven head");
    for (lane, series) in chain::touched(kept) {
        let head: Option<String> = tx
            .prepare_cached(
                "SELECT head_hash FROM chain_heads
                 WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant, lane, series], |r| r.get(0))
                    .optional()
            })
            .map_err(&read)?;
        let mut cur = head.unwrap_or_else(|| crate::contract::journal::GENESIS.to_owned());
        if chain::next_kept(kept, &lane, &series, &cur).is_none() {
            continue;
        }
        let mut last = None;
        for _ in 0..chain::MAX_WALK {
            let next = match chain::next_kept(kept, &lane, &series, &cur) {
                Some(l) => Some(chain::Step::of(l)),
                None => tx
                    .prepare_cached(
                        "SELECT transaction_id, hash, lane_seq, numbered_by = 'closing'
                         FROM links INDEXED BY links_prev
                         WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND prev_hash = ?4
                           AND NOT forked AND problem IS NULL
                         ORDER BY lane_seq LIMIT 1",
                    )
                    .and_then(|mut st| {
                        st.query_row(params![tenant, lane, series, cur], |r| {
                            Ok(chain::Step {
                                transaction_id: r.get(0)?,
                                hash: r.get(1)?,
                                lane_seq: r.get(2)?,
                                closing: r.get(3)?,
                            })
                        })
                        .optional()
                    })
                    .map_err(&read)?,
            };
            let Some(step) = next else { break };
            if step.closing {
                let certified = tx.prepare_cached(
                    "INSERT INTO certificates (tenant, lane_id, series, closing_no, business_date,
                                               closing_id, closing_hash, certified_at)
                     SELECT tenant, lane_id, series, closing_no, business_date, transaction_id,
                            fingerprint, ?3
                     FROM closings WHERE tenant = ?1 AND transaction_id = ?2
                     ON CONFLICT DO NOTHING",
                )
                .and_then(|mut st| st.execute(params![tenant, step.transaction_id, at]))
                .map_err(sql("certify a day"))?;
                if certified == 1 {
                    tx.prepare_cached(
                        "UPDATE series_marks SET certified = certified + 1,
                                last_certified_no = c.closing_no,
                                last_certified_date = c.business_date
                         FROM (SELECT closing_no, business_date FROM closings
                               WHERE tenant = ?1 AND transaction_id = ?2) AS c
                         WHERE tenant = ?1 AND lane_id = ?3 AND series = ?4",
                    )
                    .and_then(|mut st| {
                        st.execute(params![tenant, step.transaction_id, lane, series])
                    })
                    .map_err(sql("count a certified day"))?;
                }
            }
            cur = step.hash.clone();
            last = Some(step);
        }
        if let Some(step) = last {
            tx.prepare_cached(
                "INSERT INTO chain_heads (tenant, lane_id, series, head_hash, head_id,
                                          head_lane_seq, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (tenant, lane_id, series) DO UPDATE SET
                     head_hash = excluded.head_hash, head_id = excluded.head_id,
                     head_lane_seq = excluded.head_lane_seq, updated_at = excluded.updated_at",
            )
            .and_then(|mut st| {
                st.execute(params![
                    tenant,
                    lane,
                    series,
                    step.hash,
                    step.transaction_id,
                    step.lane_seq,
                    at
                ])
            })
            .map_err(sql("move the chain's proven head"))?;
        }
    }
    Ok(())
}

/// Records what a late predecessor showed to be wrong with documents
/// that arrived before it.
fn note_problems(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    link: &Link,
    problems: &[(Held, String)],
) -> Result<(), StoreError> {
    for (h, problem) in problems {
        tracing::error!(transaction_id = %h.transaction_id, problem = %problem, "a held document does not fit its chain");
        tx.prepare_cached(
            "UPDATE links SET problem = ?6
             WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND lane_seq = ?4 AND hash = ?5",
        )
        .and_then(|mut st| {
            st.execute(params![
                tenant,
                link.lane_id,
                link.series,
                h.lane_seq,
                h.hash,
                problem
            ])
        })
        .map_err(sql("note a chain problem"))?;
    }
    Ok(())
}

/// Moves the watermarks and holes of each series `kept` adds to
/// (docs/backend-contract.md, "What head office sees"), and counts its
/// closings.
fn note_marks(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    kept: &[(Link, bool)],
    at: &str,
) -> Result<(), StoreError> {
    let e = sql("keep the watermarks");
    for ((lane, series), added) in marks::added(kept.iter().map(|(l, _)| l)) {
        let (highest, missing): (i64, i64) = tx
            .prepare_cached(
                "SELECT highest, missing FROM series_marks
                 WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant, lane, series], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(&e)?
            .unwrap_or((0, 0));
        let plan = marks::plan(highest, missing, &added.receipts, at, |n| {
            tx.prepare_cached(
                "SELECT first_no, last_no, opened_at FROM holes
                 WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND first_no <= ?4
                 ORDER BY first_no DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant, lane, series, n], |r| {
                    Ok(Hole {
                        first_no: r.get(0)?,
                        last_no: r.get(1)?,
                        opened_at: r.get(2)?,
                    })
                })
                .optional()
            })
        })
        .map_err(&e)?;
        for first in &plan.remove {
            tx.prepare_cached(
                "DELETE FROM holes
                 WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND first_no = ?4",
            )
            .and_then(|mut st| st.execute(params![tenant, lane, series, first]))
            .map_err(&e)?;
        }
        for h in &plan.write {
            tx.prepare_cached(
                "INSERT INTO holes (tenant, lane_id, series, first_no, last_no, opened_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    tenant,
                    lane,
                    series,
                    h.first_no,
                    h.last_no,
                    h.opened_at
                ])
            })
            .map_err(&e)?;
        }
        tx.prepare_cached(
            "INSERT INTO series_marks (tenant, lane_id, series, watermark, highest, missing,
                                       closings, updated_at)
             VALUES (?1, ?2, ?3,
                     COALESCE((SELECT first_no - 1 FROM holes
                               WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3
                               ORDER BY first_no LIMIT 1), ?4),
                     ?4, ?5, ?6, ?7)
             ON CONFLICT (tenant, lane_id, series) DO UPDATE SET
                 watermark = excluded.watermark, highest = excluded.highest,
                 missing = excluded.missing, closings = series_marks.closings + excluded.closings,
                 updated_at = excluded.updated_at",
        )
        .and_then(|mut st| {
            st.execute(params![
                tenant,
                lane,
                series,
                plan.highest,
                plan.missing,
                added.closings,
                at
            ])
        })
        .map_err(&e)?;
    }
    Ok(())
}

/// Records documents refused as a forked lane, for head office.
fn note_refused(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    refused: &[marks::Refused<'_>],
    at: &str,
) -> Result<(), StoreError> {
    let e = sql("record a refused document");
    for r in refused {
        let l = r.link;
        let (numbered_by, number) = marks::numbered(l);
        let attempts: i64 = tx
            .prepare_cached(
                "INSERT INTO conflicts (tenant, transaction_id, lane_id, series, numbered_by,
                                        number, hash, code, holder, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
                 ON CONFLICT (tenant, transaction_id) DO UPDATE SET
                     last_seen = excluded.last_seen, attempts = conflicts.attempts + 1
                 RETURNING attempts",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![
                        tenant,
                        l.transaction_id,
                        l.lane_id,
                        l.series,
                        numbered_by,
                        number,
                        l.hash,
                        r.code,
                        r.holder,
                        at
                    ],
                    |row| row.get(0),
                )
            })
            .map_err(&e)?;
        tx.prepare_cached(
            "INSERT INTO series_marks (tenant, lane_id, series, conflicts, last_conflict_at,
                                       updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (tenant, lane_id, series) DO UPDATE SET
                 conflicts = series_marks.conflicts + excluded.conflicts,
                 last_conflict_at = excluded.last_conflict_at",
        )
        .and_then(|mut st| {
            st.execute(params![
                tenant,
                l.lane_id,
                l.series,
                i64::from(attempts == 1),
                at
            ])
        })
        .map_err(&e)?;
    }
    Ok(())
}

/// Notes when each lane of a request last posted.
fn note_lanes<'a>(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    lanes: impl IntoIterator<Item = &'a str>,
    at: &str,
) -> Result<(), StoreError> {
    let lanes: std::collections::BTreeSet<&str> = lanes.into_iter().collect();
    for lane in lanes {
        tx.prepare_cached(
            "INSERT INTO lanes_seen (tenant, lane_id, last_posted) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant, lane_id) DO UPDATE SET last_posted = excluded.last_posted",
        )
        .and_then(|mut st| st.execute(params![tenant, lane, at]))
        .map_err(sql("note when the lane posted"))?;
    }
    Ok(())
}

/// Each series' marks, from a `series_marks` row read by [`MARKS_SQL`],
/// with its lowest hole and its first uncertified closing (one index step
/// each).
fn series_marks(
    c: &Connection,
    tenant: &str,
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, SeriesMarks)> {
    let lane: String = r.get(0)?;
    let series: String = r.get(1)?;
    let closings: i64 = r.get(5)?;
    let certified: i64 = r.get(6)?;
    let last_certified_no: Option<i64> = r.get(7)?;
    let oldest_hole = c
        .prepare_cached(
            "SELECT first_no, last_no, opened_at FROM holes
             WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3
             ORDER BY first_no LIMIT 1",
        )?
        .query_row(params![tenant, lane, series], |h| {
            Ok(Hole {
                first_no: h.get(0)?,
                last_no: h.get(1)?,
                opened_at: h.get(2)?,
            })
        })
        .optional()?;
    let oldest_uncertified = if closings > certified {
        c.prepare_cached(
            "SELECT closing_no, business_date, posted_at FROM closings
             WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND closing_no > ?4
             ORDER BY closing_no LIMIT 1",
        )?
        .query_row(
            params![tenant, lane, series, last_certified_no.unwrap_or(0)],
            |u| {
                Ok(Uncertified {
                    closing_no: u.get(0)?,
                    business_date: u.get(1)?,
                    posted_at: u.get(2)?,
                })
            },
        )
        .optional()?
    } else {
        None
    };
    let last_certified = match (last_certified_no, r.get::<_, Option<String>>(8)?) {
        (Some(n), Some(d)) => Some((n, d)),
        _ => None,
    };
    Ok((
        lane,
        SeriesMarks {
            series,
            watermark: r.get(2)?,
            highest: r.get(3)?,
            missing: r.get(4)?,
            oldest_hole,
            closings,
            certified,
            last_certified,
            oldest_uncertified,
            conflicts: r.get(9)?,
            last_conflict_at: r.get(10)?,
        },
    ))
}

/// The columns [`series_marks`] reads.
const MARKS_SQL: &str = "SELECT lane_id, series, watermark, highest, missing, closings, certified,
        last_certified_no, last_certified_date, conflicts, last_conflict_at
 FROM series_marks WHERE tenant = ?1 AND lane_id BETWEEN ?2 AND ?3
 ORDER BY lane_id, series";

/// Every lane's marks, or one lane's.
fn lane_marks(
    c: &Connection,
    tenant: &str,
    lane: Option<&str>,
) -> rusqlite::Result<Vec<LaneMarks>> {
    let (lo, hi) = marks::lanes_between(lane);
    let lanes = c
        .prepare_cached(
            "SELECT lane_id, last_heartbeat, last_posted FROM lanes_seen
             WHERE tenant = ?1 AND lane_id BETWEEN ?2 AND ?3",
        )?
        .query_map(params![tenant, lo, hi], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut st = c.prepare_cached(MARKS_SQL)?;
    let mut rows = st.query(params![tenant, lo, hi])?;
    let mut series = Vec::new();
    while let Some(r) = rows.next()? {
        series.push(series_marks(c, tenant, r)?);
    }
    Ok(marks::assemble(lanes, series))
}

fn post_closing(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    c: &ClosingItem,
    posted_at: &str,
) -> Result<Outcome, StoreError> {
    let key = c.transaction_id.to_string();
    let owner: Option<Option<String>> = tx
        .prepare_cached("SELECT lane_id FROM doc_counters WHERE tenant = ?1 AND series = ?2")
        .and_then(|mut st| {
            st.query_row(params![tenant, c.series], |r| r.get(0))
                .optional()
        })
        .map_err(sql("read the series' owner"))?;
    if let Some(Some(owner)) = owner.filter(|o| o.as_deref() != Some(c.lane_id.as_str())) {
        return Err(StoreError::SeriesOfAnotherLane {
            series: c.series.clone(),
            owner,
            lane: c.lane_id.clone(),
        });
    }
    let held: Option<(String, String, String)> = tx
        .prepare_cached(
            "SELECT fingerprint, doc_no, posted_at FROM closings
             WHERE tenant = ?1 AND transaction_id = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![tenant, key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .map_err(sql("look up the closing"))?;
    if let Some((fingerprint, doc_no, at)) = held {
        return Ok(if fingerprint == c.fingerprint {
            Outcome::Replayed(Posted {
                transaction_id: c.transaction_id,
                doc_no,
                posted_at: at,
                ack: None,
                certificate: None,
            })
        } else {
            Outcome::Mismatch
        });
    }
    let holder: Option<String> = tx
        .prepare_cached(
            "SELECT transaction_id FROM closings
             WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND closing_no = ?4",
        )
        .and_then(|mut st| {
            st.query_row(params![tenant, c.lane_id, c.series, c.closing_no], |r| {
                r.get(0)
            })
            .optional()
        })
        .map_err(sql("look up the closing number"))?;
    if let Some(holder) = holder {
        return Ok(Outcome::ChainConflict {
            holder,
            reason: chain::ConflictReason::Forked,
        });
    }
    let doc_no = closing_doc_no(&c.series, c.closing_no);
    tx.prepare_cached(
        "INSERT INTO closings (tenant, transaction_id, lane_id, series, closing_no,
                               business_date, fingerprint, envelope, doc_no, posted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut st| {
        st.execute(params![
            tenant,
            key,
            c.lane_id,
            c.series,
            c.closing_no,
            c.business_date,
            c.fingerprint,
            c.envelope,
            doc_no,
            posted_at
        ])
    })
    .map_err(sql("store the closing"))?;
    Ok(Outcome::Posted(Posted {
        transaction_id: c.transaction_id,
        doc_no,
        posted_at: posted_at.to_owned(),
        ack: None,
        certificate: None,
    }))
}

fn post_one(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    item: &Item,
    posted_at: &str,
) -> Result<Outcome, StoreError> {
    // The id as the table keeps it (lowercase hyphenated text).
    let key = item.transaction_id.to_string();
    // The gate: insert the id row first. A receipt number already live
    // under another id fails the partial unique index; the savepoint undoes
    // only this item.
    tx.execute_batch("SAVEPOINT item")
        .map_err(sql("savepoint"))?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO posted (tenant, transaction_id, lane_id, series, receipt_no, lane_seq,
                                 kind, references_id, business_date, currency, total,
                                 fingerprint, envelope, posted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (tenant, transaction_id) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                tenant,
                key,
                item.lane_id,
                item.series,
                item.receipt_no,
                item.lane_seq,
                item.kind.as_str(),
                item.references,
                item.business_date,
                item.currency,
                item.total,
                item.fingerprint,
                item.envelope,
                posted_at,
            ])
        });
    let outcome = match inserted {
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            tx.execute_batch("ROLLBACK TO item")
                .map_err(sql("roll back an item"))?;
            let holder: Option<String> = tx
                .prepare_cached(
                    "SELECT transaction_id FROM posted
                     WHERE tenant = ?1 AND lane_id = ?2 AND series = ?3 AND receipt_no = ?4
                       AND voided_by IS NULL",
                )
                .and_then(|mut st| {
                    st.query_row(
                        params![tenant, item.lane_id, item.series, item.receipt_no],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .map_err(sql("find the receipt number's holder"))?;
            Outcome::ReceiptConflict {
                holder: holder.unwrap_or_default(),
            }
        }
        Err(e) => {
            return Err(StoreError::Sqlite {
                what: "insert",
                source: e,
            });
        }
        Ok(0) => {
            // Someone posted this id before (the winner has committed: SQLite
            // has one writer at a time).
            let (fingerprint, doc_no, at): (String, Option<String>, String) = tx
                .prepare_cached(
                    "SELECT fingerprint, doc_no, posted_at FROM posted
                     WHERE tenant = ?1 AND transaction_id = ?2",
                )
                .and_then(|mut st| {
                    st.query_row(params![tenant, key], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                })
                .map_err(sql("read the posted document"))?;
            if fingerprint == item.fingerprint {
                Outcome::Replayed(Posted {
                    transaction_id: item.transaction_id,
                    doc_no: doc_no.unwrap_or_default(),
                    posted_at: at,
                    ack: None,
                    certificate: None,
                })
            } else {
                Outcome::Mismatch
            }
        }
        Ok(_) => {
            // The winner: take the next number of the series, which the
            // first lane to post in it owns.
            let (no, owner): (i64, String) = tx
                .prepare_cached(
                    "INSERT INTO doc_counters (tenant, series, last_no, lane_id)
                     VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT (tenant, series) DO UPDATE SET last_no = last_no + 1,
                         lane_id = COALESCE(lane_id, excluded.lane_id)
                     RETURNING last_no, lane_id",
                )
                .and_then(|mut st| {
                    st.query_row(params![tenant, item.series, item.lane_id], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                })
                .map_err(sql("take a document number"))?;
            if owner != item.lane_id {
                // The whole request is refused: dropping the transaction
                // rolls it back.
                return Err(StoreError::SeriesOfAnotherLane {
                    series: item.series.clone(),
                    owner,
                    lane: item.lane_id.clone(),
                });
            }
            let doc_no = doc_no(&item.series, no);
            tx.prepare_cached(
                "UPDATE posted SET doc_no = ?3 WHERE tenant = ?1 AND transaction_id = ?2",
            )
            .and_then(|mut st| st.execute(params![tenant, key, doc_no]))
            .map_err(sql("number the document"))?;
            if let (Kind::Void, Some(original)) = (item.kind, &item.references) {
                tx.prepare_cached(
                    "UPDATE posted SET voided_by = ?3
                     WHERE tenant = ?1 AND transaction_id = ?2 AND voided_by IS NULL",
                )
                .and_then(|mut st| st.execute(params![tenant, original, key]))
                .map_err(sql("mark the original voided"))?;
            }
            Outcome::Posted(Posted {
                transaction_id: item.transaction_id,
                doc_no,
                posted_at: posted_at.to_owned(),
                ack: None,
                certificate: None,
            })
        }
    };
    tx.execute_batch("RELEASE item").map_err(sql("release"))?;
    Ok(outcome)
}

/// The database's `-wal` or `-shm` file.
fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// Reads an existing file's header through a read-only connection that
/// sets nothing, and refuses a database salemap must not modify.
fn check_before_touching(path: &Path) -> Result<(), StoreError> {
    let schema = |source| StoreError::Schema {
        database: path.display().to_string(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql("open the database"))?;
    SALEMAP
        .check(Sqlite::header(&conn).map_err(schema)?)
        .map_err(schema)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    SALEMAP.apply(conn).map_err(|source| StoreError::Schema {
        database: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_programs_database_or_a_newer_one_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let refused = |path: &Path| match SqliteStore::open(path) {
            Err(StoreError::Schema { database, source }) => {
                assert_eq!(database, path.display().to_string());
                source.to_string()
            }
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("{} was opened", path.display()),
        };
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let before = std::fs::read(&foreign).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions();
        let mode_before = mode(&foreign);
        assert_eq!(refused(&foreign), "the database belongs to another program");
        assert_eq!(std::fs::read(&foreign).unwrap(), before);
        assert_eq!(mode(&foreign), mode_before);

        let newer = dir.path().join("newer.db");
        drop(SqliteStore::open(&newer).unwrap());
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert_eq!(
            refused(&newer),
            format!(
                "schema version 99, this binary knows up to {}",
                MIGRATIONS.len()
            )
        );
    }
}
