//! HTTP/1.1 chunked transfer decoding for streamed responses, fed bytes as
//! they arrive and handing out body slices without copying.

/// Why a chunked body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    /// A chunk-size line that is not hex or is too long.
    #[error("bad chunk size line")]
    BadSize,
    /// The terminating zero-size chunk arrived: the server ended the stream.
    #[error("server ended the chunked stream")]
    Ended,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading hex digits of a size line (and any extension up to LF).
    Size {
        value: u64,
        digits: u8,
        in_ext: bool,
    },
    /// Inside chunk data.
    Data(u64),
    /// Skipping the CRLF after chunk data.
    DataEnd(u8),
}

/// Streaming chunked decoder.
#[derive(Debug)]
pub struct Dechunker {
    state: State,
}

impl Default for Dechunker {
    fn default() -> Self {
        Self::new()
    }
}

impl Dechunker {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        Self {
            state: State::Size {
                value: 0,
                digits: 0,
                in_ext: false,
            },
        }
    }

    /// Feeds raw body bytes; calls `on_data` with each run of payload bytes.
    pub fn feed<E>(
        &mut self,
        mut data: &[u8],
        mut on_data: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Result<(), E>, ChunkedError> {
        while let Some((&b, rest)) = data.split_first() {
            match self.state {
                State::Size {
                    value,
                    digits,
                    in_ext,
                } => {
                    data = rest;
                    match b {
                        b'\n' => {
                            if digits == 0 {
                                return Err(ChunkedError::BadSize);
                            }
                            if value == 0 {
                                return Err(ChunkedError::Ended);
                            }
                            self.state = State::Data(value);
                        }
                        b'\r' | b';' | b' ' | b'\t' => {
                            self.state = State::Size {
                                value,
                                digits,
                                in_ext: true,
                            };
                        }
                        _ if in_ext => {}
                        _ => {
                            let d = char::from(b).to_digit(16).ok_or(ChunkedError::BadSize)?;
                            if digits >= 15 {
                                return Err(ChunkedError::BadSize);
                            }
                            self.state = State::Size {
                                value: value * 16 + u64::from(d),
                                digits: digits + 1,
                                in_ext,
                            };
                        }
                    }
                }
                State::Data(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    let (payload, rest) = data.split_at(n);
                    if let Err(e) = on_data(payload) {
                        return Ok(Err(e));
                    }
                    data = rest;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd(0)
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd(seen) => {
                    data = rest;
                    self.state = if b == b'\n' {
                        State::Size {
                            value: 0,
                            digits: 0,
                            in_ext: false,
                        }
                    } else {
                        State::DataEnd(seen + 1)
                    };
                }
            }
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8], step: usize) -> (Vec<u8>, Option<ChunkedError>) {
        let mut d = Dechunker::new();
        let mut out = Vec::new();
        for c in input.chunks(step) {
            match d.feed(c, |p| {
                out.extend_from_slice(p);
                Ok::<(), ()>(())
            }) {
                Ok(_) => {}
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[test]
    fn decodes_in_any_split() {
        let body = b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        for step in [1, 2, 3, 5, 100] {
            let (out, err) = decode(body, step);
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz");
            assert_eq!(err, Some(ChunkedError::Ended));
        }
    }

    #[test]
    fn rejects_bad_size() {
        assert_eq!(decode(b"zz\r\n", 4).1, Some(ChunkedError::BadSize));
        assert_eq!(decode(b"\r\n", 4).1, Some(ChunkedError::BadSize));
        assert_eq!(
            decode(b"ffffffffffffffffff\r\n", 40).1,
            Some(ChunkedError::BadSize)
        );
    }
}
