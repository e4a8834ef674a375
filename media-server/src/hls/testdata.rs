//! Synthetic H.264/AAC tags for unit tests: real-looking codec
//! configuration and frames with the stream's exact timing.

use bytes::Bytes;

use crate::media::{Tag, TagKind};
use crate::ts::codec::AvcConfig;

pub const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0];
pub const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

pub fn avc_sequence_header(ts: u32) -> Tag {
    let mut data = vec![0x17, 0, 0, 0, 0];
    data.extend(AvcConfig::record(&[SPS], &[PPS]));
    Tag {
        kind: TagKind::Video,
        timestamp: ts,
        data: Bytes::from(data),
    }
}

pub fn aac_sequence_header(ts: u32) -> Tag {
    Tag {
        kind: TagKind::Audio,
        timestamp: ts,
        data: Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
    }
}

/// A video frame whose payload encodes its timestamp (so frames differ).
pub fn video_frame(ts: u32, key: bool, size: usize) -> Tag {
    let nal_type = if key { 0x65 } else { 0x41 };
    let mut nal = vec![nal_type];
    nal.extend_from_slice(&ts.to_be_bytes());
    nal.resize(size.max(5), 0x5a);
    let mut data = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    data.extend_from_slice(&u32::try_from(nal.len()).unwrap().to_be_bytes());
    data.extend(nal);
    Tag {
        kind: TagKind::Video,
        timestamp: ts,
        data: Bytes::from(data),
    }
}

pub fn audio_frame(ts: u32) -> Tag {
    let mut data = vec![0xaf, 1];
    data.extend_from_slice(&ts.to_be_bytes());
    data.resize(200, 0x21);
    Tag {
        kind: TagKind::Audio,
        timestamp: ts,
        data: Bytes::from(data),
    }
}

/// Sequence headers, then 30 fps video with a keyframe every `gop_ms` and
/// ~43 Hz audio, interleaved by timestamp, from `from_ms` to `to_ms`.
pub fn stream(from_ms: u32, to_ms: u32, gop_ms: u32) -> Vec<Tag> {
    let mut tags = vec![
        script(from_ms),
        avc_sequence_header(from_ms),
        aac_sequence_header(from_ms),
    ];
    let mut v = 0u32;
    let mut a = 0u32;
    loop {
        let vt = from_ms + v * 100 / 3;
        let at = from_ms + a * 1024 * 1000 / 44100;
        if vt >= to_ms && at >= to_ms {
            break;
        }
        if vt <= at {
            tags.push(video_frame(vt, (vt - from_ms) % gop_ms < 33, 3000));
            v += 1;
        } else {
            tags.push(audio_frame(at));
            a += 1;
        }
    }
    tags
}

pub fn script(ts: u32) -> Tag {
    Tag {
        kind: TagKind::Script,
        timestamp: ts,
        data: Bytes::from_static(b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09"),
    }
}

/// Metadata other than [`script`]'s (another encoder session: `width: 640`).
pub fn other_script(ts: u32) -> Tag {
    Tag {
        kind: TagKind::Script,
        timestamp: ts,
        data: Bytes::from_static(
            b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x01\x00\x05width\x00\x40\x84\x00\x00\x00\x00\x00\x00\x00\x00\x09",
        ),
    }
}
