//! Test and demo helpers.
