//! Bounded polling: wait until the cluster reaches a state, or fail saying
//! what was awaited and what was last seen.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;
use tokio::time::{Instant, sleep};

/// How often [`until`] polls.
const INTERVAL: Duration = Duration::from_millis(250);

/// Polls `check` until it returns `Ok(Some(value))` and returns that value.
///
/// `Ok(None)` means "not yet"; an `Err` is remembered (a transient API error
/// is not fatal) and quoted if the deadline passes. The deadline bounds the
/// wait only; it is not a performance assertion.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            match last_error {
                Some(e) => bail!("gave up after {timeout:?} waiting for {what}; last error: {e:#}"),
                None => bail!("gave up after {timeout:?} waiting for {what}"),
            }
        }
        sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_the_first_ready_value() {
        let mut calls = 0;
        let got = until("three calls", Duration::from_secs(10), || {
            calls += 1;
            let n = calls;
            async move { Ok((n >= 3).then_some(n)) }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn fails_with_what_it_waited_for_and_the_last_error() {
        let err = until::<(), _, _>("a miracle", Duration::from_secs(2), || async {
            Err(anyhow::anyhow!("still no"))
        })
        .await
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("a miracle") && text.contains("still no"),
            "{text}"
        );
    }
}
