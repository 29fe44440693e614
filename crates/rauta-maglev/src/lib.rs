//! Maglev table construction. See the crate description.
