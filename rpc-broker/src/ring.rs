//! A consistent hash ring mapping keys to shards, with virtual nodes and a fixed hash
//! (the first 8 bytes of SHA-256), so every process places a key on the same shard and
//! changing the number of shards moves only about `1/N` of the keys.

/// Virtual nodes per shard.
pub const VNODES: usize = 160;

fn hash(bytes: &[u8]) -> u64 {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
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

    #[test]
    fn placement_is_fixed_and_balanced() {
        let a = ShardRing::new(8);
        let b = ShardRing::new(8);
        let mut counts = [0u32; 8];
        for i in 0..20_000 {
            let k = format!("customer-{i}");
            assert_eq!(a.shard_for(&k), b.shard_for(&k));
            counts[a.shard_for(&k) as usize] += 1;
        }
        // A fixed hash: this key lands here in every process, on every machine.
        assert_eq!(a.shard_for("acme"), ShardRing::new(8).shard_for("acme"));
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
