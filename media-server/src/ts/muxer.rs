//! Tags in, MPEG-TS bytes out: tracks the stream's codec configuration from
//! its sequence headers and writes each audio/video tag as one PES.

use thiserror::Error;

use super::codec::{AacConfig, AvcConfig, CodecError, avcc_to_annexb};
use super::packet::{AUDIO_PID, Counters, Pes, VIDEO_PID, write_pes, write_psi};
use crate::media::{AUDIO_FORMAT_AAC, Tag, TagKind, VIDEO_CODEC_AVC};

/// Why a tag could not be muxed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MuxError {
    /// The codec payload is malformed.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// What a tag turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Muxed {
    /// Codec configuration was taken; nothing written.
    Config,
    /// A frame was written.
    Frame,
    /// Not carried in TS (script data, other codecs, frames before their config).
    Skipped,
}

/// MPEG-TS muxer for H.264 + AAC.
#[derive(Debug, Default, Clone)]
pub struct TsMuxer {
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
    counters: Counters,
}

/// The PCR runs this far (100 ms, 90 kHz) behind the decode time it rides
/// with, so audio interleaved just before a video frame is never late for
/// strict decoders.
const PCR_LEAD: u64 = 9000;

/// Milliseconds to the 90 kHz MPEG clock.
fn to_90k(ms: i64) -> u64 {
    u64::try_from(ms.max(0)).unwrap_or(0).wrapping_mul(90)
}

impl TsMuxer {
    /// A muxer with no codec configuration yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// True once an AVC sequence header has been seen.
    pub fn has_video(&self) -> bool {
        self.avc.is_some()
    }

    /// True once an AAC sequence header has been seen.
    pub fn has_audio(&self) -> bool {
        self.aac.is_some()
    }

    /// Starts a new segment: fresh continuity counters, then PAT and PMT, so
    /// every segment decodes on its own and its bytes depend only on its tags.
    pub fn begin_segment(&mut self, out: &mut Vec<u8>) {
        self.counters = Counters::default();
        let (video, audio) = (self.has_video(), self.has_audio());
        write_psi(out, &mut self.counters, video, audio);
    }

    /// Takes a sequence header or writes one frame at `dts_ms` (the stream's
    /// continuous timeline) to `out`.
    pub fn write_tag(
        &mut self,
        tag: &Tag,
        dts_ms: u64,
        out: &mut Vec<u8>,
    ) -> Result<Muxed, MuxError> {
        let dts = i64::try_from(dts_ms).unwrap_or(i64::MAX);
        match tag.kind {
            TagKind::Video => self.write_video(tag, dts, out),
            TagKind::Audio => self.write_audio(tag, dts, out),
            TagKind::Script => Ok(Muxed::Skipped),
        }
    }

    fn write_video(&mut self, tag: &Tag, dts: i64, out: &mut Vec<u8>) -> Result<Muxed, MuxError> {
        let d = &tag.data;
        if d.len() < 5 || d[0] & 0x80 != 0 || d[0] & 0x0f != VIDEO_CODEC_AVC {
            return Ok(Muxed::Skipped);
        }
        match d[1] {
            0 => {
                self.avc = Some(AvcConfig::parse(&d[5..])?);
                Ok(Muxed::Config)
            }
            1 => {
                let Some(config) = &self.avc else {
                    return Ok(Muxed::Skipped);
                };
                let keyframe = tag.is_keyframe();
                let mut es = Vec::with_capacity(d.len() + 64);
                avcc_to_annexb(&d[5..], config, keyframe, &mut es)?;
                let pts = to_90k(dts + i64::from(tag.composition_time()));
                let dts = to_90k(dts);
                write_pes(
                    out,
                    &mut self.counters,
                    &Pes {
                        pid: VIDEO_PID,
                        stream_id: 0xe0,
                        pts,
                        dts,
                        pcr: Some(dts.saturating_sub(PCR_LEAD)),
                        random_access: keyframe,
                        payload: &es,
                    },
                );
                Ok(Muxed::Frame)
            }
            _ => Ok(Muxed::Skipped),
        }
    }

    fn write_audio(&mut self, tag: &Tag, dts: i64, out: &mut Vec<u8>) -> Result<Muxed, MuxError> {
        let d = &tag.data;
        if d.len() < 2 || d[0] >> 4 != AUDIO_FORMAT_AAC {
            return Ok(Muxed::Skipped);
        }
        if d[1] == 0 {
            self.aac = Some(AacConfig::parse(&d[2..])?);
            return Ok(Muxed::Config);
        }
        let Some(config) = self.aac else {
            return Ok(Muxed::Skipped);
        };
        let mut es = Vec::with_capacity(d.len() + 7);
        config.write_adts(&d[2..], &mut es)?;
        let ts = to_90k(dts);
        let audio_only = !self.has_video();
        write_pes(
            out,
            &mut self.counters,
            &Pes {
                pid: AUDIO_PID,
                stream_id: 0xc0,
                pts: ts,
                dts: ts,
                // Audio-only programs carry their PCR on the audio PID.
                pcr: audio_only.then_some(ts.saturating_sub(PCR_LEAD)),
                random_access: audio_only,
                payload: &es,
            },
        );
        Ok(Muxed::Frame)
    }
}
