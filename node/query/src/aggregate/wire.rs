//! The byte form of partial aggregation states, for shipping them between nodes:
//!
//! ```text
//! version 0x01 | spec fingerprint u64 BE | varint group count
//! | per group, in increasing key order: length-prefixed encoded group value,
//!   then one state per aggregation in the spec's order:
//!     count: varint | sum: exact sum | avg: exact sum, varint count
//!     | min/max: 0x00 (none) or 0x01 + length-prefixed encoded value
//! ```

use std::collections::BTreeMap;

use super::partial::{Acc, Partial};
use super::AggregateSpec;
use crate::error::Result;
use crate::exact::ExactSum;
use crate::value;
use crate::wire::{Reader, Writer};

const VERSION: u8 = 1;
const WHAT: &str = "partial aggregation";

impl Partial {
    /// The state as bytes (format in `aggregate/wire.rs`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(VERSION);
        w.u64(self.spec.fingerprint());
        w.varint(self.groups.len() as u64);
        for (key, accs) in &self.groups {
            w.bytes(key);
            for acc in accs {
                match acc {
                    Acc::Count(n) => w.varint(*n),
                    Acc::Sum(s) => s.write(&mut w),
                    Acc::Avg(s, n) => {
                        s.write(&mut w);
                        w.varint(*n);
                    }
                    Acc::Min(best) | Acc::Max(best) => match best {
                        None => w.u8(0),
                        Some(b) => {
                            w.u8(1);
                            w.bytes(b);
                        }
                    },
                }
            }
        }
        w.buf
    }

    /// A state from [`Partial::to_bytes`], made for this same `spec`.
    pub fn from_bytes(spec: &AggregateSpec, bytes: &[u8]) -> Result<Partial> {
        let mut r = Reader::new(bytes, WHAT);
        let version = r.u8()?;
        if version != VERSION {
            return Err(r.error(format!("unknown version {version}")));
        }
        if r.u64()? != spec.fingerprint() {
            return Err(r.error("made for a different aggregation"));
        }
        let count = r.varint()?;
        let mut groups = BTreeMap::new();
        let mut last: Option<Vec<u8>> = None;
        for _ in 0..count {
            let key = r.bytes()?.to_vec();
            value::decode(&key)?;
            if last.as_ref().is_some_and(|l| *l >= key) {
                return Err(r.error("groups out of order"));
            }
            let mut accs = Vec::with_capacity(spec.aggregations.len());
            for a in &spec.aggregations {
                let fresh = Acc::new(a);
                accs.push(match fresh {
                    Acc::Count(_) => Acc::Count(r.varint()?),
                    Acc::Sum(_) => Acc::Sum(ExactSum::read(&mut r)?),
                    Acc::Avg(..) => {
                        let s = ExactSum::read(&mut r)?;
                        Acc::Avg(s, r.varint()?)
                    }
                    Acc::Min(_) | Acc::Max(_) => {
                        let best = match r.u8()? {
                            0 => None,
                            1 => {
                                let b = r.bytes()?.to_vec();
                                value::decode(&b)?;
                                Some(b)
                            }
                            t => return Err(r.error(format!("unknown min/max tag {t}"))),
                        };
                        if matches!(fresh, Acc::Min(_)) {
                            Acc::Min(best)
                        } else {
                            Acc::Max(best)
                        }
                    }
                });
            }
            groups.insert(key.clone(), accs);
            last = Some(key);
        }
        r.finish()?;
        Ok(Partial {
            spec: spec.clone(),
            groups,
        })
    }
}
