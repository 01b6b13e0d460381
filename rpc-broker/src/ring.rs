//! A consistent hash ring mapping keys to shards, with virtual nodes and a fixed hash
//! (the first 8 bytes of SHA-256), so every process places a key on the same shard and
//! changing the number of shards moves only about `1/N` of the keys.

/// Virtual nodes per shard.
pub const VNODES: usize = 160;

fn hash(bytes: &[u8]) -> u64 {
    let d = crate::mac::sha256(bytes);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// Keys to shards `0..n`.
#[derive(Debug, Clone)]
pub struct ShardRing {
    points: Vec<(u64, u32)>,
    shards: u32,
}

impl ShardRing {
    /// A ring of `shards` shards (at least one).
    pub fn new(shards: u32) -> ShardRing {
        let shards = shards.max(1);
        let mut points: Vec<(u64, u32)> = (0..shards)
            .flat_map(|s| (0..VNODES).map(move |v| (hash(format!("shard-{s}-vnode-{v}").as_bytes()), s)))
            .collect();
        points.sort_unstable();
        ShardRing { points, shards }
    }

    /// How many shards.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The shard of `key`: the first virtual node clockwise from its hash.
    pub fn shard_for(&self, key: &str) -> u32 {
        let h = hash(key.as_bytes());
        let i = self.points.partition_point(|(p, _)| *p < h);
        self.points.get(i).or_else(|| self.points.first()).map_or(0, |(_, s)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Placements computed once (hash = first 8 bytes of SHA-256, 160 vnodes named
    /// `shard-{s}-vnode-{v}`). Other processes and machines place keys with the same
    /// ring, so a change of the hash or of the vnode layout must fail here.
    const PINNED: [(&str, [u32; 4]); 6] = [
        // key, shard on rings of 2, 3, 8, 16 shards
        ("acme", [0, 2, 2, 14]),
        ("globex", [1, 2, 6, 13]),
        ("customer-0", [1, 1, 3, 8]),
        ("customer-1", [0, 2, 4, 11]),
        ("customer-42", [0, 0, 4, 8]),
        ("initech", [1, 2, 7, 7]),
    ];

    #[test]
    fn placement_is_pinned() {
        for (key, shards) in PINNED {
            for (n, want) in [2u32, 3, 8, 16].into_iter().zip(shards) {
                assert_eq!(ShardRing::new(n).shard_for(key), want, "{key:?} on a ring of {n}");
            }
            assert_eq!(ShardRing::new(1).shard_for(key), 0, "one shard takes every key");
        }
        assert_eq!(ShardRing::new(0).shards(), 1, "a ring has at least one shard");
    }

    #[test]
    fn placement_is_balanced() {
        let ring = ShardRing::new(8);
        let mut counts = [0u32; 8];
        for i in 0..20_000 {
            counts[ring.shard_for(&format!("customer-{i}")) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
        assert!(max < min * 2, "balanced enough: {counts:?}");
    }

    #[test]
    fn growing_the_ring_moves_about_one_nth_of_the_keys() {
        for n in [2u32, 4, 8, 16] {
            let (before, after) = (ShardRing::new(n), ShardRing::new(n + 1));
            let keys = 20_000;
            let mut moved = 0;
            for i in 0..keys {
                let k = format!("key-{i}");
                let (x, y) = (before.shard_for(&k), after.shard_for(&k));
                if x != y {
                    moved += 1;
                    assert_eq!(y, n, "a key only moves to the new shard");
                }
            }
            let fraction = f64::from(moved) / f64::from(keys);
            let ideal = 1.0 / f64::from(n + 1);
            assert!(
                fraction < ideal * 1.5 && fraction > ideal * 0.5,
                "{n}->{}: moved {fraction:.3}, ideal {ideal:.3}",
                n + 1
            );
        }
    }
}
