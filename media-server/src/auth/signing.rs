//! Signed playback URLs: `?expires=UNIX_SECS&token=T` with
//! `T = base64url_nopad(HMAC-SHA256(secret, "APP/NAME\nEXPIRES"))`, or with
//! the client's address bound in, `"APP/NAME\nEXPIRES\nCLIENT_IP"`.
//!
//! Edges sign their own upstream requests (relay pulls, cache fetches)
//! with the shared secret and mark them `via=edge`; the message then ends
//! in `\nedge` instead of an address, so such a token is never a viewer's
//! and is accepted whether or not the verifier binds addresses.
//!
//! Pure: the secrets, the time and the address are arguments.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::query::Query;
use super::reason::Reason;

type HmacSha256 = Hmac<Sha256>;

/// The binding of an edge's own upstream requests (see the module docs).
pub const EDGE_BINDING: &str = "edge";
/// The query parameter that marks an edge's upstream request.
pub const VIA_PARAM: &str = "via";

/// What a token is bound to besides the stream and the expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Nothing: anyone with the URL may play until it expires.
    None,
    /// The viewer's address.
    Client(IpAddr),
    /// An edge's upstream request.
    Edge,
}

/// The signed message.
fn message(resource: &str, expires: u64, binding: Binding) -> String {
    match binding {
        Binding::None => format!("{resource}\n{expires}"),
        Binding::Client(ip) => format!("{resource}\n{expires}\n{}", canonical_ip(ip)),
        Binding::Edge => format!("{resource}\n{expires}\n{EDGE_BINDING}"),
    }
}

/// An IPv4 client reaching a dual-stack socket shows as `::ffff:a.b.c.d`:
/// sign and verify the plain IPv4 form.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// HMAC over `msg`; `None` only if the hmac crate refused a key, which
/// it never does for HMAC (any key length is valid).
fn mac(secret: &[u8], msg: &str) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(msg.as_bytes());
    Some(mac)
}

/// The token for `resource` (`live/cam1`, `vod/talk.mp4`) until `expires`.
pub fn token(secret: &[u8], resource: &str, expires: u64, binding: Binding) -> String {
    mac(secret, &message(resource, expires, binding))
        .map(|m| URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// The query string (`expires=E&token=T`, plus `via=edge` for [`Binding::Edge`]).
pub fn query(secret: &[u8], resource: &str, expires: u64, binding: Binding) -> String {
    let t = token(secret, resource, expires, binding);
    match binding {
        Binding::Edge => format!("expires={expires}&token={t}&{VIA_PARAM}={EDGE_BINDING}"),
        _ => format!("expires={expires}&token={t}"),
    }
}

/// Checks the signature of a request for `resource` against every secret
/// (the first signs; the others are being rotated in or out).
pub fn verify(
    secrets: &[Vec<u8>],
    resource: &str,
    query: &Query,
    now: u64,
    bind_client: Option<IpAddr>,
) -> Result<(), Reason> {
    let (Some(expires), Some(token)) = (query.get("expires"), query.get("token")) else {
        return Err(Reason::MissingToken);
    };
    let expires: u64 = expires.parse().map_err(|_| Reason::BadToken)?;
    if expires < now {
        return Err(Reason::Expired);
    }
    let tag = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| Reason::BadToken)?;
    let binding = if query.get(VIA_PARAM) == Some(EDGE_BINDING) {
        Binding::Edge
    } else {
        bind_client.map_or(Binding::None, Binding::Client)
    };
    let msg = message(resource, expires, binding);
    if secrets
        .iter()
        .any(|s| mac(s, &msg).is_some_and(|m| m.verify_slice(&tag).is_ok()))
    {
        Ok(())
    } else {
        Err(Reason::BadToken)
    }
}

/// The signed resource of an HTTP request path: every live playback path
/// the server answers (`/APP/NAME.flv`, `/APP/NAME.mp4`,
/// `/APP/NAME/index.m3u8`, `/APP/NAME/seg-N.ts`, the low-latency HLS
/// files) gives `APP/NAME`; `/vod/FILE` gives `vod/FILE`. `None`: not a
/// playback path. One classification with the edge's, so what is checked
/// is exactly what is served.
pub fn resource_of_path(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or_default();
    if let Some(file) = path.strip_prefix("/vod/") {
        return vod_resource(file);
    }
    let live = crate::edge::http::classify(path)?;
    let k = live.key();
    Some(format!("{}/{}", k.app, k.name))
}

/// The signed resource of an RTMP URL's path: `/APP/NAME` gives
/// `APP/NAME` (the name as it is, dots included), `/vod/FILE` gives
/// `vod/FILE` (an `mp4:`/`flv:` prefix dropped).
pub fn resource_of_rtmp_path(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or_default();
    if let Some(file) = path.strip_prefix("/vod/") {
        return vod_resource(file);
    }
    match path.strip_prefix('/')?.split_once('/') {
        Some((app, name)) if !app.is_empty() && !name.is_empty() && !name.contains('/') => {
            Some(format!("{app}/{name}"))
        }
        _ => None,
    }
}

/// `vod/FILE` for a VOD file as an HTTP path or an RTMP play name gives it.
pub fn vod_resource(file: &str) -> Option<String> {
    let (dir, last) = match file.rsplit_once('/') {
        Some((d, l)) => (Some(d), l),
        None => (None, file),
    };
    let lower = last.to_ascii_lowercase();
    let last = if lower.starts_with("mp4:") || lower.starts_with("flv:") {
        &last[4..]
    } else {
        last
    };
    if last.is_empty() {
        return None;
    }
    Some(match dir {
        Some(d) => format!("vod/{d}/{last}"),
        None => format!("vod/{last}"),
    })
}

/// Signs `url` (`rtmp://HOST/APP/NAME`, `http://HOST/APP/NAME.flv`,
/// `.../index.m3u8`, `http://HOST/vod/FILE`): the URL with the signed
/// query appended (after an existing query with `&`).
pub fn sign_url(
    secret: &[u8],
    url: &str,
    expires: u64,
    client: Option<IpAddr>,
) -> Result<String, String> {
    let after_scheme = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{url:?} is not an absolute URL (rtmp:// or http://)"))?;
    let path = after_scheme
        .find('/')
        .map(|i| &after_scheme[i..])
        .ok_or_else(|| format!("{url:?} has no path: expected /APP/NAME..."))?;
    let resource = if url.starts_with("rtmp://") {
        resource_of_rtmp_path(path)
    } else {
        resource_of_path(path)
    }
    .ok_or_else(|| {
        format!(
            "{url:?} is not a playback URL (rtmp://HOST/APP/NAME, http://HOST/APP/NAME.flv, \
             .../APP/NAME/index.m3u8, .../vod/FILE)"
        )
    })?;
    let binding = client.map_or(Binding::None, Binding::Client);
    let q = query(secret, &resource, expires, binding);
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}{q}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    #[test]
    fn known_answer_matches_the_contract_formula() {
        // printf 'live/cam1\n1700000000' | openssl dgst -sha256 -hmac k -binary
        //   | base64 | tr '+/' '-_' | tr -d '='
        let t = token(b"k", "live/cam1", 1_700_000_000, Binding::None);
        assert_eq!(t, "f1tjlTC7WgMhhNReQUy81-hrJVC7sWsYN0wGkWu0n8o");
    }

    #[test]
    fn valid_expired_tampered_and_wrong_stream() {
        let secrets = vec![b"s3cret".to_vec()];
        let good = query(b"s3cret", "live/cam", 1000, Binding::None);
        assert_eq!(verify(&secrets, "live/cam", &q(&good), 999, None), Ok(()));
        assert_eq!(verify(&secrets, "live/cam", &q(&good), 1000, None), Ok(()));
        assert_eq!(
            verify(&secrets, "live/cam", &q(&good), 1001, None),
            Err(Reason::Expired)
        );
        assert_eq!(
            verify(&secrets, "live/other", &q(&good), 999, None),
            Err(Reason::BadToken)
        );
        let later = good.replace("expires=1000", "expires=2000");
        assert_eq!(
            verify(&secrets, "live/cam", &q(&later), 999, None),
            Err(Reason::BadToken)
        );
        assert_eq!(
            verify(&secrets, "live/cam", &q("expires=1000&token=!!"), 999, None),
            Err(Reason::BadToken)
        );
        assert_eq!(
            verify(&secrets, "live/cam", &q("expires=1000"), 999, None),
            Err(Reason::MissingToken)
        );
        assert_eq!(
            verify(&secrets, "live/cam", &q(""), 999, None),
            Err(Reason::MissingToken)
        );
        assert_eq!(
            verify(&[b"other".to_vec()], "live/cam", &q(&good), 999, None),
            Err(Reason::BadToken)
        );
    }

    #[test]
    fn every_secret_verifies_during_rotation() {
        let signed_old = query(b"old", "live/cam", 50, Binding::None);
        let signed_new = query(b"new", "live/cam", 50, Binding::None);
        let both = vec![b"new".to_vec(), b"old".to_vec()];
        assert_eq!(verify(&both, "live/cam", &q(&signed_old), 1, None), Ok(()));
        assert_eq!(verify(&both, "live/cam", &q(&signed_new), 1, None), Ok(()));
    }

    #[test]
    fn client_binding() {
        let secrets = vec![b"s".to_vec()];
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let other: IpAddr = "10.0.0.8".parse().unwrap();
        let bound = query(b"s", "live/cam", 50, Binding::Client(ip));
        assert_eq!(
            verify(&secrets, "live/cam", &q(&bound), 1, Some(ip)),
            Ok(())
        );
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(
            verify(&secrets, "live/cam", &q(&bound), 1, Some(mapped)),
            Ok(())
        );
        assert_eq!(
            verify(&secrets, "live/cam", &q(&bound), 1, Some(other)),
            Err(Reason::BadToken)
        );
        // An unbound token does not pass a verifier that binds addresses.
        let unbound = query(b"s", "live/cam", 50, Binding::None);
        assert_eq!(
            verify(&secrets, "live/cam", &q(&unbound), 1, Some(ip)),
            Err(Reason::BadToken)
        );
    }

    #[test]
    fn edge_tokens_pass_with_or_without_address_binding() {
        let secrets = vec![b"s".to_vec()];
        let edge = query(b"s", "live/cam", 50, Binding::Edge);
        assert!(edge.ends_with("&via=edge"));
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(verify(&secrets, "live/cam", &q(&edge), 1, Some(ip)), Ok(()));
        assert_eq!(verify(&secrets, "live/cam", &q(&edge), 1, None), Ok(()));
        // A viewer's token with `via=edge` added does not pass.
        let viewer = query(b"s", "live/cam", 50, Binding::None) + "&via=edge";
        assert_eq!(
            verify(&secrets, "live/cam", &q(&viewer), 1, None),
            Err(Reason::BadToken)
        );
    }

    #[test]
    fn resources_of_paths() {
        let r = |p| resource_of_path(p);
        assert_eq!(r("/live/cam.flv").as_deref(), Some("live/cam"));
        assert_eq!(r("/live/cam.mp4").as_deref(), Some("live/cam"));
        assert_eq!(r("/live/cam/index.m3u8").as_deref(), Some("live/cam"));
        assert_eq!(r("/live/cam/ll.m3u8").as_deref(), Some("live/cam"));
        assert_eq!(r("/live/cam/init.mp4").as_deref(), Some("live/cam"));
        assert_eq!(r("/live/cam/seg-1234.ts?x=1").as_deref(), Some("live/cam"));
        assert_eq!(r("/vod/talk.mp4").as_deref(), Some("vod/talk.mp4"));
        assert_eq!(
            r("/vod/recordings/live/a.flv").as_deref(),
            Some("vod/recordings/live/a.flv")
        );
        for p in [
            "/live/cam/other.txt",
            "/healthz",
            "/vod/",
            "/live/cam",
            "/live/../x.flv",
        ] {
            assert_eq!(r(p), None, "{p}");
        }
        let rt = |p| resource_of_rtmp_path(p);
        assert_eq!(rt("/live/cam").as_deref(), Some("live/cam"));
        assert_eq!(rt("/live/cam.hd?x=1").as_deref(), Some("live/cam.hd"));
        assert_eq!(rt("/vod/mp4:talk.mp4").as_deref(), Some("vod/talk.mp4"));
        assert_eq!(
            rt("/vod/dir/mp4:talk.mp4").as_deref(),
            Some("vod/dir/talk.mp4")
        );
        assert_eq!(rt("/live"), None);
        assert_eq!(rt("/live/a/b"), None);
    }

    #[test]
    fn sign_url_appends_the_query() {
        let u = sign_url(b"s", "rtmp://h:1935/live/cam", 99, None).unwrap();
        assert!(sign_url(b"s", "http://h/live/cam", 99, None).is_err());
        let want = query(b"s", "live/cam", 99, Binding::None);
        assert_eq!(u, format!("rtmp://h:1935/live/cam?{want}"));
        let u = sign_url(b"s", "http://h/vod/a.mp4?x=1", 99, None).unwrap();
        assert!(
            u.starts_with("http://h/vod/a.mp4?x=1&expires=99&token="),
            "{u}"
        );
        assert!(sign_url(b"s", "live/cam", 99, None).is_err());
        assert!(sign_url(b"s", "http://h", 99, None).is_err());
        assert!(sign_url(b"s", "http://h/healthz", 99, None).is_err());
    }
}
