//! A request's query string (`?key=...`, `?expires=...&token=...`),
//! percent-decoded with `form_urlencoded` (the `url` crate's parser).

use std::collections::BTreeMap;

/// Decoded `name=value` pairs; the first of a repeated name wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: BTreeMap<String, String>,
    /// The first raw (undecoded) value of each name, for secrets.
    raw: BTreeMap<String, String>,
}

impl Query {
    /// Parses the part after `?` (none: empty).
    pub fn parse(query: Option<&str>) -> Self {
        let query = query.unwrap_or_default();
        let mut pairs = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            pairs
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
        let mut raw = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let name: String = form_urlencoded::parse(k.as_bytes())
                .next()
                .map(|(n, _)| n.into_owned())
                .unwrap_or_default();
            raw.entry(name).or_insert_with(|| v.to_owned());
        }
        Self { pairs, raw }
    }

    /// The forms a secret `name` (`token`, `key`) is matched in: as sent,
    /// and percent-decoded without turning `+` into a space. Secrets from
    /// `openssl rand -base64` hold `+`, `/` and `=`, and publishers put
    /// them in URLs unencoded; form-decoding alone would refuse those.
    pub fn secret_forms(&self, name: &str) -> Vec<String> {
        let Some(raw) = self.raw.get(name) else {
            return Vec::new();
        };
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == *raw {
            vec![decoded]
        } else {
            vec![raw.clone(), decoded]
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.get(name).map(String::as_str)
    }

    /// Every pair, for webhooks: secrets (`key`, `token`) included, since
    /// deciding on them is the webhook's job.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_keeps_the_first() {
        let q = Query::parse(Some("key=a%2Bb&x=1&key=second&flag"));
        assert_eq!(q.get("key"), Some("a+b"));
        assert_eq!(q.get("x"), Some("1"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("nope"), None);
        assert_eq!(Query::parse(None), Query::default());
    }

    #[test]
    fn secret_forms_keep_plus_signs() {
        let raw = Query::parse(Some("token=a+b/c=&x=1"));
        assert_eq!(raw.secret_forms("token"), vec!["a+b/c="]);
        let encoded = Query::parse(Some("token=a%2Bb%2Fc%3D&token=second"));
        assert_eq!(
            encoded.secret_forms("token"),
            vec!["a%2Bb%2Fc%3D", "a+b/c="]
        );
        assert!(raw.secret_forms("key").is_empty());
        assert_eq!(Query::parse(Some("key")).secret_forms("key"), vec![""]);
    }
}
