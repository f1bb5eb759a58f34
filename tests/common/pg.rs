//! A real PostgreSQL for tests, started from the machine's server binaries
//! (`initdb`, `pg_ctl`) in a temporary directory, shared by the tests of one
//! test binary and stopped when the last of them is done; a test that stops
//! the server has a cluster of its own ([`database_alone`]). Without the
//! binaries the tests that need it are skipped, unless `LANED_REQUIRE_PG=1`
//! (CI), which makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Run the server as this user (PostgreSQL refuses to run as root).
    run_as: Option<String>,
}

impl Cluster {
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match &self.run_as {
            Some(user) => {
                // runuser lives in sbin, which a user's PATH may lack.
                let runuser = ["/usr/sbin/runuser", "/sbin/runuser"]
                    .into_iter()
                    .find(|p| Path::new(p).is_file())
                    .unwrap_or("runuser");
                let mut c = Command::new(runuser);
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A database of its own in the shared cluster, or in a cluster of its own.
pub struct PgDb {
    pub url: String,
    cluster: Arc<Cluster>,
    /// The cluster is this database's alone ([`database_alone`]).
    alone: bool,
}

impl PgDb {
    /// Stops the server (the database becomes unreachable). Only on a
    /// cluster of its own: the shared one serves other tests meanwhile.
    pub fn stop_server(&self) {
        assert!(
            self.alone,
            "stop_server on the shared cluster would break the tests using it: \
             take the database from pg::database_alone()"
        );
        let out = self
            .cluster
            .command("pg_ctl")
            .arg("-D")
            .arg(self.cluster.data())
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .expect("pg_ctl stop");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it again.
    pub fn start_server(&self) {
        start(&self.cluster);
    }
}

fn find_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // Debian keeps the server binaries off PATH.
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    dirs.push("/usr/local/pgsql/bin".into());
    dirs.into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn required() -> bool {
    std::env::var("LANED_REQUIRE_PG").is_ok_and(|v| v == "1")
}

/// Tests run the server with `fsync=off` (a throwaway cluster); a
/// benchmark asks for a durable one before its first database.
static DURABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes clusters started from now on fsync like a production server.
pub fn durable() {
    DURABLE.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn start(c: &Cluster) {
    let fsync = if DURABLE.load(std::sync::atomic::Ordering::Relaxed) {
        "on"
    } else {
        "off"
    };
    let out = c
        .command("pg_ctl")
        .arg("-D")
        .arg(c.data())
        .arg("-l")
        .arg(c.dir.path().join("server.log"))
        .arg("-o")
        .arg(format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c fsync={fsync} -c max_connections=200 {}",
            c.port,
            // More server settings, to look into a slow run (auto_explain).
            std::env::var("LANED_TEST_PG_SETTINGS").unwrap_or_default()
        ))
        .args(["-w", "start"])
        .output()
        .expect("pg_ctl start");
    assert!(
        out.status.success(),
        "pg_ctl start: {}{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(c.dir.path().join("server.log")).unwrap_or_default()
    );
}

fn new_cluster() -> Option<Cluster> {
    let Some(bin) = find_bin() else {
        assert!(
            !required(),
            "LANED_REQUIRE_PG=1 but no PostgreSQL server binaries (initdb, pg_ctl) were found"
        );
        super::skip::skipped(
            "the PostgreSQL part",
            "no PostgreSQL server binaries (initdb, pg_ctl) on this machine \
             (apt-get install postgresql)",
            "LANED_REQUIRE_PG",
        );
        return None;
    };
    let dir = tempfile::Builder::new()
        .prefix("laned-pg")
        .tempdir()
        .expect("tempdir");
    #[cfg(unix)]
    let run_as = is_root().then(|| {
        let user = "nobody".to_owned();
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &user]).output().expect("id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("an id")
        };
        std::os::unix::fs::chown(dir.path(), Some(id("-u")), Some(id("-g"))).expect("chown");
        user
    });
    #[cfg(not(unix))]
    let run_as = None;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let c = Cluster {
        dir,
        bin,
        port,
        run_as,
    };
    let out = c
        .command("initdb")
        .arg("-D")
        .arg(c.data())
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start(&c);
    Some(c)
}

#[cfg(unix)]
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

static CLUSTER: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

/// A fresh database in the cluster shared by the tests of this binary, or
/// `None` when PostgreSQL is not installed (and not required).
pub async fn database() -> Option<PgDb> {
    let cluster = {
        let mut g = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        match g.upgrade() {
            Some(c) => c,
            None => {
                let c = Arc::new(new_cluster()?);
                *g = Arc::downgrade(&c);
                c
            }
        }
    };
    Some(create(cluster, false).await)
}

/// A fresh database in a cluster of its own, for a test that stops and
/// starts the server ([`PgDb::stop_server`]); `None` as for [`database`].
pub async fn database_alone() -> Option<PgDb> {
    Some(create(Arc::new(new_cluster()?), true).await)
}

async fn create(cluster: Arc<Cluster>, alone: bool) -> PgDb {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to the test cluster");
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    drop(client);
    let _ = task.await;
    PgDb {
        url: format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port),
        cluster,
        alone,
    }
}

/// Where the test cluster's files are (for a failing test's message).
pub fn describe(db: &PgDb) -> &Path {
    db.cluster.dir.path()
}
