//! Numbers in the typed encoding: every JSON number (u64, i64 or finite f64) as an exact
//! sign and magnitude, so that byte order is numeric order across representations.
//!
//! A non-zero magnitude is `2^exp × 1.frac`: `exp` is the position of its leading one bit
//! and `frac` holds every bit after it, left-aligned in 64 bits (a u64 has at most 63 of
//! them, an f64 at most 52). Each number has exactly one such form, whatever its
//! representation: `3`, `3.0` and `-0.0 + 3` all give `exp = 1, frac = 0x8000…`. The
//! encoding is then
//!
//! ```text
//! negative: 0x04, !(exp + BIAS) as u16 big-endian, !frac big-endian   (complemented: larger
//!                                                                      magnitude sorts first)
//! zero:     0x05                                                      (0 and -0.0)
//! positive: 0x06, (exp + BIAS) as u16 big-endian, frac big-endian
//! ```
//!
//! `exp` ranges over -1074 (the smallest subnormal) ..= 1023; `BIAS` keeps it positive.
//! Decoding gives the canonical JSON number: an integer (u64 when ≥ 0, i64 when < 0) if the
//! value is integral and fits one, else the f64 it came from. A form that no JSON number
//! has (bits an f64 cannot hold) is a decode error, so decode ∘ encode is the identity on
//! canonical numbers and every valid encoding has one meaning.

use serde_json::Number;

use crate::error::{Error, Result};

/// Tag of a negative number.
pub(crate) const TAG_NEG: u8 = 0x04;
/// Tag of zero.
pub(crate) const TAG_ZERO: u8 = 0x05;
/// Tag of a positive number.
pub(crate) const TAG_POS: u8 = 0x06;

/// Keeps every exponent positive in the encoding.
const BIAS: i32 = 1100;
/// The smallest exponent (f64's smallest subnormal, 2^-1074).
const MIN_EXP: i32 = -1074;
/// The largest exponent (f64's largest binade).
const MAX_EXP: i32 = 1023;

/// A non-zero magnitude as `2^exp × 1.frac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mag {
    exp: i32,
    frac: u64,
}

/// A JSON number's exact sign and magnitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Neg(Mag),
    Zero,
    Pos(Mag),
}

fn mag_u64(n: u64) -> Mag {
    let lz = n.leading_zeros();
    Mag {
        exp: 63 - lz as i32,
        // Drop the leading one: two shifts, since `<< 64` would overflow for n = 1.
        frac: (n << lz) << 1,
    }
}

fn num_f64(x: f64) -> Num {
    if x == 0.0 || !x.is_finite() {
        // serde_json numbers are always finite; zero covers -0.0.
        return Num::Zero;
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let mant = bits & ((1 << 52) - 1);
    let mag = if biased == 0 {
        // Subnormal: mant × 2^-1074, leading one somewhere in mant.
        let lz = mant.leading_zeros();
        Mag {
            exp: (63 - lz as i32) + MIN_EXP,
            frac: (mant << lz) << 1,
        }
    } else {
        Mag {
            exp: biased - 1023,
            frac: mant << 12,
        }
    };
    if x < 0.0 {
        Num::Neg(mag)
    } else {
        Num::Pos(mag)
    }
}

fn num(n: &Number) -> Num {
    if let Some(u) = n.as_u64() {
        if u == 0 {
            Num::Zero
        } else {
            Num::Pos(mag_u64(u))
        }
    } else if let Some(i) = n.as_i64() {
        // as_u64 failed, so i < 0.
        Num::Neg(mag_u64(i.unsigned_abs()))
    } else {
        num_f64(n.as_f64().unwrap_or(0.0))
    }
}

/// Append the encoding of `n` (tag included).
pub(crate) fn encode(n: &Number, out: &mut Vec<u8>) {
    match num(n) {
        Num::Zero => out.push(TAG_ZERO),
        Num::Pos(m) => {
            out.push(TAG_POS);
            out.extend_from_slice(&((m.exp + BIAS) as u16).to_be_bytes());
            out.extend_from_slice(&m.frac.to_be_bytes());
        }
        Num::Neg(m) => {
            out.push(TAG_NEG);
            out.extend_from_slice(&(!((m.exp + BIAS) as u16)).to_be_bytes());
            out.extend_from_slice(&(!m.frac).to_be_bytes());
        }
    }
}

/// Bytes after the tag for a number with this tag.
pub(crate) fn body_len(tag: u8) -> usize {
    if tag == TAG_ZERO {
        0
    } else {
        10
    }
}

/// Decode the body (after `tag`) of a number into its canonical JSON number.
pub(crate) fn decode(tag: u8, body: &[u8]) -> Result<Number> {
    if tag == TAG_ZERO {
        return Ok(Number::from(0u64));
    }
    let bad = |reason: &str| Error::decode("value encoding", reason.to_string());
    let (e, f) = body
        .split_at_checked(2)
        .ok_or_else(|| bad("truncated number"))?;
    let mut e = u16::from_be_bytes([e[0], e[1]]);
    let mut frac = u64::from_be_bytes(f.try_into().map_err(|_| bad("truncated number"))?);
    let negative = tag == TAG_NEG;
    if negative {
        e = !e;
        frac = !frac;
    }
    let exp = i32::from(e) - BIAS;
    if !(MIN_EXP..=MAX_EXP).contains(&exp) {
        return Err(bad("number exponent out of range"));
    }
    // Integral and within 64 bits: the canonical form is an integer.
    if (0..64).contains(&exp) && (exp == 0 && frac == 0 || exp > 0 && frac << exp == 0) {
        let m = if exp == 0 {
            1
        } else {
            (1u64 << exp) | (frac >> (64 - exp))
        };
        if !negative {
            return Ok(Number::from(m));
        }
        if m <= 1 << 63 {
            return Ok(Number::from((-(i128::from(m))) as i64));
        }
    }
    // Otherwise it must be exactly an f64.
    let sign = if negative { 1u64 << 63 } else { 0 };
    let bits = if exp >= -1022 {
        if frac & 0xfff != 0 {
            return Err(bad("number has more precision than an f64"));
        }
        sign | (((exp + 1023) as u64) << 52) | (frac >> 12)
    } else {
        // Subnormal: the leading one lands at bit k of the 52-bit mantissa.
        let k = (exp - MIN_EXP) as u32;
        if k > 0 && frac << k != 0 || k == 0 && frac != 0 {
            return Err(bad("number has more precision than an f64"));
        }
        let lead = 1u64 << k;
        sign | lead | if k == 0 { 0 } else { frac >> (64 - k) }
    };
    Number::from_f64(f64::from_bits(bits)).ok_or_else(|| bad("number is not finite"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(n: Number) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&n, &mut out);
        out
    }

    fn round(n: Number) -> Number {
        let e = enc(n);
        decode(e[0], &e[1..]).unwrap()
    }

    fn f(x: f64) -> Number {
        Number::from_f64(x).unwrap()
    }

    #[test]
    fn equal_values_encode_equal_across_representations() {
        assert_eq!(enc(Number::from(1u64)), enc(f(1.0)));
        assert_eq!(enc(Number::from(-7i64)), enc(f(-7.0)));
        assert_eq!(enc(f(-0.0)), enc(Number::from(0u64)));
        assert_eq!(enc(Number::from(1u64 << 60)), enc(f(2f64.powi(60))));
        assert_eq!(enc(Number::from(i64::MIN)), enc(f(-(2f64.powi(63)))));
    }

    #[test]
    fn big_integers_keep_their_order() {
        let a = Number::from(u64::MAX);
        let b = Number::from(u64::MAX - 1);
        // Both round to the same f64, but must not encode equal.
        assert!(enc(b.clone()) < enc(a.clone()));
        assert!(enc(f(2f64.powi(64))) > enc(a.clone()));
        // The f64 just below 2^64 is 2^64 - 2048.
        assert!(enc(f(f64::from_bits(2f64.powi(64).to_bits() - 1))) < enc(b));
        assert!(enc(Number::from(i64::MIN)) < enc(Number::from(i64::MIN + 1)));
        assert!(enc(f(-9.3e18)) < enc(Number::from(i64::MIN)));
    }

    #[test]
    fn decoding_gives_the_canonical_number() {
        assert_eq!(round(f(3.0)), Number::from(3u64));
        assert_eq!(round(f(-0.0)), Number::from(0u64));
        assert_eq!(round(f(-3.0)), Number::from(-3i64));
        assert_eq!(round(f(0.5)), f(0.5));
        assert_eq!(round(f(1e300)), f(1e300));
        assert_eq!(round(f(2f64.powi(64))), f(2f64.powi(64)));
        assert_eq!(round(f(-(2f64.powi(63)))), Number::from(i64::MIN));
        assert_eq!(round(f(-(2f64.powi(64)))), f(-(2f64.powi(64))));
        assert_eq!(round(Number::from(u64::MAX)), Number::from(u64::MAX));
        for x in [
            f64::MIN_POSITIVE,
            5e-324,
            1.5e-320,
            -5e-324,
            f64::MAX,
            f64::MIN,
        ] {
            assert_eq!(round(f(x)), f(x), "{x:e}");
        }
    }

    #[test]
    fn forms_no_number_has_are_rejected() {
        // 2^0 × 1.000…01 (64 fraction bits) is neither an integer nor an f64.
        let mut body = (BIAS as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&1u64.to_be_bytes());
        assert!(decode(TAG_POS, &body).is_err());
        // Exponent beyond f64.
        let mut body = ((BIAS + 2000) as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&0u64.to_be_bytes());
        assert!(decode(TAG_POS, &body).is_err());
        // Subnormal with bits below 2^-1074.
        let mut body = ((BIAS + MIN_EXP) as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert!(decode(TAG_POS, &body).is_err());
        assert!(decode(TAG_POS, &[1, 2, 3]).is_err());
        // -(2^63 + 1): integral, beyond i64, more bits than an f64.
        let mut body = (!((BIAS + 63) as u16)).to_be_bytes().to_vec();
        body.extend_from_slice(&(!2u64).to_be_bytes());
        assert!(decode(TAG_NEG, &body).is_err());
    }
}
