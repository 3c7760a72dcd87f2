//! The indexes the adapter creates at start, idempotently, per
//! collection: the seed's, those of the listings and sweeps, those of the
//! admin session list's filters and sorts, the unique `(session_id, seq)`
//! of messages and the unique `at` of concurrency samples.

use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

use super::{FILES, MESSAGES, MongoStore, SAMPLES, SESSIONS, TAKEOVERS, classify};
use crate::store::StoreError;

impl MongoStore {
    pub(super) async fn create_indexes(db: Database) -> Result<Vec<String>, StoreError> {
        let index = |name: &str, keys: Document, unique: bool| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_owned())
                        .unique(unique)
                        .build(),
                )
                .build()
        };
        let session_indexes = vec![
            index("idx_user_id", doc! { "user_id": 1 }, false),
            index("idx_start_time", doc! { "start_time": -1 }, false),
            index("idx_admin_assisted", doc! { "admin_assisted": 1 }, false),
            index(
                "idx_user_start_time",
                doc! { "user_id": 1, "start_time": -1 },
                false,
            ),
            index(
                "idx_user_last_activity",
                doc! { "user_id": 1, "last_activity": -1 },
                false,
            ),
            index(
                "idx_active_last_activity",
                doc! { "is_active": 1, "last_activity": 1 },
                false,
            ),
            // The admin session list: its sorts and filters.
            index("idx_last_activity", doc! { "last_activity": -1 }, false),
            index("idx_total_tokens", doc! { "total_tokens": -1 }, false),
            index("idx_avg_response_time", doc! { "avg_response_time": -1 }, false),
            index(
                "idx_help_requested",
                doc! { "help_requested": 1, "start_time": -1 },
                false,
            ),
            index(
                "idx_active_start_time",
                doc! { "is_active": 1, "start_time": -1 },
                false,
            ),
        ];
        let plan = [
            (SESSIONS, session_indexes),
            (
                MESSAGES,
                vec![index("idx_session_seq", doc! { "session_id": 1, "seq": 1 }, true)],
            ),
            (
                TAKEOVERS,
                vec![
                    index(
                        "idx_takeover_session",
                        doc! { "session_id": 1, "started_at": 1 },
                        false,
                    ),
                    index(
                        "idx_takeover_open",
                        doc! { "ended_at": 1, "started_at": 1 },
                        false,
                    ),
                ],
            ),
            (SAMPLES, vec![index("idx_sample_at", doc! { "at": 1 }, true)]),
            (
                FILES,
                vec![index(
                    "idx_file_slot",
                    doc! { "status": 1, "expires_at": 1 },
                    false,
                )],
            ),
        ];
        let mut names = Vec::new();
        for (collection, indexes) in plan {
            names.extend(
                indexes
                    .iter()
                    .filter_map(|m| m.options.as_ref().and_then(|o| o.name.clone())),
            );
            db.collection::<Document>(collection)
                .create_indexes(indexes)
                .await
                .map_err(classify)?;
        }
        names.sort();
        Ok(names)
    }
}
