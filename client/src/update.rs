//! Read-modify-write that ends with one version: [`Client::update`] and its variants.
//! The semantics are documented on [`Client::update`].

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::options::{Context, ReadOptions, WriteOptions};
use crate::results::WriteResult;
use crate::retry::unit_random;

/// Settings of one [`Client::update_with`]: levels, and how hard to try for one version.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    read: ReadOptions,
    write: WriteOptions,
    max_attempts: u32,
    backoff: Duration,
}

impl Default for UpdateOptions {
    /// The client's read and write defaults, eight attempts (two busy updaters on one key can collide several times in a row), 20 ms first backoff.
    fn default() -> Self {
        UpdateOptions {
            read: ReadOptions::new(),
            write: WriteOptions::new(),
            max_attempts: 8,
            backoff: Duration::from_millis(20),
        }
    }
}

impl UpdateOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options of both reads of each attempt.
    pub fn read(mut self, o: ReadOptions) -> Self {
        self.read = o;
        self
    }

    /// Options of each write; its context is replaced by the read's.
    pub fn write(mut self, o: WriteOptions) -> Self {
        self.write = o;
        self
    }

    /// Read-merge-write rounds before giving up with [`Error::Conflict`] (at least one).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Wait after the first round that met a concurrent write; doubled after each further
    /// one, with jitter so that competing updaters fall out of step.
    pub fn backoff(mut self, d: Duration) -> Self {
        self.backoff = d;
        self
    }
}

/// What an update left behind.
#[derive(Debug, Clone)]
pub struct Updated<T = Value> {
    /// The document as the last read saw it. After a write: exactly one version (the one
    /// written, or a later one that superseded it), or none if it was deleted since. When
    /// the function declined to write: whatever that read returned.
    pub values: Vec<T>,
    /// Context of the last read: pass it to the next write of the key.
    pub context: Context,
    /// Receipt of the last write; `None` when the function declined to write.
    pub write: Option<WriteResult>,
    /// Read-merge-write rounds made (1 when no concurrent write got in the way).
    pub attempts: u32,
}

impl<T> Updated<T> {
    /// The single version, when there is exactly one.
    pub fn value(&self) -> Option<&T> {
        match self.values.as_slice() {
            [v] => Some(v),
            _ => None,
        }
    }
}

impl Client {
    /// Read-modify-write a JSON document until one version remains: `merge` gets every
    /// sibling and returns the new document, or `None` to leave it as it is.
    ///
    /// One attempt reads the document (at the read level: every sibling and the context),
    /// calls `merge` with all siblings (none when the document is missing or deleted),
    /// writes its result with the read's context (so exactly the versions read are
    /// superseded), then reads again to check. If the check shows more than one version, a
    /// write the first read did not see got in between (a concurrent writer, or a blind
    /// write); the update waits a moment (exponential backoff with jitter, so competing
    /// updaters fall out of step) and tries again from a fresh read, so `merge` sees the
    /// newcomer and folds it in. Precisely:
    /// - `merge` may be called several times, once per attempt, and a later call's input
    ///   includes what an earlier call wrote. Make it a merge that is safe to repeat:
    ///   adding an element to a set or taking a maximum is; incrementing a counter is not
    ///   (a retry would count the increment twice);
    /// - every attempt's write is stored: a retry supersedes it rather than undoing it;
    /// - on success the checking read saw exactly one version (the one written, or a later
    ///   write that superseded it) or none (a later delete). With reads and writes at
    ///   QUORUM (R + W > N, the default) that read sees every write acknowledged before it
    ///   started; a write still in flight then may surface later as a sibling, which the
    ///   next read shows and the next update resolves;
    /// - after [`UpdateOptions::max_attempts`] rounds that all met a concurrent write it
    ///   fails with [`Error::Conflict`] (the writes are stored; siblings remain);
    /// - errors of the reads and writes are returned as they are; a write that timed out
    ///   may or may not have been stored, as for [`Client::put`].
    ///
    /// ```no_run
    /// use ringdb_client::Client;
    /// use serde_json::{json, Value};
    ///
    /// # async fn demo(client: Client) -> Result<(), ringdb_client::Error> {
    /// // Add an item to a cart; items concurrent writers added are kept (set union).
    /// let done = client
    ///     .update("carts", "alice", |siblings: &[Value]| {
    ///         let mut items: Vec<Value> = siblings
    ///             .iter()
    ///             .flat_map(|v| v["items"].as_array().cloned().unwrap_or_default())
    ///             .collect();
    ///         items.push(json!("pear"));
    ///         items.sort_by_key(|v| v.to_string());
    ///         items.dedup();
    ///         Some(json!({ "items": items }))
    ///     })
    ///     .await?;
    /// println!("{:?} after {} attempt(s)", done.value(), done.attempts);
    /// # Ok(()) }
    /// ```
    pub async fn update<F>(&self, collection: &str, key: &str, merge: F) -> Result<Updated>
    where
        F: FnMut(&[Value]) -> Option<Value>,
    {
        self.update_with(collection, key, &UpdateOptions::new(), merge)
            .await
    }

    /// [`update`](Client::update) through a serde type: every sibling must convert to `T`.
    pub async fn update_as<T, F>(&self, collection: &str, key: &str, merge: F) -> Result<Updated<T>>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(&[T]) -> Option<T>,
    {
        self.update_with(collection, key, &UpdateOptions::new(), merge)
            .await
    }

    /// [`update_as`](Client::update_as) with explicit levels and retry bounds.
    pub async fn update_with<T, F>(
        &self,
        collection: &str,
        key: &str,
        opts: &UpdateOptions,
        mut merge: F,
    ) -> Result<Updated<T>>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(&[T]) -> Option<T>,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let read = self.get_as::<T>(collection, key, &opts.read).await?;
            let Some(doc) = merge(&read.values) else {
                return Ok(Updated {
                    values: read.values,
                    context: read.context,
                    write: None,
                    attempts,
                });
            };
            let write_opts = opts.write.clone().context(read.context);
            let write = self.put_with(collection, key, &doc, &write_opts).await?;
            let check = self.get_as::<T>(collection, key, &opts.read).await?;
            if check.values.len() <= 1 {
                return Ok(Updated {
                    values: check.values,
                    context: check.context,
                    write: Some(write),
                    attempts,
                });
            }
            if attempts >= opts.max_attempts {
                return Err(Error::Conflict(format!(
                    "update of {collection}/{key}: concurrent writes still left {} versions after {attempts} attempts; every attempt's write was stored, so nothing is lost: read again, or update later",
                    check.values.len()
                )));
            }
            let wait = opts
                .backoff
                .saturating_mul(1 << (attempts - 1).min(10))
                .mul_f64(0.5 + unit_random());
            tracing::debug!(%collection, %key, siblings = check.values.len(), ?wait, "update met a concurrent write; merging again");
            tokio::time::sleep(wait).await;
        }
    }
}
