//! AMF0, the value encoding of RTMP commands and FLV script tags. Hand
//! written: the subset RTMP and FLV use is small, and the decoder must bound
//! nesting and lengths against hostile input (it is fuzzed).

use bytes::{BufMut, BytesMut};

/// Deepest object/array nesting accepted; real clients use 2 or 3.
pub const MAX_DEPTH: usize = 16;

/// Most values one decoder (one message) yields, nested ones included: a
/// strict array of 1-byte nulls would otherwise turn a message into 32
/// bytes of memory per byte. Real commands and metadata hold a few dozen.
pub const MAX_VALUES: usize = 65_536;

/// Largest capacity reserved up front for an array from its advisory count.
const MAX_PREALLOC: usize = 1024;

/// An AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Type 0.
    Number(f64),
    /// Type 1.
    Boolean(bool),
    /// Type 2 (short) and 12 (long) strings.
    String(String),
    /// Type 3: ordered properties.
    Object(Vec<(String, Value)>),
    /// Type 5.
    Null,
    /// Type 6.
    Undefined,
    /// Type 8: an associative array (`onMetaData` uses it).
    EcmaArray(Vec<(String, Value)>),
    /// Type 10.
    StrictArray(Vec<Value>),
    /// Type 11: milliseconds since the epoch (timezone ignored).
    Date(f64),
}

/// Why bytes are not AMF0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    /// Input ended inside a value.
    #[error("AMF0 value truncated")]
    Truncated,
    /// A type marker this decoder does not accept.
    #[error("unsupported AMF0 type marker {0:#04x}")]
    UnsupportedType(u8),
    /// Objects nested deeper than [`MAX_DEPTH`].
    #[error("AMF0 nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A string that is not UTF-8.
    #[error("AMF0 string is not UTF-8")]
    BadString,
    /// More than [`MAX_VALUES`] values in one message.
    #[error("more than {MAX_VALUES} AMF0 values in one message")]
    TooMany,
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(props) | Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Shorthand for an object from `(&str, Value)` pairs.
    pub fn object<const N: usize>(props: [(&str, Value); N]) -> Value {
        Value::Object(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// Shorthand for a string value.
    pub fn string(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

/// A cursor decoding AMF0 values from a byte slice.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Values decoded so far (bounded by [`MAX_VALUES`]).
    values: usize,
}

impl<'a> Decoder<'a> {
    /// Starts at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            values: 0,
        }
    }

    /// True when every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Decodes the next value.
    pub fn decode(&mut self) -> Result<Value, Amf0Error> {
        self.value(0)
    }

    /// Decodes every remaining value.
    pub fn decode_all(&mut self) -> Result<Vec<Value>, Amf0Error> {
        let mut out = Vec::new();
        while !self.is_empty() {
            out.push(self.decode()?);
        }
        Ok(out)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self.pos.checked_add(n).ok_or(Amf0Error::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(Amf0Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn str_of(&mut self, len: usize) -> Result<String, Amf0Error> {
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| Amf0Error::BadString)
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u16()?;
        self.str_of(usize::from(len))
    }

    fn props(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.buf.get(self.pos) == Some(&9) {
                self.pos += 1;
                return Ok(props);
            }
            let v = self.value(depth + 1)?;
            props.push((key, v));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        if depth > MAX_DEPTH {
            return Err(Amf0Error::TooDeep);
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(Amf0Error::TooMany);
        }
        let marker = self.u8()?;
        Ok(match marker {
            0 => Value::Number(self.f64()?),
            1 => Value::Boolean(self.u8()? != 0),
            2 => Value::String(self.short_string()?),
            3 => Value::Object(self.props(depth)?),
            5 => Value::Null,
            6 => Value::Undefined,
            8 => {
                // The count is advisory (encoders get it wrong); the end marker rules.
                let _count = self.u32()?;
                Value::EcmaArray(self.props(depth)?)
            }
            10 => {
                let count = self.u32()? as usize;
                // Each element takes at least one byte: bound before allocating.
                if count > self.buf.len() - self.pos {
                    return Err(Amf0Error::Truncated);
                }
                // The count is the peer's word: grow past a small
                // reservation only as elements really decode.
                let mut items = Vec::with_capacity(count.min(MAX_PREALLOC));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            11 => {
                let ms = self.f64()?;
                let _tz = self.u16()?;
                Value::Date(ms)
            }
            12 => {
                let len = self.u32()? as usize;
                Value::String(self.str_of(len)?)
            }
            other => return Err(Amf0Error::UnsupportedType(other)),
        })
    }
}

/// Decodes every value in `buf`.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    Decoder::new(buf).decode_all()
}

fn put_key(out: &mut BytesMut, key: &str) {
    let bytes = key.as_bytes();
    let len = bytes.len().min(usize::from(u16::MAX));
    // Truncation is safe: `len` is at most u16::MAX.
    #[allow(clippy::cast_possible_truncation)]
    out.put_u16(len as u16);
    out.put_slice(&bytes[..len]);
}

fn put_props(out: &mut BytesMut, props: &[(String, Value)]) {
    for (k, v) in props {
        put_key(out, k);
        encode(out, v);
    }
    out.put_slice(&[0, 0, 9]);
}

/// Appends one value.
pub fn encode(out: &mut BytesMut, value: &Value) {
    match value {
        Value::Number(n) => {
            out.put_u8(0);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(1);
            out.put_u8(u8::from(*b));
        }
        Value::String(s) if u16::try_from(s.len()).is_ok() => {
            out.put_u8(2);
            put_key(out, s);
        }
        Value::String(s) => {
            out.put_u8(12);
            out.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
            out.put_slice(s.as_bytes());
        }
        Value::Object(props) => {
            out.put_u8(3);
            put_props(out, props);
        }
        Value::Null => out.put_u8(5),
        Value::Undefined => out.put_u8(6),
        Value::EcmaArray(props) => {
            out.put_u8(8);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            put_props(out, props);
        }
        Value::StrictArray(items) => {
            out.put_u8(10);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for v in items {
                encode(out, v);
            }
        }
        Value::Date(ms) => {
            out.put_u8(11);
            out.put_f64(*ms);
            out.put_u16(0);
        }
    }
}

/// Encodes a sequence of values.
pub fn encode_all(values: &[Value]) -> BytesMut {
    let mut out = BytesMut::new();
    for v in values {
        encode(&mut out, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type() {
        let values = vec![
            Value::string("connect"),
            Value::Number(1.0),
            Value::object([
                ("app", Value::string("live")),
                ("fpad", Value::Boolean(false)),
                ("nested", Value::object([("x", Value::Null)])),
            ]),
            Value::Null,
            Value::Undefined,
            Value::EcmaArray(vec![("width".into(), Value::Number(640.0))]),
            Value::StrictArray(vec![Value::Number(1.0), Value::string("a")]),
            Value::Date(1.5e12),
            Value::String("x".repeat(70_000)),
        ];
        let bytes = encode_all(&values);
        assert_eq!(decode_all(&bytes).unwrap(), values);
    }

    #[test]
    fn known_bytes_of_a_connect_name() {
        let bytes = encode_all(&[Value::string("connect"), Value::Number(1.0)]);
        assert_eq!(
            &bytes[..],
            &[
                2, 0, 7, b'c', b'o', b'n', b'n', b'e', b'c', b't', 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn hostile_input_is_an_error_not_a_crash() {
        assert_eq!(decode_all(&[2, 0, 10, b'a']), Err(Amf0Error::Truncated));
        assert_eq!(decode_all(&[0x42]), Err(Amf0Error::UnsupportedType(0x42)));
        // A strict array claiming 4 billion elements.
        assert_eq!(
            decode_all(&[10, 0xff, 0xff, 0xff, 0xff]),
            Err(Amf0Error::Truncated)
        );
        // Objects nested 100 deep.
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[3, 0, 1, b'a']);
        }
        assert_eq!(decode_all(&deep), Err(Amf0Error::TooDeep));
        assert_eq!(decode_all(&[2, 0, 1, 0xff]), Err(Amf0Error::BadString));
    }

    #[test]
    fn a_large_array_of_nulls_is_bounded() {
        // Found in review: 8 MiB of 1-byte nulls became ~256 MiB of values.
        let array = |n: u32| {
            let mut b = vec![10];
            b.extend_from_slice(&n.to_be_bytes());
            b.resize(b.len() + n as usize, 5);
            b
        };
        let at_limit = u32::try_from(MAX_VALUES - 1).unwrap();
        assert_eq!(
            decode_all(&array(at_limit)).unwrap(),
            vec![Value::StrictArray(vec![Value::Null; MAX_VALUES - 1])]
        );
        assert_eq!(decode_all(&array(at_limit + 1)), Err(Amf0Error::TooMany));
        assert_eq!(decode_all(&array(1 << 23)), Err(Amf0Error::TooMany));
        // Objects and ECMA arrays count the same way: a budget per message.
        let mut props = vec![8, 0, 0, 0, 0];
        for _ in 0..=MAX_VALUES {
            props.extend_from_slice(&[0, 1, b'k', 5]);
        }
        props.extend_from_slice(&[0, 0, 9]);
        assert_eq!(decode_all(&props), Err(Amf0Error::TooMany));
        // Many top-level values share the budget too.
        assert_eq!(
            decode_all(&vec![5; MAX_VALUES + 1]),
            Err(Amf0Error::TooMany)
        );
        assert_eq!(decode_all(&vec![5; MAX_VALUES]).unwrap().len(), MAX_VALUES);
    }

    #[test]
    fn property_lookup() {
        let v = Value::object([("app", Value::string("live"))]);
        assert_eq!(v.get("app").and_then(Value::as_str), Some("live"));
        assert!(v.get("tcUrl").is_none());
    }
}
