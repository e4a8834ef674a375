//! Entry points of the fuzz targets (`fuzz/`), kept in the library so the
//! normal test run replays the committed corpus through the very same code
//! (`media-server/tests/fuzz_corpus.rs`) without a nightly toolchain. Each
//! takes arbitrary bytes and must neither panic nor allocate what the input
//! merely claims.

use bytes::BytesMut;

use crate::amf0;
use crate::flv;
use crate::rtmp::chunk::Decoder;
use crate::rtmp::{ServerSession, SessionConfig};

/// Splits `data` into pieces of varying size, as a socket would deliver it.
fn pieces(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    let mut step = 1usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = step.min(rest.len());
        let (a, b) = rest.split_at(n);
        rest = b;
        step = step * 7 % 1500 + 1;
        Some(a)
    })
}

/// The chunk stream decoder: the first two bytes choose a chunk size, the
/// rest is the stream.
pub fn chunk_stream(data: &[u8]) {
    let mut dec = Decoder::new(1 << 20);
    let (head, body) = data.split_at(data.len().min(2));
    if head.len() == 2 {
        let _ = dec.set_chunk_size(u32::from(u16::from_be_bytes([head[0], head[1]])));
    }
    let mut input = BytesMut::new();
    for piece in pieces(body) {
        input.extend_from_slice(piece);
        // After an error the server closes the connection: so does this.
        while let Ok(Some(_)) = dec.decode(&mut input) {}
        if dec.decode(&mut input).is_err() {
            return;
        }
    }
}

/// A whole server session (handshake, chunks, commands) fed arbitrary bytes
/// after a valid simple handshake.
pub fn rtmp_session(data: &[u8]) {
    let mut s = ServerSession::new(
        SessionConfig {
            chunk_size: 4096,
            max_message_size: 1 << 20,
        },
        1,
    );
    let mut c0c1 = vec![3u8];
    c0c1.resize(1 + 2 * crate::rtmp::handshake::PACKET_LEN, 0);
    if s.feed(&c0c1).is_err() {
        return;
    }
    for piece in pieces(data) {
        match s.feed(piece) {
            Ok(events) => {
                for ev in events {
                    match ev {
                        crate::rtmp::ServerEvent::Connect { .. } => s.accept_connect(),
                        crate::rtmp::ServerEvent::Publish { name, .. } => s.accept_publish(&name),
                        crate::rtmp::ServerEvent::Play { name, .. } => s.accept_play(&name),
                        _ => {}
                    }
                }
                let _ = s.take_output();
            }
            Err(_) => return,
        }
    }
}

/// The AMF0 decoder; whatever decodes must re-encode to bytes that decode
/// to the same encoding (a fixed point after one round).
pub fn amf0_values(data: &[u8]) {
    if let Ok(values) = amf0::decode_all(data) {
        let once = amf0::encode_all(&values);
        let again = amf0::decode_all(&once).map(|v| amf0::encode_all(&v));
        assert_eq!(
            again.as_deref(),
            Ok(&once[..]),
            "AMF0 re-encoding is not stable"
        );
    }
}

/// The FLV tag parser, fed in pieces; tags it yields re-frame to the bytes
/// they came from.
pub fn flv_tags(data: &[u8]) {
    let mut r = flv::Reader::new();
    for piece in pieces(data) {
        r.push(piece);
        while let Ok(Some(tag)) = r.next_tag() {
            let mut out = BytesMut::new();
            flv::write_tag(&mut out, &tag);
            assert_eq!(&out[flv::TAG_HEADER_LEN..out.len() - 4], &tag.data[..]);
        }
        if r.next_tag().is_err() {
            return;
        }
    }
}

/// The HTTP listener's request-head scanner (size and slowloris limits):
/// the same bytes give the same verdict whole or in socket-sized pieces.
pub fn http_head(data: &[u8]) {
    use crate::http::request_head::{HeadScan, Scan};
    let max = 512;
    let mut whole = HeadScan::new(max);
    let verdict = whole.feed(data);
    let mut split = HeadScan::new(max);
    let mut split_verdict = None;
    for piece in pieces(data) {
        let v = split.feed(piece);
        split_verdict = Some(v);
        if v == Scan::TooLarge {
            break;
        }
    }
    if verdict == Scan::TooLarge {
        assert_eq!(
            split_verdict,
            Some(Scan::TooLarge),
            "split scan missed the limit"
        );
        assert_eq!(whole.head_len(), max + 1);
    } else {
        assert_ne!(
            split_verdict,
            Some(Scan::TooLarge),
            "split scan saw a limit the whole did not"
        );
        assert_eq!(whole.phase(), split.phase());
        assert_eq!(whole.head_len(), split.head_len());
        assert!(whole.head_len() <= max);
    }
}
