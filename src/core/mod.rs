//! Small types every layer shares and that depend on nothing else.

pub mod duration;
