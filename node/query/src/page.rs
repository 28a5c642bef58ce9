//! Pages: stateless page tokens and the rules for cutting a page from merged candidates.
//!
//! # Tokens
//!
//! A page token records the [`Position`] of the last document returned, the query's
//! [`Order`], and a fingerprint of the query's shape: collection, filter (operands by their
//! typed encoding, so `1` and `1.0` agree, `IN` lists as sets) and `FIELDS`. `LIMIT` and
//! the consistency level are not part of it, so they may change between pages. The next
//! page continues **strictly after** that position. Nothing is stored on any node, so the
//! next page may go to any node, and survives nodes dying or joining between pages.
//!
//! The token is opaque URL-safe base64 (no padding) of:
//!
//! ```text
//! version 0x01 | fingerprint u64 BE | order: 0x00 (key) or 0x01 + varint condition index
//! | if ordered by a condition: varint length + encoded sort value | the key's UTF-8 bytes
//! ```
//!
//! Decoding checks, in this order, that the text is a token (else "invalid page token"),
//! that it was issued for the same query (else it says the token belongs to another query), and that the query is
//! still ordered the same way: creating or dropping an index can change the order condition,
//! and a position in one order means nothing in another, so such a token is refused with a
//! message saying to start again. Decoding never panics. The fingerprint is 64 bits of FNV-1a:
//! it catches mistakes, it is not a security measure (a forged token only moves the start).
//!
//! # Cutting pages
//!
//! [`select_page`] is the reference cut: order candidates by position, keep those strictly
//! after the token's position, return the first `limit`, and give the last one's position as
//! `next` exactly when further candidates remain (so `next` is `None` on the last page; a
//! full last page has no `next`).
//!
//! A coordinator merging **ordered, limited scans** from several replicas works in rounds
//! (a simulation of it with stale replicas is among this module's tests):
//! 1. each asked replica reports, in order, up to `n` documents at their
//!    [`crate::order::position_after`] the resume point, and how its scan ended
//!    ([`ScanEnd`]);
//! 2. the coordinator merges each reported key's sibling sets, re-checks the filter and
//!    computes the merged document's [`crate::order::position`];
//! 3. it keeps documents whose merged position is after the resume point and no later than
//!    the [`horizon`]: the smallest last position of a replica that stopped early (beyond
//!    it, that replica may hold documents it has not sent); none when all were exhausted;
//! 4. if the page (plus one, to know whether more remain) is not full and a replica
//!    stopped, the next round resumes at the horizon. A document whose merged position lies
//!    beyond the horizon is reported again by a later round, by the replica holding the
//!    sibling that gives that position.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::order::{check_fits, Order, Position};
use crate::path::Path;
use crate::value;
use crate::wire::{Fingerprint, Reader, Writer};

const VERSION: u8 = 1;
const WHAT: &str = "page token";

/// What identifies a query across its pages.
#[derive(Debug, Clone, Copy)]
pub struct QueryShape<'a> {
    /// The collection queried.
    pub collection: &'a str,
    /// The filter (conditions in written order).
    pub filter: &'a Filter,
    /// The `FIELDS` paths (empty: whole documents).
    pub fields: &'a [Path],
}

impl QueryShape<'_> {
    /// The shape's fingerprint (see the module docs).
    pub fn fingerprint(&self) -> u64 {
        let mut fp = Fingerprint::new();
        fp.field(b"find").field(self.collection.as_bytes());
        self.filter.fingerprint(&mut fp);
        fp.field(&(self.fields.len() as u64).to_be_bytes());
        for p in self.fields {
            fp.field(p.to_string().as_bytes());
        }
        fp.value()
    }
}

/// The token continuing a query of `shape` in `order` strictly after `last`.
pub fn encode_token(shape: QueryShape<'_>, order: Order, last: &Position) -> String {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.u64(shape.fingerprint());
    match order {
        Order::Key => w.u8(0),
        Order::Condition(i) => {
            w.u8(1);
            w.varint(i as u64);
        }
    }
    if let Some(v) = last.encoded_value() {
        w.bytes(v);
    }
    w.buf.extend_from_slice(last.key().as_bytes());
    URL_SAFE_NO_PAD.encode(&w.buf)
}

/// The position a token continues after, if it belongs to this query in this order.
pub fn decode_token(token: &str, shape: QueryShape<'_>, order: Order) -> Result<Position> {
    let invalid = |why: String| {
        let why = why.strip_prefix("invalid page token: ").unwrap_or(&why);
        Error::PageToken(format!("invalid page token: {why}"))
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| invalid("not a page token this database issued".into()))?;
    let mut r = Reader::new(&bytes, WHAT);
    let version = r.u8().map_err(|e| invalid(e.to_string()))?;
    if version != VERSION {
        return Err(invalid(format!("unknown token version {version}")));
    }
    let parsed = (|| {
        let fingerprint = r.u64()?;
        let token_order = match r.u8()? {
            0 => Order::Key,
            1 => {
                let i = r.varint()?;
                Order::Condition(usize::try_from(i).map_err(|_| r.error("order out of range"))?)
            }
            b => return Err(r.error(format!("unknown order tag {b}"))),
        };
        let value = match token_order {
            Order::Key => None,
            Order::Condition(_) => {
                let v = r.bytes()?.to_vec();
                value::decode(&v)?;
                Some(v)
            }
        };
        let key = std::str::from_utf8(r.rest()).map_err(|_| r.error("key is not UTF-8"))?;
        Ok((
            fingerprint,
            token_order,
            Position::from_encoded(value, key)?,
        ))
    })();
    let (fingerprint, token_order, position) = parsed.map_err(|e| invalid(e.to_string()))?;
    if fingerprint != shape.fingerprint() {
        return Err(Error::PageToken(
            "the page token belongs to a different query: keep the collection, WHERE and FIELDS of the first page".into(),
        ));
    }
    if token_order != order {
        return Err(Error::PageToken(format!(
            "the page token was issued while results were ordered by {}; they are now ordered by {} (an index was created or dropped): start again without PAGE",
            token_order.describe(shape.filter),
            order.describe(shape.filter)
        )));
    }
    check_fits(&position, order, shape.filter).map_err(|e| invalid(e.to_string()))?;
    Ok(position)
}

/// One page cut from candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The page's items in result order.
    pub items: Vec<(Position, T)>,
    /// The position to continue after, when more candidates remain.
    pub next: Option<Position>,
}

/// The reference page cut (see the module docs); a `limit` of 0 counts as 1, since a page
/// that returns nothing would never progress.
pub fn select_page<T>(
    mut candidates: Vec<(Position, T)>,
    after: Option<&Position>,
    limit: usize,
) -> Page<T> {
    candidates.retain(|(p, _)| after.is_none_or(|a| p > a));
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    let limit = limit.max(1);
    let more = candidates.len() > limit;
    candidates.truncate(limit);
    let next = if more {
        candidates.last().map(|(p, _)| p.clone())
    } else {
        None
    };
    Page {
        items: candidates,
        next,
    }
}

/// How one replica's ordered scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// It sent every candidate it holds after the resume point.
    Exhausted,
    /// It reached its limit; this is the last position it sent.
    Stopped(Position),
}

/// The position up to which merged candidates are complete: the smallest last position of a
/// replica that stopped; `None` when every replica was exhausted (complete to the end).
pub fn horizon(ends: &[ScanEnd]) -> Option<&Position> {
    ends.iter()
        .filter_map(|e| match e {
            ScanEnd::Exhausted => None,
            ScanEnd::Stopped(p) => Some(p),
        })
        .min()
}

#[cfg(test)]
mod merge_tests;
#[cfg(test)]
mod tests;
