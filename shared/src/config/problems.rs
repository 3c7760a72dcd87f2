//! The problems a configuration check finds, collected so that start-up
//! names every bad key at once (each with the environment variables that
//! set it), not only the first.

use std::time::Duration;

use super::env::names_for;

/// The problems found so far, each as `key (VARIABLES): problem`.
#[derive(Default)]
pub(super) struct Problems(Vec<String>);

impl Problems {
    /// Records `problem` for `key` unless `ok`.
    pub(super) fn check(&mut self, ok: bool, key: &str, problem: impl FnOnce() -> String) {
        if !ok {
            let names = if key.contains('[') {
                String::new()
            } else {
                names_for(key)
            };
            self.0.push(format!("{key}{names}: {}", problem()));
        }
    }

    /// Records a problem for `key` unless `d` is above zero.
    pub(super) fn positive(&mut self, d: Duration, key: &str) {
        self.check(!d.is_zero(), key, || "must be longer than zero".into());
    }
}

impl Problems {
    /// Every problem found, or none.
    pub(super) fn into_result(self) -> Result<(), Vec<String>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }
}
