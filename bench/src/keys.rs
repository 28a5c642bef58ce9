//! Key popularity (YCSB's scrambled zipfian or uniform) and record generation.

use rand::Rng;

/// Picks which record an operation touches.
pub enum KeyChooser {
    /// Every record equally likely.
    Uniform { n: u64 },
    /// Zipfian ranks (Gray et al., as in YCSB), scrambled by hashing so hot keys spread
    /// over the ring instead of clustering at low numbers.
    Zipfian {
        n: u64,
        theta: f64,
        zetan: f64,
        alpha: f64,
        eta: f64,
    },
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

fn fnv64(mut v: u64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for _ in 0..8 {
        h ^= v & 0xff;
        h = h.wrapping_mul(0x100000001b3);
        v >>= 8;
    }
    h
}

impl KeyChooser {
    /// Uniform over `n` records.
    pub fn uniform(n: u64) -> Self {
        KeyChooser::Uniform { n }
    }

    /// Zipfian over `n` records with skew `theta` (YCSB uses 0.99).
    pub fn zipfian(n: u64, theta: f64) -> Self {
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2.min(n), theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        KeyChooser::Zipfian {
            n,
            theta,
            zetan,
            alpha,
            eta,
        }
    }

    /// The next record number, in `0..n`.
    pub fn next(&self, rng: &mut impl Rng) -> u64 {
        match *self {
            KeyChooser::Uniform { n } => rng.gen_range(0..n),
            KeyChooser::Zipfian {
                n,
                theta,
                zetan,
                alpha,
                eta,
            } => {
                let u: f64 = rng.gen();
                let uz = u * zetan;
                let rank = if uz < 1.0 {
                    0
                } else if uz < 1.0 + 0.5f64.powf(theta) {
                    1
                } else {
                    ((n as f64) * (eta * u - eta + 1.0).powf(alpha)) as u64
                };
                fnv64(rank.min(n - 1)) % n
            }
        }
    }
}

/// A YCSB-like record: `fields` string fields of 100 random characters (about 1 KiB for 10).
pub fn record(rng: &mut impl Rng, fields: usize) -> Vec<u8> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out = Vec::with_capacity(fields * 112 + 2);
    out.push(b'{');
    for f in 0..fields {
        if f > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!("\"field{f}\":\"").as_bytes());
        out.extend((0..100).map(|_| CHARS[rng.gen_range(0..CHARS.len())]));
        out.push(b'"');
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipfian_is_skewed_and_in_range() {
        let z = KeyChooser::zipfian(10_000, 0.99);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..100_000 {
            let k = z.next(&mut rng);
            assert!(k < 10_000);
            *counts.entry(k).or_insert(0u32) += 1;
        }
        let max = *counts.values().max().unwrap();
        assert!(
            max > 5_000,
            "the hottest key takes several percent of accesses: {max}"
        );
        assert!(
            counts.len() > 2_000,
            "but many keys are touched: {}",
            counts.len()
        );
    }

    #[test]
    fn records_are_json_objects_of_about_a_kibibyte() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(2);
        let r = record(&mut rng, 10);
        let v: serde_json::Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 10);
        assert!((1000..1300).contains(&r.len()), "{}", r.len());
    }
}
