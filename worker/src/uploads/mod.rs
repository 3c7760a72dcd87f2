//! Uploads.

pub mod inspect;
