//! `ringsh`, the RingDB shell, as a library so tests can drive its parts: lexing and
//! parsing statements (query statements through `ringdb-query`'s grammar), running them
//! against a cluster, rendering results and request traces, completion and the interactive loop.

#![warn(missing_docs)]

pub mod complete;
pub mod error;
pub mod exec;
pub mod help;
pub mod indexes;
pub mod lex;
pub mod parse;
pub mod query;
pub mod query_render;
pub mod render;
pub mod repl;
pub mod trace;
