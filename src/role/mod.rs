//! The roles the binary can run.

pub(crate) mod all_in_one;
pub(crate) mod gateway;
pub(crate) mod token;
pub(crate) mod worker;
