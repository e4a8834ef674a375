//! VOD over RTMP: the RTMP `play` on the `vod` app opens a file here and
//! sends the tags this yields, paced in real time.
//!
//! Stream names as Flash-era clients send them: `file.mp4`, `mp4:file.mp4`,
//! `mp4:file` (→ `file.mp4`), `file.flv`, `flv:file`, `file` (→ `file.flv`,
//! then `file.mp4`), `recordings/APP/file.flv`; a `?query` is ignored.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::VodError;
use super::mp4::Mp4Demuxer;
use super::path::{VodRoots, resolve};
use crate::flv;
use crate::media::{Tag, TagKind};

/// Media sent ahead of real time when playback starts, so players fill their buffer at once.
pub const START_BURST: Duration = Duration::from_secs(1);
const CHANNEL_TAGS: usize = 64;
const READ_CHUNK: usize = 64 * 1024;

/// Candidate file names for an RTMP stream name.
pub fn candidates(stream_name: &str) -> Vec<String> {
    let name = stream_name.split('?').next().unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let (forced, bare) = if lower.starts_with("mp4:") {
        (Some("mp4"), &name[4..])
    } else if lower.starts_with("flv:") {
        (Some("flv"), &name[4..])
    } else {
        (None, name)
    };
    let has_ext = bare.rsplit('/').next().is_some_and(|f| f.contains('.'));
    match (has_ext, forced) {
        (true, _) => vec![bare.to_owned()],
        (false, Some(ext)) => vec![format!("{bare}.{ext}")],
        (false, None) => vec![format!("{bare}.flv"), format!("{bare}.mp4")],
    }
}

/// A file being played: tags in decode order, paced in real time.
pub struct VodPlayback {
    rx: mpsc::Receiver<Tag>,
    clock: Option<(Instant, u32)>,
    pending: Option<Tag>,
    path: PathBuf,
}

/// Opens the file an RTMP `play` names.
pub async fn open(roots: &VodRoots, stream_name: &str) -> Result<VodPlayback, VodError> {
    let mut last = VodError::NotFound;
    for candidate in candidates(stream_name) {
        match resolve(roots, &candidate).await {
            Ok(path) => return start(path).await,
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Plays a file already known to exist (an edge's cached copy of a VOD
/// file); it is open by the time this returns.
pub async fn open_file(path: PathBuf) -> Result<VodPlayback, VodError> {
    start(path).await
}

#[derive(Clone, Copy)]
enum Format {
    Flv,
    Mp4,
}

fn sniff(path: &Path) -> Result<Format, VodError> {
    let mut head = [0u8; 8];
    let mut f = std::fs::File::open(path)?;
    f.read_exact(&mut head)?;
    if &head[..3] == b"FLV" {
        Ok(Format::Flv)
    } else if matches!(
        &head[4..8],
        b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide" | b"skip"
    ) {
        Ok(Format::Mp4)
    } else {
        Err(VodError::Unsupported)
    }
}

async fn start(path: PathBuf) -> Result<VodPlayback, VodError> {
    let (tx, rx) = mpsc::channel(CHANNEL_TAGS);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let p = path.clone();
    tokio::task::spawn_blocking(move || {
        let mut ready = Some(ready_tx);
        let result = demux(&p, &tx, &mut ready);
        if let Some(ready) = ready.take() {
            let _ = ready.send(
                result
                    .as_ref()
                    .copied()
                    .map_err(|e| VodError::Mp4(e.to_string())),
            );
        } else if let Err(e) = result {
            tracing::warn!(path = %p.display(), error = %e, "VOD file ended early");
        }
    });
    match ready_rx.await {
        Ok(Ok(())) => Ok(VodPlayback {
            rx,
            clock: None,
            pending: None,
            path,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(VodError::Unsupported),
    }
}

type Ready = Option<tokio::sync::oneshot::Sender<Result<(), VodError>>>;

/// Runs on a blocking thread: reads the file and feeds the channel until
/// the end or until the player goes away.
fn demux(path: &Path, tx: &mpsc::Sender<Tag>, ready: &mut Ready) -> Result<(), VodError> {
    let file = std::fs::File::open(path)?;
    match sniff(path)? {
        Format::Mp4 => {
            let size = file.metadata()?.len();
            let mut demuxer = Mp4Demuxer::new(BufReader::new(file), size)?;
            if let Some(r) = ready.take() {
                let _ = r.send(Ok(()));
            }
            while let Some(tag) = demuxer.next_tag()? {
                if tx.blocking_send(tag).is_err() {
                    break;
                }
            }
        }
        Format::Flv => {
            if let Some(r) = ready.take() {
                let _ = r.send(Ok(()));
            }
            let mut file = file;
            let mut reader = flv::Reader::new();
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                while let Some(tag) = reader.next_tag()? {
                    if tx.blocking_send(tag).is_err() {
                        return Ok(());
                    }
                }
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                reader.push(&buf[..n]);
            }
        }
    }
    Ok(())
}

impl VodPlayback {
    /// The file being played.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next tag, when it is due; `None` at the end of the file.
    /// Cancel-safe: a tag whose wait is cancelled is kept for the next call.
    pub async fn next(&mut self) -> Option<Tag> {
        if self.pending.is_none() {
            self.pending = Some(self.rx.recv().await?);
        }
        let tag = self.pending.as_ref()?;
        if tag.kind != TagKind::Script && !tag.is_sequence_header() {
            let (t0, ts0) = *self.clock.get_or_insert((Instant::now(), tag.timestamp));
            let ahead = Duration::from_millis(u64::from(tag.timestamp.saturating_sub(ts0)));
            tokio::time::sleep_until(t0 + ahead.saturating_sub(START_BURST)).await;
        }
        self.pending.take()
    }

    /// The next tag without waiting (for tests and non-real-time consumers).
    pub async fn next_unpaced(&mut self) -> Option<Tag> {
        match self.pending.take() {
            Some(tag) => Some(tag),
            None => self.rx.recv().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_era_names() {
        assert_eq!(candidates("mp4:talk.mp4"), ["talk.mp4"]);
        assert_eq!(candidates("MP4:talk"), ["talk.mp4"]);
        assert_eq!(candidates("flv:talk"), ["talk.flv"]);
        assert_eq!(candidates("talk"), ["talk.flv", "talk.mp4"]);
        assert_eq!(candidates("talk.flv?token=1"), ["talk.flv"]);
        assert_eq!(
            candidates("recordings/live/a-1.flv"),
            ["recordings/live/a-1.flv"]
        );
        assert_eq!(candidates("mp4:dir/talk"), ["dir/talk.mp4"]);
    }
}
