//! What `laned retry` and `laned resolve` share: they change the lane
//! through the running daemon's admin API, or, when no daemon runs, open
//! the database themselves under the instance lock. Either way the store
//! does the change and its audit entry in one transaction.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use laned::common::clock::{Clock, SystemClock};
use laned::lane::store::{
    InstanceLock, LaneIdentity, ReadOnly, SettleOutcome, Settled, Store, StoreError,
};
use serde_json::Value;

/// The lane an operator command changes.
pub enum Lane {
    /// A daemon holds the lock: go through its admin API.
    Running {
        /// Its admin API, e.g. `http://127.0.0.1:4510`.
        base: String,
        /// The admin token from the data directory.
        token: String,
    },
    /// No daemon: the store, opened under the instance lock.
    Stopped {
        /// The store (its writer thread).
        store: Store,
        /// Held until the command ends.
        _lock: InstanceLock,
    },
}

/// An operator action the lane refused: no such sale, not stuck, or a bad
/// argument the daemon caught. Exit code 1 with its sentence.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Who runs the command, for the audit log: `cli:<login name>`, or
/// `cli:uid:<n>` when there is no login name (a service, a container).
pub fn actor() -> String {
    #[cfg(unix)]
    let uid = Some(rustix::process::getuid().as_raw());
    #[cfg(not(unix))]
    let uid = None;
    actor_from(|k| std::env::var(k).ok(), uid)
}

/// [`actor`] from an environment lookup and the user id.
fn actor_from(env: impl Fn(&str) -> Option<String>, uid: Option<u32>) -> String {
    let user = ["SUDO_USER", "USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| env(k).filter(|u| !u.trim().is_empty()));
    let name: String = match (user, uid) {
        (Some(u), _) => u,
        (None, Some(uid)) => format!("uid:{uid}"),
        (None, None) => "unknown".into(),
    }
    .chars()
    .filter(|c| c.is_ascii_graphic())
    .take(48)
    .collect();
    format!("cli:{name}")
}

/// Opens the lane for a change: through the daemon if one runs. `series`:
/// the receipt series the change is in, when it is in one (the configured
/// `series`; the lane id otherwise, as the daemon's default).
pub async fn open(dir: &Path, series: Option<String>) -> anyhow::Result<Lane> {
    // The lane id comes from the database itself (which must exist: an
    // operator command never creates a lane).
    let lane_id = ReadOnly::open(dir)?
        .lane_id()?
        .context("the database has no lane id yet")?;
    let d = dir.to_owned();
    let opened = tokio::task::spawn_blocking(move || {
        let identity = LaneIdentity {
            series: series.unwrap_or_else(|| lane_id.clone()),
            lane_id,
        };
        Store::open(&d, identity, Arc::new(SystemClock::new()) as Arc<dyn Clock>)
    })
    .await
    .context("the store thread failed")?;
    match opened {
        Ok((store, lock)) => Ok(Lane::Stopped { store, _lock: lock }),
        Err(StoreError::Locked { holder, path }) => {
            let Some(addr) = laned::lane::store::listening_on(&holder) else {
                return Err(StoreError::Locked { holder, path })
                    .context("the daemon is starting; try again in a moment");
            };
            Ok(Lane::Running {
                base: format!("http://{}", loopback(addr)),
                token: admin_token(dir)?,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// A daemon listening on every address is reached on loopback.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

fn admin_token(dir: &Path) -> anyhow::Result<String> {
    let path: PathBuf = dir.join(laned::lane::daemon::ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "a daemon is running; cannot read its admin token {} (run as the service user or root)",
            path.display()
        )
    })?;
    Ok(token.trim().to_owned())
}

/// POSTs an admin action to the running daemon; its answer's sales.
pub async fn post(base: &str, token: &str, path: &str, body: Value) -> anyhow::Result<Vec<Value>> {
    let answer = post_value(base, token, path, body).await?;
    Ok(answer["sales"].as_array().cloned().unwrap_or_default())
}

/// POSTs an admin action to the running daemon; its whole answer.
pub async fn post_value(base: &str, token: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("cannot build an HTTP client")?;
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .header("x-laned-actor", actor())
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach the running daemon at {base}"))?;
    let status = r.status();
    let answer: Value = r
        .json()
        .await
        .with_context(|| format!("the daemon at {base} answered {status} without JSON"))?;
    if !status.is_success() {
        let message = answer["message"].as_str().unwrap_or("no message");
        let code = answer["code"].as_str().unwrap_or("?");
        return Err(Refused(format!("{message} ({code})")).into());
    }
    Ok(answer)
}

/// The sales a direct (daemon stopped) action changed, or why it was refused.
pub fn outcome(o: SettleOutcome) -> anyhow::Result<Vec<Value>> {
    match o {
        SettleOutcome::Done(sales) => Ok(sales.iter().map(to_json).collect()),
        SettleOutcome::NotFound(id) => {
            Err(Refused(format!("No sale with transaction id {id} is stored on this lane.")).into())
        }
        SettleOutcome::NotStuck {
            transaction_id,
            state,
        } => Err(Refused(format!(
            "Sale {transaction_id} is {state}, not stuck: only a stuck sale can be retried or resolved."
        ))
        .into()),
    }
}

fn to_json(s: &Settled) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// A current-thread runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The lane's configuration as the daemon would load it (file, `LANED_*`
/// variables, flags), with the lane id taken from the database when none
/// is given: what `report` and `doctor` need to reach the back-end.
pub fn config_for(
    args: &laned::lane::config::ConfigArgs,
    lane_id: &str,
) -> anyhow::Result<laned::lane::config::Config> {
    let mut args = args.clone();
    if args.settings.lane_id.is_none() {
        args.settings.lane_id = Some(lane_id.to_owned());
    }
    Ok(laned::lane::config::Config::load(&args, |k| {
        std::env::var(k).ok()
    })?)
}

#[cfg(test)]
mod tests {
    use super::actor_from;

    #[test]
    fn the_actor_is_the_login_name_else_the_user_id() {
        let env = |user: Option<&'static str>| {
            move |k: &str| (k == "USER").then_some(user).flatten().map(String::from)
        };
        assert_eq!(actor_from(env(Some("alice")), Some(1000)), "cli:alice");
        assert_eq!(actor_from(env(Some("  ")), Some(1000)), "cli:uid:1000");
        assert_eq!(actor_from(env(None), Some(0)), "cli:uid:0");
        assert_eq!(actor_from(env(None), None), "cli:unknown");
        assert_eq!(actor_from(env(Some("bad name\n")), None), "cli:badname");
    }
}

/// What a look at the lane's daemon found.
pub enum Probe {
    /// It answers on the address in the lock file.
    Running {
        /// The lock file's description of it (pid, address, start).
        holder: String,
        /// Where it answers, e.g. `127.0.0.1:7410`.
        host: String,
        /// Its `GET /v1/status`; `None` when its API wants a token.
        status: Option<Value>,
    },
    /// No daemon answers (none has run, or the last one stopped).
    NotRunning {
        /// The lock file's description of the last one, if any.
        last: Option<String>,
    },
    /// Something answers on the address, but not as this lane's daemon.
    Broken {
        /// The lock file's description.
        holder: String,
        /// What answered.
        detail: String,
    },
}

/// Looks for the daemon of the lane in `dir`: the address its lock file
/// names, and whether `GET /v1/status` answers there within `timeout`.
/// Reads only: it never takes the instance lock (a daemon starting at that
/// moment must not find it taken).
pub async fn probe(dir: &Path, timeout: std::time::Duration) -> Probe {
    let holder = std::fs::read_to_string(dir.join(laned::lane::store::LOCK_FILE))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let Some(addr) = laned::lane::store::listening_on(&holder) else {
        return Probe::NotRunning {
            last: Some(holder).filter(|h| !h.is_empty()),
        };
    };
    let host = loopback(addr).to_string();
    let http = match reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            return Probe::Broken {
                holder,
                detail: format!("cannot build an HTTP client: {e}"),
            };
        }
    };
    match http.get(format!("http://{host}/v1/status")).send().await {
        Ok(r) if r.status().is_success() => match r.json::<Value>().await {
            Ok(status) => Probe::Running {
                holder,
                host,
                status: Some(status),
            },
            Err(e) => Probe::Broken {
                holder,
                detail: format!("{host} answers /v1/status with something unreadable: {e}"),
            },
        },
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => Probe::Running {
            holder,
            host,
            status: None,
        },
        Ok(r) => Probe::Broken {
            holder,
            detail: format!("it answers {} on {host}", r.status()),
        },
        Err(_) => Probe::NotRunning { last: Some(holder) },
    }
}

/// A lane in trouble: `laned status` and `laned doctor` exit 6 when it
/// needs someone to act, 7 when it refuses sales.
#[derive(Debug, thiserror::Error)]
#[error("{what} ({})", .codes.join(", "))]
pub struct Troubled {
    /// The worst trouble's verdict.
    pub verdict: laned::lane::status::Verdict,
    /// The verdict in words.
    what: &'static str,
    /// The troubles' codes, worst first.
    pub codes: Vec<String>,
}

impl Troubled {
    /// The error for these troubles, if one is bad enough to exit non-zero
    /// (`attention` or `stopped`).
    pub fn of<'a>(
        verdict: laned::lane::status::Verdict,
        codes: impl IntoIterator<Item = &'a str>,
    ) -> Option<Troubled> {
        use laned::lane::status::Verdict;
        (verdict >= Verdict::Attention).then(|| Troubled {
            verdict,
            what: if verdict == Verdict::Stopped {
                "refusing new sales"
            } else {
                "in need of attention"
            },
            codes: codes.into_iter().map(str::to_owned).collect(),
        })
    }
}
