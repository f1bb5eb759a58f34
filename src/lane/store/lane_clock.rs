//! The offline clock's checkpoint (the `lane_clock` row) and the oldest
//! unsent sale, for the sync ceiling.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::common::clock::BootTime;
use crate::common::time::fmt_ts;
use crate::lane::ceiling::{Anomalies, Checkpoint, Month};

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn from_ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

fn ts(v: Option<String>) -> Option<jiff::Timestamp> {
    v.and_then(|s| s.parse().ok())
}

fn month_text((y, m): Month) -> String {
    format!("{y:04}-{m:02}")
}

fn parse_month(s: &str) -> Option<Month> {
    let (y, m) = s.split_once('-')?;
    Some((y.parse().ok()?, m.parse().ok()?))
}

/// Reads the last checkpoint.
pub fn load(conn: &Connection) -> Result<Checkpoint, StoreError> {
    conn.prepare_cached(
        "SELECT offline_ms, checkpoint_wall, lane_time, online, anomalies, last_anomaly_at,
                last_anomaly_back_ms, budget_month, budget_month_ms, boot_id, boot_ms,
                downtime_unknown
         FROM lane_clock WHERE id = 1",
    )
    .and_then(|mut st| {
        st.query_row([], |r| {
            Ok(Checkpoint {
                offline: from_ms(r.get(0)?),
                at: ts(r.get(1)?),
                lane_time: ts(r.get(2)?),
                online: r.get(3)?,
                anomalies: Anomalies {
                    count: r.get(4)?,
                    last_at: ts(r.get(5)?),
                    last_back: r.get::<_, Option<i64>>(6)?.map(from_ms),
                },
                month: r
                    .get::<_, Option<String>>(7)?
                    .as_deref()
                    .and_then(parse_month),
                month_used: from_ms(r.get(8)?),
                boot: match (r.get::<_, Option<String>>(9)?, r.get::<_, Option<i64>>(10)?) {
                    (Some(boot_id), Some(ms)) => Some(BootTime {
                        boot_id,
                        since_boot: from_ms(ms),
                    }),
                    _ => None,
                },
                downtime_unknown: r.get(11)?,
            })
        })
    })
    .map_err(|e| StoreError::sqlite("read the lane clock", e))
}

/// Writes a checkpoint.
pub fn save(conn: &Connection, cp: &Checkpoint) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE lane_clock SET offline_ms = ?1, checkpoint_wall = ?2, lane_time = ?3,
                online = ?4, anomalies = ?5, last_anomaly_at = ?6, last_anomaly_back_ms = ?7,
                budget_month = ?8, budget_month_ms = ?9, boot_id = ?10, boot_ms = ?11,
                downtime_unknown = ?12
         WHERE id = 1",
    )
    .and_then(|mut st| {
        st.execute(params![
            ms(cp.offline),
            cp.at.map(fmt_ts),
            cp.lane_time.map(fmt_ts),
            cp.online,
            cp.anomalies.count,
            cp.anomalies.last_at.map(fmt_ts),
            cp.anomalies.last_back.map(ms),
            cp.month.map(month_text),
            ms(cp.month_used),
            cp.boot.as_ref().map(|b| b.boot_id.as_str()),
            // Rounded down: the boot clock at the checkpoint is a lower
            // bound, so the downtime measured from it is never too short.
            cp.boot.as_ref().map(|b| ms(b.since_boot)),
            cp.downtime_unknown,
        ])
    })
    .map(drop)
    .map_err(|e| StoreError::sqlite("checkpoint the lane clock", e))
}

/// `recorded_at` of the oldest sale not yet delivered (pending or stuck).
pub fn oldest_unsent(conn: &Connection) -> Result<Option<jiff::Timestamp>, StoreError> {
    conn.prepare_cached(
        "SELECT MIN(recorded_at) FROM (
             SELECT recorded_at FROM (SELECT recorded_at FROM sales WHERE state = 'pending' ORDER BY seq LIMIT 1)
             UNION ALL
             SELECT recorded_at FROM (SELECT recorded_at FROM sales WHERE state = 'stuck' ORDER BY seq LIMIT 1))",
    )
    .and_then(|mut st| st.query_row([], |r| r.get::<_, Option<String>>(0)).optional())
    .map(|v| ts(v.flatten()))
    .map_err(|e| StoreError::sqlite("find the oldest unsent sale", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let conn = Connection::open_in_memory().unwrap();
        for m in super::super::MIGRATIONS {
            conn.execute_batch(m.sql).unwrap();
        }
        assert_eq!(load(&conn).unwrap(), Checkpoint::default());
        let cp = Checkpoint {
            offline: Duration::from_millis(90_061_001),
            at: Some("2026-11-22T10:00:00.5Z".parse().unwrap()),
            lane_time: Some("2026-11-23T10:00:00Z".parse().unwrap()),
            online: true,
            anomalies: Anomalies {
                count: 2,
                last_at: Some("2026-11-21T04:00:00Z".parse().unwrap()),
                last_back: Some(Duration::from_secs(30 * 3600)),
            },
            month: Some((2026, 11)),
            month_used: Duration::from_secs(7 * 3600),
            boot: Some(BootTime {
                boot_id: "5f2c7a0e-4b1d-4a8e-9c3f-1d2e3f4a5b6c".into(),
                since_boot: Duration::from_millis(86_400_123),
            }),
            downtime_unknown: true,
        };
        save(&conn, &cp).unwrap();
        assert_eq!(load(&conn).unwrap(), cp);
        assert_eq!(oldest_unsent(&conn).unwrap(), None);
    }
}
