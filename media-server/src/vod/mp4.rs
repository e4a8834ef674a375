//! MP4 (H.264/AAC) → FLV tags, for VOD over RTMP.
//!
//! Built on the `mp4` crate, which reads the `moov` wherever it is (start or
//! end of the file) and gives each sample with its decode time, composition
//! offset and sync flag. We build the AVC sequence header from `avcC`, the
//! AAC one from `esds`, and merge both tracks' samples by decode time,
//! reading one sample ahead per track (the file is never loaded whole).

use std::io::{Read, Seek};

use bytes::{BufMut, Bytes, BytesMut};
use mp4::{Mp4Reader, Mp4Sample, TrackType};

use super::VodError;
use crate::amf0::Value;
use crate::flv;
use crate::media::{Tag, TagKind};

struct Track {
    id: u32,
    kind: TagKind,
    timescale: u64,
    next_id: u32,
    count: u32,
    peek: Option<Mp4Sample>,
}

/// Demuxes an MP4 file into FLV tags in decode order: `onMetaData`, the
/// sequence headers, then every sample.
pub struct Mp4Demuxer<R: Read + Seek> {
    reader: Mp4Reader<R>,
    tracks: Vec<Track>,
    header: std::vec::IntoIter<Tag>,
}

fn ms(t: u64, timescale: u64) -> u64 {
    t.saturating_mul(1000) / timescale.max(1)
}

impl<R: Read + Seek> Mp4Demuxer<R> {
    /// Reads the file's boxes; `size` is the file length.
    pub fn new(reader: R, size: u64) -> Result<Self, VodError> {
        let reader =
            Mp4Reader::read_header(reader, size).map_err(|e| VodError::Mp4(e.to_string()))?;
        let mut tracks = Vec::new();
        let mut header = Vec::new();
        let mut props: Vec<(String, Value)> = vec![(
            "duration".into(),
            Value::Number(reader.duration().as_secs_f64()),
        )];
        let mut ids: Vec<u32> = reader.tracks().keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(track) = reader.tracks().get(&id) else {
                continue;
            };
            let stsd = &track.trak.mdia.minf.stbl.stsd;
            let (kind, config) = match track.track_type() {
                Ok(TrackType::Video) => {
                    let Some(avc1) = &stsd.avc1 else { continue };
                    props.push(("width".into(), Value::Number(f64::from(avc1.width))));
                    props.push(("height".into(), Value::Number(f64::from(avc1.height))));
                    props.push(("videocodecid".into(), Value::Number(7.0)));
                    let c = &avc1.avcc;
                    let fields = [
                        c.avc_profile_indication,
                        c.profile_compatibility,
                        c.avc_level_indication,
                        c.length_size_minus_one,
                    ];
                    let sps: Vec<&[u8]> = c
                        .sequence_parameter_sets
                        .iter()
                        .map(|n| &n.bytes[..])
                        .collect();
                    let pps: Vec<&[u8]> = c
                        .picture_parameter_sets
                        .iter()
                        .map(|n| &n.bytes[..])
                        .collect();
                    (TagKind::Video, avc_sequence_header(fields, &sps, &pps))
                }
                Ok(TrackType::Audio) => {
                    let Some(esds) = stsd.mp4a.as_ref().and_then(|a| a.esds.as_ref()) else {
                        continue;
                    };
                    let d = &esds.es_desc.dec_config.dec_specific;
                    props.push(("audiocodecid".into(), Value::Number(10.0)));
                    let asc = [
                        (d.profile << 3) | (d.freq_index >> 1),
                        ((d.freq_index & 1) << 7) | ((d.chan_conf & 0x0f) << 3),
                    ];
                    let data = Bytes::from(vec![0xaf, 0, asc[0], asc[1]]);
                    (TagKind::Audio, data)
                }
                _ => continue,
            };
            if tracks.iter().any(|t: &Track| t.kind == kind) {
                continue; // the first track of each kind only
            }
            header.push(Tag {
                kind,
                timestamp: 0,
                data: config,
            });
            tracks.push(Track {
                id,
                kind,
                timescale: u64::from(track.timescale()),
                next_id: 1,
                count: track.sample_count(),
                peek: None,
            });
        }
        if tracks.is_empty() {
            return Err(VodError::Mp4("no H.264 or AAC track".into()));
        }
        header.insert(0, flv::script_tag(0, flv::metadata_body(props)));
        // Video sequence header first, as players expect.
        header.sort_by_key(|t| match t.kind {
            TagKind::Script => 0,
            TagKind::Video => 1,
            TagKind::Audio => 2,
        });
        Ok(Self {
            reader,
            tracks,
            header: header.into_iter(),
        })
    }

    fn fill(&mut self) -> Result<(), VodError> {
        for t in &mut self.tracks {
            while t.peek.is_none() && t.next_id <= t.count {
                t.peek = self
                    .reader
                    .read_sample(t.id, t.next_id)
                    .map_err(|e| VodError::Mp4(e.to_string()))?;
                t.next_id += 1;
            }
        }
        Ok(())
    }

    /// The next tag, `Ok(None)` at the end.
    pub fn next_tag(&mut self) -> Result<Option<Tag>, VodError> {
        if let Some(tag) = self.header.next() {
            return Ok(Some(tag));
        }
        self.fill()?;
        let Some(t) = self
            .tracks
            .iter_mut()
            .filter(|t| t.peek.is_some())
            .min_by_key(|t| {
                t.peek
                    .as_ref()
                    .map_or(u64::MAX, |s| ms(s.start_time, t.timescale))
            })
        else {
            return Ok(None);
        };
        let Some(sample) = t.peek.take() else {
            return Ok(None);
        };
        let dts = ms(sample.start_time, t.timescale);
        let timestamp = u32::try_from(dts & 0xffff_ffff).unwrap_or(0);
        let data = if t.kind == TagKind::Video {
            let cts = i64::from(sample.rendering_offset) * 1000
                / i64::try_from(t.timescale.max(1)).unwrap_or(1);
            let cts = i32::try_from(cts).unwrap_or(0).to_be_bytes();
            let mut b = BytesMut::with_capacity(sample.bytes.len() + 5);
            let kind = if sample.is_sync { 0x17 } else { 0x27 };
            b.put_slice(&[kind, 1, cts[1], cts[2], cts[3]]);
            b.put_slice(&sample.bytes);
            b.freeze()
        } else {
            let mut b = BytesMut::with_capacity(sample.bytes.len() + 2);
            b.put_slice(&[0xaf, 1]);
            b.put_slice(&sample.bytes);
            b.freeze()
        };
        Ok(Some(Tag {
            kind: t.kind,
            timestamp,
            data,
        }))
    }
}

/// `[0x17, 0, 0, 0, 0]` + the `AVCDecoderConfigurationRecord` rebuilt from
/// `avcC` (profile, compatibility, level, length size - 1; SPS; PPS).
fn avc_sequence_header(fields: [u8; 4], sps: &[&[u8]], pps: &[&[u8]]) -> Bytes {
    let [profile, compatibility, level, length_minus_one] = fields;
    let mut b = BytesMut::new();
    b.put_slice(&[0x17, 0, 0, 0, 0]);
    b.put_slice(&[
        1,
        profile,
        compatibility,
        level,
        0xfc | (length_minus_one & 0x03),
    ]);
    let sps = &sps[..sps.len().min(31)];
    b.put_u8(0xe0 | u8::try_from(sps.len()).unwrap_or(0));
    for s in sps {
        b.put_u16(u16::try_from(s.len()).unwrap_or(0));
        b.put_slice(s);
    }
    let pps = &pps[..pps.len().min(255)];
    b.put_u8(u8::try_from(pps.len()).unwrap_or(0));
    for p in pps {
        b.put_u16(u16::try_from(p.len()).unwrap_or(0));
        b.put_slice(p);
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use mp4::{
        AacConfig, AudioObjectType, AvcConfig, ChannelConfig, FourCC, MediaConfig, Mp4Config,
        Mp4Writer, SampleFreqIndex, TrackConfig,
    };

    use super::*;
    use crate::hls::testdata::{PPS, SPS};
    use crate::ts::codec::AvcConfig as Record;

    fn sample(t: u64, duration: u32, offset: i32, sync: bool, bytes: &[u8]) -> Mp4Sample {
        Mp4Sample {
            start_time: t,
            duration,
            rendering_offset: offset,
            is_sync: sync,
            bytes: Bytes::copy_from_slice(bytes),
        }
    }

    /// A 1-second MP4: 25 fps video (timescale 12800, one B-frame offset) and 44.1 kHz AAC.
    fn make_mp4() -> Vec<u8> {
        let config = Mp4Config {
            major_brand: FourCC::from(*b"isom"),
            minor_version: 512,
            compatible_brands: vec![FourCC::from(*b"isom"), FourCC::from(*b"avc1")],
            timescale: 1000,
        };
        let mut w = Mp4Writer::write_start(Cursor::new(Vec::new()), &config).unwrap();
        w.add_track(&TrackConfig {
            track_type: TrackType::Video,
            timescale: 12800,
            language: "und".into(),
            media_conf: MediaConfig::AvcConfig(AvcConfig {
                width: 640,
                height: 360,
                seq_param_set: SPS.to_vec(),
                pic_param_set: PPS.to_vec(),
            }),
        })
        .unwrap();
        w.add_track(&TrackConfig {
            track_type: TrackType::Audio,
            timescale: 44100,
            language: "und".into(),
            media_conf: MediaConfig::AacConfig(AacConfig {
                bitrate: 128_000,
                profile: AudioObjectType::AacLowComplexity,
                freq_index: SampleFreqIndex::Freq44100,
                chan_conf: ChannelConfig::Stereo,
            }),
        })
        .unwrap();
        for i in 0..25u64 {
            let nal: &[u8] = if i % 25 == 0 {
                &[0, 0, 0, 2, 0x65, 1]
            } else {
                &[0, 0, 0, 2, 0x41, 2]
            };
            w.write_sample(1, &sample(i * 512, 512, 1024, i % 25 == 0, nal))
                .unwrap();
        }
        for i in 0..43u64 {
            w.write_sample(2, &sample(i * 1024, 1024, 0, true, &[0x21, 0x10, 0x04]))
                .unwrap();
        }
        w.write_end().unwrap();
        w.into_writer().into_inner()
    }

    #[test]
    fn demuxes_headers_then_interleaved_samples() {
        let file = make_mp4();
        let len = file.len() as u64;
        let mut d = Mp4Demuxer::new(Cursor::new(file), len).unwrap();
        let mut tags = Vec::new();
        while let Some(t) = d.next_tag().unwrap() {
            tags.push(t);
        }
        assert_eq!(tags[0].kind, TagKind::Script);
        assert!(tags[1].is_sequence_header() && tags[1].kind == TagKind::Video);
        let record = Record::parse(&tags[1].data[5..]).unwrap();
        assert_eq!(
            (record.sps, record.pps, record.length_size),
            (vec![SPS.to_vec()], vec![PPS.to_vec()], 4)
        );
        assert!(tags[2].is_sequence_header() && tags[2].kind == TagKind::Audio);
        assert_eq!(tags[2].data[..], [0xaf, 0, 0x12, 0x10]);
        let video: Vec<&Tag> = tags
            .iter()
            .filter(|t| t.kind == TagKind::Video && !t.is_sequence_header())
            .collect();
        let audio = tags
            .iter()
            .filter(|t| t.kind == TagKind::Audio && !t.is_sequence_header())
            .count();
        assert_eq!((video.len(), audio), (25, 43));
        assert!(video[0].is_keyframe() && !video[1].is_keyframe());
        assert_eq!(video[1].timestamp, 40);
        assert_eq!(video[1].composition_time(), 80);
        assert_eq!(video[1].data[5..], [0, 0, 0, 2, 0x41, 2]);
        // Decode order across tracks.
        let media: Vec<u32> = tags[3..].iter().map(|t| t.timestamp).collect();
        assert!(media.windows(2).all(|w| w[0] <= w[1]), "{media:?}");
        // The whole pipeline: MP4 → tags → HLS segments.
        let mut seg = crate::hls::Segmenter::new(crate::hls::SegmenterConfig::default());
        for t in &tags {
            seg.push(t);
        }
        seg.end_session();
        assert_eq!(seg.window().count(), 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let data = b"\0\0\0\x08ftypjunkjunkjunk".to_vec();
        let len = data.len() as u64;
        assert!(Mp4Demuxer::new(Cursor::new(data), len).is_err());
    }
}
