//! The `files` collection: one document per uploaded or generated file
//! (`_id` = the file id), its name and transcript sealed. A status change
//! is a compare and set: the update matches on the expected `status`.

use chatbox_shared::protocol::Timestamp;
use mongodb::bson::{Document, doc};

use super::fields::Fields;
use super::{MongoStore, classify, date, find, is_duplicate_key, n};
use crate::store::cipher::Sealed;
use crate::store::{
    FileKind, FilePatch, FileRecord, FileStatus, StoreError, file_context, transcript_context,
};

impl MongoStore {
    /// The raw stored document of a file, as the database holds it.
    pub async fn raw_file(&self, id: &str) -> Result<Option<Document>, StoreError> {
        self.files.find_one(doc! { "_id": id }).await.map_err(classify)
    }

    fn file_doc(&self, f: &FileRecord) -> Document {
        let name = self.cipher.seal(&f.name, &file_context(&f.id));
        let transcript = f
            .transcript
            .as_ref()
            .map(|t| self.cipher.seal(t, &transcript_context(&f.id)));
        let (transcript, transcript_key_id) = transcript.map(|t| (t.text, t.key_id)).unzip();
        doc! {
            "_id": &f.id,
            "user_id": &f.user_id,
            "session_id": &f.session_id,
            "kind": f.kind.as_str(),
            "status": f.status.as_str(),
            "name": name.text,
            "name_key_id": name.key_id,
            "declared_type": &f.declared_type,
            "media_type": f.media_type.clone(),
            "declared_size": n(f.declared_size),
            "size": f.size.map(n),
            "object_key": &f.key,
            "created_at": date(f.created_at),
            "expires_at": date(f.expires_at),
            "reason": f.reason.clone(),
            "transcript": transcript,
            "transcript_key_id": transcript_key_id.flatten(),
            "sha256": f.sha256.clone(),
        }
    }

    fn file_from(&self, d: &Document) -> Result<FileRecord, StoreError> {
        let f = Fields(d);
        let id = f.str("_id")?;
        let name = Sealed {
            text: f.opt_str("name").unwrap_or_default(),
            key_id: f.opt_str("name_key_id"),
        };
        let name = self
            .cipher
            .open(&name, &file_context(&id))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let transcript = f
            .opt_str("transcript")
            .map(|text| {
                let sealed = Sealed {
                    text,
                    key_id: f.opt_str("transcript_key_id"),
                };
                self.cipher
                    .open(&sealed, &transcript_context(&id))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()?;
        let kind = f.str("kind")?;
        let status = f.str("status")?;
        Ok(FileRecord {
            user_id: f.str("user_id")?,
            session_id: f.str("session_id")?,
            kind: FileKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown file kind {kind:?}")))?,
            status: FileStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown file status {status:?}")))?,
            name,
            declared_type: f.str("declared_type")?,
            media_type: f.opt_str("media_type"),
            declared_size: f.uint("declared_size"),
            size: f.opt_uint("size"),
            key: f.str("object_key")?,
            created_at: f.time("created_at")?,
            expires_at: f.time("expires_at")?,
            reason: f.opt_str("reason"),
            transcript,
            sha256: f.opt_str("sha256"),
            id,
        })
    }

    async fn find_files(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let docs = find(&self.files, filter, sort, limit).await?;
        docs.iter().map(|d| self.file_from(d)).collect()
    }
}

pub(super) async fn create_file(store: &MongoStore, file: &FileRecord) -> Result<(), StoreError> {
    match store.files.insert_one(store.file_doc(file)).await {
        Ok(_) => Ok(()),
        Err(e) if is_duplicate_key(&e) => Ok(()),
        Err(e) => Err(classify(e)),
    }
}

pub(super) async fn file(store: &MongoStore, id: &str) -> Result<Option<FileRecord>, StoreError> {
    let found = store.raw_file(id).await?;
    found.as_ref().map(|d| store.file_from(d)).transpose()
}

pub(super) async fn files(store: &MongoStore, ids: &[String]) -> Result<Vec<FileRecord>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    store
        .find_files(
            doc! { "_id": { "$in": ids.to_vec() } },
            doc! { "_id": 1 },
            usize::MAX,
        )
        .await
}

pub(super) async fn update_file(
    store: &MongoStore,
    id: &str,
    expected: FileStatus,
    patch: &FilePatch,
) -> Result<bool, StoreError> {
    let mut set = doc! { "status": patch.status.as_str() };
    if let Some(media_type) = &patch.media_type {
        set.insert("media_type", media_type.as_str());
    }
    if let Some(size) = patch.size {
        set.insert("size", n(size));
    }
    if let Some(key) = &patch.key {
        set.insert("object_key", key.as_str());
    }
    if let Some(reason) = &patch.reason {
        set.insert("reason", reason.as_str());
    }
    if let Some(transcript) = &patch.transcript {
        let sealed = store.cipher.seal(transcript, &transcript_context(id));
        set.insert("transcript", sealed.text);
        set.insert("transcript_key_id", sealed.key_id);
    }
    if let Some(sha256) = &patch.sha256 {
        set.insert("sha256", sha256.as_str());
    }
    // Matching on the status is the compare and set: of two writers
    // expecting the same status, one matches and the other finds none.
    let updated = store
        .files
        .update_one(
            doc! { "_id": id, "status": expected.as_str() },
            doc! { "$set": set },
        )
        .await
        .map_err(classify)?;
    Ok(updated.matched_count > 0)
}

pub(super) async fn expired_slots(
    store: &MongoStore,
    before: Timestamp,
    limit: usize,
) -> Result<Vec<FileRecord>, StoreError> {
    store
        .find_files(
            doc! {
                "status": FileStatus::Pending.as_str(),
                "expires_at": { "$lt": date(before) },
            },
            doc! { "expires_at": 1, "_id": 1 },
            limit,
        )
        .await
}
