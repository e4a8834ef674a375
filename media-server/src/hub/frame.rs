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
    /// RTMP chunks of this message as every RTMP viewer receives them,
    /// built by the first viewer that needs them (see `rtmp::chunk`).
    rtmp: OnceLock<Bytes>,
    /// The whole FLV tag (header, body, trailer) as every HTTP-FLV viewer
    /// receives it, built by the first one that needs it.
    flv: OnceLock<Bytes>,
}

impl Frame {
    /// Wraps a tag; its wire encodings are built when first asked for.
    pub fn new(tag: Tag) -> Self {
        Self {
            tag,
            rtmp: OnceLock::new(),
            flv: OnceLock::new(),
        }
    }

    /// The RTMP encoding, built once with `encode` and then shared.
    pub fn rtmp_chunks(&self, encode: impl FnOnce(&Tag) -> Bytes) -> &Bytes {
        self.rtmp.get_or_init(|| encode(&self.tag))
    }

    /// The whole FLV tag, shared by every HTTP-FLV viewer. One buffer
    /// rather than header, body and trailer: hyper frames each buffer of a
    /// response body as one HTTP chunk and flushes every 16 chunks, so one
    /// buffer per tag means one write per batch of tags instead of three.
    /// The price: the body is copied once per frame, so while HTTP-FLV
    /// viewers watch, the ring and GOP cache hold each frame twice.
    pub fn flv_tag(&self) -> &Bytes {
        self.flv.get_or_init(|| {
            let (header, trailer) = crate::flv::tag_framing(&self.tag);
            let mut tag = bytes::BytesMut::with_capacity(15 + self.tag.data.len());
            tag.extend_from_slice(&header);
            tag.extend_from_slice(&self.tag.data);
            tag.extend_from_slice(&trailer);
            tag.freeze()
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
