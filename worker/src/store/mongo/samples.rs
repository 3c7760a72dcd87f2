//! The `concurrency_samples` collection: how many sessions were live at
//! each sampled moment, unique on a plain `at` field (not `_id`: see the
//! module doc of the adapter); a new sample replaces one at the same
//! moment.

use chatbox_shared::protocol::Timestamp;
use mongodb::bson::doc;

use super::fields::Fields;
use super::{MongoStore, classify, date, find, is_duplicate_key, n};
use crate::store::{ConcurrencySample, StoreError};

pub(super) async fn add_sample(store: &MongoStore, sample: &ConcurrencySample) -> Result<(), StoreError> {
    let upsert = || {
        store
            .samples
            .update_one(
                doc! { "at": date(sample.at) },
                doc! { "$set": { "concurrent": n(sample.concurrent) } },
            )
            .upsert(true)
    };
    match upsert().await {
        Ok(_) => Ok(()),
        // Another writer inserted the same moment first: replace theirs.
        Err(e) if is_duplicate_key(&e) => upsert().await.map(drop).map_err(classify),
        Err(e) => Err(classify(e)),
    }
}

pub(super) async fn samples(
    store: &MongoStore,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<ConcurrencySample>, StoreError> {
    let docs = find(
        &store.samples,
        doc! { "at": { "$gte": date(from), "$lt": date(to) } },
        doc! { "at": 1 },
        usize::MAX,
    )
    .await?;
    docs.iter()
        .map(|d| {
            let f = Fields(d);
            Ok(ConcurrencySample {
                at: f.time("at")?,
                concurrent: f.uint("concurrent"),
            })
        })
        .collect()
}
