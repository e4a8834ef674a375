//! Request coalescing: however many requests miss (or find stale) the same
//! object at once, one upstream fetch runs and all of them get its result.
//!
//! moka's `get_with` coalesces only the initialisation of an absent key; a
//! stale object that is present must be revalidated once too, so fetches of
//! both kinds go through this one map of flights. Each flight runs on its
//! own task: a client that hangs up does not cancel the fetch the others
//! wait for, and the object still lands in the cache.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

type Flight<V> = Shared<BoxFuture<'static, Option<V>>>;

/// Fetches in flight, by key.
pub struct Flights<V: Clone> {
    map: Mutex<HashMap<String, Flight<V>>>,
}

impl<V: Clone> Default for Flights<V> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

/// Removes a finished (or panicked) flight from the map.
struct Landing<V: Clone + Send + Sync + 'static> {
    flights: Arc<Flights<V>>,
    key: String,
}

impl<V: Clone + Send + Sync + 'static> Drop for Landing<V> {
    fn drop(&mut self) {
        self.flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

impl<V: Clone + Send + Sync + 'static> Flights<V> {
    /// Joins the flight for `key`; when there is none, returns `recheck()`
    /// if it has a value (the object landed between the caller's lookup and
    /// now: the check runs under the same lock a flight is removed under,
    /// after it stored its result) or starts `make()` on a new task.
    /// `None` when the flight's task panicked.
    pub async fn run<F>(
        self: &Arc<Self>,
        key: &str,
        recheck: impl FnOnce() -> Option<V>,
        make: impl FnOnce() -> F,
    ) -> Option<V>
    where
        F: Future<Output = V> + Send + 'static,
    {
        let flight = {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(f) = map.get(key) {
                f.clone()
            } else {
                if let Some(v) = recheck() {
                    return Some(v);
                }
                let landing = Landing {
                    flights: Arc::clone(self),
                    key: key.to_owned(),
                };
                let fut = make();
                let task = tokio::spawn(async move {
                    let v = fut.await;
                    drop(landing);
                    v
                });
                let flight: Flight<V> = async move { task.await.ok() }.boxed().shared();
                map.insert(key.to_owned(), flight.clone());
                flight
            }
        };
        flight.await
    }

    /// Flights in progress (for tests and metrics).
    pub fn in_flight(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flights = Arc::new(Flights::<u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = tokio::sync::watch::channel(false);
        let mut joins = Vec::new();
        for _ in 0..100 {
            let (flights, runs, mut go) = (Arc::clone(&flights), Arc::clone(&runs), go_rx.clone());
            joins.push(tokio::spawn(async move {
                flights
                    .run(
                        "k",
                        || None,
                        || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            let _ = go.wait_for(|g| *g).await;
                            7
                        },
                    )
                    .await
            }));
        }
        // Every caller has joined before the one run may finish.
        while flights.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        go_tx.send(true).unwrap();
        for j in joins {
            assert_eq!(j.await.unwrap(), Some(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn recheck_wins_when_no_flight() {
        let flights = Arc::new(Flights::<u32>::default());
        let v = flights
            .run("k", || Some(1), || async { unreachable!("no fetch") })
            .await;
        assert_eq!(v, Some(1));
    }

    #[tokio::test]
    async fn a_dropped_caller_does_not_cancel_the_flight() {
        let flights = Arc::new(Flights::<u32>::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let f2 = Arc::clone(&flights);
        let first = tokio::spawn(async move {
            f2.run(
                "k",
                || None,
                || async move {
                    let _ = rx.await;
                    5
                },
            )
            .await
        });
        while flights.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        first.abort();
        let _ = first.await;
        let second = {
            let f3 = Arc::clone(&flights);
            tokio::spawn(async move { f3.run("k", || None, || async { 9 }).await })
        };
        tokio::task::yield_now().await;
        tx.send(()).unwrap();
        assert_eq!(second.await.unwrap(), Some(5));
    }

    #[tokio::test]
    async fn a_panicking_flight_gives_none_and_lands() {
        let flights = Arc::new(Flights::<u32>::default());
        let v = flights
            .run("k", || None, || async { panic!("fetch bug") })
            .await;
        assert_eq!(v, None);
        assert_eq!(flights.in_flight(), 0);
    }
}
