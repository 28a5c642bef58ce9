//! Small building blocks of the crate's binary formats (page tokens, partial aggregates):
//! LEB128 varints, length-prefixed byte strings and a bounds-checked reader, plus the
//! FNV-1a fingerprint that tags those formats with the query they belong to.
//!
//! Invariants: a [`Reader`] never panics and never reads past its input; every shortfall is
//! an [`Error::Decode`] naming the format. The fingerprint is a fixed algorithm (not
//! `std`'s hasher), so nodes built by different Rust versions agree on it.

use crate::error::{Error, Result};

/// Appends encoded fields to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    /// Append one byte.
    pub(crate) fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// Append an unsigned LEB128 varint.
    pub(crate) fn varint(&mut self, mut v: u64) {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(low);
                return;
            }
            self.buf.push(low | 0x80);
        }
    }

    /// Append a fixed 8-byte big-endian integer.
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Append a length-prefixed byte string.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
}

/// Reads fields back, failing with a decode error for `what` on any shortfall.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, errors naming `what`.
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { rest: bytes, what }
    }

    /// A decode error for this reader's format.
    pub(crate) fn error(&self, reason: impl Into<String>) -> Error {
        Error::decode(self.what, reason)
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(self.error("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// A fixed 8-byte big-endian integer.
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// An unsigned LEB128 varint of at most 10 bytes that fits in 64 bits.
    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && low > 1 {
                return Err(self.error("varint overflows 64 bits"));
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// A length-prefixed byte string.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| self.error("length out of range"))?;
        self.take(n)
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Fail unless every byte was read.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.error(format!("{} unexpected trailing bytes", self.rest.len())))
        }
    }
}

/// FNV-1a, 64 bits: a stable fingerprint of canonical bytes (not a security measure).
#[derive(Debug, Clone)]
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    /// A fingerprint of nothing yet.
    pub(crate) fn new() -> Fingerprint {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }

    /// Feed one length-prefixed field, so field boundaries cannot be shifted.
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Fingerprint {
        self.raw(&(bytes.len() as u64).to_be_bytes());
        self.raw(bytes)
    }

    fn raw(&mut self, bytes: &[u8]) -> &mut Fingerprint {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// The fingerprint so far.
    pub(crate) fn value(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fnv_is_the_published_function() {
        // FNV-1a 64 of "a" is af63dc4c8601ec8c; our field() also hashes the length first.
        let mut f = Fingerprint::new();
        f.raw(b"a");
        assert_eq!(f.value(), 0xaf63_dc4c_8601_ec8c);
        let (mut x, mut y) = (Fingerprint::new(), Fingerprint::new());
        x.field(b"ab").field(b"c");
        y.field(b"a").field(b"bc");
        assert_ne!(x.value(), y.value());
    }

    #[test]
    fn reader_reports_shortfalls() {
        let mut r = Reader::new(&[0x80, 0x80], "thing");
        assert_eq!(
            r.varint().unwrap_err().to_string(),
            "invalid thing: truncated"
        );
        let mut r = Reader::new(&[0xff; 10], "thing");
        assert!(r.varint().is_err());
        let mut r = Reader::new(&[5, 1, 2], "thing");
        assert!(r.bytes().is_err());
        let r = Reader::new(&[1], "thing");
        assert!(r.finish().is_err());
    }

    proptest! {
        #[test]
        fn fields_round_trip(v in any::<u64>(), w in any::<u64>(), b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut out = Writer::default();
            out.varint(v);
            out.u64(w);
            out.bytes(&b);
            out.u8(7);
            let mut r = Reader::new(&out.buf, "thing");
            prop_assert_eq!(r.varint().unwrap(), v);
            prop_assert_eq!(r.u64().unwrap(), w);
            prop_assert_eq!(r.bytes().unwrap(), &b[..]);
            prop_assert_eq!(r.u8().unwrap(), 7);
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut r = Reader::new(&b, "thing");
            let _ = r.varint();
            let _ = r.bytes();
            let _ = r.u64();
            let _ = r.finish();
        }
    }
}
