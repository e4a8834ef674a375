//! Codec data carried in FLV tag bodies, turned into the elementary-stream
//! form MPEG-TS wants: AVC decoder configuration record → SPS/PPS, AVCC
//! length-prefixed NAL units → Annex B with an access unit delimiter, AAC
//! `AudioSpecificConfig` → ADTS headers.

use thiserror::Error;

/// Why a codec payload could not be converted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    /// The AVC decoder configuration record is cut short or malformed.
    #[error("malformed AVC decoder configuration record")]
    AvcConfig,
    /// A NAL unit length runs past the end of the tag.
    #[error("AVC NAL unit length {0} runs past the end of the tag")]
    NaluLength(usize),
    /// The AAC `AudioSpecificConfig` is too short or of a kind ADTS cannot carry.
    #[error("unsupported AAC AudioSpecificConfig")]
    AacConfig,
    /// An AAC frame is too large for the 13-bit ADTS frame length.
    #[error("AAC frame of {0} bytes is too large for ADTS")]
    AacFrame(usize),
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// Access unit delimiter NAL (type 9, `primary_pic_type` 7 = any slice type).
const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];

/// SPS/PPS and NAL length size from an AVC decoder configuration record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AvcConfig {
    /// Bytes of each NAL unit length prefix (1, 2 or 4).
    pub length_size: usize,
    /// Sequence parameter sets, without start codes.
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter sets, without start codes.
    pub pps: Vec<Vec<u8>>,
}

impl AvcConfig {
    /// Parses an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 5.2.4.1).
    pub fn parse(record: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader(record);
        let version = r.u8()?;
        if version != 1 {
            return Err(CodecError::AvcConfig);
        }
        r.skip(3)?; // profile, compatibility, level
        let length_size = usize::from(r.u8()? & 0x03) + 1;
        if length_size == 3 {
            return Err(CodecError::AvcConfig);
        }
        let sps_count = r.u8()? & 0x1f;
        let mut sps = Vec::with_capacity(usize::from(sps_count));
        for _ in 0..sps_count {
            let len = usize::from(r.u16()?);
            sps.push(r.take(len)?.to_vec());
        }
        let pps_count = r.u8()?;
        let mut pps = Vec::with_capacity(usize::from(pps_count));
        for _ in 0..pps_count {
            let len = usize::from(r.u16()?);
            pps.push(r.take(len)?.to_vec());
        }
        Ok(Self {
            length_size,
            sps,
            pps,
        })
    }

    /// Builds an `AVCDecoderConfigurationRecord` from parameter sets (4-byte lengths).
    pub fn record(sps: &[&[u8]], pps: &[&[u8]]) -> Vec<u8> {
        let first = sps.first().copied().unwrap_or_default();
        let mut out = vec![
            1,
            first.get(1).copied().unwrap_or(0x42),
            first.get(2).copied().unwrap_or(0),
            first.get(3).copied().unwrap_or(0x1e),
            0xff,
        ];
        // At most 31 SPS fit the 5-bit count; more never occur in practice.
        let sps = &sps[..sps.len().min(31)];
        #[allow(clippy::cast_possible_truncation)]
        out.push(0xe0 | sps.len() as u8);
        for s in sps {
            push_u16_prefixed(&mut out, s);
        }
        let pps = &pps[..pps.len().min(255)];
        #[allow(clippy::cast_possible_truncation)]
        out.push(pps.len() as u8);
        for p in pps {
            push_u16_prefixed(&mut out, p);
        }
        out
    }
}

fn push_u16_prefixed(out: &mut Vec<u8>, data: &[u8]) {
    let data = &data[..data.len().min(usize::from(u16::MAX))];
    #[allow(clippy::cast_possible_truncation)]
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// Converts one AVCC access unit to Annex B: an access unit delimiter first,
/// then (for keyframes) the SPS/PPS unless the access unit carries its own,
/// then each NAL unit behind a start code. Existing AUDs are dropped so there
/// is exactly one.
pub fn avcc_to_annexb(
    payload: &[u8],
    config: &AvcConfig,
    keyframe: bool,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let nalus = split_avcc(payload, config.length_size)?;
    out.extend_from_slice(&AUD);
    let has_sps = nalus
        .iter()
        .any(|n| n.first().is_some_and(|b| b & 0x1f == 7));
    let has_idr = nalus
        .iter()
        .any(|n| n.first().is_some_and(|b| b & 0x1f == 5));
    if (keyframe || has_idr) && !has_sps {
        for ps in config.sps.iter().chain(&config.pps) {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(ps);
        }
    }
    for nalu in nalus {
        if nalu.first().is_some_and(|b| b & 0x1f == 9) {
            continue;
        }
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nalu);
    }
    Ok(())
}

fn split_avcc(mut data: &[u8], length_size: usize) -> Result<Vec<&[u8]>, CodecError> {
    let mut nalus = Vec::new();
    while !data.is_empty() {
        if data.len() < length_size {
            return Err(CodecError::NaluLength(data.len()));
        }
        let len = data[..length_size]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let rest = &data[length_size..];
        if len > rest.len() {
            return Err(CodecError::NaluLength(len));
        }
        if len > 0 {
            nalus.push(&rest[..len]);
        }
        data = &rest[len..];
    }
    Ok(nalus)
}

/// The fields of an AAC `AudioSpecificConfig` an ADTS header repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type (2 = AAC LC).
    pub object_type: u8,
    /// Sampling frequency index (0..=12).
    pub freq_index: u8,
    /// Channel configuration (1..=7).
    pub channels: u8,
}

/// Sampling rates by ADTS/ASC frequency index.
pub const AAC_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

impl AacConfig {
    /// Parses the first two bytes of an `AudioSpecificConfig` (ISO/IEC 14496-3 1.6.2.1).
    pub fn parse(asc: &[u8]) -> Result<Self, CodecError> {
        let [a, b, ..] = asc else {
            return Err(CodecError::AacConfig);
        };
        let object_type = a >> 3;
        let freq_index = ((a & 0x07) << 1) | (b >> 7);
        let channels = (b >> 3) & 0x0f;
        // ADTS has a 2-bit profile (object type 1..=4) and no explicit-rate escape.
        if !(1..=4).contains(&object_type) || freq_index > 12 {
            return Err(CodecError::AacConfig);
        }
        Ok(Self {
            object_type,
            freq_index,
            channels,
        })
    }

    /// Builds the two-byte `AudioSpecificConfig` for these fields.
    pub fn asc(self) -> [u8; 2] {
        [
            (self.object_type << 3) | (self.freq_index >> 1),
            ((self.freq_index & 1) << 7) | ((self.channels & 0x0f) << 3),
        ]
    }

    /// Sampling rate in Hz.
    pub fn sample_rate(self) -> u32 {
        AAC_SAMPLE_RATES
            .get(usize::from(self.freq_index))
            .copied()
            .unwrap_or(44100)
    }

    /// Appends a 7-byte ADTS header (no CRC) and the raw frame.
    pub fn write_adts(self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let len = frame.len() + 7;
        if len > 0x1fff {
            return Err(CodecError::AacFrame(frame.len()));
        }
        let profile = self.object_type - 1;
        #[allow(clippy::cast_possible_truncation)]
        out.extend_from_slice(&[
            0xff,
            0xf1, // MPEG-4, layer 0, no CRC
            (profile << 6) | (self.freq_index << 2) | ((self.channels >> 2) & 0x01),
            ((self.channels & 0x03) << 6) | ((len >> 11) as u8 & 0x03),
            (len >> 3) as u8,
            ((len as u8 & 0x07) << 5) | 0x1f,
            0xfc, // buffer fullness 0x7ff, one raw data block
        ]);
        out.extend_from_slice(frame);
        Ok(())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::AvcConfig);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xda];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    #[test]
    fn avc_record_round_trips() {
        let record = AvcConfig::record(&[SPS], &[PPS]);
        let config = AvcConfig::parse(&record).unwrap();
        assert_eq!(config.length_size, 4);
        assert_eq!(config.sps, vec![SPS.to_vec()]);
        assert_eq!(config.pps, vec![PPS.to_vec()]);
        assert_eq!(record[1..4], SPS[1..4]);
    }

    #[test]
    fn truncated_avc_record_is_an_error() {
        let record = AvcConfig::record(&[SPS], &[PPS]);
        for cut in 0..record.len() {
            assert!(AvcConfig::parse(&record[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn keyframe_gets_aud_and_parameter_sets() {
        let config = AvcConfig::parse(&AvcConfig::record(&[SPS], &[PPS])).unwrap();
        let idr = [0, 0, 0, 3, 0x65, 0x88, 0x84];
        let mut out = Vec::new();
        avcc_to_annexb(&idr, &config, true, &mut out).unwrap();
        let mut want = AUD.to_vec();
        for n in [SPS, PPS, &[0x65, 0x88, 0x84][..]] {
            want.extend_from_slice(&START_CODE);
            want.extend_from_slice(n);
        }
        assert_eq!(out, want);
    }

    #[test]
    fn inter_frame_keeps_nalus_and_drops_its_own_aud() {
        let config = AvcConfig {
            length_size: 4,
            ..AvcConfig::default()
        };
        let au = [0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 2, 0x41, 0x9a];
        let mut out = Vec::new();
        avcc_to_annexb(&au, &config, false, &mut out).unwrap();
        assert_eq!(out, [&AUD[..], &START_CODE, &[0x41, 0x9a]].concat());
    }

    #[test]
    fn overlong_nalu_is_an_error() {
        let config = AvcConfig {
            length_size: 4,
            ..AvcConfig::default()
        };
        let mut out = Vec::new();
        assert_eq!(
            avcc_to_annexb(&[0, 0, 1, 0, 0x41], &config, false, &mut out),
            Err(CodecError::NaluLength(256))
        );
        assert!(avcc_to_annexb(&[0, 0], &config, false, &mut out).is_err());
    }

    #[test]
    fn aac_config_and_adts_header() {
        // AAC LC, 44.1 kHz, stereo.
        let config = AacConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            config,
            AacConfig {
                object_type: 2,
                freq_index: 4,
                channels: 2
            }
        );
        assert_eq!(config.asc(), [0x12, 0x10]);
        assert_eq!(config.sample_rate(), 44100);
        let mut out = Vec::new();
        config.write_adts(&[1, 2, 3], &mut out).unwrap();
        assert_eq!(out, [0xff, 0xf1, 0x50, 0x80, 0x01, 0x5f, 0xfc, 1, 2, 3]);
        assert!(AacConfig::parse(&[0x12]).is_err());
        assert!(AacConfig::parse(&[0xf8, 0x00]).is_err());
        assert!(config.write_adts(&vec![0; 9000], &mut out).is_err());
    }
}
