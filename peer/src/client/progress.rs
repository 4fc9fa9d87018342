//! Progress for people, on stderr: on a terminal a bar per phase running (phase, bytes of the
//! total, rate, time left); elsewhere (a log, a pipe) a plain line every second while a phase
//! runs (phase, bytes, rate), so logs stay readable; nothing with `--quiet`. Phases may run at
//! once (a put seeds while copies are confirmed): their bars stack.

use std::io::{self, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Bytes moved so far, shared between the thread doing the work and the reporter.
pub type Counter = Arc<AtomicU64>;

/// How often a running phase prints its line.
const EVERY: Duration = Duration::from_secs(1);
/// How often a bar takes its phase's count.
const BAR_EVERY: Duration = Duration::from_millis(100);

/// Whether and where progress goes.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub quiet: bool,
}

impl Progress {
    /// A one-off line (a phase that moves no bytes: "placing: 3 of 6 shards confirmed").
    pub fn note(&self, text: impl std::fmt::Display) {
        match (self.quiet, bars()) {
            (true, _) => {}
            // Above the bars, which would otherwise draw over it.
            (false, Some(bars)) => {
                if bars.println(text.to_string()).is_err() {
                    eprintln!("{text}");
                }
            }
            (false, None) => eprintln!("{text}"),
        }
    }

    /// Prints `phase`'s line every second from `done()` (and `total`) until [`Reporter::finish`].
    pub fn start<F>(&self, phase: &'static str, total: Option<u64>, done: F) -> Reporter
    where
        F: Fn() -> u64 + Send + 'static,
    {
        let token = CancellationToken::new();
        let task = match (self.quiet, bars()) {
            (true, _) => None,
            (false, Some(bars)) => Some(tokio::spawn(bar(bars, phase, total, done, token.clone()))),
            (false, None) => Some(tokio::spawn(lines(phase, total, done, token.clone()))),
        };
        Reporter { token, task }
    }
}

/// The bars of this process, when stderr is a terminal.
fn bars() -> Option<&'static MultiProgress> {
    static BARS: OnceLock<Option<MultiProgress>> = OnceLock::new();
    BARS.get_or_init(|| {
        io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
    })
    .as_ref()
}

/// A phase's line every [`EVERY`], and its last when it ends.
async fn lines<F>(phase: &'static str, total: Option<u64>, done: F, token: CancellationToken)
where
    F: Fn() -> u64,
{
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => eprintln!("{}", line(phase, done(), total, start.elapsed())),
        }
    }
    eprintln!("{}", line(phase, done(), total, start.elapsed()));
}

/// A phase's bar among `bars`, left in place, full, when the phase ends.
async fn bar<F>(
    bars: &'static MultiProgress,
    phase: &'static str,
    total: Option<u64>,
    done: F,
    token: CancellationToken,
) where
    F: Fn() -> u64,
{
    let pb = bars.add(match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    });
    pb.set_style(bar_style(total.is_some()));
    pb.set_prefix(phase);
    let mut tick = tokio::time::interval(BAR_EVERY);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => pb.set_position(done()),
        }
    }
    pb.set_position(done());
    pb.abandon();
}

/// `encode [=====>    ] 12.0 MiB/100.0 MiB 40.1 MiB/s ETA 2s`; without a total, no bar and no
/// time left.
fn bar_style(with_total: bool) -> ProgressStyle {
    let template = match with_total {
        true => {
            "{prefix:>7} [{bar:30.cyan/blue}] {binary_bytes}/{binary_total_bytes} \
             {binary_bytes_per_sec} ETA {eta}"
        }
        false => "{prefix:>7} {spinner} {binary_bytes} {binary_bytes_per_sec}",
    };
    ProgressStyle::with_template(template)
        .expect("the bar templates parse")
        .progress_chars("=> ")
}

/// A phase's running reporter.
pub struct Reporter {
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Prints the last line and stops.
    pub async fn finish(mut self) {
        self.token.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// `encode: 12.0 MiB of 100.0 MiB (12%), 40.1 MiB/s`.
pub fn line(phase: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    match total {
        Some(t) if t > 0 => format!(
            "{phase}: {} of {} ({}%), {}/s",
            human(done),
            human(t),
            done.saturating_mul(100) / t,
            human(rate as u64)
        ),
        _ => format!("{phase}: {}, {}/s", human(done), human(rate as u64)),
    }
}

/// Bytes in binary units with one decimal.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A reader that counts the bytes read through it.
pub struct CountingRead<R> {
    pub inner: R,
    pub count: Counter,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A writer that counts the bytes written through it.
pub struct CountingWrite<W> {
    pub inner: W,
    pub count: Counter,
}

impl<W: Write> Write for CountingWrite<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_well() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
        let l = line("encode", 1 << 20, Some(4 << 20), Duration::from_secs(1));
        assert_eq!(l, "encode: 1.0 MiB of 4.0 MiB (25%), 1.0 MiB/s");
        let l = line("read", 2048, None, Duration::from_secs(2));
        assert_eq!(l, "read: 2.0 KiB, 1.0 KiB/s");
    }

    #[test]
    fn bar_templates_parse() {
        for with_total in [true, false] {
            let pb = ProgressBar::hidden();
            pb.set_style(bar_style(with_total));
            pb.set_position(5);
        }
    }

    #[test]
    fn counters_count() {
        let count = Counter::default();
        let mut r = CountingRead {
            inner: &b"hello"[..],
            count: count.clone(),
        };
        io::copy(
            &mut r,
            &mut CountingWrite {
                inner: io::sink(),
                count: count.clone(),
            },
        )
        .unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }
}
