//! Recording live streams to FLV files that then play as VOD.
//!
//! A recording is written to `data_dir/recordings/APP/NAME-<start>.flv.part`
//! and renamed to `NAME-<start>.flv` (start = UTC `YYYYMMDDTHHMMSSZ`) when
//! the publisher leaves or the server shuts down, so only complete files are
//! ever visible as VOD: they are served at `/vod/recordings/APP/FILE` and
//! played at `rtmp://HOST/vod/recordings/APP/FILE` (`.part` names are never
//! served). Timestamps are rebased so every file starts at 0.
//!
//! Which streams: `apps[].record: true` records every stream of the app,
//! `apps[].record_streams` lists single names.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::flv;
use crate::hub::{Delivery, Hub, PublicationEvent, StreamKey};
use crate::media::{Tag, TagKind};

/// The pure part: FLV file bytes for a sequence of tags, timestamps rebased
/// to the first media tag.
#[derive(Debug, Default)]
pub struct FlvFileWriter {
    base: Option<u32>,
    header_written: bool,
}

impl FlvFileWriter {
    /// A writer that has written nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the file header (first call only) and `tag` framed to `out`.
    pub fn write(&mut self, tag: &Tag, out: &mut BytesMut) {
        if !self.header_written {
            out.extend_from_slice(&flv::file_header(true, true));
            self.header_written = true;
        }
        // Script data and sequence headers may carry older timestamps than
        // the first frame; they are written at 0 (or later) either way.
        let base = if tag.kind == TagKind::Script || tag.is_sequence_header() {
            self.base.unwrap_or(tag.timestamp)
        } else {
            *self.base.get_or_insert(tag.timestamp)
        };
        let rebased = Tag {
            kind: tag.kind,
            timestamp: tag.timestamp.saturating_sub(base),
            data: tag.data.clone(),
        };
        flv::write_tag(out, &rebased);
    }
}

/// `NAME-YYYYMMDDTHHMMSSZ` for a recording that started at `start`.
pub fn file_stem(name: &str, start: SystemTime) -> String {
    let t: DateTime<Utc> = start.into();
    format!("{name}-{}", t.format("%Y%m%dT%H%M%SZ"))
}

/// True when the config asks to record `key`.
pub fn wants_recording(config: &Config, key: &StreamKey) -> bool {
    config
        .app(&key.app)
        .is_some_and(|a| a.record || a.record_streams.contains(&key.name))
}

/// Starts recording configured streams as they are published, on the
/// server's task tracker, so shutdown waits for every file to be finished.
pub fn start(state: &crate::server::AppState) {
    let hub = state.hub.clone();
    let config = Arc::clone(&state.config);
    let tasks = state.tasks.clone();
    let shutdown = state.shutdown.clone();
    state.tasks.spawn(follow(hub, config, tasks, shutdown));
}

async fn follow(hub: Hub, config: Arc<Config>, tasks: TaskTracker, shutdown: CancellationToken) {
    let mut events = hub.publications();
    let spawn = |key: StreamKey| {
        tasks.spawn(record_one(
            hub.clone(),
            config.recordings_dir(),
            key,
            shutdown.clone(),
        ));
    };
    for key in hub.live_streams() {
        if wants_recording(&config, &key) {
            spawn(key);
        }
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            ev = events.recv() => match ev {
                Ok(PublicationEvent::Started { key, .. }) if wants_recording(&config, &key) => spawn(key),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "recorder missed publication events");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}

/// An open recording file.
struct Recording {
    file: tokio::io::BufWriter<tokio::fs::File>,
    part: PathBuf,
    done: PathBuf,
    writer: FlvFileWriter,
    buf: BytesMut,
}

impl Recording {
    async fn create(dir: &Path, key: &StreamKey, start: SystemTime) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(dir).await?;
        let stem = file_stem(&key.name, start);
        let mut done = dir.join(format!("{stem}.flv"));
        let mut n = 1;
        while tokio::fs::try_exists(&done).await.unwrap_or(false) {
            n += 1;
            done = dir.join(format!("{stem}-{n}.flv"));
        }
        let part = done.with_extension("flv.part");
        let file = tokio::fs::File::create(&part).await?;
        Ok(Self {
            file: tokio::io::BufWriter::with_capacity(256 * 1024, file),
            part,
            done,
            writer: FlvFileWriter::new(),
            buf: BytesMut::new(),
        })
    }

    async fn write(&mut self, tag: &Tag) -> std::io::Result<()> {
        self.writer.write(tag, &mut self.buf);
        self.file.write_all(&self.buf).await?;
        self.buf.clear();
        Ok(())
    }

    async fn finish(mut self) -> std::io::Result<PathBuf> {
        self.file.flush().await?;
        self.file.get_ref().sync_all().await?;
        tokio::fs::rename(&self.part, &self.done).await?;
        Ok(self.done)
    }
}

async fn record_one(hub: Hub, root: PathBuf, key: StreamKey, shutdown: CancellationToken) {
    let Ok(mut sub) = hub.subscribe_internal(&key) else {
        return;
    };
    // Stream names are checked by the RTMP layer (`config::check_name`);
    // checked again here since they become file names.
    if crate::config::check_name(&key.app).is_err() || crate::config::check_name(&key.name).is_err()
    {
        tracing::warn!(stream = %key, "not recording: unsafe name");
        return;
    }
    let dir = root.join(&key.app);
    let mut rec = match Recording::create(&dir, &key, SystemTime::now()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(stream = %key, error = %e, "cannot create recording");
            return;
        }
    };
    tracing::info!(stream = %key, file = %rec.part.display(), "recording");
    let mut batch = Vec::with_capacity(64);
    'outer: loop {
        batch.clear();
        tokio::select! {
            () = shutdown.cancelled() => break,
            r = sub.recv(&mut batch, 64) => if r.is_err() { break },
        }
        for d in &batch {
            match d {
                Delivery::Frame(frame) => {
                    if let Err(e) = rec.write(&frame.tag).await {
                        tracing::error!(stream = %key, error = %e, "recording write failed");
                        break 'outer;
                    }
                }
                Delivery::Unpublished => break 'outer,
                Delivery::Published => {}
            }
        }
    }
    match rec.finish().await {
        Ok(path) => tracing::info!(stream = %key, file = %path.display(), "recording finished"),
        Err(e) => tracing::error!(stream = %key, error = %e, "cannot finish recording"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::testdata::stream;

    #[test]
    fn flv_file_round_trips_with_rebased_timestamps() {
        let tags = stream(5000, 7000, 1000);
        let mut w = FlvFileWriter::new();
        let mut out = BytesMut::new();
        for t in &tags {
            w.write(t, &mut out);
        }
        assert_eq!(&out[..3], b"FLV");
        let back = flv::parse_all(&out).unwrap();
        assert_eq!(back.len(), tags.len());
        for (a, b) in tags.iter().zip(&back) {
            assert_eq!(a.kind, b.kind);
            assert_eq!(a.data, b.data);
            assert_eq!(b.timestamp, a.timestamp - 5000);
        }
    }

    #[test]
    fn names_and_selection() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(file_stem("cam", t), "cam-20231114T221320Z");
        let mut config = Config::default();
        config.apps = vec![
            crate::config::AppConfig {
                name: "live".into(),
                record: false,
                record_streams: vec!["a".into()],
            },
            crate::config::AppConfig {
                name: "rec".into(),
                record: true,
                record_streams: vec![],
            },
        ];
        assert!(wants_recording(&config, &StreamKey::new("live", "a")));
        assert!(!wants_recording(&config, &StreamKey::new("live", "b")));
        assert!(wants_recording(&config, &StreamKey::new("rec", "b")));
        assert!(!wants_recording(&config, &StreamKey::new("other", "a")));
    }
}
