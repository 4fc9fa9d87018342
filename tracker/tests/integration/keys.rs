//! The `raidtorrent-tracker` binary and its master key, as an operator meets them: started without
//! its key while objects exist, with a wrong key, or with a key others may read, the gateway
//! refuses to start and says which file to restore or which chmod to run; it never makes a new
//! key for a database in use. With its own key it serves every object again. Small objects sit
//! sealed in the database, and the database and key files are private.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_raidtorrent-tracker");
const API_KEY: &str = "api-key-for-the-key-tests-7c2d";
/// A small object's bytes: far below inline_max, so it lives in the database.
const SECRET: &[u8] = b"the plaintext of a small object that must not sit in the database";

struct Gateway {
    dir: tempfile::TempDir,
}

/// A started gateway: its process, its object API, and its log lines.
struct Running {
    child: Child,
    api: SocketAddr,
}

enum Start {
    Serving(Running),
    Refused(String),
}

impl Gateway {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "http_listen = \"127.0.0.1:0\"\nudp_listen = \"off\"\ndb = {db:?}\n\
             [objects]\napi_listen = \"127.0.0.1:0\"\ncontrol_listen = \"127.0.0.1:0\"\n\
             data_dir = {data:?}\napi_keys = [{API_KEY:?}]\n",
            db = dir.path().join("gateway.db"),
            data = dir.path().join("data"),
        );
        std::fs::write(dir.path().join("gateway.toml"), config).unwrap();
        Gateway { dir }
    }

    fn key_path(&self) -> PathBuf {
        self.dir.path().join("data").join("master.key")
    }

    /// Runs `serve` until it logs that the object API serves, or exits.
    fn start(&self) -> Start {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(self.dir.path().join("gateway.toml"))
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stderr.take().unwrap());
        let mut log = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(api) = field(&line, "api=").filter(|_| line.contains("serving")) {
                        return Start::Serving(Running {
                            child,
                            api: api.parse().unwrap(),
                        });
                    }
                    log.push_str(&line);
                    log.push('\n');
                }
                // The process closed its stderr: it exited.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    assert!(!status.success(), "exited without serving:\n{log}");
                    return Start::Refused(log);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("neither serving nor refused within 60 s:\n{log}");
                }
            }
        }
    }

    fn serving(&self) -> Running {
        match self.start() {
            Start::Serving(r) => r,
            Start::Refused(log) => panic!("the gateway refused to start:\n{log}"),
        }
    }

    fn refused(&self) -> String {
        match self.start() {
            Start::Refused(log) => log,
            Start::Serving(mut r) => {
                let _ = r.child.kill();
                panic!("the gateway started")
            }
        }
    }
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    /// SIGTERM, and wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        assert!(self.child.wait().unwrap().success());
    }
}

fn lines_of(stderr: std::process::ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The value of `name` (e.g. `api=`) in a log line, up to the next space.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(name)? + name.len();
    line[at..].split_whitespace().next()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn put_small_object(client: &reqwest::Client, gw: &Running) {
    let r = client
        .put(gw.url("/keys"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    let r = client
        .put(gw.url("/keys/small"))
        .bearer_auth(API_KEY)
        .body(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
}

async fn read_small_object(client: &reqwest::Client, gw: &Running) -> Vec<u8> {
    let r = client
        .get(gw.url("/keys/small"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap().to_vec()
}

/// Every byte of the database's files (the main file and its write-ahead log).
fn database_bytes(dir: &Path) -> Vec<u8> {
    ["gateway.db", "gateway.db-wal"]
        .iter()
        .filter_map(|f| std::fs::read(dir.join(f)).ok())
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_wrong_or_exposed_master_key_is_refused_clearly() {
    let gw = Gateway::new();
    let client = reqwest::Client::new();
    let running = gw.serving();
    put_small_object(&client, &running).await;
    assert_eq!(read_small_object(&client, &running).await, SECRET);
    running.stop();

    // The files are private, and the small object is sealed: its bytes are nowhere in the database.
    let key = std::fs::read(gw.key_path()).unwrap();
    assert_eq!(mode(&gw.key_path()), 0o600);
    assert_eq!(mode(&gw.dir.path().join("gateway.db")), 0o600);
    let db = database_bytes(gw.dir.path());
    assert!(!db.is_empty());
    assert!(
        !db.windows(SECRET.len()).any(|w| w == SECRET),
        "the small object's plaintext is in the database"
    );

    // No key while objects exist: refused, and no new key made.
    std::fs::remove_file(gw.key_path()).unwrap();
    let log = gw.refused();
    assert!(log.contains("master.key is missing"), "{log}");
    assert!(log.contains("Restore"), "{log}");
    assert!(
        !gw.key_path().exists(),
        "a new key was made for a used database"
    );

    // Another key: refused.
    let mut wrong = key.clone();
    wrong[5] ^= 0x40;
    std::fs::write(gw.key_path(), &wrong).unwrap();
    std::fs::set_permissions(gw.key_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = gw.refused();
    assert!(
        log.contains("is not the master key this database was written with"),
        "{log}"
    );

    // The right key, readable by everyone: refused, with the fix.
    std::fs::write(gw.key_path(), &key).unwrap();
    std::fs::set_permissions(gw.key_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = gw.refused();
    let chmod = format!("chmod 600 {}", gw.key_path().display());
    assert!(log.contains(&chmod), "{log}");

    // Fixed: the gateway serves the object again, byte for byte.
    std::fs::set_permissions(gw.key_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let running = gw.serving();
    assert_eq!(read_small_object(&client, &running).await, SECRET);
    running.stop();
}

#[test]
fn help_never_shows_a_secret_and_secrets_come_from_files() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .env("RAIDTORRENT_API_KEYS", "secret-api-key-0123456789")
        .env("RAIDTORRENT_ADMIN_TOKEN", "secret-admin-token-0123456789")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--api-key-file") && help.contains("--admin-token-file"));
    assert!(!help.contains("secret-"), "{help}");

    // Keys from a file the gateway refuses while everyone may read it.
    let gw = Gateway::new();
    let keys = gw.dir.path().join("api-keys");
    std::fs::write(&keys, "# object API keys\nkey-from-a-file-0123456789\n").unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(gw.dir.path().join("gateway.toml"))
        .arg("--api-key-file")
        .arg(&keys)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
}
