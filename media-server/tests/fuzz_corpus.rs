//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the
//! same entry functions the cargo-fuzz targets call, so every normal test
//! run re-checks past findings without a nightly toolchain.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

type Entry = fn(&[u8]);

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

fn replay(target: &str, entry: Entry) {
    let files = corpus(target);
    assert!(!files.is_empty(), "corpus of {target} is empty");
    for (path, data) in files {
        // A panic names the file that caused it.
        let result = std::panic::catch_unwind(|| entry(&data));
        assert!(result.is_ok(), "{target} panicked on {}", path.display());
        // Every prefix too: truncated input is the commonest hostile input.
        for end in (0..data.len()).step_by(7) {
            entry(&data[..end]);
        }
    }
}

#[test]
fn chunk_stream_corpus() {
    replay("chunk_stream", fleetcast_media::fuzzing::chunk_stream);
}

#[test]
fn rtmp_session_corpus() {
    replay("rtmp_session", fleetcast_media::fuzzing::rtmp_session);
}

#[test]
fn amf0_corpus() {
    replay("amf0", fleetcast_media::fuzzing::amf0_values);
}

#[test]
fn flv_tags_corpus() {
    replay("flv_tags", fleetcast_media::fuzzing::flv_tags);
    // The corpus is real: the stream sample parses into its five tags.
    let data = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/flv_tags/av-stream"),
    )
    .unwrap();
    assert_eq!(fleetcast_media::flv::parse_all(&data).unwrap().len(), 5);
}

#[test]
fn http_range_corpus() {
    replay("http_range", fleetcast_media::range::fuzz_headers);
}

#[test]
fn http_head_corpus() {
    replay("http_head", fleetcast_media::fuzzing::http_head);
}
