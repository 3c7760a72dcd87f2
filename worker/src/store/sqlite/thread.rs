//! The database thread: the one owner of the SQLite connection. It takes
//! jobs in the order they were sent and runs each inside its own
//! savepoint, so one that fails leaves nothing behind; jobs that queued up
//! while it was busy run together in one transaction (group commit), and
//! their callers hear back once that transaction is committed.

use std::sync::mpsc;

use rusqlite::Connection;

use crate::store::StoreError;
use crate::store::cipher::ContentCipher;

/// Work for the database thread: runs its queries, says whether they
/// succeeded, and hands back how to answer its caller once the outcome of
/// the transaction it ran in is known.
pub(super) type Job = Box<dyn FnOnce(&mut Connection, &ContentCipher) -> (bool, Reply) + Send>;

/// Answers a job's caller: with its own result if the transaction was
/// committed, with the commit's error if not.
pub(super) type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Queries that run in one transaction, at most.
const GROUP_COMMIT: usize = 64;

/// The database thread: runs jobs until the store (every sender) is dropped.
pub(super) fn serve(conn: &mut Connection, cipher: &ContentCipher, queue: &mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(GROUP_COMMIT);
    let mut replies = Vec::with_capacity(GROUP_COMMIT);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < GROUP_COMMIT {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // One job commits on its own (its savepoint is its transaction).
        let grouped = batch.len() > 1
            && exec(conn, "BEGIN IMMEDIATE")
                .inspect_err(|e| {
                    tracing::warn!(
                        queries = batch.len(),
                        "cannot group queries in a transaction: {e}"
                    )
                })
                .is_ok();
        for job in batch.drain(..) {
            replies.push(atomically(conn, cipher, job));
        }
        let committed = if grouped {
            exec(conn, "COMMIT").map_err(|e| {
                // A failed COMMIT may have rolled back already; either way
                // the next transaction starts clean.
                let _ = exec(conn, "ROLLBACK");
                tracing::warn!(queries = replies.len(), "cannot commit: {e}");
                StoreError::Unavailable(format!("cannot commit: {e}"))
            })
        } else {
            Ok(())
        };
        for (reply, released) in replies.drain(..) {
            reply(released.and(committed.clone()));
        }
    }
}

/// Runs a job inside a savepoint: everything it wrote stays if it
/// succeeded, nothing if it failed. Returns its reply and how the
/// savepoint was released (committed, for a job outside a transaction).
fn atomically(conn: &mut Connection, cipher: &ContentCipher, job: Job) -> (Reply, Result<(), StoreError>) {
    let began = exec(conn, "SAVEPOINT job");
    let (ok, reply) = job(conn, cipher);
    if began.is_err() {
        return (reply, Ok(()));
    }
    let released = if ok {
        exec(conn, "RELEASE job")
    } else {
        exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
    };
    (
        reply,
        released.map_err(|e| StoreError::Unavailable(format!("cannot commit: {e}"))),
    )
}

/// Runs a statement without results, prepared once.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}
