//! A media tag as the hub hands it out: shared by reference among every
//! viewer, with each protocol's wire bytes built at most once.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::media::Tag;

/// One published tag plus lazily built, shared wire encodings.
#[derive(Debug)]
pub struct Frame {
    /// The tag as the publisher sent it.
    pub tag: Tag,
    /// The 11-byte FLV tag header for HTTP-FLV/FLV files (the body is `tag.data`).
    pub flv_header: [u8; 11],
    /// The FLV "previous tag size" that follows the body.
    pub flv_trailer: [u8; 4],
    /// RTMP chunks of this message as every RTMP viewer receives them,
    /// built by the first viewer that needs them (see `rtmp::chunk`).
    rtmp: OnceLock<Bytes>,
    /// `flv_header` and `flv_trailer` as shareable buffers (HTTP bodies take `Bytes`).
    flv: OnceLock<(Bytes, Bytes)>,
}

impl Frame {
    /// Wraps a tag, computing its FLV framing (15 bytes, cheap).
    pub fn new(tag: Tag) -> Self {
        let (flv_header, flv_trailer) = crate::flv::tag_framing(&tag);
        Self {
            tag,
            flv_header,
            flv_trailer,
            rtmp: OnceLock::new(),
            flv: OnceLock::new(),
        }
    }

    /// The RTMP encoding, built once with `encode` and then shared.
    pub fn rtmp_chunks(&self, encode: impl FnOnce(&Tag) -> Bytes) -> &Bytes {
        self.rtmp.get_or_init(|| encode(&self.tag))
    }

    /// The FLV tag header and trailer as buffers shared by every HTTP-FLV viewer.
    pub fn flv_parts(&self) -> &(Bytes, Bytes) {
        self.flv.get_or_init(|| {
            (
                Bytes::copy_from_slice(&self.flv_header),
                Bytes::copy_from_slice(&self.flv_trailer),
            )
        })
    }

    /// Bytes of media this frame carries.
    pub fn len(&self) -> usize {
        self.tag.data.len()
    }

    /// True when the tag body is empty.
    pub fn is_empty(&self) -> bool {
        self.tag.data.is_empty()
    }
}
