//! FLV framing: the file header, the 11-byte tag header and 4-byte trailer
//! around each tag body, an incremental tag parser (for files and HTTP-FLV
//! streams), and script-tag helpers. Pure: bytes in, tags out.

mod reader;

pub use reader::{FlvError, MAX_TAG_SIZE, Reader, parse_all};

use bytes::{BufMut, Bytes, BytesMut};

use crate::amf0;
use crate::media::{Tag, TagKind};

/// Length of the FLV file header plus the first "previous tag size" (0).
pub const FILE_HEADER_LEN: usize = 13;
/// Length of a tag header.
pub const TAG_HEADER_LEN: usize = 11;

/// The FLV file header (`FLV`, version 1, flags) followed by `PreviousTagSize0`.
pub fn file_header(has_audio: bool, has_video: bool) -> [u8; FILE_HEADER_LEN] {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// The tag header and the trailing previous-tag-size that frame `tag.data`.
pub fn tag_framing(tag: &Tag) -> ([u8; TAG_HEADER_LEN], [u8; 4]) {
    // Bodies over 16 MiB cannot be framed; the hub never receives them
    // because the RTMP message limit is smaller.
    let len = u32::try_from(tag.data.len()).unwrap_or(u32::MAX) & 0x00ff_ffff;
    let ts = tag.timestamp;
    let l = len.to_be_bytes();
    let t = ts.to_be_bytes();
    let header = [
        tag.kind.type_id(),
        l[1],
        l[2],
        l[3],
        t[1],
        t[2],
        t[3],
        t[0], // TimestampExtended: the high byte.
        0,
        0,
        0,
    ];
    let trailer = (len + 11).to_be_bytes();
    (header, trailer)
}

/// Appends one framed tag.
pub fn write_tag(out: &mut BytesMut, tag: &Tag) {
    let (h, t) = tag_framing(tag);
    out.put_slice(&h);
    out.put_slice(&tag.data);
    out.put_slice(&t);
}

/// The name a script tag starts with (`onMetaData`, `@setDataFrame`), read
/// without decoding the rest.
pub fn script_name(data: &[u8]) -> Option<&str> {
    if data.first() != Some(&2) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*data.get(1)?, *data.get(2)?]));
    std::str::from_utf8(data.get(3..3 + len)?).ok()
}

/// RTMP publishers send metadata as `@setDataFrame, onMetaData, {...}`;
/// viewers and files expect `onMetaData, {...}`. Strips the first value when
/// it is `@setDataFrame` (sharing the buffer, no copy).
pub fn strip_set_data_frame(data: Bytes) -> Bytes {
    match script_name(&data) {
        Some("@setDataFrame") => data.slice(3 + "@setDataFrame".len()..),
        _ => data,
    }
}

/// Builds an `onMetaData` script tag body from properties.
pub fn metadata_body(props: Vec<(String, amf0::Value)>) -> Bytes {
    amf0::encode_all(&[
        amf0::Value::string("onMetaData"),
        amf0::Value::EcmaArray(props),
    ])
    .freeze()
}

/// A script tag at `timestamp` with `body`.
pub fn script_tag(timestamp: u32, body: Bytes) -> Tag {
    Tag {
        kind: TagKind::Script,
        timestamp,
        data: body,
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A small `onMetaData` tag.
    pub fn metadata_tag() -> Tag {
        script_tag(
            0,
            metadata_body(vec![("width".into(), amf0::Value::Number(640.0))]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_matches_the_spec() {
        let tag = Tag {
            kind: TagKind::Video,
            timestamp: 0x0102_0304,
            data: Bytes::from_static(&[0x17, 1, 0, 0, 0]),
        };
        let (h, t) = tag_framing(&tag);
        assert_eq!(h, [9, 0, 0, 5, 2, 3, 4, 1, 0, 0, 0]);
        assert_eq!(t, [0, 0, 0, 16]);
    }

    #[test]
    fn set_data_frame_is_stripped() {
        let body = amf0::encode_all(&[
            amf0::Value::string("@setDataFrame"),
            amf0::Value::string("onMetaData"),
            amf0::Value::EcmaArray(vec![]),
        ])
        .freeze();
        let stripped = strip_set_data_frame(body);
        assert_eq!(script_name(&stripped), Some("onMetaData"));
        let values = amf0::decode_all(&stripped).unwrap();
        assert_eq!(values.len(), 2);
        assert_eq!(script_name(&metadata_body(vec![])), Some("onMetaData"));
        assert_eq!(script_name(&[2, 0, 5, b'a']), None);
    }

    #[test]
    fn file_header_flags() {
        assert_eq!(file_header(true, true)[4], 5);
        assert_eq!(file_header(false, true)[4], 1);
    }
}
