//! MPEG-TS packet layer (ISO/IEC 13818-1): 188-byte packets, PAT/PMT
//! sections with their CRC, PES headers and the split of a PES into packets
//! with adaptation-field stuffing, PCR and continuity counters.

// Bit packing: every `as u8` below keeps the low bits of a field on purpose.
#![allow(clippy::cast_possible_truncation)]

/// Size of one transport stream packet.
pub const PACKET_SIZE: usize = 188;
/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the H.264 elementary stream.
pub const VIDEO_PID: u16 = 0x100;
/// PID of the AAC elementary stream.
pub const AUDIO_PID: u16 = 0x101;
/// Stream type for H.264 video.
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// Stream type for AAC audio in ADTS.
pub const STREAM_TYPE_AAC: u8 = 0x0f;

const SYNC: u8 = 0x47;
const PROGRAM_NUMBER: u16 = 1;

/// Continuity counters per PID; a fresh set starts every segment so a
/// segment's bytes depend only on its own tags.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pat: u8,
    pmt: u8,
    video: u8,
    audio: u8,
}

impl Counters {
    fn next(&mut self, pid: u16) -> u8 {
        let c = match pid {
            0 => &mut self.pat,
            PMT_PID => &mut self.pmt,
            VIDEO_PID => &mut self.video,
            _ => &mut self.audio,
        };
        let v = *c;
        *c = (*c + 1) & 0x0f;
        v
    }
}

/// CRC-32/MPEG-2 as PSI sections use it.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Writes a PSI section (table id onwards, CRC appended) as one packet.
fn write_section(out: &mut Vec<u8>, pid: u16, cc: &mut Counters, section: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[
        SYNC,
        0x40 | ((pid >> 8) as u8 & 0x1f),
        (pid & 0xff) as u8,
        0x10 | cc.next(pid),
        0, // pointer field
    ]);
    out.extend_from_slice(section);
    out.extend_from_slice(&crc32_mpeg2(section).to_be_bytes());
    out.resize(start + PACKET_SIZE, 0xff);
}

/// Writes the PAT (one program) and the PMT listing the given streams.
pub fn write_psi(out: &mut Vec<u8>, cc: &mut Counters, video: bool, audio: bool) {
    let pat = [
        0x00, // table id
        0xb0,
        13, // section length
        0x00,
        0x01, // transport stream id
        0xc1, // version 0, current
        0x00,
        0x00,
        (PROGRAM_NUMBER >> 8) as u8,
        (PROGRAM_NUMBER & 0xff) as u8,
        0xe0 | (PMT_PID >> 8) as u8,
        (PMT_PID & 0xff) as u8,
    ];
    write_section(out, 0, cc, &pat);

    let mut streams = Vec::new();
    if video {
        streams.extend_from_slice(&[
            STREAM_TYPE_H264,
            0xe0 | (VIDEO_PID >> 8) as u8,
            (VIDEO_PID & 0xff) as u8,
            0xf0,
            0,
        ]);
    }
    if audio {
        streams.extend_from_slice(&[
            STREAM_TYPE_AAC,
            0xe0 | (AUDIO_PID >> 8) as u8,
            (AUDIO_PID & 0xff) as u8,
            0xf0,
            0,
        ]);
    }
    let pcr_pid = pcr_pid(video);
    // Section length counts from after the length field through the CRC.
    let section_len = 9 + streams.len() + 4;
    let mut pmt = vec![
        0x02,
        0xb0 | ((section_len >> 8) as u8 & 0x0f),
        (section_len & 0xff) as u8,
        (PROGRAM_NUMBER >> 8) as u8,
        (PROGRAM_NUMBER & 0xff) as u8,
        0xc1,
        0x00,
        0x00,
        0xe0 | (pcr_pid >> 8) as u8,
        (pcr_pid & 0xff) as u8,
        0xf0,
        0x00, // no program info
    ];
    pmt.extend_from_slice(&streams);
    write_section(out, PMT_PID, cc, &pmt);
}

/// The PID carrying the PCR: video when the program has it, else audio.
pub fn pcr_pid(video: bool) -> u16 {
    if video { VIDEO_PID } else { AUDIO_PID }
}

/// One PES to packetize.
pub struct Pes<'a> {
    /// Elementary stream PID.
    pub pid: u16,
    /// PES stream id (0xe0 video, 0xc0 audio).
    pub stream_id: u8,
    /// Presentation time, 90 kHz.
    pub pts: u64,
    /// Decode time, 90 kHz; written only when it differs from `pts`.
    pub dts: u64,
    /// Program clock reference (90 kHz base) to put in the first packet.
    pub pcr: Option<u64>,
    /// Marks a random access point (keyframe) in the adaptation field.
    pub random_access: bool,
    /// The elementary stream bytes (Annex B access unit or ADTS frames).
    pub payload: &'a [u8],
}

fn push_timestamp(out: &mut Vec<u8>, marker: u8, ts: u64) {
    let ts = ts & 0x1_ffff_ffff;
    out.extend_from_slice(&[
        (marker << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8 & 0x7f) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8 & 0x7f) << 1) | 1,
    ]);
}

fn pes_header(pes: &Pes<'_>) -> Vec<u8> {
    let with_dts = pes.dts != pes.pts;
    let header_data_len: u8 = if with_dts { 10 } else { 5 };
    let mut h = vec![
        0,
        0,
        1,
        pes.stream_id,
        0,
        0,
        0x84,
        if with_dts { 0xc0 } else { 0x80 },
        header_data_len,
    ];
    // Video PES may be unbounded (length 0); audio must fit the 16-bit length.
    let len = 3 + usize::from(header_data_len) + pes.payload.len();
    if let Ok(len) = u16::try_from(len) {
        h[4..6].copy_from_slice(&len.to_be_bytes());
    }
    if with_dts {
        push_timestamp(&mut h, 0x3, pes.pts);
        push_timestamp(&mut h, 0x1, pes.dts);
    } else {
        push_timestamp(&mut h, 0x2, pes.pts);
    }
    h
}

/// Splits one PES into transport packets appended to `out`.
pub fn write_pes(out: &mut Vec<u8>, cc: &mut Counters, pes: &Pes<'_>) {
    let header = pes_header(pes);
    let mut data = header.iter().chain(pes.payload.iter()).copied();
    let mut remaining = header.len() + pes.payload.len();
    let mut first = true;
    while remaining > 0 {
        // Adaptation field after its length byte: flags, PCR, stuffing.
        let mut adaptation: Option<Vec<u8>> = None;
        if first && (pes.pcr.is_some() || pes.random_access) {
            let mut field = vec![if pes.random_access { 0x40 } else { 0 }];
            if let Some(pcr) = pes.pcr {
                field[0] |= 0x10;
                let base = pcr & 0x1_ffff_ffff;
                field.extend_from_slice(&[
                    (base >> 25) as u8,
                    (base >> 17) as u8,
                    (base >> 9) as u8,
                    (base >> 1) as u8,
                    ((base as u8 & 1) << 7) | 0x7e,
                    0,
                ]);
            }
            adaptation = Some(field);
        }
        let used = |a: &Option<Vec<u8>>| a.as_ref().map_or(0, |f| 1 + f.len());
        let room = PACKET_SIZE - 4 - used(&adaptation);
        if remaining < room {
            // Fill the packet by growing (or adding) the adaptation field.
            let stuffing = room - remaining;
            match adaptation.as_mut() {
                Some(field) => field.resize(field.len() + stuffing, 0xff),
                // One byte of stuffing is a bare length byte of 0.
                None if stuffing == 1 => adaptation = Some(Vec::new()),
                None => {
                    let mut field = vec![0u8];
                    field.resize(stuffing - 1, 0xff);
                    adaptation = Some(field);
                }
            }
        }
        let room = PACKET_SIZE - 4 - used(&adaptation);
        out.extend_from_slice(&[
            SYNC,
            (if first { 0x40 } else { 0 }) | ((pes.pid >> 8) as u8 & 0x1f),
            (pes.pid & 0xff) as u8,
            if adaptation.is_some() { 0x30 } else { 0x10 } | cc.next(pes.pid),
        ]);
        if let Some(field) = &adaptation {
            #[allow(clippy::cast_possible_truncation)]
            out.push(field.len() as u8);
            out.extend_from_slice(field);
        }
        let n = room.min(remaining);
        out.extend(data.by_ref().take(n));
        remaining -= n;
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytecount(out: &[u8]) -> usize {
        out.iter().fold(0, |n, b| n + usize::from(*b == 0xab))
    }

    #[test]
    fn crc_matches_known_pat() {
        // The PAT ffmpeg writes for program 1 / PMT 0x1000 ends in 2a b1 04 b2.
        let pat = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00,
        ];
        assert_eq!(crc32_mpeg2(&pat), 0x2ab1_04b2);
    }

    #[test]
    fn psi_is_two_packets() {
        let mut out = Vec::new();
        let mut cc = Counters::default();
        write_psi(&mut out, &mut cc, true, true);
        assert_eq!(out.len(), 2 * PACKET_SIZE);
        assert_eq!(out[0], SYNC);
        assert_eq!(out[PACKET_SIZE], SYNC);
    }

    #[test]
    fn every_payload_size_fills_whole_packets() {
        for size in 0..700 {
            let payload = vec![0xab; size];
            for pcr in [None, Some(9000)] {
                let mut out = Vec::new();
                let mut cc = Counters::default();
                write_pes(
                    &mut out,
                    &mut cc,
                    &Pes {
                        pid: VIDEO_PID,
                        stream_id: 0xe0,
                        pts: 9000,
                        dts: 9000,
                        pcr,
                        random_access: pcr.is_some(),
                        payload: &payload,
                    },
                );
                assert_eq!(out.len() % PACKET_SIZE, 0, "size {size}");
                let payload_bytes = bytecount(&out);
                assert!(payload_bytes >= size, "size {size}");
            }
        }
    }
}
