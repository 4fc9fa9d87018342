//! The layer rules of ARCHITECTURE.md, checked against the source: pure modules gain no I/O, and
//! no module imports one above it, so no arrow runs back up and no two modules form a circle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The tracker crate's top-level modules, bottom layer first: each may import only modules
/// listed before it.
const LAYERS: &[&str] = &[
    // Pure cores.
    "ids",
    "protocol",
    "scoring",
    "placement",
    "repair",
    "audit",
    // State and storage.
    "swarm",
    // What the gateway counts for Prometheus.
    "metrics",
    // Connections from strangers: admission caps and the HTTP server.
    "net",
    "registry",
    // The link to nodes.
    "control",
    // The object path and its HTTP fronts (native and S3).
    "gateway",
    "api",
    "s3",
    // The operator view: dashboard, its JSON, metrics exposition, shard export.
    "ops",
    // Settings of every part.
    "config",
    // The tracker service.
    "tracker",
    "server",
    // Everything started together.
    "cloud",
];

/// Files that must stay free of I/O, clocks and async: wire formats, scoring, placement, repair
/// planning, the leeching conversation and read board (in `fetch/`, relative to `tracker/src`)
/// and the gateway's decision state machines.
const PURE: &[&str] = &[
    "ids.rs",
    "protocol",
    "scoring",
    "placement",
    "repair",
    "audit/schedule.rs",
    "gateway/rounds.rs",
    "gateway/fetch_plan.rs",
    "gateway/reconcile.rs",
    // The leeching crate's cores, which the audits and every piece read drive.
    "../../fetch/src/wire.rs",
    "../../fetch/src/exchange.rs",
    "../../fetch/src/exchange_tests.rs",
    "../../fetch/src/rng.rs",
    "../../fetch/src/board.rs",
];

/// What a pure file may not mention (outside comments).
const IO: &[&str] = &[
    "tokio::",
    "sqlx::",
    "warp::",
    "librqbit::",
    "reqwest::",
    "std::fs",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "async fn",
    ".await",
    "Instant::now",
    "SystemTime::now",
    "crate::registry",
    "crate::control",
    "crate::gateway",
    "crate::server",
    "crate::api",
    "crate::s3",
    "crate::cloud",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, or `dir` itself when it is a file.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_owned()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The code of a file without its comments (line comments and doc comments).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The files of a top-level module: `src/<m>.rs` and everything under `src/<m>/`.
fn module_files(m: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src().join(format!("{m}.rs"));
    if file.exists() {
        files.push(file);
    }
    let dir = src().join(m);
    if dir.is_dir() {
        files.extend(rust_files(&dir));
    }
    files
}

/// The top-level modules a file names as `crate::<m>`.
fn crate_imports(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .map(|(i, _)| {
            code[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn every_module_is_in_a_layer() {
    let lib = code(&src().join("lib.rs"));
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect();
    let layered: BTreeSet<String> = LAYERS.iter().map(|m| m.to_string()).collect();
    assert_eq!(declared, layered, "lib.rs and the layer list disagree");
}

#[test]
fn no_module_imports_a_layer_above_it() {
    let mut violations = Vec::new();
    for (i, m) in LAYERS.iter().enumerate() {
        let allowed: BTreeSet<&str> = LAYERS[..=i].iter().copied().collect();
        for file in module_files(m) {
            for import in crate_imports(&code(&file)) {
                if LAYERS.contains(&import.as_str()) && !allowed.contains(import.as_str()) {
                    violations.push(format!("{} imports crate::{import}", file.display()));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "arrows running up:\n{}",
        violations.join("\n")
    );
}

#[test]
fn pure_modules_have_no_io() {
    let mut violations = Vec::new();
    for p in PURE {
        let files = rust_files(&src().join(p));
        assert!(!files.is_empty(), "{p} names no source");
        for file in files {
            let code = code(&file);
            for word in IO.iter().filter(|w| code.contains(*w)) {
                violations.push(format!("{} mentions {word}", file.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "I/O in pure modules:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checks_catch_what_they_look_for() {
    let imports = crate_imports("use crate::gateway::Meta; let x = crate::scoring::score;");
    assert_eq!(
        imports,
        BTreeSet::from(["gateway".into(), "scoring".into()])
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.rs");
    std::fs::write(&f, "// tokio:: in a comment\nlet a = 1; // .await\n").unwrap();
    assert!(!IO.iter().any(|w| code(&f).contains(w)));
    std::fs::write(&f, "async fn go() {}\n").unwrap();
    assert!(IO.iter().any(|w| code(&f).contains(w)));
}
