//! Kubernetes quantities ("256Mi", "10G", "1.5Gi") to bytes, for the cache
//! sizes the media server takes as plain numbers. Only the forms that make
//! sense for byte counts are accepted; anything else is an error the operator
//! reports on the MediaCluster.

/// Parses a quantity into bytes, rounding fractions up.
pub fn to_bytes(quantity: &str) -> Option<u64> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        _ => return None,
    };
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if frac.len() > 9 || frac.contains('.') {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut bytes = whole.checked_mul(multiplier)?;
    if !frac.is_empty() {
        let digits: u64 = frac.parse().ok()?;
        let scale = 10u64.pow(u32::try_from(frac.len()).ok()?);
        // Fraction times multiplier, rounded up: a cache is never made smaller than asked.
        let part = u128::from(digits) * u128::from(multiplier);
        let part = part.div_ceil(u128::from(scale));
        bytes = bytes.checked_add(u64::try_from(part).ok()?)?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::to_bytes;

    #[test]
    fn quantities() {
        let table = [
            ("0", Some(0)),
            ("1024", Some(1024)),
            ("256Mi", Some(256 << 20)),
            ("1Gi", Some(1 << 30)),
            ("10G", Some(10_000_000_000)),
            ("1.5Gi", Some(3 << 29)),
            ("0.5k", Some(500)),
            (".5Ki", Some(512)),
            ("1m", None),
            ("1e3", None),
            ("", None),
            ("Gi", None),
            ("-1Gi", None),
            ("99999999999Pi", None),
        ];
        for (input, want) in table {
            assert_eq!(to_bytes(input), want, "{input:?}");
        }
    }
}
