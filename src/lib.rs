//! Roundtable: every member of a coproduction partnership holds a signed, equal copy of the group's record.
//!
//! This facade re-exports the workspace crates so that the top-level `examples/` and `tests/` can use them
//! under one name. Start with [`core`] (entries and the rules every device applies) and [`store`] (the
//! record on disk).
pub use roundtable_core as core;
pub use roundtable_store as store;
