//! Group commit for HTTP ingest: one writer task stores the jobs of many concurrent
//! requests in one transaction, so the cost of a durable commit is shared.
//!
//! Invariants:
//! - A request gets `Ok` only after the transaction holding its jobs has committed.
//! - The jobs of one request are stored all or nothing. A request whose group fails is
//!   rolled back to its savepoint and gets the error, and the other groups of the
//!   same transaction are still stored.
//! - A failed transaction answers every request in it with the error, and the writer goes
//!   on with the next requests.
//! - The writer task ends once every [`Ingest`] handle is dropped and the queue is empty.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, error};

use crate::outbox::{Enqueued, NewJob, Outbox, OutboxError};

/// Maximum number of requests stored in one transaction.
const MAX_GROUPS: usize = 1000;

/// Number of jobs after which no more requests are added to a transaction. One request
/// may exceed it on its own.
const MAX_JOBS: usize = 20_000;

/// Requests that may wait for the writer before `submit` itself waits.
const QUEUE_CAPACITY: usize = 4096;

/// Failure to store a request's jobs. In every case, no job of the request was stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The database failed while storing the request's jobs.
    #[error("failed to store jobs: {0}")]
    Store(#[source] Arc<OutboxError>),
    /// The writer task is gone, so no job can be stored.
    #[error("failed to store jobs: the ingest writer has stopped")]
    Stopped,
}

/// Handle for submitting jobs to the writer task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingest {
    queue: mpsc::Sender<Submission>,
}

/// The jobs of one request and the channel for its result.
#[derive(Debug)]
struct Submission {
    jobs: Vec<NewJob>,
    reply: oneshot::Sender<Result<Vec<Enqueued>, IngestError>>,
}

impl Ingest {
    /// Spawns the writer task on the current tokio runtime.
    pub fn start(outbox: Outbox) -> Ingest {
        Self::spawn(outbox).0
    }

    /// Spawns the writer task and returns its handle too, which finishes once every
    /// [`Ingest`] clone is dropped and every queued request has its result.
    pub fn spawn(outbox: Outbox) -> (Ingest, JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(run_writer(outbox, receiver));
        (Ingest { queue }, task)
    }

    /// Stores one request's jobs, all or nothing, and returns after the commit.
    pub async fn submit(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, IngestError> {
        let (reply, answer) = oneshot::channel();
        let submission = Submission { jobs, reply };
        self.queue
            .send(submission)
            .await
            .map_err(|_| IngestError::Stopped)?;
        answer.await.map_err(|_| IngestError::Stopped)?
    }
}

/// Stores queued requests, one transaction per wake-up, until every sender is gone.
async fn run_writer(outbox: Outbox, mut receiver: mpsc::Receiver<Submission>) {
    let mut batch = Vec::new();
    while take_batch(&mut receiver, &mut batch).await {
        commit(&outbox, std::mem::take(&mut batch)).await;
    }
    debug!("ingest writer stopped: every sender was dropped");
}

/// Waits for one request, then adds whatever else is already queued, up to the limits.
/// Returns false when the channel is closed and empty.
async fn take_batch(
    receiver: &mut mpsc::Receiver<Submission>,
    batch: &mut Vec<Submission>,
) -> bool {
    let Some(first) = receiver.recv().await else {
        return false;
    };
    let mut jobs = first.jobs.len();
    batch.push(first);
    while batch.len() < MAX_GROUPS && jobs < MAX_JOBS {
        let Ok(next) = receiver.try_recv() else {
            break;
        };
        jobs += next.jobs.len();
        batch.push(next);
    }
    true
}

/// Stores a batch of requests in one transaction and answers each of them.
async fn commit(outbox: &Outbox, batch: Vec<Submission>) {
    let (groups, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|submission| (submission.jobs, submission.reply))
        .unzip();

    match outbox.enqueue_groups(&groups).await {
        Ok(results) => answer_each(replies, results),
        Err(err) => {
            error!(requests = replies.len(), error = %err, "failed to store ingested jobs");
            let shared = Arc::new(err);
            for reply in replies {
                let _ = reply.send(Err(IngestError::Store(Arc::clone(&shared))));
            }
        }
    }
}

/// Sends each request the result of its own group. The send fails only when the client
/// has gone away, which is not an error.
fn answer_each(
    replies: Vec<oneshot::Sender<Result<Vec<Enqueued>, IngestError>>>,
    results: Vec<Result<Vec<Enqueued>, OutboxError>>,
) {
    for (reply, result) in replies.into_iter().zip(results) {
        let answer = result.map_err(|err| {
            error!(error = %err, "failed to store the jobs of one request");
            IngestError::Store(Arc::new(err))
        });
        let _ = reply.send(answer);
    }
}
