//! How each viewer session ended: told to leave by the server (an RTMP end
//! status, the end of an HTTP-FLV response) before the connection closed,
//! cut without a word (closed, reset, stalled), or still playing when the run
//! ended; and whether each reconnect played again. Pure: sessions in, counts out.

use std::collections::BTreeMap;

use serde::Serialize;

/// How one session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum End {
    /// The server said the stream ended before the connection closed: the
    /// RTMP `onStatus` code (`NetStream.Play.UnpublishNotify`,
    /// `NetStream.Play.Stop`, ...) or, for HTTP-FLV, how the response ended.
    Told {
        /// The status code or end marker.
        code: String,
    },
    /// Playing, then the connection closed, was reset, erred or stalled with
    /// no word from the server.
    Cut {
        /// What happened.
        reason: String,
    },
    /// Playing (play accepted) when the run ended.
    StillPlaying,
    /// The run ended before the server accepted the play.
    Connecting,
    /// Never played: connect refused, stream not found, bad response.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One connection of a viewer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// 0 for the viewer's first connection, n for its n-th reconnect.
    pub attempt: u32,
    /// When it started connecting (run clock, ms).
    pub started_ms: f64,
    /// Whether a video keyframe arrived on this connection (it played).
    pub played: bool,
    /// How it ended.
    #[serde(flatten)]
    pub end: End,
}

impl Session {
    /// True for a reconnect (not the viewer's first connection).
    pub fn is_reconnect(&self) -> bool {
        self.attempt > 0
    }
}

/// What happened to a reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// It received a keyframe: the viewer played again.
    Ok,
    /// It ended without a keyframe (refused, not found, closed).
    Failed,
    /// The run ended before it received a keyframe.
    Unfinished,
}

/// The verdict on a reconnect session; `None` for a first connection.
pub fn reconnect_verdict(s: &Session) -> Option<Reconnect> {
    if !s.is_reconnect() {
        return None;
    }
    Some(if s.played {
        Reconnect::Ok
    } else if matches!(s.end, End::StillPlaying | End::Connecting) {
        Reconnect::Unfinished
    } else {
        Reconnect::Failed
    })
}

/// Session endings and reconnects over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Endings {
    /// Sessions the server told to leave before closing (drained, unpublished).
    pub ended_told: usize,
    /// Sessions that played and then were closed, reset or stalled without a word.
    pub ended_cut: usize,
    /// Sessions playing when the run ended.
    pub still_playing: usize,
    /// `ended_told` by status code / end marker.
    pub told_codes: BTreeMap<String, usize>,
    /// `ended_cut` by reason (the text up to the first ':').
    pub cut_reasons: BTreeMap<String, usize>,
    /// Reconnects made (each viewer's connections after its first).
    pub reconnects: usize,
    /// Reconnects that received a keyframe (played again).
    pub reconnected_ok: usize,
    /// Reconnects that ended without a keyframe.
    pub reconnect_failed: usize,
    /// Reconnects the end of the run interrupted before a keyframe.
    pub reconnect_unfinished: usize,
}

impl Endings {
    /// Counts `sessions`.
    pub fn of<'a>(sessions: impl IntoIterator<Item = &'a Session>) -> Self {
        let mut e = Self::default();
        for s in sessions {
            match &s.end {
                End::Told { code } => {
                    e.ended_told += 1;
                    *e.told_codes.entry(code.clone()).or_insert(0) += 1;
                }
                End::Cut { reason } => {
                    e.ended_cut += 1;
                    *e.cut_reasons.entry(reason_class(reason)).or_insert(0) += 1;
                }
                End::StillPlaying => e.still_playing += 1,
                End::Connecting | End::Failed { .. } => {}
            }
            match reconnect_verdict(s) {
                None => {}
                Some(v) => {
                    e.reconnects += 1;
                    match v {
                        Reconnect::Ok => e.reconnected_ok += 1,
                        Reconnect::Failed => e.reconnect_failed += 1,
                        Reconnect::Unfinished => e.reconnect_unfinished += 1,
                    }
                }
            }
        }
        e
    }
}

/// With `--reconnect`: what became of each time a viewer was told to leave.
/// A move succeeded when a later connection of that viewer played (however
/// many reconnects it took); it was lost when the viewer gave up (reconnects
/// used up, or a reconnect cut before playing) without playing again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[allow(clippy::struct_field_names)] // flattened into the report, where the prefix says what they count
pub struct Moves {
    /// Told to leave, then played again on a later connection.
    pub moved_ok: usize,
    /// Told to leave and never played again, with the run still going.
    pub moved_lost: usize,
    /// Told to leave; the run ended before a later connection played.
    pub moved_unfinished: usize,
}

impl Moves {
    /// Counts over each viewer's sessions, in order, with `max` reconnects per viewer.
    pub fn of<'a>(viewers: impl IntoIterator<Item = &'a [Session]>, max: u32) -> Self {
        let mut m = Self::default();
        for sessions in viewers {
            for (i, s) in sessions.iter().enumerate() {
                if !matches!(s.end, End::Told { .. }) {
                    continue;
                }
                let later = &sessions[i + 1..];
                if later.iter().any(|l| l.played) {
                    m.moved_ok += 1;
                    continue;
                }
                // No later connection played: the last one says why.
                let last = later.last().unwrap_or(s);
                let gave_up = match last.end {
                    // Would have reconnected unless out of attempts: if not
                    // out, the run ended during the pause.
                    End::Told { .. } | End::Failed { .. } => last.attempt >= max,
                    End::Cut { .. } => true,
                    End::StillPlaying | End::Connecting => false,
                };
                if gave_up {
                    m.moved_lost += 1;
                } else {
                    m.moved_unfinished += 1;
                }
            }
        }
        m
    }
}

/// Groups messages into a bounded set of reasons (the text up to the first ':').
pub fn reason_class(reason: &str) -> String {
    reason.split(':').next().unwrap_or(reason).trim().to_owned()
}

/// RTMP `onStatus` codes with which a server says a playing stream ended.
pub fn is_end_status(code: &str) -> bool {
    matches!(
        code,
        "NetStream.Play.UnpublishNotify" | "NetStream.Play.Stop" | "NetStream.Play.Complete"
    )
}

/// RTMP `onStatus` codes with which a stream (re)starts: an earlier end
/// status no longer applies.
pub fn is_restart_status(code: &str) -> bool {
    matches!(
        code,
        "NetStream.Play.PublishNotify" | "NetStream.Play.Start" | "NetStream.Play.Reset"
    )
}

/// Whether a viewer that ended with `end` on attempt `attempt` reconnects,
/// given `--reconnect` and `--max-reconnects`: after being told to leave,
/// and after a reconnect that failed (players keep trying), up to the bound.
pub fn should_reconnect(end: &End, attempt: u32, enabled: bool, max: u32) -> bool {
    enabled
        && attempt < max
        && match end {
            End::Told { .. } => true,
            End::Failed { .. } => attempt > 0,
            End::Cut { .. } | End::StillPlaying | End::Connecting => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(attempt: u32, played: bool, end: End) -> Session {
        Session {
            attempt,
            started_ms: 0.0,
            played,
            end,
        }
    }

    fn told(code: &str) -> End {
        End::Told { code: code.into() }
    }

    fn cut(reason: &str) -> End {
        End::Cut {
            reason: reason.into(),
        }
    }

    #[test]
    fn counts_endings_and_reconnects() {
        let failed = End::Failed {
            reason: "rtmp status: NetStream.Play.StreamNotFound".into(),
        };
        let sessions = [
            session(0, true, told("NetStream.Play.UnpublishNotify")),
            session(1, true, End::StillPlaying),
            session(0, true, told("NetStream.Play.UnpublishNotify")),
            session(1, false, failed.clone()),
            session(2, false, End::Connecting),
            session(0, true, cut("read: Connection reset by peer")),
            session(0, true, cut("closed by server")),
            session(0, true, told("end of chunked response")),
            session(1, true, cut("stalled: no data for 10 s")),
            session(0, false, failed),
        ];
        let e = Endings::of(&sessions);
        assert_eq!((e.ended_told, e.ended_cut, e.still_playing), (3, 3, 1));
        assert_eq!(e.told_codes["NetStream.Play.UnpublishNotify"], 2);
        assert_eq!(e.told_codes["end of chunked response"], 1);
        assert_eq!(e.cut_reasons["read"], 1);
        assert_eq!(e.cut_reasons["closed by server"], 1);
        assert_eq!(e.cut_reasons["stalled"], 1);
        assert_eq!(e.reconnects, 4);
        // A reconnect that played and was cut later still played again.
        assert_eq!(e.reconnected_ok, 2);
        assert_eq!(e.reconnect_failed, 1);
        assert_eq!(e.reconnect_unfinished, 1);

        let json = serde_json::to_value(&sessions[5]).unwrap();
        assert_eq!(json["end"], "cut");
        assert_eq!(json["reason"], "read: Connection reset by peer");
        assert_eq!(
            serde_json::to_value(&sessions[1]).unwrap()["end"],
            "still_playing"
        );
    }

    #[test]
    fn moves_succeed_when_a_later_connection_plays() {
        let unpublished = || told("NetStream.Play.UnpublishNotify");
        let refused = || End::Failed {
            reason: "rtmp status: NetStream.Play.StreamNotFound".into(),
        };
        // Told, one failed reconnect, then one that plays: one move, ok.
        let retried = [
            session(0, true, unpublished()),
            session(1, false, refused()),
            session(2, true, End::StillPlaying),
        ];
        // Told twice, both times played again.
        let twice = [
            session(0, true, unpublished()),
            session(1, true, unpublished()),
            session(2, true, End::StillPlaying),
        ];
        // Out of reconnects (max 2) without playing: lost.
        let used_up = [
            session(0, true, unpublished()),
            session(1, false, refused()),
            session(2, false, refused()),
        ];
        // The run ended while waiting to reconnect, or before a keyframe.
        let pausing = [session(0, true, unpublished())];
        let waiting = [
            session(0, true, unpublished()),
            session(1, false, End::StillPlaying),
        ];
        // A reconnect cut before playing: the viewer stops, lost.
        let cut_off = [
            session(0, true, unpublished()),
            session(1, false, cut("closed by server")),
        ];
        // Never told: no move.
        let never_told = [session(0, true, cut("closed by server"))];
        let viewers: [&[Session]; 7] = [
            &retried,
            &twice,
            &used_up,
            &pausing,
            &waiting,
            &cut_off,
            &never_told,
        ];
        assert_eq!(
            Moves::of(viewers, 2),
            Moves {
                moved_ok: 3,
                moved_lost: 2,
                moved_unfinished: 2
            }
        );
        // No reconnect allowed: told and not moved is lost.
        assert_eq!(Moves::of([&pausing[..]], 0).moved_lost, 1);
        assert_eq!(Moves::of([&pausing[..]], 1).moved_unfinished, 1);
    }

    #[test]
    fn end_and_restart_statuses() {
        assert!(is_end_status("NetStream.Play.UnpublishNotify"));
        assert!(is_end_status("NetStream.Play.Stop"));
        assert!(!is_end_status("NetStream.Play.Start"));
        assert!(!is_end_status("NetStream.Play.StreamNotFound"));
        assert!(is_restart_status("NetStream.Play.PublishNotify"));
        assert!(!is_restart_status("NetStream.Play.UnpublishNotify"));
    }

    #[test]
    fn reconnects_after_told_and_failed_retries_up_to_the_bound() {
        let t = told("NetStream.Play.UnpublishNotify");
        let f = End::Failed {
            reason: "connect".into(),
        };
        assert!(should_reconnect(&t, 0, true, 5));
        assert!(!should_reconnect(&t, 0, false, 5));
        assert!(!should_reconnect(&t, 5, true, 5));
        assert!(!should_reconnect(&t, 0, true, 0));
        // A first connection that failed is a failure, not a reason to retry;
        // a failed reconnect is tried again.
        assert!(!should_reconnect(&f, 0, true, 5));
        assert!(should_reconnect(&f, 1, true, 5));
        assert!(!should_reconnect(&cut("closed by server"), 0, true, 5));
        assert!(!should_reconnect(&End::StillPlaying, 0, true, 5));
    }
}
