//! Waiting with a deadline: poll a condition, or bound a future. A test waits for the thing it
//! needs, never for a fixed time, and a wait that fails names what it waited for.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is checked.
const INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` until it yields a value and returns it; panics naming `what` once `timeout` has
/// passed. `check` runs at once and then every 50 ms.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(timeout, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` until it is true; panics naming `what` (a condition: "the node is back") once
/// `timeout` has passed. `check` runs at once and then every 50 ms.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let check = move || {
        let done = check();
        async move { done.await.then_some(()) }
    };
    poll(timeout, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting until {what}"))
}

/// The first value `check` yields, or `None` once `timeout` has passed.
async fn poll<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Awaits `fut`; panics naming `what` if it has not finished within `timeout`.
pub async fn within<T>(timeout: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {timeout:?} waiting for {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_until_returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_until(Duration::from_secs(10), "the third call", || {
            calls += 1;
            let done = calls >= 3;
            async move { done }
        })
        .await;
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting until pigs fly")]
    async fn wait_until_names_what_it_waited_for() {
        wait_until(Duration::from_millis(100), "pigs fly", || async { false }).await;
    }

    #[tokio::test]
    async fn wait_for_returns_the_value() {
        let mut calls = 0u32;
        let got = wait_for(Duration::from_secs(10), "the second call", || {
            calls += 1;
            let v = (calls == 2).then_some(calls * 10);
            async move { v }
        })
        .await;
        assert_eq!(got, 20);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the answer")]
    async fn wait_for_names_what_it_waited_for() {
        wait_for::<(), _, _>(Duration::from_millis(100), "the answer", || async { None }).await;
    }

    #[tokio::test]
    async fn within_passes_the_output_through() {
        assert_eq!(
            within(Duration::from_secs(10), "a ready future", async { 5 }).await,
            5
        );
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for a pending future")]
    async fn within_names_what_it_waited_for() {
        within(
            Duration::from_millis(50),
            "a pending future",
            std::future::pending::<()>(),
        )
        .await;
    }
}
