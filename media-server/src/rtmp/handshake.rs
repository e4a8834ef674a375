//! The RTMP handshake, server and client sides, as pure state machines:
//! C0+C1 in → S0+S1+S2 out → C2 in. The digest ("Flash") variant is
//! answered when C1 carries a valid client digest, because Flash-era
//! clients and ffmpeg verify the server's digests; otherwise the simple
//! echo handshake is used.

use bytes::{Buf, BufMut, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Size of C1/S1/C2/S2.
pub const PACKET_LEN: usize = 1536;
/// RTMP version byte (C0/S0).
pub const VERSION: u8 = 3;

const DIGEST_LEN: usize = 32;
const KEY_TAIL: [u8; 32] = [
    0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57,
    0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
];
const FP_NAME: &[u8] = b"Genuine Adobe Flash Player 001";
const FMS_NAME: &[u8] = b"Genuine Adobe Flash Media Server 001";

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// C0/S0 asked for an RTMP version other than 3 (e.g. RTMPE).
    #[error("unsupported RTMP version {0}")]
    Version(u8),
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn key(name: &[u8]) -> Vec<u8> {
    let mut k = name.to_vec();
    k.extend_from_slice(&KEY_TAIL);
    k
}

/// Offset of the digest in a 1536-byte packet for scheme 0 (offset bytes at 8)
/// or scheme 1 (at 772).
fn digest_offset(packet: &[u8], scheme: usize) -> usize {
    let base = if scheme == 0 { 8 } else { 772 };
    let sum: usize = packet[base..base + 4].iter().map(|b| usize::from(*b)).sum();
    sum % 728 + base + 4
}

fn packet_digest(packet: &[u8], offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac(
        key,
        &[&packet[..offset], &packet[offset + DIGEST_LEN..PACKET_LEN]],
    )
}

/// The client digest's position and value when C1 carries a valid one.
fn find_digest(packet: &[u8], key: &[u8]) -> Option<(usize, [u8; DIGEST_LEN])> {
    (0..2).find_map(|scheme| {
        let off = digest_offset(packet, scheme);
        let d = packet_digest(packet, off, key);
        (packet[off..off + DIGEST_LEN] == d).then_some((scheme, d))
    })
}

/// Deterministic filler for the random parts: RTMP only needs bytes that
/// differ between packets, not secrecy.
fn fill(buf: &mut [u8], seed: u32) {
    let mut x = seed | 1;
    for b in buf {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x.to_le_bytes()[0];
    }
}

fn signed_packet(scheme: usize, name_key: &[u8], seed: u32) -> Vec<u8> {
    let mut p = vec![0u8; PACKET_LEN];
    fill(&mut p[8..], seed);
    // Server/client version field non-zero marks a digest packet.
    p[4..8].copy_from_slice(&[4, 5, 0, 1]);
    let off = digest_offset(&p, scheme);
    let d = packet_digest(&p, off, name_key);
    p[off..off + DIGEST_LEN].copy_from_slice(&d);
    p
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    WaitC0C1,
    WaitC2,
    Done,
}

/// Server side of the handshake.
#[derive(Debug)]
pub struct ServerHandshake {
    state: ServerState,
    seed: u32,
}

impl ServerHandshake {
    /// `seed` varies the filler bytes between connections.
    pub fn new(seed: u32) -> Self {
        Self {
            state: ServerState::WaitC0C1,
            seed,
        }
    }

    /// True once C2 was received.
    pub fn is_done(&self) -> bool {
        self.state == ServerState::Done
    }

    /// Consumes what it can from `input`, appending replies to `out`.
    /// Returns true when the handshake is complete (bytes left in `input`
    /// belong to the chunk stream).
    pub fn feed(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        if self.state == ServerState::WaitC0C1 {
            if input.is_empty() {
                return Ok(false);
            }
            if input[0] != VERSION {
                return Err(HandshakeError::Version(input[0]));
            }
            if input.len() < 1 + PACKET_LEN {
                return Ok(false);
            }
            let c1 = input[1..=PACKET_LEN].to_vec();
            input.advance(1 + PACKET_LEN);
            out.put_u8(VERSION);
            self.respond(&c1, out);
            self.state = ServerState::WaitC2;
        }
        if self.state == ServerState::WaitC2 {
            if input.len() < PACKET_LEN {
                return Ok(false);
            }
            // C2 should echo S1; clients differ in how faithfully, so it is not checked.
            input.advance(PACKET_LEN);
            self.state = ServerState::Done;
        }
        Ok(true)
    }

    fn respond(&self, c1: &[u8], out: &mut BytesMut) {
        let fp = key(FP_NAME);
        let digest = if c1[4..8] == [0, 0, 0, 0] {
            None
        } else {
            find_digest(c1, &fp[..FP_NAME.len()])
        };
        match digest {
            None => {
                // Simple handshake: S1 is ours, S2 echoes C1.
                let mut s1 = vec![0u8; PACKET_LEN];
                fill(&mut s1[8..], self.seed);
                out.put_slice(&s1);
                out.put_slice(c1);
            }
            Some((scheme, client_digest)) => {
                let fms = key(FMS_NAME);
                out.put_slice(&signed_packet(scheme, &fms[..FMS_NAME.len()], self.seed));
                let mut s2 = vec![0u8; PACKET_LEN];
                fill(&mut s2, self.seed.rotate_left(7));
                let k = hmac(&fms, &[&client_digest]);
                let sig = hmac(&k, &[&s2[..PACKET_LEN - DIGEST_LEN]]);
                s2[PACKET_LEN - DIGEST_LEN..].copy_from_slice(&sig);
                out.put_slice(&s2);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    WaitS0S1S2,
    Done,
}

/// Client side of the handshake (simple variant, which every server accepts).
#[derive(Debug)]
pub struct ClientHandshake {
    state: ClientState,
}

impl ClientHandshake {
    /// Starts the handshake, appending C0+C1 to `out`.
    pub fn start(out: &mut BytesMut, seed: u32) -> Self {
        out.put_u8(VERSION);
        let mut c1 = vec![0u8; PACKET_LEN];
        fill(&mut c1[8..], seed);
        out.put_slice(&c1);
        Self {
            state: ClientState::WaitS0S1S2,
        }
    }

    /// Consumes S0+S1+S2, appending C2; true when complete.
    pub fn feed(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        if self.state == ClientState::Done {
            return Ok(true);
        }
        if input.is_empty() {
            return Ok(false);
        }
        if input[0] != VERSION {
            return Err(HandshakeError::Version(input[0]));
        }
        if input.len() < 1 + 2 * PACKET_LEN {
            return Ok(false);
        }
        // C2 echoes S1.
        out.put_slice(&input[1..=PACKET_LEN]);
        input.advance(1 + 2 * PACKET_LEN);
        self.state = ClientState::Done;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_handshake_echoes_c1() {
        let mut client_out = BytesMut::new();
        let mut client = ClientHandshake::start(&mut client_out, 7);
        let c1 = client_out[1..].to_vec();
        let mut server = ServerHandshake::new(1);
        let mut server_out = BytesMut::new();
        assert!(!server.feed(&mut client_out, &mut server_out).unwrap());
        assert_eq!(server_out.len(), 1 + 2 * PACKET_LEN);
        assert_eq!(&server_out[1 + PACKET_LEN..], &c1[..]);
        let mut c2 = BytesMut::new();
        assert!(client.feed(&mut server_out, &mut c2).unwrap());
        c2.extend_from_slice(b"chunks");
        assert!(server.feed(&mut c2, &mut server_out).unwrap());
        assert!(server.is_done());
        assert_eq!(&c2[..], b"chunks");
    }

    #[test]
    fn digest_handshake_is_signed_as_flash_clients_verify() {
        for scheme in 0..2 {
            let fp = key(FP_NAME);
            let c1 = signed_packet(scheme, &fp[..FP_NAME.len()], 99);
            let (_, client_digest) = find_digest(&c1, &fp[..FP_NAME.len()]).unwrap();
            let mut input = BytesMut::new();
            input.put_u8(3);
            input.put_slice(&c1);
            let mut out = BytesMut::new();
            let mut server = ServerHandshake::new(5);
            server.feed(&mut input, &mut out).unwrap();
            let s1 = &out[1..=PACKET_LEN];
            let s2 = &out[1 + PACKET_LEN..];
            // What ffmpeg checks: S1 carries a digest keyed with the FMS name...
            let fms = key(FMS_NAME);
            assert!(find_digest(s1, &fms[..FMS_NAME.len()]).is_some());
            // ...and S2 is signed with a key derived from the client's digest.
            let k = hmac(&fms, &[&client_digest]);
            let sig = hmac(&k, &[&s2[..PACKET_LEN - DIGEST_LEN]]);
            assert_eq!(&s2[PACKET_LEN - DIGEST_LEN..], &sig);
        }
    }

    #[test]
    fn bad_version_is_refused() {
        let mut input = BytesMut::from(&[6u8, 0, 0][..]);
        let mut out = BytesMut::new();
        let err = ServerHandshake::new(0)
            .feed(&mut input, &mut out)
            .unwrap_err();
        assert_eq!(err, HandshakeError::Version(6));
    }

    #[test]
    fn byte_at_a_time_completes() {
        let mut c = BytesMut::new();
        let _client = ClientHandshake::start(&mut c, 3);
        c.extend_from_slice(&[0u8; PACKET_LEN]);
        let mut server = ServerHandshake::new(1);
        let mut out = BytesMut::new();
        let mut input = BytesMut::new();
        let mut done = false;
        for b in c {
            input.put_u8(b);
            done = server.feed(&mut input, &mut out).unwrap();
        }
        assert!(done);
    }
}
