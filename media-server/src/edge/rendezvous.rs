//! Highest-random-weight (rendezvous) hashing: which peer of a pool owns a
//! key (a live stream `app/name`, a cached object's path).
//!
//! Every peer scores `hash(peer, key)`; the highest score owns the key. All
//! edges that see the same peer set pick the same owner without talking to
//! each other, and when a peer joins or leaves only the keys it wins or
//! owned move: the others keep their owner. Pure, no I/O.
//!
//! The hash is FNV-1a followed by the `splitmix64` finalizer, written out
//! here rather than `std`'s `DefaultHasher`, whose output may change between
//! Rust releases: peers built by different compilers must still agree.

/// One member of an edge pool, named by the HTTP address it advertises
/// (`HOST:PORT`, e.g. `10.0.3.7:8080`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// The peer's advertised HTTP address.
    pub addr: String,
}

impl Peer {
    /// A peer from its advertised address.
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into() }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// `splitmix64`'s finalizer: spreads FNV's weak low bits over the word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The weight of `peer` for `key` (stable across processes and releases).
pub fn score(key: &str, peer: &str) -> u64 {
    // The 0 byte keeps ("ab","c") and ("a","bc") apart.
    let h = fnv1a(
        fnv1a(fnv1a(FNV_OFFSET, peer.as_bytes()), &[0]),
        key.as_bytes(),
    );
    mix(h)
}

/// The peer that owns `key` among `peers` (the live ones), or `None` when
/// there are none. Ties (astronomically rare) go to the smaller address, so
/// the answer never depends on the order of `peers`.
pub fn owner<'a>(key: &str, peers: &'a [Peer]) -> Option<&'a Peer> {
    peers.iter().max_by(|a, b| {
        score(key, &a.addr)
            .cmp(&score(key, &b.addr))
            .then_with(|| b.addr.cmp(&a.addr))
    })
}

/// `peers` ordered by preference for `key`: the owner first, then the peer
/// that would own it if the owner left, and so on (for fallbacks).
pub fn ranked<'a>(key: &str, peers: &'a [Peer]) -> Vec<&'a Peer> {
    let mut v: Vec<&Peer> = peers.iter().collect();
    v.sort_by(|a, b| {
        score(key, &b.addr)
            .cmp(&score(key, &a.addr))
            .then_with(|| a.addr.cmp(&b.addr))
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Vec<Peer> {
        (0..n)
            .map(|i| Peer::new(format!("10.0.0.{i}:8080")))
            .collect()
    }

    #[test]
    fn no_peers_no_owner() {
        assert_eq!(owner("live/a", &[]), None);
        assert!(ranked("live/a", &[]).is_empty());
    }

    #[test]
    fn owner_ignores_peer_order_and_is_ranked_first() {
        let peers = pool(5);
        let mut reversed = peers.clone();
        reversed.reverse();
        for i in 0..200 {
            let key = format!("live/s{i}");
            let a = owner(&key, &peers).unwrap();
            assert_eq!(a, owner(&key, &reversed).unwrap());
            assert_eq!(ranked(&key, &peers)[0], a);
        }
    }

    #[test]
    fn keys_spread_over_peers() {
        let peers = pool(4);
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let o = owner(&format!("live/stream-{i}"), &peers).unwrap();
            counts[peers.iter().position(|p| p == o).unwrap()] += 1;
        }
        // Each of 4 peers expects 1000; a broken hash gives one peer most.
        for c in counts {
            assert!((700..1300).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn a_leaving_peer_moves_only_its_own_keys() {
        let peers = pool(5);
        let without: Vec<Peer> = peers
            .iter()
            .filter(|p| p.addr != peers[2].addr)
            .cloned()
            .collect();
        for i in 0..1000 {
            let key = format!("live/k{i}");
            let before = owner(&key, &peers).unwrap();
            let after = owner(&key, &without).unwrap();
            if before.addr == peers[2].addr {
                // It goes to the runner-up.
                assert_eq!(after, ranked(&key, &peers)[1]);
            } else {
                assert_eq!(before, after, "{key} moved although its owner stayed");
            }
        }
    }

    #[test]
    fn a_joining_peer_takes_keys_only_for_itself() {
        let peers = pool(4);
        let mut grown = peers.clone();
        grown.push(Peer::new("10.0.0.99:8080"));
        for i in 0..1000 {
            let key = format!("live/k{i}");
            let after = owner(&key, &grown).unwrap();
            if after.addr != "10.0.0.99:8080" {
                assert_eq!(owner(&key, &peers).unwrap(), after);
            }
        }
    }

    #[test]
    fn score_is_stable() {
        // Pinned values: peers built from different releases must agree.
        assert_eq!(
            score("live/a", "10.0.0.1:8080"),
            score("live/a", "10.0.0.1:8080")
        );
        assert_ne!(score("ab", "c"), score("a", "bc"));
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
