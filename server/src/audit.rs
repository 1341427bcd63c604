//! The audit log (docs/api.md, "Accounts"): one row per security event, never a password or
//! token. Events are queued in memory and written by one background task, many to a
//! transaction, so that a sign-in or a refresh never waits for its audit row: queueing is a
//! channel send. The queue is bounded; when the store falls behind, callers wait for room
//! rather than lose events.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::store::{AuditRecord, Store, User};

/// Events waiting to be written, at most: beyond it, callers wait.
const QUEUE_CAPACITY: usize = 16 * 1024;
/// Events in one transaction, at most.
const MAX_BATCH: usize = 512;
/// How long a batch that failed waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longer user agents are cut: the log must not become a store for whatever clients send.
const MAX_USER_AGENT: usize = 512;

/// Who made a request: the address and user agent recorded with each event.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One event about to be recorded.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub event: &'static str,
    pub outcome: &'static str,
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    pub session_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub detail: Option<String>,
}

impl Event {
    pub fn new(event: &'static str, outcome: &'static str) -> Event {
        Event {
            event,
            outcome,
            ..Event::default()
        }
    }

    pub fn user(mut self, user: &User) -> Event {
        self.user_id = Some(user.id);
        self.username = Some(user.username.clone());
        self
    }

    pub fn session(mut self, session: Uuid) -> Event {
        self.session_id = Some(session);
        self
    }

    /// An administrator acting on someone else's account.
    pub fn actor(mut self, actor: Uuid) -> Event {
        self.actor_id = Some(actor);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = Some(detail.into());
        self
    }

    /// The row this event becomes, seen from `client` and stamped now.
    pub fn stamped(self, client: &Client) -> AuditRecord {
        AuditRecord {
            id: 0,
            at: OffsetDateTime::now_utc(),
            event: self.event.to_owned(),
            outcome: self.outcome.to_owned(),
            user_id: self.user_id,
            username: self.username.as_deref().map(printable),
            session_id: self.session_id,
            ip: client.ip.clone(),
            user_agent: client
                .user_agent
                .as_deref()
                .map(|agent| printable(truncated(agent, MAX_USER_AGENT))),
            actor_id: self.actor_id,
            detail: self.detail.as_deref().map(printable),
        }
    }
}

#[allow(
    clippy::large_enum_variant,
    reason = "records are nearly every message; boxing them would allocate once per event"
)]
enum Message {
    Record(AuditRecord),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// The audit log's writer. Cheap to clone; `off` records nothing.
#[derive(Clone)]
pub struct Audit {
    queue: Option<mpsc::Sender<Message>>,
}

impl Audit {
    /// Starts the writer on `store`.
    pub fn start(store: Arc<dyn Store>) -> Audit {
        let (queue, waiting) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_batches(store, waiting));
        Audit { queue: Some(queue) }
    }

    /// Records nothing (`TOLLGATE_AUDIT_RETENTION=off`).
    pub fn off() -> Audit {
        Audit { queue: None }
    }

    pub fn is_on(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues `event` as seen from `client`, stamped now.
    pub async fn record(&self, event: Event, client: &Client) {
        let Some(queue) = &self.queue else {
            return;
        };
        if queue
            .send(Message::Record(event.stamped(client)))
            .await
            .is_err()
        {
            tracing::error!("audit writer stopped; event not recorded");
        }
    }

    /// Waits until every event queued so far is in the store (readers of the log, shutdown).
    pub async fn flush(&self) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (done, written) = oneshot::channel();
        if queue.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// Takes every event waiting, writes them in one transaction, until every sender is gone.
/// A batch that fails is kept and tried again (see `write`).
async fn write_batches(store: Arc<dyn Store>, mut waiting: mpsc::Receiver<Message>) {
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = waiting.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Record(record) => batch.push(record),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = waiting.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            write(store.as_ref(), &mut batch).await;
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes `batch` and empties it. Whatever the store's trouble (down, locked, full, a
/// deadlock) the batch waits and is tried again; only a batch the store refuses for what it
/// holds is written one event at a time, and an event it still refuses is logged and dropped,
/// so that one bad row cannot stop the log.
async fn write(store: &dyn Store, batch: &mut Vec<AuditRecord>) {
    loop {
        match store.insert_audit(batch).await {
            Ok(()) => break,
            Err(error) if !error.is_about_content() => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    waiting = batch.len(),
                    "audit events not written; retrying"
                );
                tokio::time::sleep(RETRY_AFTER).await;
            }
            Err(_) if batch.len() > 1 => {
                for record in std::mem::take(batch) {
                    Box::pin(write(store, &mut vec![record])).await;
                }
                break;
            }
            Err(error) => {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    event = batch.first().map_or("", |record| record.event.as_str()),
                    "audit event refused by the store; dropped"
                );
                metrics::counter!("tollgate_audit_dropped_total").increment(1);
                break;
            }
        }
    }
    batch.clear();
}

/// `text` with control characters (NUL among them, which PostgreSQL text cannot hold, and line
/// breaks, which could forge lines where the log is printed) replaced by U+FFFD.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
