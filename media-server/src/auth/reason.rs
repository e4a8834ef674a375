//! Why a publish or play was refused: a bounded set, so it can label a
//! Prometheus counter, each with the description peers are told.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a publish or play was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Publish: no key or token, or a wrong one.
    BadKey,
    /// Publish: keys are configured, but none for this stream or its app.
    NoKey,
    /// A key, token or secret file could not be read (fail closed).
    Unavailable,
    /// A webhook answered something other than 2xx.
    WebhookDenied,
    /// A webhook did not answer in time or could not be reached (fail closed).
    WebhookUnreachable,
    /// Publish: the stream already has a publisher and takeover is off.
    AlreadyPublishing,
    /// Publish: this server is an edge, which relays from upstreams only.
    EdgeRole,
    /// Play: the URL carries no `expires`/`token`.
    MissingToken,
    /// Play: the token does not match (tampered, other stream, other address).
    BadToken,
    /// Play: the URL's `expires` is in the past.
    Expired,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 10] = [
        Reason::BadKey,
        Reason::NoKey,
        Reason::Unavailable,
        Reason::WebhookDenied,
        Reason::WebhookUnreachable,
        Reason::AlreadyPublishing,
        Reason::EdgeRole,
        Reason::MissingToken,
        Reason::BadToken,
        Reason::Expired,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::BadKey => "bad_key",
            Reason::NoKey => "no_key",
            Reason::Unavailable => "unavailable",
            Reason::WebhookDenied => "webhook_denied",
            Reason::WebhookUnreachable => "webhook_unreachable",
            Reason::AlreadyPublishing => "already_publishing",
            Reason::EdgeRole => "edge_role",
            Reason::MissingToken => "missing_token",
            Reason::BadToken => "bad_token",
            Reason::Expired => "expired",
        }
    }

    /// What the peer is told when nothing more specific is known.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::BadKey => "invalid or missing publish key",
            Reason::NoKey => "no publish key is configured for this stream",
            Reason::Unavailable => "credentials unavailable on the server",
            Reason::WebhookDenied => "denied by the authorization webhook",
            Reason::WebhookUnreachable => "authorization webhook unreachable",
            Reason::AlreadyPublishing => "stream already publishing",
            Reason::EdgeRole => "this is an edge: publish to the origins' ingest",
            Reason::MissingToken => "signed URL required (expires and token missing)",
            Reason::BadToken => "invalid token",
            Reason::Expired => "signed URL expired",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A refusal: its reason and what the peer is told (a webhook's own words
/// when it gave some).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The bounded reason.
    pub reason: Reason,
    /// One line for the peer.
    pub description: String,
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Self {
        Self {
            reason,
            description: reason.describe().to_owned(),
        }
    }
}

/// Refusals counted by reason.
#[derive(Debug, Default)]
pub struct RefusalCounts([AtomicU64; Reason::ALL.len()]);

impl RefusalCounts {
    /// Counts one refusal.
    pub fn add(&self, reason: Reason) {
        self.0[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for `reason`.
    pub fn get(&self, reason: Reason) -> u64 {
        self.0[reason.index()].load(Ordering::Relaxed)
    }

    /// Appends the family `name` (every reason in `reasons`, zeros included).
    pub fn render(&self, out: &mut String, name: &str, help: &str, reasons: &[Reason]) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for r in reasons {
            let _ = writeln!(out, "{name}{{reason=\"{}\"}} {}", r.label(), self.get(*r));
        }
    }
}

/// The reasons a publish can be refused for.
pub const PUBLISH_REASONS: &[Reason] = &[
    Reason::BadKey,
    Reason::NoKey,
    Reason::Unavailable,
    Reason::WebhookDenied,
    Reason::WebhookUnreachable,
    Reason::AlreadyPublishing,
    Reason::EdgeRole,
];

/// The reasons a play can be refused for.
pub const PLAY_REASONS: &[Reason] = &[
    Reason::MissingToken,
    Reason::BadToken,
    Reason::Expired,
    Reason::Unavailable,
    Reason::WebhookDenied,
    Reason::WebhookUnreachable,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_with_labels() {
        let c = RefusalCounts::default();
        c.add(Reason::Expired);
        c.add(Reason::Expired);
        let mut out = String::new();
        c.render(&mut out, "x_total", "help", PLAY_REASONS);
        assert!(out.contains("x_total{reason=\"expired\"} 2\n"), "{out}");
        assert!(out.contains("x_total{reason=\"bad_token\"} 0\n"), "{out}");
        let labels: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), Reason::ALL.len());
    }
}
