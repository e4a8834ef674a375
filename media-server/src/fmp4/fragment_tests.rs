use std::time::{Duration, SystemTime};

use mp4_atom::{Any, Decode, Moof, Moov};

use super::*;
use crate::hls::testdata::{stream, video_frame};

fn config(part_ms: u64) -> FragmenterConfig {
    FragmenterConfig {
        part_ms,
        segment_ms: Some(2000),
        prft: false,
    }
}

fn parts_of(tags: &[Tag], config: FragmenterConfig) -> (Fragmenter, Vec<Part>) {
    let mut f = Fragmenter::new(config);
    let mut parts = Vec::new();
    for t in tags {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::from(t.timestamp));
        parts.extend(f.push(t, u64::from(t.timestamp), Some(at)));
    }
    (f, parts)
}

/// The boxes of a part, in order.
fn boxes(mut data: &[u8]) -> Vec<Any> {
    let mut out = Vec::new();
    while !data.is_empty() {
        out.push(Any::decode(&mut data).unwrap());
    }
    out
}

fn moof(part: &Part) -> Moof {
    boxes(&part.data)
        .into_iter()
        .find_map(|b| match b {
            Any::Moof(m) => Some(m),
            _ => None,
        })
        .unwrap()
}

#[test]
fn init_segment_carries_the_codec_records() {
    let (f, _) = parts_of(&stream(0, 100, 1000), config(500));
    let init = f.tracks().init_segment().unwrap();
    let b = boxes(&init);
    assert!(matches!(b[0], Any::Ftyp(_)), "{b:?}");
    let Any::Moov(moov) = &b[1] else {
        panic!("{b:?}")
    };
    let moov: &Moov = moov;
    assert_eq!(moov.trak.len(), 2);
    assert_eq!(moov.mvex.as_ref().unwrap().trex.len(), 2);
    let Some(mp4_atom::Codec::Avc1(avc1)) = moov.trak[0].mdia.minf.stbl.stsd.codecs.first() else {
        panic!("{moov:?}")
    };
    assert_eq!(
        avc1.avcc.sequence_parameter_sets,
        vec![crate::hls::testdata::SPS.to_vec()]
    );
    assert_eq!(moov.trak[0].mdia.mdhd.timescale, VIDEO_TIMESCALE);
    let Some(mp4_atom::Codec::Mp4a(mp4a)) = moov.trak[1].mdia.minf.stbl.stsd.codecs.first() else {
        panic!("{moov:?}")
    };
    let asc = &mp4a
        .esds
        .es_desc
        .dec_config
        .dec_specific
        .as_ref()
        .unwrap()
        .raw;
    assert_eq!(asc, &vec![0x12, 0x10]);
    assert_eq!(moov.trak[1].mdia.mdhd.timescale, 44100);
    assert_eq!(f.tracks().codecs(), "avc1.64001e,mp4a.40.2");
}

#[test]
fn parts_are_cut_at_frames_within_the_part_target() {
    let (_, parts) = parts_of(&stream(0, 6000, 1000), config(500));
    // 30 fps: 15 frames fill 500 ms exactly.
    assert!(parts.len() >= 10, "{}", parts.len());
    for w in parts.windows(2) {
        assert_eq!(w[0].start_ms + w[0].duration_ms, w[1].start_ms);
    }
    for (i, p) in parts.iter().enumerate() {
        assert!(p.duration_ms <= 500, "{p:?}");
        // At least 85% of the part target, except a segment's last part.
        let last_of_segment = parts.get(i + 1).is_none_or(|n| n.starts_segment);
        assert!(last_of_segment || p.duration_ms * 100 >= 85 * 500, "{p:?}");
    }
    let seg_starts: Vec<u64> = parts
        .iter()
        .filter(|p| p.starts_segment)
        .map(|p| p.start_ms)
        .collect();
    assert_eq!(seg_starts, [0, 2000, 4000]);
    // A part starting with a keyframe (every 1000 ms) is independent.
    for p in &parts {
        assert_eq!(p.independent, p.start_ms % 1000 == 0, "{p:?}");
        let b = boxes(&p.data);
        assert_eq!(matches!(b[0], Any::Styp(_)), p.starts_segment);
    }
}

#[test]
fn fragments_have_timeline_decode_times_flags_and_offsets() {
    let (_, parts) = parts_of(&stream(0, 3000, 1000), config(500));
    let p = &parts[2]; // starts at 1000 ms, a keyframe
    assert_eq!(p.start_ms, 1000);
    let m = moof(p);
    assert_eq!(m.mfhd.sequence_number, 1000);
    let video = &m.traf[0];
    assert_eq!(video.tfhd.track_id, VIDEO_TRACK);
    assert_eq!(video.tfdt.as_ref().unwrap().base_media_decode_time, 90_000);
    let entries: Vec<_> = video.trun[0].samples.iter().collect();
    assert_eq!(entries[0].flags, Some(SYNC));
    assert!(entries[1..].iter().all(|e| e.flags == Some(NON_SYNC)));
    let total: u64 = entries.iter().map(|e| u64::from(e.duration.unwrap())).sum();
    assert_eq!(total, p.duration_ms * 90);
    let audio = &m.traf[1];
    assert_eq!(audio.tfhd.track_id, AUDIO_TRACK);
    // The first sample's bytes are where data_offset says (the part
    // starts a segment at 2000 ms only, so this one begins with its moof).
    assert!(!p.starts_segment);
    let off = usize::try_from(video.trun[0].data_offset.unwrap()).unwrap();
    let first = &p.data[off..off + 9];
    // AVCC: 4-byte length then the NAL (0x65, then the timestamp 1000).
    assert_eq!(&first[4..9], &[0x65, 0, 0, 0x03, 0xe8]);
    let aoff = usize::try_from(audio.trun[0].data_offset.unwrap()).unwrap();
    let aentries: Vec<_> = audio.trun[0].samples.iter().collect();
    assert_eq!(
        aoff,
        off + entries
            .iter()
            .map(|e| e.size.unwrap() as usize)
            .sum::<usize>()
    );
    assert!(!aentries.is_empty());
}

#[test]
fn composition_offsets_come_from_the_flv_cts() {
    let mut tags = stream(0, 40, 1000);
    let mut b = tags[3].data.to_vec(); // the first keyframe
    assert_eq!(tags[3].kind, TagKind::Video);
    b[4] = 80; // cts 80 ms
    tags[3].data = Bytes::from(b);
    tags.push(video_frame(66, false, 100));
    tags.push(video_frame(1000, true, 100));
    let (_, parts) = parts_of(&tags, config(500));
    let m = moof(&parts[0]);
    let first = m.traf[0].trun[0].samples.get(0).unwrap();
    assert_eq!(first.cts, Some(80 * 90));
}

#[test]
fn a_late_joiner_writes_the_same_parts_from_its_second_segment() {
    let tags = stream(0, 8000, 1000);
    let (_, all) = parts_of(&tags, config(500));
    // Join at the keyframe at 3000 ms (as an edge gets the GOP cache).
    let join = tags
        .iter()
        .position(|t| t.timestamp >= 3000 && t.is_keyframe())
        .unwrap();
    let mut late: Vec<Tag> = tags[..3].to_vec();
    late.extend_from_slice(&tags[join..]);
    let (_, joined) = parts_of(&late, config(500));
    let after: Vec<&Part> = joined.iter().filter(|p| p.start_ms >= 4000).collect();
    assert!(after.len() >= 4);
    for p in after {
        assert!(all.contains(p), "part at {} differs", p.start_ms);
    }
}

#[test]
fn prft_carries_the_first_frames_wall_clock() {
    let mut c = config(0);
    c.prft = true;
    let (_, parts) = parts_of(&stream(0, 200, 1000), c);
    // One part per video frame.
    assert!(parts.len() >= 5);
    let b = boxes(&parts[1].data);
    let Some(Any::Prft(prft)) = b.iter().find(|b| matches!(b, Any::Prft(_))) else {
        panic!("{b:?}")
    };
    assert_eq!(prft.reference_track_id, VIDEO_TRACK);
    assert_eq!(prft.media_time, parts[1].start_ms * 90);
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(parts[1].start_ms);
    assert_eq!(prft.ntp_timestamp, ntp(at));
    assert_eq!(ntp(SystemTime::UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
}

#[test]
fn audio_without_video_frames_does_not_grow_a_part_forever() {
    let mut f = Fragmenter::new(config(500));
    for t in stream(0, 100, 1000) {
        f.push(&t, u64::from(t.timestamp), None);
    }
    // Video stops; large audio frames keep coming into the open part.
    let big = Tag {
        kind: TagKind::Audio,
        timestamp: 0,
        data: Bytes::from(vec![0xaf; 1 << 20]),
    };
    let mut b = big.data.to_vec();
    b[1] = 1;
    let big = Tag {
        data: Bytes::from(b),
        ..big
    };
    for i in 0..40u64 {
        assert!(f.push(&big, 100 + i, None).is_none());
    }
    assert!(
        f.open_start_ms().is_none(),
        "the oversized part was dropped"
    );
    // The next keyframe starts again.
    let p = f.push(&video_frame(5000, true, 100), 5000, None);
    assert!(p.is_none());
    assert_eq!(f.open_start_ms(), Some(5000));
    assert!(f.open_starts_segment());
}
