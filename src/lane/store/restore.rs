//! The restored-lane guard (migration 0004): the back-end holds a higher
//! receipt number than this lane's counter, so the lane's data is an old
//! copy. New sales wait until an operator acknowledges; numbering then
//! continues above the back-end's number, so no number is issued twice.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// One series where the back-end is ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behind {
    /// Last number issued on this lane.
    pub lane: i64,
    /// Highest number the back-end holds.
    pub backend: i64,
}

/// An active (unacknowledged) guard, or one just acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreGuard {
    /// When the lane noticed.
    pub detected_at: String,
    /// The series where the back-end is ahead.
    pub series: BTreeMap<String, Behind>,
}

fn sql(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::sqlite(what, e)
}

/// The active guard, if any.
pub fn active(conn: &Connection) -> Result<Option<RestoreGuard>, StoreError> {
    let row: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT detected_at, series FROM restore_guard WHERE acknowledged_at IS NULL",
        )
        .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(sql("read the restore guard"))?;
    Ok(row.map(|(detected_at, series)| RestoreGuard {
        detected_at,
        series: serde_json::from_str(&series).unwrap_or_default(),
    }))
}

/// Compares the back-end's highest numbers with this lane's counters and
/// raises (or widens) the guard if the back-end is ahead in any series.
/// Returns the active guard.
pub fn check(
    conn: &Connection,
    backend: &BTreeMap<String, i64>,
    now: &str,
) -> Result<Option<RestoreGuard>, StoreError> {
    let mut current = active(conn)?;
    let mut behind = current
        .as_ref()
        .map(|g| g.series.clone())
        .unwrap_or_default();
    let mut changed = false;
    for (series, &backend_no) in backend {
        let lane: i64 = conn
            .prepare_cached("SELECT last FROM counters WHERE series = ?1")
            .and_then(|mut st| st.query_row([series], |r| r.get(0)).optional())
            .map_err(sql("read a receipt counter"))?
            .unwrap_or(0);
        if backend_no > lane {
            let b = Behind {
                lane,
                backend: backend_no,
            };
            if behind.insert(series.clone(), b) != Some(b) {
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(current);
    }
    let json = serde_json::to_string(&behind).unwrap_or_default();
    match &mut current {
        Some(g) => {
            conn.execute(
                "UPDATE restore_guard SET series = ?1 WHERE acknowledged_at IS NULL",
                [&json],
            )
            .map_err(sql("widen the restore guard"))?;
            g.series = behind;
        }
        None => {
            conn.execute(
                "INSERT INTO restore_guard (detected_at, series) VALUES (?1, ?2)",
                params![now, json],
            )
            .map_err(sql("raise the restore guard"))?;
            current = Some(RestoreGuard {
                detected_at: now.to_owned(),
                series: behind,
            });
        }
    }
    Ok(current)
}

/// An operator's acknowledgement: every guarded series continues above the
/// back-end's number; the guard is closed and the action audit-logged.
/// Returns the guard that was acknowledged, or `None` if there was none.
pub fn acknowledge(
    conn: &Connection,
    now: &str,
    actor: &str,
    reason: &str,
) -> Result<Option<RestoreGuard>, StoreError> {
    let Some(g) = active(conn)? else {
        return Ok(None);
    };
    for (series, b) in &g.series {
        conn.execute(
            "INSERT INTO counters (series, last) VALUES (?1, ?2)
             ON CONFLICT (series) DO UPDATE SET last = MAX(last, excluded.last)",
            params![series, b.backend],
        )
        .map_err(sql("move a receipt counter"))?;
    }
    conn.execute(
        "UPDATE restore_guard SET acknowledged_at = ?1, acknowledged_by = ?2, reason = ?3
         WHERE acknowledged_at IS NULL",
        params![now, actor, reason],
    )
    .map_err(sql("close the restore guard"))?;
    super::audit::write(
        conn,
        super::audit::Entry {
            at: now,
            actor,
            action: "acknowledge_restore",
            transaction_id: None,
            reason: Some(reason),
            details: serde_json::to_string(&g.series).unwrap_or_default(),
        },
    )
    .map_err(sql("audit the acknowledgement"))?;
    Ok(Some(g))
}
