//! Exact sums of JSON numbers, so aggregation does not depend on the order in which values
//! and partial states are combined.
//!
//! Floating-point addition is not associative: summing the same f64s in another order, or
//! merging partial sums split differently across replicas, can change the last bits. Here
//! integers are summed exactly in an i128 and floats in a wide fixed-point accumulator that
//! holds any sum of f64s exactly (bit 0 is 2^-1074, the smallest subnormal; 2,240 bits leave
//! room for 2^64 values of the largest magnitude). Rounding happens once, at the end, to the
//! nearest f64 (ties to even). So `sum` and `avg` give the same answer for any order and any
//! split: the correctly rounded exact result.
//!
//! Results: a sum of integers only is a JSON integer when it fits u64 or i64, else the
//! nearest f64; a sum with any float is the nearest f64. A mean is always the f64 nearest the
//! exact mean. A result beyond the f64 range (only a sum can be, |sum| > 1.8e308) is `None`.

use serde_json::{Number, Value};

use crate::error::Result;
use crate::wire::{Reader, Writer};

/// 64-bit limbs of the fixed-point accumulator (2,240 bits, two's complement).
const LIMBS: usize = 35;
/// Exponent of bit 0 of the accumulator.
const LSB_EXP: i32 = -1074;

/// An exact running sum of JSON numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExactSum {
    /// The integers, while their sum fits.
    int: i128,
    /// Floats (and integers once `int` would overflow), bit 0 = 2^-1074.
    big: Option<Box<[u64; LIMBS]>>,
    /// Whether a float was added: the result is then a float.
    saw_float: bool,
}

impl ExactSum {
    /// Add one number.
    pub(crate) fn add(&mut self, n: &Number) {
        if let Some(u) = n.as_u64() {
            self.add_int(i128::from(u));
        } else if let Some(i) = n.as_i64() {
            self.add_int(i128::from(i));
        } else {
            self.saw_float = true;
            self.add_f64(n.as_f64().unwrap_or(0.0));
        }
    }

    fn add_int(&mut self, v: i128) {
        match self.int.checked_add(v) {
            Some(s) => self.int = s,
            None => add_shifted(self.big(), v.unsigned_abs(), -LSB_EXP as u32, v < 0),
        }
    }

    fn add_f64(&mut self, x: f64) {
        if x == 0.0 || !x.is_finite() {
            return;
        }
        let bits = x.to_bits();
        let biased = (bits >> 52) & 0x7ff;
        let frac = bits & ((1 << 52) - 1);
        // x = mant × 2^(shift - 1074).
        let (mant, shift) = if biased == 0 {
            (frac, 0)
        } else {
            (frac | 1 << 52, biased as u32 - 1)
        };
        add_shifted(self.big(), u128::from(mant), shift, x < 0.0);
    }

    fn big(&mut self) -> &mut [u64; LIMBS] {
        self.big.get_or_insert_with(|| Box::new([0; LIMBS]))
    }

    /// Add another sum into this one.
    pub(crate) fn merge(&mut self, other: &ExactSum) {
        self.saw_float |= other.saw_float;
        self.add_int(other.int);
        if let Some(b) = &other.big {
            let mine = self.big();
            let mut carry = false;
            for (m, o) in mine.iter_mut().zip(b.iter()) {
                let (s1, c1) = m.overflowing_add(*o);
                let (s2, c2) = s1.overflowing_add(u64::from(carry));
                *m = s2;
                carry = c1 || c2;
            }
        }
    }

    /// The exact total, as fixed point.
    fn total(&self) -> [u64; LIMBS] {
        let mut t = self.big.as_deref().copied().unwrap_or([0; LIMBS]);
        add_shifted(
            &mut t,
            self.int.unsigned_abs(),
            -LSB_EXP as u32,
            self.int < 0,
        );
        t
    }

    /// The sum as a JSON number (see the module docs); `None` beyond the f64 range.
    pub(crate) fn sum(&self) -> Option<Value> {
        if !self.saw_float && self.big.is_none() {
            if let Ok(u) = u64::try_from(self.int) {
                return Some(Value::from(u));
            }
            if let Ok(i) = i64::try_from(self.int) {
                return Some(Value::from(i));
            }
        }
        let (negative, mut mag) = split_sign(self.total());
        // One extra low limb: rounding always has guard bits below the f64 ulp.
        let mut wide = vec![0u64; 1];
        wide.append(&mut mag);
        let x = round_to_f64(&wide, LSB_EXP - 64, false)?;
        Number::from_f64(if negative { -x } else { x }).map(Value::Number)
    }

    /// The mean of `count` summed values as the nearest f64; `None` when `count` is 0.
    pub(crate) fn mean(&self, count: u64) -> Option<f64> {
        if count == 0 {
            return None;
        }
        let (negative, mag) = split_sign(self.total());
        // (mag × 2^64) / count, remainder as the sticky bit.
        let mut wide = vec![0u64; 1];
        wide.extend_from_slice(&mag);
        let mut rem: u128 = 0;
        for limb in wide.iter_mut().rev() {
            let cur = (rem << 64) | u128::from(*limb);
            *limb = (cur / u128::from(count)) as u64;
            rem = cur % u128::from(count);
        }
        let x = round_to_f64(&wide, LSB_EXP - 64, rem != 0)?;
        Some(if negative { -x } else { x })
    }

    /// Append the state to `w`.
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(u8::from(self.saw_float) | u8::from(self.big.is_some()) << 1);
        w.buf.extend_from_slice(&self.int.to_be_bytes());
        if let Some(b) = &self.big {
            for limb in b.iter() {
                w.u64(*limb);
            }
        }
    }

    /// Read a state written by [`ExactSum::write`].
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<ExactSum> {
        let flags = r.u8()?;
        if flags > 3 {
            return Err(r.error(format!("unknown sum flags {flags:#04x}")));
        }
        let mut int = [0u8; 16];
        int.copy_from_slice(r.take(16)?);
        let big = if flags & 2 != 0 {
            let mut b = Box::new([0u64; LIMBS]);
            for limb in b.iter_mut() {
                *limb = r.u64()?;
            }
            Some(b)
        } else {
            None
        };
        Ok(ExactSum {
            int: i128::from_be_bytes(int),
            big,
            saw_float: flags & 1 != 0,
        })
    }
}

/// Add (or subtract) `mag × 2^shift` into the two's complement accumulator `acc`.
fn add_shifted(acc: &mut [u64; LIMBS], mag: u128, shift: u32, negative: bool) {
    let (limb, off) = ((shift / 64) as usize, shift % 64);
    let low = mag << off;
    let high = if off == 0 { 0 } else { mag >> (128 - off) };
    let parts = [low as u64, (low >> 64) as u64, high as u64];
    let mut carry = false;
    for (i, slot) in acc.iter_mut().enumerate().skip(limb) {
        let part = parts.get(i - limb).copied().unwrap_or(0);
        if part == 0 && !carry && i >= limb + parts.len() {
            break;
        }
        if negative {
            let (d1, b1) = slot.overflowing_sub(part);
            let (d2, b2) = d1.overflowing_sub(u64::from(carry));
            *slot = d2;
            carry = b1 || b2;
        } else {
            let (s1, c1) = slot.overflowing_add(part);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *slot = s2;
            carry = c1 || c2;
        }
    }
}

/// The sign and magnitude (little-endian limbs) of a two's complement accumulator.
fn split_sign(acc: [u64; LIMBS]) -> (bool, Vec<u64>) {
    let negative = acc[LIMBS - 1] >> 63 == 1;
    let mut mag = acc.to_vec();
    if negative {
        let mut carry = true;
        for limb in mag.iter_mut() {
            let (s, c) = (!*limb).overflowing_add(u64::from(carry));
            *limb = s;
            carry = c;
        }
    }
    (negative, mag)
}

fn bit(mag: &[u64], i: usize) -> bool {
    mag.get(i / 64).is_some_and(|l| l >> (i % 64) & 1 == 1)
}

/// Up to 64 bits of `mag` starting at bit `start`.
fn bits_from(mag: &[u64], start: usize, len: usize) -> u64 {
    (0..len)
        .filter(|k| bit(mag, start + k))
        .fold(0, |acc, k| acc | 1 << k)
}

fn any_below(mag: &[u64], i: usize) -> bool {
    let (whole, part) = (i / 64, i % 64);
    mag[..whole.min(mag.len())].iter().any(|l| *l != 0)
        || (part > 0
            && mag
                .get(whole)
                .is_some_and(|l| l & ((1u64 << part) - 1) != 0))
}

/// The f64 nearest (ties to even) to `mag × 2^lsb_exp` plus, when `sticky`, a positive
/// amount below 2^lsb_exp; `None` beyond f64's range. Needs `lsb_exp <= -1138`, so the f64
/// ulp is always at least 64 bits above bit 0.
fn round_to_f64(mag: &[u64], lsb_exp: i32, sticky: bool) -> Option<f64> {
    let Some(top) = (0..mag.len() * 64).rev().find(|&i| bit(mag, i)) else {
        return Some(0.0);
    };
    let top_exp = top as i32 + lsb_exp;
    let mut ulp_exp = if top_exp >= -1022 {
        top_exp - 52
    } else {
        -1074
    };
    let cut = (ulp_exp - lsb_exp) as usize;
    let mut mant = bits_from(mag, cut, 53);
    let round = bit(mag, cut - 1);
    let rest = sticky || any_below(mag, cut - 1);
    if round && (rest || mant & 1 == 1) {
        mant += 1;
    }
    if mant == 1 << 53 {
        mant >>= 1;
        ulp_exp += 1;
    }
    if mant < 1 << 52 {
        // Subnormal (ulp_exp is -1074) or zero.
        return Some(f64::from_bits(mant));
    }
    let biased = ulp_exp + 52 + 1023;
    if biased >= 2047 {
        return None;
    }
    Some(f64::from_bits((biased as u64) << 52 | (mant - (1 << 52))))
}

#[cfg(test)]
mod tests;
