//! Encoding and decoding of the typed order (format in the parent module's docs).

use serde_json::{Map, Value};

use super::{number, sorted_entries, MAX_DEPTH};
use crate::error::{Error, Result};

const TAG_NULL: u8 = 0x01;
const TAG_FALSE: u8 = 0x02;
const TAG_TRUE: u8 = 0x03;
const TAG_STRING: u8 = 0x07;
const TAG_ARRAY: u8 = 0x08;
const TAG_OBJECT: u8 = 0x09;
/// Ends an array or object; below every tag and every entry marker.
const END: u8 = 0x00;
/// Starts an object entry.
const ENTRY: u8 = 0x01;
/// In a string body, 0x00 0xFF stands for a 0x00 byte and 0x00 0x01 ends the string.
const STR_ESCAPE: u8 = 0xff;
const STR_END: u8 = 0x01;

const WHAT: &str = "value encoding";

/// The encoding of `v`, whose byte order is the typed order.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(v, &mut out);
    out
}

/// Append the encoding of `v` to `out` (for building index entry keys in place).
pub fn encode_into(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Number(n) => number::encode(n, out),
        Value::String(s) => {
            out.push(TAG_STRING);
            string_body(s, out);
        }
        Value::Array(items) => {
            out.push(TAG_ARRAY);
            for item in items {
                encode_into(item, out);
            }
            out.push(END);
        }
        Value::Object(m) => {
            out.push(TAG_OBJECT);
            for (k, v) in sorted_entries(m) {
                out.push(ENTRY);
                string_body(k, out);
                encode_into(v, out);
            }
            out.push(END);
        }
    }
}

fn string_body(s: &str, out: &mut Vec<u8>) {
    for &b in s.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(STR_ESCAPE);
        }
    }
    out.extend_from_slice(&[0, STR_END]);
}

/// Decode exactly one encoded value spanning all of `bytes` (its canonical form).
pub fn decode(bytes: &[u8]) -> Result<Value> {
    let (v, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(Error::decode(WHAT, "trailing bytes after the value"));
    }
    Ok(v)
}

/// Decode the encoded value at the start of `bytes`; returns it and its length in bytes.
pub fn decode_prefix(bytes: &[u8]) -> Result<(Value, usize)> {
    let mut d = Decoder { bytes, pos: 0 };
    let v = d.value(0)?;
    Ok((v, d.pos))
}

/// The length of the encoded value at the start of `bytes` (validating it).
pub fn encoded_len(bytes: &[u8]) -> Result<usize> {
    decode_prefix(bytes).map(|(_, len)| len)
}

/// Split an index entry key `encode(value) ++ document key` into the value and the key.
pub fn split_entry(entry: &[u8]) -> Result<(Value, &str)> {
    let (value, used) = decode_prefix(entry)?;
    let key = std::str::from_utf8(&entry[used..])
        .map_err(|_| Error::decode("index entry", "the document key is not UTF-8"))?;
    Ok((value, key))
}

/// The smallest byte string greater than every string that starts with `prefix`; `None`
/// when there is none (empty or all 0xFF). Entries holding one value `v` are exactly
/// `[encode(v), prefix_end(encode(v)))`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| Error::decode(WHAT, "truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(Error::decode(
                WHAT,
                format!("nested deeper than {MAX_DEPTH}"),
            ));
        }
        let tag = self.byte()?;
        Ok(match tag {
            TAG_NULL => Value::Null,
            TAG_FALSE => Value::Bool(false),
            TAG_TRUE => Value::Bool(true),
            number::TAG_NEG | number::TAG_ZERO | number::TAG_POS => {
                let len = number::body_len(tag);
                let body = self
                    .bytes
                    .get(self.pos..self.pos + len)
                    .ok_or_else(|| Error::decode(WHAT, "truncated number"))?;
                self.pos += len;
                Value::Number(number::decode(tag, body)?)
            }
            TAG_STRING => Value::String(self.string()?),
            TAG_ARRAY => {
                let mut items = Vec::new();
                while self.bytes.get(self.pos) != Some(&END) {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Value::Array(items)
            }
            TAG_OBJECT => {
                let mut m = Map::new();
                let mut last: Option<String> = None;
                loop {
                    match self.byte()? {
                        END => break,
                        ENTRY => {}
                        b => {
                            return Err(Error::decode(
                                WHAT,
                                format!("byte {b:#04x} where an object entry or its end belongs"),
                            ))
                        }
                    }
                    let k = self.string()?;
                    if last.as_ref().is_some_and(|l| l.as_bytes() >= k.as_bytes()) {
                        return Err(Error::decode(WHAT, "object fields out of order"));
                    }
                    let v = self.value(depth + 1)?;
                    m.insert(k.clone(), v);
                    last = Some(k);
                }
                Value::Object(m)
            }
            b => return Err(Error::decode(WHAT, format!("unknown type tag {b:#04x}"))),
        })
    }

    fn string(&mut self) -> Result<String> {
        let mut raw = Vec::new();
        loop {
            match self.byte()? {
                0 => match self.byte()? {
                    STR_ESCAPE => raw.push(0),
                    STR_END => break,
                    b => {
                        return Err(Error::decode(
                            WHAT,
                            format!("byte {b:#04x} after 0x00 in a string"),
                        ))
                    }
                },
                b => raw.push(b),
            }
        }
        String::from_utf8(raw).map_err(|_| Error::decode(WHAT, "a string is not UTF-8"))
    }
}
