//! Everything a worker's tasks share.

use std::sync::Arc;

use chatbox_shared::bus::Bus;
use chatbox_shared::config::Config;
use chatbox_shared::coordinator::Coordinator;
use chatbox_shared::namespace::Subjects;

use crate::blob::BlobStore;
use crate::llm::Providers;
use crate::notify::Notifications;
use crate::outbox::Outbox;
use crate::store::Store;
use crate::turns::context_cache::ContextCache;
use crate::turns::stops::Stops;

/// The shared state of one worker.
pub(crate) struct WorkerState {
    /// The whole configuration.
    pub config: Arc<Config>,
    /// This pod's id.
    pub pod_id: String,
    /// The bus port.
    pub bus: Arc<dyn Bus>,
    /// The coordinator port.
    pub coordinator: Arc<dyn Coordinator>,
    /// Subject names.
    pub subjects: Subjects,
    /// Frames out to sessions.
    pub outbox: Outbox,
    /// Language models.
    pub providers: Providers,
    /// Sessions and messages.
    pub store: Arc<dyn Store>,
    /// Uploaded and generated files.
    pub blob: Arc<dyn BlobStore>,
    /// The sessions' newest messages, as their last turn here left them.
    pub context_cache: ContextCache,
    /// The answers streaming here, to stop on request.
    pub stops: Arc<Stops>,
    /// Alerts to the admins (e-mail, SMS).
    pub notifications: Arc<Notifications>,
}
