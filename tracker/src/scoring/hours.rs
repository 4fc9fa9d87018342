//! Hours of the day: which UTC hour a time falls in, and how much of each hour a span covers.
//! The registry buckets a node's online seconds by hour with these; scoring turns them into the
//! hour-of-day availability profile.

/// UTC hour of day of a Unix time.
pub fn hour_of(unix: i64) -> usize {
    (unix.rem_euclid(86_400) / 3600) as usize
}

/// Seconds of UTC hour-of-day `h` inside `[from, to)`.
pub fn hour_exposure(from: i64, to: i64, h: usize) -> i64 {
    if to <= from {
        return 0;
    }
    let days = (to - from) / 86_400;
    let mut total = days * 3600;
    let mut t = from + days * 86_400;
    while t < to {
        let next = ((t / 3600) + 1) * 3600;
        let end = next.min(to);
        if hour_of(t) == h {
            total += end - t;
        }
        t = end;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_counts_partial_hours() {
        assert_eq!(hour_exposure(0, 3600, 0), 3600);
        assert_eq!(hour_exposure(1800, 5400, 0), 1800);
        assert_eq!(hour_exposure(1800, 5400, 1), 1800);
        assert_eq!(hour_exposure(0, 86_400 * 2 + 10, 0), 7210);
        assert_eq!(hour_exposure(0, 86_400 * 2 + 10, 5), 7200);
        assert_eq!(hour_exposure(10, 5, 0), 0);
    }

    #[test]
    fn hours_wrap_at_midnight_and_before_the_epoch() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(86_399), 23);
        assert_eq!(hour_of(-1), 23);
    }
}
