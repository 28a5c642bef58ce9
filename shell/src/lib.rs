//! `ringsh`, the RingDB shell: statement parsing and execution, usable from tests.

pub mod exec;
pub mod parse;
