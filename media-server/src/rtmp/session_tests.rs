use bytes::Bytes;

use super::*;
use crate::rtmp::client::{ClientEvent, ClientSession, Mode};

fn server() -> ServerSession {
    ServerSession::new(
        SessionConfig {
            chunk_size: 4096,
            max_message_size: 1 << 20,
        },
        1,
    )
}

/// Moves bytes both ways until neither side has output; the server's events
/// are answered by `decide`.
fn pump(
    s: &mut ServerSession,
    c: &mut ClientSession,
    decide: &mut dyn FnMut(&mut ServerSession, &ServerEvent),
) -> (Vec<ServerEvent>, Vec<ClientEvent>) {
    let mut sev = Vec::new();
    let mut cev = Vec::new();
    for _ in 0..50 {
        let mut moved = false;
        if let Some(b) = c.take_output() {
            moved = true;
            for ev in s.feed(&b).unwrap() {
                decide(s, &ev);
                sev.push(ev);
            }
        }
        if let Some(b) = s.take_output() {
            moved = true;
            cev.extend(c.feed(&b).unwrap());
        }
        if !moved {
            break;
        }
    }
    (sev, cev)
}

fn accept_all(s: &mut ServerSession, ev: &ServerEvent) {
    match ev {
        ServerEvent::Connect { .. } => s.accept_connect(),
        ServerEvent::Publish { name, .. } => s.accept_publish(name),
        ServerEvent::Play { name, .. } => s.accept_play(name),
        _ => {}
    }
}

#[test]
fn publish_flow_delivers_media_and_metadata() {
    let mut s = server();
    let mut c = ClientSession::new(Mode::Publish, "rtmp://h/live", "live", "cam?key=1", 1 << 20);
    let (sev, cev) = pump(&mut s, &mut c, &mut accept_all);
    assert_eq!(
        sev[0],
        ServerEvent::Connect {
            app: "live".into(),
            relay: false
        }
    );
    assert_eq!(
        sev[1],
        ServerEvent::Publish {
            name: "cam".into(),
            query: Some("key=1".into())
        }
    );
    assert!(cev.contains(&ClientEvent::Started));
    let meta = crate::amf0::encode_all(&[
        crate::amf0::Value::string("@setDataFrame"),
        crate::amf0::Value::string("onMetaData"),
        crate::amf0::Value::EcmaArray(vec![]),
    ]);
    c.send_media(&Tag {
        kind: TagKind::Script,
        timestamp: 0,
        data: meta.freeze(),
    });
    let frame = Bytes::from(vec![0x17u8; 10_000]);
    c.send_media(&Tag {
        kind: TagKind::Video,
        timestamp: 40,
        data: frame.clone(),
    });
    let (sev, _) = pump(&mut s, &mut c, &mut accept_all);
    let ServerEvent::Media(meta) = &sev[0] else {
        panic!("{sev:?}")
    };
    assert_eq!(crate::flv::script_name(&meta.data), Some("onMetaData"));
    assert_eq!(
        sev[1],
        ServerEvent::Media(Tag {
            kind: TagKind::Video,
            timestamp: 40,
            data: frame
        })
    );
}

#[test]
fn refused_publish_reports_bad_name() {
    let mut s = server();
    let mut c = ClientSession::new(Mode::Publish, "rtmp://h/live", "live", "cam", 1 << 20);
    let (_, cev) = pump(&mut s, &mut c, &mut |s, ev| match ev {
        ServerEvent::Publish { .. } => {
            s.reject_publish("NetStream.Publish.BadName", "stream already publishing");
        }
        other => accept_all(s, other),
    });
    assert!(cev.iter().any(
        |e| matches!(e, ClientEvent::Status { code, description, .. }
        if code == "NetStream.Publish.BadName" && description == "stream already publishing")
    ));
    assert!(!cev.contains(&ClientEvent::Started));
}

#[test]
fn play_flow_receives_shared_chunks() {
    let mut s = server();
    let mut c = ClientSession::new(Mode::Play, "rtmp://h/live", "live", "cam", 1 << 20);
    let (sev, cev) = pump(&mut s, &mut c, &mut accept_all);
    assert_eq!(
        sev[1],
        ServerEvent::Play {
            name: "cam".into(),
            query: None
        }
    );
    assert!(cev.contains(&ClientEvent::Started));
    // Media goes out as pre-encoded chunks written straight to the socket.
    let tag = Tag {
        kind: TagKind::Audio,
        timestamp: 0x0100_0000,
        data: Bytes::from(vec![0xaf; 9000]),
    };
    let bytes = message::media_chunks(&tag, 4096);
    let ev = c.feed(&bytes).unwrap();
    assert_eq!(ev, vec![ClientEvent::Media(tag)]);
    s.unpublish_notify("cam");
    let ev = c.feed(&s.take_output().unwrap()).unwrap();
    assert!(ev.iter().any(|e| matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.UnpublishNotify")));
}

#[test]
fn unknown_app_is_rejected() {
    let mut s = server();
    let mut c = ClientSession::new(Mode::Play, "rtmp://h/nope", "nope", "cam", 1 << 20);
    let (_, cev) = pump(&mut s, &mut c, &mut |s, ev| {
        if let ServerEvent::Connect { app, .. } = ev {
            s.reject_connect(&format!("unknown application {app}"));
        }
    });
    assert!(cev.iter().any(|e| matches!(e, ClientEvent::Status { code, .. } if code == "NetConnection.Connect.Rejected")));
}

#[test]
fn acknowledgements_follow_the_peer_window() {
    let mut s = server();
    let mut c = ClientSession::new(Mode::Publish, "rtmp://h/live", "live", "cam", 1 << 20);
    pump(&mut s, &mut c, &mut accept_all);
    // The client announced a 5 MB window; send 6 MB of video.
    for i in 0..600 {
        c.send_media(&Tag {
            kind: TagKind::Video,
            timestamp: i,
            data: Bytes::from(vec![0x27u8; 10_000]),
        });
    }
    let bytes = c.take_output().unwrap();
    s.feed(&bytes).unwrap();
    let out = s.take_output().unwrap();
    let mut dec = chunk::Decoder::new(1 << 20);
    let mut input = BytesMut::from(&out[..]);
    let msg = dec.decode(&mut input).unwrap().unwrap();
    assert_eq!(msg.type_id, type_id::ACK);
}

#[test]
fn garbage_is_an_error() {
    let mut s = server();
    assert!(matches!(
        s.feed(b"GET / HTTP/1.1\r\n"),
        Err(RtmpError::Handshake(_))
    ));
    let mut s = server();
    let mut c = ClientSession::new(Mode::Play, "rtmp://h/live", "live", "cam", 1 << 20);
    pump(&mut s, &mut c, &mut accept_all);
    // A command whose AMF claims a 60 KB string in a 20-byte message.
    let mut bad = BytesMut::new();
    chunk::encode(
        &mut bad,
        3,
        type_id::COMMAND_AMF0,
        0,
        0,
        &[2, 0xff, 0xff, b'x', 0, 0, 0],
        128,
    );
    assert!(matches!(s.feed(&bad), Err(RtmpError::Amf(_))));
}

#[test]
fn amf_messages_over_their_cap_are_refused_before_decoding() {
    // Found in review: an 8 MiB command of nulls was decoded for any peer.
    assert!(check_amf_size(&vec![5; MAX_COMMAND_BYTES], MAX_COMMAND_BYTES, "command").is_ok());
    assert!(matches!(
        check_amf_size(
            &vec![5; MAX_COMMAND_BYTES + 1],
            MAX_COMMAND_BYTES,
            "command"
        ),
        Err(RtmpError::Protocol(_))
    ));
    assert!(check_amf_size(&vec![5; MAX_DATA_BYTES + 1], MAX_DATA_BYTES, "data").is_err());
}

#[test]
fn an_edge_relay_pull_says_so_in_connect() {
    let mut s = server();
    let mut c = ClientSession::new(Mode::Play, "rtmp://h/live", "live", "cam", 1 << 20).as_relay();
    let (sev, _) = pump(&mut s, &mut c, &mut accept_all);
    assert_eq!(
        sev[0],
        ServerEvent::Connect {
            app: "live".into(),
            relay: true
        }
    );
}
