//! The HTML of `/` and `/watch/APP/NAME`, built by pure functions. Every
//! string that came from outside (stream names are chosen by publishers,
//! the query by viewers) goes through [`escape`].

use std::fmt::Write as _;

/// One row of the stream list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub app: String,
    pub name: String,
    pub viewers: u64,
    /// Incoming bitrate, kbit/s (0 while the hub has not measured it yet).
    pub bitrate_kbps: u64,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
}

/// What the index page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// `origin` or `edge`.
    pub role: &'static str,
    /// True when play authorization is on: names are not listed then
    /// (`rows` is ignored), since a viewer needs a signed URL anyway.
    pub hidden: bool,
    pub rows: Vec<Row>,
    /// Viewers of every stream on this server.
    pub viewers: u64,
    /// Egress over the stats window, bit/s.
    pub egress_bps: u64,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment (names are checked, but a link must stay
/// one segment whatever the name holds).
fn path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-")
        .replace("%5F", "_")
        .replace("%2E", ".")
}

fn head(out: &mut String, title: &str, css: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<link rel=\"stylesheet\" href=\"{}\">\n</head>\n",
        escape(title),
        escape(css)
    );
}

/// Formats a bitrate for people.
fn rate(kbps: u64) -> String {
    if kbps == 0 {
        "–".to_owned()
    } else if kbps >= 10_000 {
        format!("{} Mbit/s", kbps / 1000)
    } else if kbps >= 1000 {
        format!("{}.{} Mbit/s", kbps / 1000, (kbps % 1000) / 100)
    } else {
        format!("{kbps} kbit/s")
    }
}

/// `/`: the streams live on this server, each linking to its player.
pub fn index(page: &Index, css: &str) -> String {
    let mut out = String::new();
    head(&mut out, "Fleetcast: live streams", css);
    if page.hidden {
        let _ = write!(
            out,
            "<body>\n<header><h1>Fleetcast</h1><p class=\"role\">{} · {} viewers · egress {}</p></header>\n<main>\n",
            escape(page.role),
            page.viewers,
            rate(page.egress_bps / 1000)
        );
        out.push_str("<p class=\"empty\">Stream list hidden: playback needs signed URLs.</p>\n");
        out.push_str("</main>\n</body>\n</html>\n");
        return out;
    }
    let _ = write!(
        out,
        "<body>\n<header><h1>Fleetcast</h1><p class=\"role\">{} · {} live · {} viewers · egress {}</p></header>\n<main>\n",
        escape(page.role),
        page.rows.len(),
        page.viewers,
        rate(page.egress_bps / 1000)
    );
    if page.rows.is_empty() {
        out.push_str("<p class=\"empty\">No stream is live here now.</p>\n");
    } else {
        // No upstream column: where an edge relays from (pod addresses)
        // is for the admin port's `/api/streams` only.
        out.push_str(
            "<table id=\"streams\">\n<thead><tr><th>Stream</th><th>Viewers</th><th>Bitrate</th><th>Codecs</th></tr></thead>\n<tbody>\n",
        );
        for r in &page.rows {
            let codecs = [r.video_codec.as_deref(), r.audio_codec.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "<tr><td><a class=\"stream\" href=\"/watch/{}/{}\">{}/{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&path_segment(&r.app)),
                escape(&path_segment(&r.name)),
                escape(&r.app),
                escape(&r.name),
                r.viewers,
                rate(r.bitrate_kbps),
                escape(&codecs),
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// `/watch/APP/NAME`: the player. `query` is the page's own query string
/// (a signed playback token), handed to the media URL so the token keeps
/// working; the script reads the URL from `data-src` (no inline script).
pub fn watch(app: &str, name: &str, query: Option<&str>, css: &str, js: &str) -> String {
    let mut src = format!("/{}/{}.mp4", path_segment(app), path_segment(name));
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        src.push('?');
        src.push_str(q);
    }
    let mut out = String::new();
    head(&mut out, &format!("{app}/{name} · Fleetcast"), css);
    let _ = write!(
        out,
        "<body>\n<header><a href=\"/\">Fleetcast</a> <h1>{}/{}</h1></header>\n<main>\n\
         <video id=\"player\" data-src=\"{}\" muted autoplay playsinline controls></video>\n\
         <p id=\"readout\" class=\"readout\">connecting…</p>\n</main>\n\
         <script src=\"{}\"></script>\n</body>\n</html>\n",
        escape(app),
        escape(name),
        escape(&src),
        escape(js),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> Row {
        Row {
            app: "live".into(),
            name: name.into(),
            viewers: 3,
            bitrate_kbps: 1500,
            video_codec: Some("h264".into()),
            audio_codec: Some("aac".into()),
        }
    }

    #[test]
    fn escapes_the_five() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn index_escapes_a_hostile_name() {
        let page = Index {
            role: "origin",
            hidden: false,
            rows: vec![row("<script>alert(1)</script>\"'")],
            viewers: 3,
            egress_bps: 0,
        };
        let html = index(&page, "/assets/page.css");
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;"),
            "{html}"
        );
        // The link stays one path segment.
        assert!(
            html.contains("href=\"/watch/live/%3Cscript%3Ealert%281%29%3C%2Fscript%3E%22%27\""),
            "{html}"
        );
    }

    #[test]
    fn index_lists_streams_with_viewers_bitrate_and_links() {
        let page = Index {
            role: "edge",
            hidden: false,
            rows: vec![row("cam-1.main")],
            viewers: 3,
            egress_bps: 2_000_000,
        };
        let html = index(&page, "/assets/page.css");
        assert!(
            html.contains("href=\"/watch/live/cam-1.main\">live/cam-1.main</a>"),
            "{html}"
        );
        assert!(
            html.contains("<td>3</td><td>1.5 Mbit/s</td><td>h264, aac</td></tr>"),
            "{html}"
        );
        assert!(!html.contains("<th>From</th>"), "{html}");
        assert!(
            html.contains("edge · 1 live · 3 viewers · egress 2.0 Mbit/s"),
            "{html}"
        );
        let empty = index(
            &Index {
                role: "origin",
                hidden: false,
                rows: vec![],
                viewers: 0,
                egress_bps: 0,
            },
            "/assets/page.css",
        );
        assert!(empty.contains("No stream is live here now."));
        assert!(!empty.contains("<table"));
    }

    #[test]
    fn a_hidden_index_lists_no_stream() {
        let page = Index {
            role: "origin",
            hidden: true,
            rows: vec![row("secret-cam")],
            viewers: 3,
            egress_bps: 0,
        };
        let html = index(&page, "/assets/page.css");
        assert!(!html.contains("secret-cam"), "{html}");
        assert!(!html.contains("/watch/"), "{html}");
        assert!(!html.contains("<table"), "{html}");
        assert!(html.contains("Stream list hidden: playback needs signed URLs."));
        assert!(html.contains("origin · 3 viewers"), "{html}");
    }

    #[test]
    fn watch_carries_the_query_and_escapes() {
        let html = watch("live", "cam", Some("exp=1&sig=a\"b"), "/c.css", "/p.js");
        assert!(
            html.contains("data-src=\"/live/cam.mp4?exp=1&amp;sig=a&quot;b\""),
            "{html}"
        );
        assert!(html.contains("<script src=\"/p.js\"></script>"));
        // The only script is the external one.
        assert_eq!(html.matches("<script").count(), 1);
        let hostile = watch("live", "<script>x", None, "/c.css", "/p.js");
        assert!(hostile.contains("&lt;script&gt;x"), "{hostile}");
        assert_eq!(hostile.matches("<script").count(), 1, "{hostile}");
        assert!(
            hostile.contains("data-src=\"/live/%3Cscript%3Ex.mp4\""),
            "{hostile}"
        );
    }

    #[test]
    fn rates_read_well() {
        assert_eq!(rate(0), "–");
        assert_eq!(rate(800), "800 kbit/s");
        assert_eq!(rate(2500), "2.5 Mbit/s");
        assert_eq!(rate(25_000), "25 Mbit/s");
    }
}
