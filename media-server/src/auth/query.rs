//! A request's query string (`?key=...`, `?expires=...&token=...`),
//! percent-decoded with `form_urlencoded` (the `url` crate's parser).

use std::collections::BTreeMap;

/// Decoded `name=value` pairs; the first of a repeated name wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: BTreeMap<String, String>,
}

impl Query {
    /// Parses the part after `?` (none: empty).
    pub fn parse(query: Option<&str>) -> Self {
        let mut pairs = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            pairs
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
        Self { pairs }
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
}
