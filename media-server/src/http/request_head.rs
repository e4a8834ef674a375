//! Watching HTTP/1.1 request heads in the bytes a connection reads, below
//! the HTTP parser: where each head ends, how long it is, and whether a body
//! follows. The listener uses it to bound a head's size and the time it may
//! take to arrive (slowloris), which hyper does not do on its own here (its
//! header timeout needs a timer axum does not give it). Pure: bytes in,
//! phase out.

/// Where the connection is in its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Inside a request head (or waiting for the first one on a new connection).
    Head,
    /// A head ended and no byte of the next one came yet.
    BetweenRequests,
    /// A head announced a body (a non-zero `Content-Length` or a
    /// `Transfer-Encoding`): body bytes cannot be told from a next head
    /// without parsing it, so heads are no longer watched; the listener
    /// still closes the connection when no byte comes for the idle timeout
    /// (no public route takes a body).
    Unwatched,
}

/// What the bytes of one read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The phase after the bytes; `started` when a new head began in them.
    Phase {
        /// The phase now.
        phase: Phase,
        /// A new head began within these bytes (its time limit starts now).
        started: bool,
    },
    /// The head grew over the limit.
    TooLarge,
}

const CONTENT_LENGTH: &[u8] = b"\ncontent-length:";
const TRANSFER_ENCODING: &[u8] = b"\ntransfer-encoding:";
const WINDOW: usize = 20;

/// The scanner of one connection.
#[derive(Debug, Clone)]
pub struct HeadScan {
    max: usize,
    phase: Phase,
    len: usize,
    /// The last bytes of the current head, lowercased.
    window: [u8; WINDOW],
    has_body: bool,
    /// Inside a `Content-Length` value: whether it is zero so far (digits
    /// `0` and blanks only, at least one digit).
    length_value: Option<LengthValue>,
}

/// What a `Content-Length` value read so far says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LengthValue {
    /// Blanks only yet.
    Empty,
    /// Zeros (and blanks) only: no body.
    Zero,
    /// Anything else (a non-zero length, or a value hyper will refuse):
    /// counted as a body.
    Other,
}

impl HeadScan {
    /// A new connection: a head is expected first.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            phase: Phase::Head,
            len: 0,
            window: [0; WINDOW],
            has_body: false,
            length_value: None,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Bytes of the current head so far.
    pub fn head_len(&self) -> usize {
        self.len
    }

    /// Consumes the bytes of one read.
    pub fn feed(&mut self, bytes: &[u8]) -> Scan {
        let mut started = false;
        for &b in bytes {
            match self.phase {
                Phase::Unwatched => break,
                Phase::BetweenRequests => {
                    // Stray line ends between pipelined requests are allowed
                    // by RFC 9112 and belong to no head.
                    if b == b'\r' || b == b'\n' {
                        continue;
                    }
                    self.phase = Phase::Head;
                    self.len = 0;
                    self.window = [0; WINDOW];
                    self.has_body = false;
                    self.length_value = None;
                    started = true;
                    self.push(b);
                }
                Phase::Head => self.push(b),
            }
            // Checked on every byte of a head, its last one included (the
            // byte that ends a head has already moved the phase on).
            if self.len > self.max {
                return Scan::TooLarge;
            }
        }
        Scan::Phase {
            phase: self.phase,
            started,
        }
    }

    fn push(&mut self, b: u8) {
        self.len += 1;
        self.window.copy_within(1.., 0);
        let lower = b.to_ascii_lowercase();
        self.window[WINDOW - 1] = lower;
        if let Some(value) = self.length_value {
            self.length_value = match lower {
                b'\n' => {
                    // `Content-Length: 0` is no body: the connection stays
                    // watched (next head's timeout, idle close).
                    if value != LengthValue::Zero {
                        self.has_body = true;
                    }
                    None
                }
                b'\r' | b' ' | b'\t' => Some(value),
                b'0' if value != LengthValue::Other => Some(LengthValue::Zero),
                _ => Some(LengthValue::Other),
            };
        }
        if self.window.ends_with(CONTENT_LENGTH) {
            self.length_value = Some(LengthValue::Empty);
        }
        if self.window.ends_with(TRANSFER_ENCODING) {
            self.has_body = true;
        }
        let w = &self.window;
        let end = w.ends_with(b"\r\n\r\n") || w.ends_with(b"\n\n");
        // A head is at least a request line: blank lines before it are not an end.
        if end && self.len > 4 {
            // Already `None`: the blank line's first `\n` ended any value.
            self.length_value = None;
            self.phase = if self.has_body {
                Phase::Unwatched
            } else {
                Phase::BetweenRequests
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(phase: Phase, started: bool) -> Scan {
        Scan::Phase { phase, started }
    }

    #[test]
    fn a_head_ends_at_the_blank_line() {
        let mut s = HeadScan::new(1024);
        assert_eq!(
            s.feed(b"GET / HTTP/1.1\r\nHost: a\r\n"),
            phase(Phase::Head, false)
        );
        assert_eq!(s.feed(b"\r"), phase(Phase::Head, false));
        assert_eq!(s.feed(b"\n"), phase(Phase::BetweenRequests, false));
        // The next request on the connection starts a new head.
        assert_eq!(s.feed(b"GET /x"), phase(Phase::Head, true));
        assert_eq!(s.head_len(), 6);
        assert_eq!(
            s.feed(b" HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n"),
            phase(Phase::BetweenRequests, true)
        );
    }

    #[test]
    fn byte_at_a_time_finds_the_same_end() {
        let mut s = HeadScan::new(1024);
        let head = b"GET /live/a.flv HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\r\n\r\n";
        for (i, b) in head.iter().enumerate() {
            let want = if i + 1 == head.len() {
                Phase::BetweenRequests
            } else {
                Phase::Head
            };
            assert_eq!(s.feed(&[*b]), phase(want, false), "byte {i}");
        }
    }

    #[test]
    fn a_head_over_the_limit_is_too_large_however_it_arrives() {
        let mut s = HeadScan::new(100);
        assert_eq!(s.feed(&[b'a'; 100]), phase(Phase::Head, false));
        assert_eq!(s.feed(b"a"), Scan::TooLarge);
        let mut s = HeadScan::new(100);
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(200));
        assert_eq!(s.feed(long.as_bytes()), Scan::TooLarge);
        // Many small headers add up the same way.
        let mut s = HeadScan::new(1000);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        assert_eq!(s.feed(&many), Scan::TooLarge);
    }

    #[test]
    fn a_head_one_byte_over_the_limit_is_refused_when_that_byte_ends_it() {
        // Found by the http_head fuzz target: the limit was checked only
        // while the head went on, so a head ending on byte max + 1 passed.
        let head = b"GET / HTTP/1.1\r\n\r\n";
        let mut s = HeadScan::new(head.len() - 1);
        assert_eq!(s.feed(head), Scan::TooLarge);
        let mut s = HeadScan::new(head.len());
        assert_eq!(s.feed(head), phase(Phase::BetweenRequests, false));
    }

    #[test]
    fn a_request_with_a_body_ends_the_watch() {
        let mut s = HeadScan::new(64);
        let head = b"POST /api HTTP/1.1\r\nContent-Length: 500\r\n\r\n";
        assert_eq!(s.feed(head), phase(Phase::Unwatched, false));
        assert_eq!(s.feed(&[b'x'; 500]), phase(Phase::Unwatched, false));
        let mut s = HeadScan::new(1024);
        let chunked = b"POST /api HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\n\r\n";
        assert_eq!(s.feed(chunked), phase(Phase::Unwatched, false));
    }

    #[test]
    fn a_zero_content_length_is_no_body() {
        // Found in review: any Content-Length header, `0` included, ended
        // the watch for good, so one header bypassed the slowloris limits.
        for head in [
            &b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\ncontent-length:000 \r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\ncontent-length:\t0\n\n",
        ] {
            let mut s = HeadScan::new(1024);
            assert_eq!(s.feed(head), phase(Phase::BetweenRequests, false));
            // Byte at a time, the same.
            let mut s = HeadScan::new(1024);
            for b in head {
                s.feed(&[*b]);
            }
            assert_eq!(s.phase(), Phase::BetweenRequests);
            // The next head is watched again.
            assert_eq!(s.feed(b"GET"), phase(Phase::Head, true));
        }
    }

    #[test]
    fn a_non_zero_or_odd_content_length_is_a_body() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 01\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0, 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let mut s = HeadScan::new(1024);
            assert_eq!(
                s.feed(head),
                phase(Phase::Unwatched, false),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        // A zero length on an earlier request does not carry over.
        let mut s = HeadScan::new(1024);
        s.feed(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            s.feed(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"),
            phase(Phase::Unwatched, true)
        );
    }

    #[test]
    fn blank_lines_between_requests_start_nothing() {
        let mut s = HeadScan::new(1024);
        s.feed(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(s.feed(b"\r\n\r\n"), phase(Phase::BetweenRequests, false));
    }
}
