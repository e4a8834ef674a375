//! One relayed stream: find it upstream, publish it into the local hub,
//! forward its tags, find it again if the upstream goes away (keeping the
//! publication, so viewers stay connected), and close once no viewer has
//! watched for the idle timeout.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tracing::{info, warn};

use super::rebase::Rebaser;
use super::{Edge, RETRY_PAUSE, RelayEntry, Status, lock};
use crate::hub::{Publisher, StreamKey};

/// Why a relay stopped.
#[derive(Debug)]
enum End {
    Idle,
    NotFound(String),
    Lost(String),
    /// The admin API disconnected the relayed stream.
    Kicked,
    Shutdown,
}

pub(super) async fn run(edge: Edge, key: StreamKey, entry: Arc<RelayEntry>) {
    let mut publisher = None;
    let end = drive(&edge, &key, &entry, &mut publisher).await;
    // Leave the table before ending the publication: a viewer arriving now
    // starts a fresh relay instead of joining one that is going away.
    edge.remove(&key, &entry);
    *lock(&entry.upstream) = None;
    let m = edge.metrics();
    match &end {
        End::Idle => info!(stream = %key, "relay closed: no viewers"),
        End::NotFound(why) => {
            m.pulls_failed.fetch_add(1, Ordering::Relaxed);
            info!(stream = %key, reason = %why, "stream not found upstream");
        }
        End::Lost(why) => {
            m.pulls_failed.fetch_add(1, Ordering::Relaxed);
            warn!(stream = %key, reason = %why, "relay lost its upstream");
        }
        End::Kicked => info!(stream = %key, "relay closed by the admin API"),
        End::Shutdown => {}
    }
    entry.status.send_replace(match end {
        End::NotFound(why) | End::Lost(why) => Status::Failed(why),
        End::Idle | End::Kicked | End::Shutdown => Status::Failed("relay closed".into()),
    });
    drop(publisher);
}

/// Viewers of `key` in the local hub (RTMP, HTTP-FLV, recent HLS sessions).
fn viewers(edge: &Edge, key: &StreamKey) -> u64 {
    edge.inner.hub.viewers(key)
}

async fn drive(
    edge: &Edge,
    key: &StreamKey,
    entry: &RelayEntry,
    publisher: &mut Option<Publisher>,
) -> End {
    let shutdown = edge.inner.shutdown.clone();
    let idle = edge.inner.idle;
    let mut rebase = Rebaser::new();
    let mut last_viewer = Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let pull = if publisher.is_none() {
            tokio::select! {
                r = edge.find(key) => match r {
                    Ok(p) => p,
                    Err(e) => return End::NotFound(e.to_string()),
                },
                () = shutdown.cancelled() => return End::Shutdown,
            }
        } else {
            // Failover: the publication (and so every viewer) stays while
            // the stream is looked for again.
            let deadline = Instant::now() + edge.inner.failover;
            loop {
                let r = tokio::select! {
                    r = edge.find(key) => r,
                    () = shutdown.cancelled() => return End::Shutdown,
                };
                match r {
                    Ok(p) => {
                        edge.metrics().failovers.fetch_add(1, Ordering::Relaxed);
                        break p;
                    }
                    Err(e) if Instant::now() >= deadline => return End::Lost(e.to_string()),
                    Err(_) => {}
                }
                if viewers(edge, key) > 0 {
                    last_viewer = Instant::now();
                } else if last_viewer.elapsed() >= idle {
                    return End::Idle;
                }
                tokio::select! {
                    () = tokio::time::sleep(RETRY_PAUSE) => {}
                    () = shutdown.cancelled() => return End::Shutdown,
                }
            }
        };
        edge.metrics().pulls_opened.fetch_add(1, Ordering::Relaxed);
        *lock(&entry.upstream) = Some(pull.upstream);
        info!(stream = %key, upstream = %pull.upstream, "relay pulling");
        // After a switch the new session's metadata goes out again just
        // before its first keyframe; HLS marks a discontinuity there.
        rebase.new_session();
        let p = match publisher {
            Some(p) => p,
            None => match edge.inner.hub.publish(key) {
                Ok(p) => {
                    entry.status.send_replace(Status::Live);
                    publisher.insert(p)
                }
                Err(e) => return End::NotFound(e.to_string()),
            },
        };
        for t in rebase.push(pull.first) {
            p.send(t);
        }
        let mut rx = pull.rx;
        let kicked = p.kicked();
        tokio::pin!(kicked);
        loop {
            tokio::select! {
                () = &mut kicked => return End::Kicked,
                t = rx.recv() => match t {
                    Some(t) => {
                        for out in rebase.push(t) {
                            p.send(out);
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if viewers(edge, key) > 0 {
                        last_viewer = Instant::now();
                    } else if last_viewer.elapsed() >= idle {
                        return End::Idle;
                    }
                }
                () = shutdown.cancelled() => return End::Shutdown,
            }
        }
        *lock(&entry.upstream) = None;
        info!(stream = %key, "upstream ended the stream; looking for it again");
    }
}

#[cfg(test)]
mod tests {
    use crate::hub::{Hub, HubConfig, Protocol, StreamKey};

    #[tokio::test]
    async fn idle_check_counts_every_kind_of_viewer() {
        let hub = Hub::new(HubConfig::default());
        let key = StreamKey::new("live", "a");
        assert_eq!(hub.viewers(&key), 0);
        let publisher = hub.publish(&key).unwrap();
        let rtmp = hub.subscribe(&key, Protocol::Rtmp);
        let flv = hub.subscribe_live(&key, Protocol::Flv).unwrap();
        let internal = hub.subscribe_internal(&key).unwrap();
        hub.hls_session_seen(&key, "player-1");
        assert_eq!(hub.viewers(&key), 3, "internal consumers are not viewers");
        drop((rtmp, flv, internal));
        assert_eq!(hub.viewers(&key), 1, "the HLS session still counts");
        drop(publisher);
    }
}
