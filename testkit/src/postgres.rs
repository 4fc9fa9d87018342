//! A real PostgreSQL server for tests: a fresh cluster in a temporary folder, listening on a free
//! loopback port, stopped when dropped. The binaries are Debian's `postgresql` package
//! (`/usr/lib/postgresql/<version>/bin`); without them a test is skipped, or fails with
//! `RAIDTORRENT_REQUIRE_TOOLS=1` (see [`crate::tool`]).
//!
//! PostgreSQL refuses to run as root: under root the cluster belongs to, and the server runs as,
//! the `postgres` system user the package creates.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::{free_port, tool};

/// Where Debian installs the server binaries, one folder per major version.
const VERSIONS: &str = "/usr/lib/postgresql";

/// A running server; dropping it stops the server and removes its cluster.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// Creates a cluster and starts its server, or `None` when PostgreSQL is not installed
    /// (and not required).
    pub fn start() -> Option<Self> {
        let bin = server_bin()?;
        let dir = std::env::temp_dir().join(format!(
            "raidtorrent-pg-{}-{}",
            std::process::id(),
            free_port("127.0.0.1")
        ));
        std::fs::create_dir_all(&dir).expect("creating the cluster folder");
        let as_postgres = is_root();
        let pg = Postgres {
            bin,
            dir,
            port: free_port("127.0.0.1"),
            as_postgres,
        };
        if as_postgres {
            pg.check("chown", Command::new("chown").arg("postgres:").arg(&pg.dir));
        }
        let data = pg.data();
        pg.check(
            "initdb",
            pg.command("initdb")
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
                .args(["--locale", "C", "-D"])
                .arg(&data),
        );
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            pg.port,
            pg.dir.display()
        );
        pg.check(
            "pg_ctl start",
            pg.command("pg_ctl")
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(pg.dir.join("server.log")),
        );
        Some(pg)
    }

    /// One server for the whole test process, started at first use and stopped when the process
    /// exits; `None` as for [`Postgres::start`].
    pub fn shared() -> Option<&'static Postgres> {
        static SHARED: OnceLock<Option<Postgres>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let pg = Postgres::start()?;
                // SAFETY: registering a plain `extern "C" fn` with no captured state.
                unsafe { libc::atexit(stop_shared) };
                Some(pg)
            })
            .as_ref()
    }

    /// A new, empty database on the [`Postgres::shared`] server, and its URL.
    pub fn fresh_database() -> Option<String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Some(Self::shared()?.create_database(&format!("test_{n}")))
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database `name` and answers its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.check(
            "createdb",
            self.command("createdb")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .arg(name),
        );
        self.url(name)
    }

    /// What the server logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command running PostgreSQL binary `name` as the cluster's owner.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn check(&self, what: &str, command: &mut Command) -> Output {
        let out = command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out
    }
}

extern "C" fn stop_shared() {
    // `Drop` of the shared server, which a static never runs.
    if let Some(pg) = Postgres::shared() {
        pg.stop();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Postgres {
    fn stop(&self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest installed server's binary folder, or `None` (with [`tool`]'s message or panic).
fn server_bin() -> Option<PathBuf> {
    let newest = std::fs::read_dir(VERSIONS)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .max();
    let bin = newest.map_or_else(
        || format!("{VERSIONS}/<version>/bin"),
        |v| format!("{VERSIONS}/{v}/bin"),
    );
    tool("PostgreSQL", &bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_serves_and_stops() {
        let Some(pg) = Postgres::start() else {
            return;
        };
        let url = pg.create_database("probe");
        assert!(url.ends_with("/probe"), "{url}");
        let psql = pg
            .command("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "probe", "-p"])
            .arg(pg.port.to_string())
            .args(["-tAc", "SELECT 40 + 2"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&psql.stdout).trim(), "42");
        let dir = pg.dir.clone();
        drop(pg);
        assert!(!dir.exists());
    }
}
