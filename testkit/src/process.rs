//! `raidtorrent-peer` nodes as child processes, and their data folders on disk.
//!
//! A node can be killed (SIGKILL, as a crash or a pulled plug), restarted on the same data folder
//! and arguments (it re-seeds what it held), and have its shard files corrupted in place, so a
//! test can make a node serve bad pieces.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// The node binary beside the running test or bench binary (`target/<profile>/raidtorrent-peer`),
/// brought up to date first (see [`workspace_binary`]).
pub fn peer_binary() -> PathBuf {
    workspace_binary("raidtorrent-peer", "raidtorrent-peer")
}

/// Binary `bin` of workspace package `package` beside the running test or bench binary
/// (`target/<profile>/<bin>`). A crate other than `package` gets no `CARGO_BIN_EXE_` for it, and
/// `cargo test` does not rebuild it, so it is built (in the same profile) once per test process:
/// a test never runs a binary older than the code it tests.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join(bin);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == bin) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", package, "--bin", bin]);
        // Benchmarks run from target/release: build the binary in the same profile.
        if dir.file_name().is_some_and(|d| d == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building {bin} failed");
        built.push(bin.to_owned());
    }
    path
}

/// One node process and everything needed to start it again; killed when dropped.
pub struct Node {
    /// The node's data directory (`shards/`, `torrents/`, `held.json`, `status.json`).
    pub dir: PathBuf,
    binary: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    child: Option<Child>,
}

impl Node {
    /// Starts `binary` with `args` and `env` (added to this process's environment); `dir` is the
    /// data directory the arguments name.
    pub fn spawn(
        dir: PathBuf,
        binary: PathBuf,
        args: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
    ) -> Node {
        let mut node = Node {
            dir,
            binary,
            args,
            env,
            child: None,
        };
        node.restart();
        node
    }

    /// Hard kill (SIGKILL), as a crash: nothing is flushed, no `bye` is said. Waits for the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the node again exactly as it was first started: same binary, arguments (so the same
    /// data directory, identity and passkey) and environment. It re-seeds what it held from disk.
    /// A node still running is killed first. With `--listen 127.0.0.1:0` it comes back on a new
    /// port, as a volunteer behind a changing address would.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.binary)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// Freezes the process (SIGSTOP): its sockets stay open but it answers nothing, as a node
    /// whose machine hangs. [`resume`](Self::resume) lets it go on where it stopped.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("the process is running").to_string();
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {sig} {pid} failed");
    }

    /// Whether the process is alive (it may have exited on its own).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) | None => false,
        }
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data files of the shards the node holds: files under `shards/` whose name the held set
    /// ([`held_set`]) lists. Fetches still in progress are not included.
    pub fn shard_files(&self) -> Vec<PathBuf> {
        let held: Vec<String> = held_set(&self.dir).into_values().collect();
        let mut files: Vec<PathBuf> = files_under(&self.dir.join("shards"))
            .into_iter()
            .filter(|f| {
                f.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| held.iter().any(|h| h == n))
            })
            .collect();
        files.sort();
        files
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Flips (bitwise NOT) `len` bytes of the file at `path` from `offset`, in place: the length and the
/// inode stay, so a process that has the file open serves the changed bytes. Flipping the same
/// bytes again restores them. Panics if the range is not inside the file.
pub fn corrupt(path: &Path, offset: u64, len: usize) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let size = f.metadata().unwrap().len();
    assert!(
        offset + len as u64 <= size,
        "{}: bytes {offset}..{} are outside its {size} bytes",
        path.display(),
        offset + len as u64
    );
    let mut bytes = vec![0u8; len];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut bytes).unwrap();
    bytes.iter_mut().for_each(|b| *b = !*b);
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&bytes).unwrap();
    f.sync_all().unwrap();
}

/// Every file under `dir`, recursively; empty when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The held set of the node with data folder `dir`, info-hash to shard file name: its snapshot
/// (`held.json`) with its journal (`held.log`) applied, as `peer/STATE.md` describes them, read
/// here without the node's code. Missing files read as empty; lines that are not entries (a last
/// append a crash cut short) are skipped.
pub fn held_set(dir: &Path) -> BTreeMap<String, String> {
    use serde_json::Value;
    fn shard(s: &Value) -> Option<(String, String)> {
        Some((s["info_hash"].as_str()?.into(), s["name"].as_str()?.into()))
    }
    let snapshot = std::fs::read(dir.join("held.json")).unwrap_or_default();
    let snapshot: Value = serde_json::from_slice(&snapshot).unwrap_or_default();
    let mut set: BTreeMap<String, String> = snapshot["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(shard)
        .collect();
    let journal = std::fs::read(dir.join("held.log")).unwrap_or_default();
    for line in journal
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
    {
        let entry: Value = serde_json::from_slice(line).unwrap_or_default();
        if let Some((ih, name)) = shard(&entry["keep"]) {
            set.insert(ih, name);
        } else if let Some(ih) = entry["forget"].as_str() {
            set.remove(ih);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random_bytes;

    #[test]
    fn corrupt_flips_bytes_in_place_and_twice_restores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard");
        let original = random_bytes(100_000, 5);
        std::fs::write(&path, &original).unwrap();
        corrupt(&path, 70_000, 3);
        let changed = std::fs::read(&path).unwrap();
        assert_eq!(changed.len(), original.len());
        let differ: Vec<usize> = (0..original.len())
            .filter(|&i| changed[i] != original[i])
            .collect();
        assert_eq!(differ, vec![70_000, 70_001, 70_002]);
        corrupt(&path, 70_000, 3);
        assert!(std::fs::read(&path).unwrap() == original);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn corrupt_refuses_a_range_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard");
        std::fs::write(&path, [0u8; 10]).unwrap();
        corrupt(&path, 8, 3);
    }

    #[test]
    fn files_under_walks_subfolders_and_tolerates_a_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("top"), b"").unwrap();
        std::fs::write(dir.path().join("a/b/deep"), b"").unwrap();
        let mut files = files_under(dir.path());
        files.sort();
        assert_eq!(
            files,
            vec![dir.path().join("a/b/deep"), dir.path().join("top")]
        );
        assert!(files_under(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn a_node_process_can_be_killed_and_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Node::spawn(
            dir.path().to_owned(),
            "sleep".into(),
            vec!["600".into()],
            Vec::new(),
        );
        let first = node.pid().unwrap();
        assert!(node.is_running());
        node.kill();
        assert!(!node.is_running());
        assert_eq!(node.pid(), None);
        node.restart();
        assert!(node.is_running());
        assert_ne!(node.pid(), Some(first));
    }

    #[test]
    fn shard_files_are_the_held_ones() {
        let dir = tempfile::tempdir().unwrap();
        let shards = dir.path().join("shards");
        std::fs::create_dir_all(&shards).unwrap();
        let held = "0123456789abcdef0123456789abcdef";
        let fetching = "fedcba9876543210fedcba9876543210";
        std::fs::write(shards.join(held), b"x").unwrap();
        std::fs::write(shards.join(fetching), b"y").unwrap();
        let gone = "00112233445566778899aabbccddeeff";
        std::fs::write(shards.join(gone), b"z").unwrap();
        std::fs::write(
            dir.path().join("held.json"),
            format!(r#"{{"version": 2, "shards": [{{"info_hash": "00", "name": "{gone}", "length": 1, "owners": []}}]}}"#),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("held.log"),
            format!(
                "{}\n{}\n{}",
                r#"{"forget": "00"}"#,
                format_args!(r#"{{"keep": {{"info_hash": "01", "name": "{held}", "length": 1, "owners": []}}}}"#),
                format_args!(r#"{{"keep": {{"info_hash": "02", "name": "{fetching}""#),
            ),
        )
        .unwrap();
        let node = Node {
            dir: dir.path().to_owned(),
            binary: "true".into(),
            args: Vec::new(),
            env: Vec::new(),
            child: None,
        };
        assert_eq!(node.shard_files(), vec![shards.join(held)]);
    }
}
