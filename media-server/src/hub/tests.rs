use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::media::{Tag, TagKind};

fn key() -> StreamKey {
    StreamKey::new("live", "cam")
}

fn hub(queue: usize) -> Hub {
    Hub::new(HubConfig {
        queue_frames: queue,
        hls_session_secs: 30,
        // Most tests read frame by frame; batching has its own tests.
        release_interval: Duration::ZERO,
    })
}

fn video(ts: u32, key: bool) -> Tag {
    Tag {
        kind: TagKind::Video,
        timestamp: ts,
        data: Bytes::from(vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0xaa]),
    }
}

fn seq() -> Tag {
    Tag {
        kind: TagKind::Video,
        timestamp: 0,
        data: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64]),
    }
}

/// Publishes GOPs of `gop` frames: frame i is a keyframe when i % gop == 0.
fn publish_frames(p: &Publisher, from: u32, n: u32, gop: u32) {
    for i in from..from + n {
        p.send(video(i, i % gop == 0));
    }
}

async fn frames(sub: &mut Subscriber, max: usize) -> Vec<Arc<Frame>> {
    let mut out = Vec::new();
    sub.recv(&mut out, max).await.unwrap();
    out.into_iter()
        .filter_map(|d| match d {
            Delivery::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn second_publisher_is_refused_and_first_keeps_going() {
    let hub = hub(64);
    let first = hub.publish(&key()).unwrap();
    let err = hub.publish(&key()).unwrap_err();
    assert_eq!(err, PublishError::AlreadyPublishing(key()));
    assert!(err.to_string().contains("already publishing"));
    let mut sub = hub.subscribe(&key(), Protocol::Rtmp);
    first.send(video(0, true));
    assert_eq!(frames(&mut sub, 10).await.len(), 1);
    drop(first);
    // After the first ends, a new publisher may start.
    let again = hub.publish(&key()).unwrap();
    assert_eq!(again.epoch(), 2);
}

#[tokio::test]
async fn viewers_share_the_same_bytes() {
    let hub = hub(64);
    let p = hub.publish(&key()).unwrap();
    let mut a = hub.subscribe(&key(), Protocol::Rtmp);
    let mut b = hub.subscribe(&key(), Protocol::Flv);
    p.send(video(0, true));
    let fa = frames(&mut a, 10).await;
    let fb = frames(&mut b, 10).await;
    assert!(Arc::ptr_eq(&fa[0], &fb[0]));
    assert_eq!(fa[0].tag.data.as_ptr(), fb[0].tag.data.as_ptr());
}

#[tokio::test]
async fn late_viewer_starts_on_a_keyframe_with_headers() {
    let hub = hub(256);
    let p = hub.publish(&key()).unwrap();
    p.send(crate::flv::tests_support::metadata_tag());
    p.send(seq());
    publish_frames(&p, 0, 45, 30);
    let mut late = hub.subscribe(&key(), Protocol::Flv);
    let got = frames(&mut late, 1000).await;
    assert_eq!(got[0].tag.kind, TagKind::Script);
    assert!(got[1].tag.is_sequence_header());
    assert!(got[2].tag.is_keyframe());
    assert_eq!(got[2].tag.timestamp, 30);
    assert_eq!(got.len(), 2 + 15);
}

#[tokio::test]
async fn slow_viewer_skips_to_a_keyframe_and_never_slows_others() {
    let hub = hub(16);
    let p = hub.publish(&key()).unwrap();
    let mut fast = hub.subscribe(&key(), Protocol::Rtmp);
    let mut slow = hub.subscribe(&key(), Protocol::Rtmp);
    let mut fast_count = 0;
    // 100 frames, GOPs of 10; the fast viewer reads after every frame, the
    // slow one never does until the end.
    for i in 0..100 {
        p.send(video(i, i % 10 == 0));
        fast_count += frames(&mut fast, 100).await.len();
    }
    assert_eq!(fast_count, 100);
    let got = frames(&mut slow, 1000).await;
    assert!(got[0].tag.is_keyframe(), "resumes on a keyframe");
    assert_eq!(got[0].tag.timestamp, 90);
    let infos = hub.stream_infos();
    assert!(infos[0].dropped_frames > 0);
    assert_eq!(
        hub.metrics().dropped_frames.get(Protocol::Rtmp),
        infos[0].dropped_frames
    );
}

#[tokio::test(start_paused = true)]
async fn viewer_that_keeps_lagging_is_dropped() {
    let hub = hub(16);
    let p = hub.publish(&key()).unwrap();
    let mut slow = hub.subscribe(&key(), Protocol::Flv);
    let mut result = Ok(());
    let mut ts = 0;
    for _ in 0..=MAX_LAGS {
        publish_frames(&p, ts, 40, 10);
        ts += 40;
        let mut out = Vec::new();
        // Read what is there at once, then fall behind again.
        result = slow.recv(&mut out, 1000).await;
        if result.is_err() {
            break;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(result, Err(SubscriberClosed::TooSlow));
    assert_eq!(hub.metrics().slow_viewers_dropped.get(Protocol::Flv), 1);
}

#[tokio::test(start_paused = true)]
async fn occasional_lag_is_forgiven_after_the_window() {
    let hub = hub(16);
    let p = hub.publish(&key()).unwrap();
    let mut slow = hub.subscribe(&key(), Protocol::Flv);
    let mut ts = 0;
    for _ in 0..(MAX_LAGS * 3) {
        publish_frames(&p, ts, 40, 10);
        ts += 40;
        let mut out = Vec::new();
        slow.recv(&mut out, 1000).await.unwrap();
        tokio::time::advance(LAG_WINDOW + Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn internal_consumers_follow_publications_uncounted() {
    let hub = hub(64);
    let mut events = hub.publications();
    let p = hub.publish(&key()).unwrap();
    let ev = events.recv().await.unwrap();
    assert_eq!(
        ev,
        PublicationEvent::Started {
            key: key(),
            epoch: 1
        }
    );
    let mut internal = hub.subscribe_internal(&key()).unwrap();
    let _viewer = hub.subscribe(&key(), Protocol::Rtmp);
    p.send(video(0, true));
    assert_eq!(frames(&mut internal, 10).await.len(), 1);
    let info = &hub.stream_infos()[0];
    assert_eq!(info.viewers, 1);
    assert_eq!(info.viewers_by_protocol["rtmp"], 1);
    drop(p);
    assert!(matches!(
        events.recv().await.unwrap(),
        PublicationEvent::Ended { .. }
    ));
    let mut out = Vec::new();
    internal.recv(&mut out, 10).await.unwrap();
    assert!(matches!(out[0], Delivery::Unpublished));
    assert!(
        hub.subscribe_internal(&StreamKey::new("live", "nope"))
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn hls_sessions_count_while_recent() {
    let hub = hub(64);
    let _p = hub.publish(&key()).unwrap();
    hub.hls_session_seen(&key(), "a");
    hub.hls_session_seen(&key(), "b");
    hub.hls_session_seen(&key(), "a");
    assert_eq!(hub.stream_infos()[0].viewers_by_protocol["hls"], 2);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(hub.stream_infos()[0].viewers, 0);
}

#[tokio::test]
async fn unused_streams_are_forgotten_and_codecs_reported() {
    let hub = hub(64);
    {
        let p = hub.publish(&key()).unwrap();
        p.send(seq());
        p.send(Tag {
            kind: TagKind::Audio,
            timestamp: 0,
            data: Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        });
        let info = &hub.stream_infos()[0];
        assert_eq!(info.video_codec.as_deref(), Some("h264"));
        assert_eq!(info.audio_codec.as_deref(), Some("aac"));
        assert!(hub.is_live(&key()));
    }
    assert!(hub.stream_infos().is_empty());
    assert!(hub.live_streams().is_empty());
    assert!(lock(&hub.inner.streams).is_empty());
}

#[tokio::test]
async fn a_lagging_viewer_still_learns_the_publisher_left() {
    let hub = hub(16);
    let p = hub.publish(&key()).unwrap();
    let mut slow = hub.subscribe(&key(), Protocol::Rtmp);
    publish_frames(&p, 0, 100, 10);
    drop(p);
    let mut out = Vec::new();
    slow.recv(&mut out, 1000).await.unwrap();
    assert!(matches!(out.last(), Some(Delivery::Unpublished)), "{out:?}");
    assert!(!slow.is_live());
    assert!(hub.metrics().dropped_frames.get(Protocol::Rtmp) > 0);
}

#[tokio::test]
async fn disconnect_publisher_fires_only_the_current_publication() {
    let hub = hub(64);
    assert!(!hub.disconnect_publisher(&key()), "nobody publishes yet");
    let first = hub.publish(&key()).unwrap();
    let kicked = first.kicked();
    assert!(hub.disconnect_publisher(&key()));
    tokio::time::timeout(Duration::from_secs(1), kicked)
        .await
        .expect("the first publisher is told to go");
    drop(first);
    assert!(!hub.disconnect_publisher(&key()), "the stream ended");
    let second = hub.publish(&key()).unwrap();
    // A new publication starts with a fresh token: not fired.
    tokio::select! {
        biased;
        () = second.kicked() => panic!("the second publisher was kicked too"),
        () = std::future::ready(()) => {}
    }
}

fn batching_hub() -> Hub {
    Hub::new(HubConfig {
        release_interval: Duration::from_millis(200),
        ..HubConfig::default()
    })
}

/// Polls `fut` (registering it as a waiter) and says whether it is still
/// pending after 1 ms of the paused clock.
async fn still_waiting<F: std::future::Future + Unpin>(fut: &mut F) -> bool {
    tokio::time::timeout(Duration::from_millis(1), fut)
        .await
        .is_err()
}

async fn within(sub: &mut Subscriber, ms: u64) -> Option<Vec<Arc<Frame>>> {
    tokio::time::timeout(Duration::from_millis(ms), frames(sub, 1000))
        .await
        .ok()
}

#[tokio::test(start_paused = true)]
async fn viewers_are_woken_per_interval_and_at_once_for_a_keyframe() {
    let hub = batching_hub();
    let p = hub.publish(&key()).unwrap();
    let mut viewer = hub.subscribe(&key(), Protocol::Rtmp);
    let mut segmenter = hub.subscribe_internal(&key()).unwrap();
    // A keyframe reaches the waiting viewer at once.
    p.send(video(0, true));
    assert_eq!(within(&mut viewer, 1).await.map(|f| f.len()), Some(1));
    assert_eq!(within(&mut segmenter, 1).await.map(|f| f.len()), Some(1));
    // A viewer waiting when frames between keyframes come is woken at the
    // end of the interval, for all of them at once.
    let mut waiting = Box::pin(frames(&mut viewer, 1000));
    let mut waiting_internal = Box::pin(frames(&mut segmenter, 1000));
    assert!(still_waiting(&mut waiting).await);
    assert!(still_waiting(&mut waiting_internal).await);
    p.send(video(33, false));
    // Internal consumers (HLS, recording) are woken for every frame.
    let got = tokio::time::timeout(Duration::from_millis(1), waiting_internal).await;
    assert_eq!(got.map(|f| f.len()).ok(), Some(1));
    p.send(video(66, false));
    assert!(
        tokio::time::timeout(Duration::from_millis(150), &mut waiting)
            .await
            .is_err(),
        "not woken before the interval ends"
    );
    let got = tokio::time::timeout(Duration::from_millis(100), waiting)
        .await
        .expect("woken by the end of the interval");
    assert_eq!(
        got.iter().map(|f| f.tag.timestamp).collect::<Vec<_>>(),
        vec![33, 66]
    );
    // A keyframe wakes the viewer at once, with what waited before it.
    let mut waiting = Box::pin(frames(&mut viewer, 1000));
    assert!(still_waiting(&mut waiting).await);
    p.send(video(99, false));
    p.send(video(132, true));
    let got = tokio::time::timeout(Duration::from_millis(1), waiting)
        .await
        .expect("a keyframe wakes at once");
    assert_eq!(
        got.iter().map(|f| f.tag.timestamp).collect::<Vec<_>>(),
        vec![99, 132]
    );
}

#[tokio::test(start_paused = true)]
async fn viewers_hear_of_the_publisher_leaving_at_once() {
    let hub = batching_hub();
    let p = hub.publish(&key()).unwrap();
    let mut viewer = hub.subscribe(&key(), Protocol::Flv);
    p.send(video(0, true));
    assert!(within(&mut viewer, 1).await.is_some());
    let mut out = Vec::new();
    let mut waiting = Box::pin(viewer.recv(&mut out, 100));
    assert!(still_waiting(&mut waiting).await);
    p.send(video(33, false));
    drop(p);
    tokio::time::timeout(Duration::from_millis(1), waiting)
        .await
        .expect("woken at once")
        .unwrap();
    assert!(matches!(out[0], Delivery::Frame(_)));
    assert!(matches!(out[1], Delivery::Unpublished));
}

#[tokio::test(start_paused = true)]
async fn an_edge_relay_is_woken_for_every_frame_and_counted() {
    let hub = batching_hub();
    let p = hub.publish(&key()).unwrap();
    let mut relay = hub.subscribe_relay(&key());
    p.send(video(0, true));
    assert!(within(&mut relay, 1).await.is_some());
    let mut waiting = Box::pin(frames(&mut relay, 1000));
    assert!(still_waiting(&mut waiting).await);
    p.send(video(33, false));
    let got = tokio::time::timeout(Duration::from_millis(1), waiting).await;
    assert_eq!(
        got.map(|f| f.len()).ok(),
        Some(1),
        "not held for the interval"
    );
    assert_eq!(hub.viewers(&key()), 1);
}
