//! What the in-process gateway logs, captured so a test can assert on it: every warning and error
//! event of the test process is kept (its message and fields, as text) from the first
//! [`capture`] on. `RUST_LOG`, when set, also prints events as usual.
//!
//! The capture is process-wide (tracing has one global subscriber), so a test that asserts on it
//! sees the events of every test running beside it; the patterns tests look for are faults in
//! any of them.

use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Events kept at most; later ones are counted but not kept.
const KEPT: usize = 100_000;

#[derive(Default)]
struct Captured {
    events: Vec<String>,
    dropped: u64,
}

static CAPTURED: OnceLock<Mutex<Captured>> = OnceLock::new();

fn captured() -> &'static Mutex<Captured> {
    CAPTURED.get_or_init(Mutex::default)
}

/// Starts capturing warnings and errors (once per process; later calls do nothing). Returns
/// false when another global subscriber was installed first, so nothing is captured.
pub fn capture() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let print = std::env::var_os("RUST_LOG").map(|_| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(EnvFilter::from_default_env())
        });
        tracing_subscriber::registry()
            .with(Capture.with_filter(LevelFilter::WARN))
            .with(print)
            .try_init()
            .is_ok()
    })
}

/// Captured warnings and errors whose text contains `pattern`.
pub fn matching(pattern: &str) -> Vec<String> {
    let c = captured().lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(
        c.dropped, 0,
        "more than {KEPT} warnings: some were not kept"
    );
    c.events
        .iter()
        .filter(|e| e.contains(pattern))
        .cloned()
        .collect()
}

struct Capture;

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut text = format!("{} {}:", level_name(*meta.level()), meta.target());
        event.record(&mut Text(&mut text));
        let mut c = captured().lock().unwrap_or_else(|e| e.into_inner());
        if c.events.len() < KEPT {
            c.events.push(text);
        } else {
            c.dropped += 1;
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        _ => "INFO",
    }
}

/// An event's fields as `name=value` text.
struct Text<'a>(&'a mut String);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_captured_and_infos_are_not() {
        assert!(capture(), "the capture is the process's subscriber");
        let tag = "capture-self-test-7f3a";
        tracing::info!(tag, "only information");
        tracing::warn!(error = "database is locked", "{tag}: not written");
        let found = matching(tag);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("WARN "), "{}", found[0]);
        assert!(
            found[0].contains("error=database is locked"),
            "{}",
            found[0]
        );
    }
}
