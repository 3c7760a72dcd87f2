//! The roles the binary can run.

pub mod all_in_one;
pub mod gateway;
pub mod token;
pub mod worker;
