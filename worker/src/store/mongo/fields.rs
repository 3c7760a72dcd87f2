//! Typed reads from a stored document, with errors that name the field.
//! They accept what both real MongoDB and the nx-27017 stand-in hand back
//! for the same write: a flag as a boolean or as 0/1, a time or a count as
//! Int64 or as the Int32 the stand-in narrows small values to.

use chatbox_shared::protocol::Timestamp;
use mongodb::bson::{Bson, Document};

use crate::store::StoreError;

/// Typed reads from a document, with errors that name the field.
pub(super) struct Fields<'a>(pub(super) &'a Document);

impl Fields<'_> {
    fn corrupt(&self, field: &str) -> StoreError {
        StoreError::Corrupt(format!("field {field:?} is missing or has the wrong type"))
    }

    pub(super) fn str(&self, field: &str) -> Result<String, StoreError> {
        self.0
            .get_str(field)
            .map(str::to_owned)
            .map_err(|_| self.corrupt(field))
    }

    pub(super) fn opt_str(&self, field: &str) -> Option<String> {
        self.0.get_str(field).ok().map(str::to_owned)
    }

    pub(super) fn uint(&self, field: &str) -> u64 {
        match self.0.get(field) {
            Some(Bson::Int64(v)) => u64::try_from(*v).unwrap_or(0),
            Some(Bson::Int32(v)) => u64::try_from(*v).unwrap_or(0),
            Some(Bson::Double(v)) if *v >= 0.0 => *v as u64,
            _ => 0,
        }
    }

    pub(super) fn opt_uint(&self, field: &str) -> Option<u64> {
        self.0
            .get(field)
            .filter(|v| !matches!(v, Bson::Null))
            .map(|_| self.uint(field))
    }

    /// A flag. The stand-in stores a boolean written by `$set` as the
    /// integer 0 or 1 (its queries still match it as `false`/`true`).
    pub(super) fn bool(&self, field: &str) -> bool {
        match self.0.get(field) {
            Some(Bson::Boolean(b)) => *b,
            Some(Bson::Int32(v)) => *v != 0,
            Some(Bson::Int64(v)) => *v != 0,
            _ => false,
        }
    }

    pub(super) fn time(&self, field: &str) -> Result<Timestamp, StoreError> {
        self.opt_time(field).ok_or_else(|| self.corrupt(field))
    }

    pub(super) fn opt_time(&self, field: &str) -> Option<Timestamp> {
        match self.0.get(field)? {
            Bson::Int64(ms) => Some(Timestamp::from_millis(u64::try_from(*ms).unwrap_or(0))),
            // The stand-in hands back an Int64 that fits 32 bits as Int32.
            Bson::Int32(ms) => Some(Timestamp::from_millis(u64::try_from(*ms).unwrap_or(0))),
            Bson::DateTime(d) => Some(Timestamp::from_millis(
                u64::try_from(d.timestamp_millis()).unwrap_or(0),
            )),
            _ => None,
        }
    }
}
