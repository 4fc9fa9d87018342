//! Wording of the reasons: durations, percentages, speeds and runs of poor hours.

/// Reasons with a severity; the highest comes first.
#[derive(Default)]
pub(super) struct Reasons(Vec<(f64, String)>);

impl Reasons {
    pub(super) fn push(&mut self, severity: f64, text: String) {
        self.0.push((severity, text));
    }

    pub(super) fn into_sorted(mut self) -> Vec<String> {
        self.0.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.0.into_iter().map(|(_, t)| t).collect()
    }
}

/// "62%": a ratio as a whole percentage, rounded down so 99.9% never reads as 100%.
pub(super) fn percent(ratio: f64) -> String {
    format!("{}%", (ratio * 100.0).floor() as i64)
}

/// A duration for people: "45 s", "20 min", "5 h", "24 h", "7 days" (rounded down; hours up to
/// two days).
pub fn fmt_duration(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min", secs / 60)
    } else if secs < 2 * 86_400 {
        format!("{} h", secs / 3600)
    } else {
        format!("{} days", secs / 86_400)
    }
}

/// "512 KiB/s", "3.2 MiB/s".
pub(super) fn fmt_speed(bps: f64) -> String {
    if bps >= 1_048_576.0 {
        format!("{:.1} MiB/s", bps / 1_048_576.0)
    } else if bps >= 1024.0 {
        format!("{:.0} KiB/s", bps / 1024.0)
    } else {
        format!("{bps:.0} B/s")
    }
}

/// Runs of consecutive UTC hours (wrapping past midnight) whose availability is below `poor`,
/// worst (lowest mean) first, at most two, as `("02:00-05:00", mean)`. Nothing when every hour is
/// poor: the uptime reason says it better.
pub(super) fn offline_hours(hourly: &[f64; 24], poor: f64) -> Vec<(String, f64)> {
    let bad: Vec<bool> = hourly.iter().map(|a| *a < poor).collect();
    let Some(start) = (0..24).find(|h| !bad[*h]) else {
        return Vec::new();
    };
    let mut runs: Vec<(usize, usize, f64)> = Vec::new();
    let mut h = 0;
    while h < 24 {
        let at = (start + h) % 24;
        if !bad[at] {
            h += 1;
            continue;
        }
        let mut len = 0;
        let mut sum = 0.0;
        while h + len < 24 && bad[(start + h + len) % 24] {
            sum += hourly[(start + h + len) % 24];
            len += 1;
        }
        runs.push((at, len, sum / len as f64));
        h += len;
    }
    runs.sort_by(|a, b| a.2.total_cmp(&b.2).then(b.1.cmp(&a.1)));
    runs.into_iter()
        .take(2)
        .map(|(from, len, mean)| (format!("{:02}:00-{:02}:00", from, (from + len) % 24), mean))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(45), "45 s");
        assert_eq!(fmt_duration(1200), "20 min");
        assert_eq!(fmt_duration(7200), "2 h");
        assert_eq!(fmt_duration(86_400), "24 h");
        assert_eq!(fmt_duration(7 * 86_400), "7 days");
        assert_eq!(fmt_duration(-5), "0 s");
    }

    #[test]
    fn percentages_round_down() {
        assert_eq!(percent(0.625), "62%");
        assert_eq!(percent(0.999), "99%");
        assert_eq!(percent(1.0), "100%");
    }

    #[test]
    fn poor_hours_form_runs_that_wrap_midnight() {
        let mut hourly = [1.0; 24];
        for h in [2, 3, 4] {
            hourly[h] = 0.1;
        }
        for h in [23, 0] {
            hourly[h] = 0.3;
        }
        let runs = offline_hours(&hourly, 0.5);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].0, "02:00-05:00");
        assert_eq!(runs[1].0, "23:00-01:00");
        assert!(offline_hours(&[0.0; 24], 0.5).is_empty());
        assert!(offline_hours(&[0.9; 24], 0.5).is_empty());
    }
}
