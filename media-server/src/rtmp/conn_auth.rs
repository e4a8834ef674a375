//! The RTMP connection's authorization hooks: a `publish` or `play` is
//! checked (files, signatures, webhooks: `crate::auth`) before it starts;
//! a refusal answers an error status with the reason, is logged (client,
//! stream, reason; never the key) and counted by reason.

use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use super::{Conn, VOD_APP};
use crate::auth::{PlayKind, Reason, Refusal, signing};
use crate::config::{Role, check_name};
use crate::hub::StreamKey;

/// How long a taking-over publisher waits for the old one to leave.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);
const TAKEOVER_POLL: Duration = Duration::from_millis(20);

/// A publish or play whose authorization is pending.
#[derive(Debug)]
pub(super) enum AuthRequest {
    Publish { name: String, query: Option<String> },
    Play { name: String, query: Option<String> },
}

/// The RTMP status code of a publish refusal.
fn publish_code(reason: Reason) -> &'static str {
    match reason {
        Reason::AlreadyPublishing | Reason::EdgeRole => "NetStream.Publish.BadName",
        _ => "NetStream.Publish.BadAuth",
    }
}

impl Conn {
    pub(super) async fn authorize(&mut self, request: AuthRequest) {
        let Some(app) = self.app.clone() else {
            return;
        };
        match request {
            AuthRequest::Publish { name, query } => {
                // An edge relays from its upstreams only: a publish here
                // would make the stream live and shadow the origin's.
                if self.state.edge.is_some() || self.state.config.role == Role::Edge {
                    self.refuse_publish(&app, &name, &Reason::EdgeRole.into());
                    return;
                }
                // Names refused anyway are refused without asking anyone.
                if app == VOD_APP || check_name(&name).is_err() {
                    self.on_publish(&name);
                    return;
                }
                let checked = self
                    .state
                    .publish_auth
                    .check(&app, &name, query.as_deref(), self.peer.ip())
                    .await;
                match checked {
                    Ok(()) => {
                        self.take_over_if_allowed(&app, &name).await;
                        self.on_publish(&name);
                    }
                    Err(refusal) => self.refuse_publish(&app, &name, &refusal),
                }
            }
            AuthRequest::Play { name, query } => {
                let resource = if app == VOD_APP {
                    let file = match &self.vod_dir {
                        Some(dir) => format!("{dir}/{name}"),
                        None => name.clone(),
                    };
                    signing::vod_resource(&file).unwrap_or_default()
                } else {
                    format!("{app}/{name}")
                };
                let checked = self
                    .state
                    .play_auth
                    .check(&resource, query.as_deref(), self.peer.ip(), PlayKind::Rtmp)
                    .await;
                match checked {
                    Ok(()) => self.on_play(&name),
                    Err(refusal) => self.refuse_play(&resource, &refusal),
                }
            }
        }
    }

    /// With `allow_takeover`, disconnects the publisher of `app/name` and
    /// waits (bounded) for its publication to end.
    async fn take_over_if_allowed(&mut self, app: &str, name: &str) {
        if !self.state.publish_auth.allow_takeover() {
            return;
        }
        let key = StreamKey::new(app, name);
        if !self.state.hub.disconnect_publisher(&key) {
            return;
        }
        tracing::info!(peer = %self.peer, stream = %key, "publish takes the stream over: disconnecting its publisher");
        let deadline = Instant::now() + TAKEOVER_WAIT;
        while self.state.hub.is_live(&key) && Instant::now() < deadline {
            tokio::time::sleep(TAKEOVER_POLL).await;
        }
    }

    fn refuse_publish(&mut self, app: &str, name: &str, refusal: &Refusal) {
        self.state
            .hub
            .metrics()
            .publish_refused_by
            .add(refusal.reason);
        warn!(
            peer = %self.peer,
            stream = %format!("{app}/{name}"),
            reason = refusal.reason.label(),
            description = %refusal.description,
            "publish refused"
        );
        self.session
            .reject_publish(publish_code(refusal.reason), &refusal.description);
        self.close_after_flush();
    }

    fn refuse_play(&mut self, resource: &str, refusal: &Refusal) {
        self.state.hub.metrics().play_refused.add(refusal.reason);
        warn!(
            peer = %self.peer,
            stream = %resource,
            protocol = "rtmp",
            reason = refusal.reason.label(),
            description = %refusal.description,
            "play refused"
        );
        self.session
            .reject_play("NetStream.Play.Failed", &refusal.description);
        self.close_after_flush();
    }
}
