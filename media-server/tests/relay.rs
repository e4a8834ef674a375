//! The crate's own RTMP client (the one edges and media-bench use) against
//! the server in process: push tags, pull them back unchanged; a second
//! publisher is refused with the documented status.
#![allow(clippy::unwrap_used, clippy::panic, clippy::cast_possible_truncation)]

use std::time::Duration;

use bytes::Bytes;
use fleetcast_media::config::Config;
use fleetcast_media::media::{Tag, TagKind};
use fleetcast_media::rtmp::{PullError, Puller, Pusher};
use fleetcast_media::server::{self, AppState};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

fn tags() -> Vec<Tag> {
    let mut v = vec![
        Tag {
            kind: TagKind::Video,
            timestamp: 0,
            data: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1e, 0xff]),
        },
        Tag {
            kind: TagKind::Audio,
            timestamp: 0,
            data: Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        },
    ];
    for i in 0..90u32 {
        let mut body = vec![if i % 30 == 0 { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        body.extend((0..(i * 97 % 9000)).map(|b| (b % 251) as u8));
        v.push(Tag {
            kind: TagKind::Video,
            timestamp: i * 33,
            data: body.into(),
        });
        v.push(Tag {
            kind: TagKind::Audio,
            timestamp: i * 33 + 5,
            data: Bytes::from(vec![0xaf, 1, i as u8]),
        });
    }
    v
}

#[tokio::test]
async fn pushed_tags_come_back_unchanged_and_a_second_publisher_is_refused() {
    let data = std::env::temp_dir().join(format!("fleetcast-relay-{}", std::process::id()));
    let mut config = Config::default();
    config.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir.clone_from(&data);
    let listeners = server::bind(&config).await.unwrap();
    let url = format!("rtmp://{}/live/relay", listeners.rtmp.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let state = AppState::new(config, shutdown.clone());
    let hub = state.hub.clone();
    let task = tokio::spawn(server::run(listeners, state));

    // The puller waits for the stream before the publisher starts, so it
    // must receive every tag.
    let mut puller = Puller::connect(&url, TIMEOUT).await.unwrap();
    let mut pusher = Pusher::connect(&url, TIMEOUT).await.unwrap();
    let second = Pusher::connect(&url, TIMEOUT).await.unwrap_err();
    match second {
        PullError::Refused { code, description } => {
            assert_eq!(code, "NetStream.Publish.BadName");
            assert_eq!(description, "stream already publishing");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    let sent = tags();
    for t in &sent {
        pusher.send(t).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let tag = tokio::time::timeout(TIMEOUT, puller.next_tag())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.push(tag);
    }
    assert_eq!(got, sent);
    assert!(hub.is_live(&fleetcast_media::hub::StreamKey::new("live", "relay")));
    pusher.finish().await.unwrap();
    // The puller is told the stream ended.
    let end = tokio::time::timeout(TIMEOUT, puller.next_tag())
        .await
        .unwrap()
        .unwrap();
    assert!(end.is_none());
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&data);
}
