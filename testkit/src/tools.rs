//! Stock tools (BitTorrent clients nobody here wrote): a test that needs one is skipped with a
//! message when it is missing, unless `RAIDTORRENT_REQUIRE_TOOLS=1` (set by `.ci/run`, which
//! installs them), where a missing tool fails the test.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where Debian's python3-libtorrent binding can be imported.
const PYTHON: &str = "/usr/bin/python3";

fn required() -> bool {
    std::env::var("RAIDTORRENT_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// The path of stock tool `name` installed at `path`, or `None` (with a message) when it is
/// missing; with `RAIDTORRENT_REQUIRE_TOOLS=1` a missing tool panics instead.
pub fn tool(name: &str, path: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.exists() {
        return Some(p);
    }
    assert!(
        !required(),
        "{name} ({path}) is required (RAIDTORRENT_REQUIRE_TOOLS=1) but missing"
    );
    eprintln!("SKIPPED: {name} not found at {path}");
    None
}

/// Whether `probe` (a harmless run of the tool, such as `--version`) runs and succeeds; when it
/// does not, prints that `name` is skipped, or panics with `RAIDTORRENT_REQUIRE_TOOLS=1`.
pub fn tool_works(name: &str, probe: &mut Command) -> bool {
    let ok = probe
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || !required(),
        "{name} is required (RAIDTORRENT_REQUIRE_TOOLS=1) but does not run"
    );
    if !ok {
        eprintln!("SKIPPED: {name} does not run");
    }
    ok
}

/// The python3 that can `import libtorrent` (Debian's binding, only under /usr/bin/python3), or
/// `None` as [`tool`] and [`tool_works`] decide.
pub fn python_libtorrent() -> Option<PathBuf> {
    let python = tool("python3", PYTHON)?;
    tool_works(
        "python3-libtorrent",
        Command::new(&python).args(["-c", "import libtorrent"]),
    )
    .then_some(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RAIDTORRENT_REQUIRE_TOOLS is read, never set, here: tests share the environment.

    #[test]
    fn a_present_tool_is_found() {
        assert_eq!(tool("sh", "/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert!(tool_works(
            "sh",
            Command::new("/bin/sh").args(["-c", "exit 0"])
        ));
    }

    #[test]
    fn a_missing_or_failing_tool_is_skipped_or_required() {
        let missing = std::panic::catch_unwind(|| tool("nothing", "/nonexistent/tool"));
        let failing = std::panic::catch_unwind(|| {
            tool_works("sh", Command::new("/bin/sh").args(["-c", "exit 3"]))
        });
        if required() {
            assert!(missing.is_err() && failing.is_err());
        } else {
            assert_eq!(missing.unwrap(), None);
            assert!(!failing.unwrap());
        }
    }
}
