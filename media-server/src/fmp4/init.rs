//! The init segment: `ftyp` + `moov` with one `trak` per track and `mvex`
//! (every sample lives in fragments). Built from the codec records the
//! publisher sent, so every server fed the same stream writes the same bytes.

use mp4_atom::{
    Audio, Avc1, Avcc, Dinf, Dref, Encode, Esds, FourCC, Ftyp, Hdlr, Mdhd, Mdia, Minf, Moov, Mp4a,
    Mvex, Mvhd, Smhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tkhd, Trak, Trex, Url, Visual, Vmhd,
    esds,
};

use super::{AUDIO_TRACK, Fmp4Error, VIDEO_TIMESCALE, VIDEO_TRACK};
use crate::ts::codec::AAC_SAMPLE_RATES;

/// An H.264 track: the `AVCDecoderConfigurationRecord` as the FLV sequence
/// header carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// The decoded `avcC`.
    pub avcc: Avcc,
    /// Picture size from the first SPS (0×0 if it does not parse).
    pub width: u16,
    /// See `width`.
    pub height: u16,
}

impl VideoTrack {
    /// Parses an FLV AVC sequence header body (the record after the 5-byte tag header).
    pub fn from_record(record: &[u8]) -> Result<Self, Fmp4Error> {
        let mut buf = record;
        let avcc =
            <Avcc as mp4_atom::Atom>::decode_body(&mut buf).map_err(|_| Fmp4Error::AvcConfig)?;
        let (width, height) = avcc
            .sequence_parameter_sets
            .first()
            .and_then(|s| super::sps::dimensions(s))
            .unwrap_or((0, 0));
        Ok(Self {
            avcc,
            width,
            height,
        })
    }

    /// `avc1.PPCCLL` for `CODECS` attributes and MSE.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.avcc.avc_profile_indication,
            self.avcc.profile_compatibility,
            self.avcc.avc_level_indication
        )
    }
}

/// An AAC track: the `AudioSpecificConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// The raw `AudioSpecificConfig`.
    pub asc: Vec<u8>,
    /// Audio object type (2 = AAC LC).
    pub object_type: u8,
    /// Sampling rate in Hz (also the track's timescale).
    pub sample_rate: u32,
    /// Channel configuration.
    pub channels: u8,
}

impl AudioTrack {
    /// Parses an `AudioSpecificConfig` (the FLV AAC sequence header after its 2 bytes).
    pub fn from_asc(asc: &[u8]) -> Result<Self, Fmp4Error> {
        let c = crate::ts::codec::AacConfig::parse(asc).map_err(|_| Fmp4Error::AacConfig)?;
        let sample_rate = *AAC_SAMPLE_RATES
            .get(usize::from(c.freq_index))
            .ok_or(Fmp4Error::AacConfig)?;
        Ok(Self {
            asc: asc.to_vec(),
            object_type: c.object_type,
            sample_rate,
            channels: c.channels,
        })
    }

    /// `mp4a.40.N`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

/// The tracks of a stream; either may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracks {
    /// H.264 video, track 1.
    pub video: Option<VideoTrack>,
    /// AAC audio, track 2.
    pub audio: Option<AudioTrack>,
}

impl Tracks {
    /// The `CODECS` value, e.g. `avc1.64001f,mp4a.40.2`.
    pub fn codecs(&self) -> String {
        let mut v = Vec::new();
        if let Some(t) = &self.video {
            v.push(t.codec_string());
        }
        if let Some(t) = &self.audio {
            v.push(t.codec_string());
        }
        v.join(",")
    }

    /// The init segment (`ftyp` + `moov`).
    pub fn init_segment(&self) -> Result<Vec<u8>, Fmp4Error> {
        let mut out = Vec::with_capacity(1024);
        Ftyp {
            major_brand: FourCC::new(b"iso6"),
            minor_version: 0,
            compatible_brands: vec![
                FourCC::new(b"iso6"),
                FourCC::new(b"cmfc"),
                FourCC::new(b"mp41"),
            ],
        }
        .encode(&mut out)
        .map_err(|e| Fmp4Error::Encode("ftyp", e))?;
        let mut trak = Vec::new();
        let mut trex = Vec::new();
        if let Some(v) = &self.video {
            trak.push(video_trak(v));
            trex.push(Trex {
                track_id: VIDEO_TRACK,
                default_sample_description_index: 1,
                ..Default::default()
            });
        }
        if let Some(a) = &self.audio {
            trak.push(audio_trak(a));
            trex.push(Trex {
                track_id: AUDIO_TRACK,
                default_sample_description_index: 1,
                ..Default::default()
            });
        }
        Moov {
            mvhd: Mvhd {
                timescale: 1000,
                rate: 1.into(),
                volume: 1.into(),
                next_track_id: AUDIO_TRACK + 1,
                ..Default::default()
            },
            mvex: Some(Mvex {
                trex,
                ..Default::default()
            }),
            trak,
            ..Default::default()
        }
        .encode(&mut out)
        .map_err(|e| Fmp4Error::Encode("moov", e))?;
        Ok(out)
    }
}

fn empty_stbl(codec: mp4_atom::Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stts: Stts::default(),
        stsc: Stsc::default(),
        stsz: Stsz::default(),
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

fn dinf() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![
                Url {
                    location: String::new(),
                }
                .into(),
            ],
        },
    }
}

fn video_trak(v: &VideoTrack) -> Trak {
    Trak {
        tkhd: Tkhd {
            track_id: VIDEO_TRACK,
            enabled: true,
            in_movie: true,
            width: v.width.into(),
            height: v.height.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: VIDEO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(b"vide"),
                name: "Fleetcast video".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: dinf(),
                stbl: empty_stbl(
                    Avc1 {
                        visual: Visual {
                            data_reference_index: 1,
                            width: v.width,
                            height: v.height,
                            horizresolution: 72.into(),
                            vertresolution: 72.into(),
                            frame_count: 1,
                            compressor: "".into(),
                            depth: 24,
                        },
                        avcc: v.avcc.clone(),
                        btrt: None,
                        colr: None,
                        pasp: None,
                        taic: None,
                        fiel: None,
                        spatial: None,
                    }
                    .into(),
                ),
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

fn audio_trak(a: &AudioTrack) -> Trak {
    Trak {
        tkhd: Tkhd {
            track_id: AUDIO_TRACK,
            alternate_group: 1,
            enabled: true,
            in_movie: true,
            volume: 1.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: a.sample_rate,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(b"soun"),
                name: "Fleetcast audio".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: dinf(),
                stbl: empty_stbl(
                    Mp4a {
                        audio: Audio {
                            data_reference_index: 1,
                            channel_count: u16::from(a.channels.max(1)),
                            sample_size: 16,
                            // The 16.16 field holds rates up to 65535 Hz.
                            sample_rate: u16::try_from(a.sample_rate).unwrap_or(0).into(),
                        },
                        esds: Esds {
                            es_desc: esds::EsDescriptor {
                                es_id: u16::try_from(AUDIO_TRACK).unwrap_or(2),
                                depends_on_es_id: None,
                                url: None,
                                ocr_es_id: None,
                                stream_priority: 0,
                                dec_config: esds::DecoderConfig {
                                    object_type_indication: 0x40,
                                    stream_type: 5,
                                    dec_specific: Some(esds::DecoderSpecific {
                                        profile: a.object_type,
                                        freq_index: 0,
                                        chan_conf: a.channels,
                                        raw: a.asc.clone(),
                                    }),
                                    ..Default::default()
                                },
                                sl_config: esds::SLConfig {},
                            },
                        },
                        btrt: None,
                        taic: None,
                    }
                    .into(),
                ),
                ..Default::default()
            },
        },
        ..Default::default()
    }
}
