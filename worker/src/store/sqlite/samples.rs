//! The `concurrency_samples` table: how many sessions were live at each
//! sampled moment, one row per moment (a new sample replaces one at the
//! same moment).

use chatbox_shared::protocol::Timestamp;
use rusqlite::{Row, params};

use super::{SqliteStore, collect, ms, n, other, ts, u};
use crate::store::cipher::ContentCipher;
use crate::store::{ConcurrencySample, StoreError};

fn sample_from_row(row: &Row<'_>, _: &ContentCipher) -> Result<ConcurrencySample, StoreError> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    Ok(ConcurrencySample {
        at: ts(row.get(0).map_err(get)?),
        concurrent: u(row.get(1).map_err(get)?),
    })
}

pub(super) async fn add_sample(store: &SqliteStore, sample: &ConcurrencySample) -> Result<(), StoreError> {
    let sample = *sample;
    store
        .run(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO concurrency_samples (at, concurrent) VALUES (?1, ?2) \
             ON CONFLICT (at) DO UPDATE SET concurrent = excluded.concurrent",
            )
            .and_then(|mut stmt| stmt.execute(params![ms(sample.at), n(sample.concurrent)]))
            .map(drop)
            .map_err(other)
        })
        .await
}

pub(super) async fn samples(
    store: &SqliteStore,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<ConcurrencySample>, StoreError> {
    store
        .run(move |conn, cipher| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT at, concurrent FROM concurrency_samples WHERE at >= ?1 AND at < ?2 ORDER BY at",
                )
                .map_err(other)?;
            collect(&mut stmt, params![ms(from), ms(to)], cipher, sample_from_row)
        })
        .await
}
