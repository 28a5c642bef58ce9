//! The typed order of JSON values and its order-preserving byte encoding.
//!
//! # The typed order
//!
//! Every JSON value has a **type class**, and classes are bracketed in a fixed order:
//!
//! ```text
//! null  <  booleans (false < true)  <  numbers  <  strings  <  arrays  <  objects
//! ```
//!
//! Within a class:
//! - **numbers** compare as the exact numbers they denote, whatever their representation
//!   (u64, i64 or f64): `1 == 1.0`, `-0.0 == 0`, and `18446744073709551615` (u64::MAX) is
//!   greater than `18446744073709551614` even though both round to the same f64;
//! - **strings** compare by their UTF-8 bytes (so by code point);
//! - **arrays** compare element by element in the typed order, a proper prefix first;
//! - **objects** compare as the list of their `(field name, value)` entries sorted by
//!   field name (UTF-8 bytes): entry by entry, name first then value, a proper prefix first.
//!   Field order in the document text does not matter.
//!
//! Two values are **equal in the typed order** when neither is smaller; this is the equality
//! used everywhere in queries (`=`, `IN`, `GROUP BY`). It differs from `serde_json`'s `==`
//! only for numbers (`1` and `1.0` are equal here). [`canonical`] picks one representative
//! of each equality class: integral numbers that fit u64/i64 become integers, others stay
//! f64, everything else is unchanged.
//!
//! # The encoding ([`encode`])
//!
//! `encode(v)` is a byte string such that for all values `a`, `b`:
//! `cmp(a, b) == encode(a).cmp(&encode(b))` (byte order is the typed order, so equal values
//! encode to equal bytes) and `decode(encode(v)) == canonical(v)`. It is **self-delimiting**
//! and **prefix-free**: no encoding is a proper prefix of another, and [`encoded_len`] finds
//! where one ends. So an index entry key `encode(value) ++ document key` sorts by value
//! then key, splits back unambiguously ([`split_entry`]), and the entries holding one value
//! are exactly those starting with its encoding (a prefix range).
//!
//! ```text
//! null   0x01                  false 0x02          true 0x03
//! number 0x04 | 0x05 | 0x06 …  (negative | zero | positive, see number.rs)
//! string 0x07, UTF-8 bytes with 0x00 written as 0x00 0xFF, then 0x00 0x01
//! array  0x08, each element's encoding, then 0x00 (elements start with a tag ≥ 0x01)
//! object 0x09, for each entry sorted by name: 0x01, the name as a string body (escaped and
//!        terminated as above), the value's encoding; then 0x00
//! ```
//!
//! Composite values (arrays, objects) are encoded whole, so the order is total and
//! `min`/`max`/`GROUP BY` work on any value. An index on a path whose values are large
//! objects therefore stores them whole in its entries: index scalar leaves where possible.
//! Nesting deeper than [`MAX_DEPTH`] is refused by decoding (documents are parsed with
//! serde_json's limit of 128 levels, far below it).

mod codec;
mod number;

use std::cmp::Ordering;

use serde_json::{Number, Value};

pub use codec::{decode, decode_prefix, encode, encode_into, encoded_len, prefix_end, split_entry};

/// Deepest nesting that decoding accepts.
pub const MAX_DEPTH: usize = 512;

/// The type classes of JSON values, in the typed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TypeClass {
    /// `null`
    Null,
    /// `false`, `true`
    Bool,
    /// Every number, whatever its representation.
    Number,
    /// Strings.
    String,
    /// Arrays.
    Array,
    /// Objects.
    Object,
}

impl TypeClass {
    /// The class of `v`.
    pub fn of(v: &Value) -> TypeClass {
        match v {
            Value::Null => TypeClass::Null,
            Value::Bool(_) => TypeClass::Bool,
            Value::Number(_) => TypeClass::Number,
            Value::String(_) => TypeClass::String,
            Value::Array(_) => TypeClass::Array,
            Value::Object(_) => TypeClass::Object,
        }
    }

    /// The half-open range `[start, end)` of encoded values of this class.
    pub fn encoded_range(self) -> (Vec<u8>, Vec<u8>) {
        let (start, end) = match self {
            TypeClass::Null => (0x01, 0x02),
            TypeClass::Bool => (0x02, 0x04),
            TypeClass::Number => (number::TAG_NEG, number::TAG_POS + 1),
            TypeClass::String => (0x07, 0x08),
            TypeClass::Array => (0x08, 0x09),
            TypeClass::Object => (0x09, 0x0a),
        };
        (vec![start], vec![end])
    }

    /// The class's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            TypeClass::Null => "null",
            TypeClass::Bool => "boolean",
            TypeClass::Number => "number",
            TypeClass::String => "string",
            TypeClass::Array => "array",
            TypeClass::Object => "object",
        }
    }
}

/// Compare two values in the typed order (see the module docs).
pub fn cmp(a: &Value, b: &Value) -> Ordering {
    let by_class = TypeClass::of(a).cmp(&TypeClass::of(b));
    if by_class != Ordering::Equal {
        return by_class;
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Array(x), Value::Array(y)) => {
            for (l, r) in x.iter().zip(y) {
                let o = cmp(l, r);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let (xs, ys) = (sorted_entries(x), sorted_entries(y));
            for ((kx, vx), (ky, vy)) in xs.iter().zip(&ys) {
                let o = kx.as_bytes().cmp(ky.as_bytes()).then_with(|| cmp(vx, vy));
                if o != Ordering::Equal {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
        // Null vs null; other pairs differ in class and returned above.
        _ => Ordering::Equal,
    }
}

/// Whether `a` and `b` are equal in the typed order.
pub fn equal(a: &Value, b: &Value) -> bool {
    cmp(a, b) == Ordering::Equal
}

/// An object's entries sorted by field name bytes (the map may keep insertion order).
pub(crate) fn sorted_entries(m: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    entries
}

/// A number as an exact integer or a float, for comparison.
enum Exact {
    Int(i128),
    Float(f64),
}

fn exact(n: &Number) -> Exact {
    if let Some(u) = n.as_u64() {
        Exact::Int(i128::from(u))
    } else if let Some(i) = n.as_i64() {
        Exact::Int(i128::from(i))
    } else {
        Exact::Float(n.as_f64().unwrap_or(0.0))
    }
}

/// Compare numbers exactly (written independently of the encoding, which tests check
/// against it).
fn cmp_numbers(a: &Number, b: &Number) -> Ordering {
    match (exact(a), exact(b)) {
        (Exact::Int(x), Exact::Int(y)) => x.cmp(&y),
        (Exact::Float(x), Exact::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Exact::Int(x), Exact::Float(y)) => cmp_int_float(x, y),
        (Exact::Float(x), Exact::Int(y)) => cmp_int_float(y, x).reverse(),
    }
}

/// Compare an integer of magnitude below 2^64 with a finite float, exactly.
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    if f >= TWO_64 {
        return Ordering::Less;
    }
    if f <= -TWO_64 {
        return Ordering::Greater;
    }
    // |f| < 2^64: its integral part converts to i128 exactly.
    let whole = f.trunc();
    i.cmp(&(whole as i128)).then_with(|| {
        let frac = f - whole;
        0.0f64.partial_cmp(&frac).unwrap_or(Ordering::Equal)
    })
}

/// The canonical representative of `v`'s equality class (see the module docs).
pub fn canonical(v: &Value) -> Value {
    // decode(encode(v)) is canonical by construction; a decode failure cannot happen for
    // an encoding we just made, but fall back to the value itself rather than panic.
    decode(&encode(v)).unwrap_or_else(|_| v.clone())
}

#[cfg(test)]
pub(crate) mod tests;
