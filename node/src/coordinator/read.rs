//! The read path: ask as many live replicas as the level needs (the coordinator's own copy
//! first), hold the rest in reserve for speculative retry, answer with the join of the
//! replies, and repair the replicas that answered with less.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use ringdb_proto::v1::ReplicaRole;
use tokio::time::Instant;

use super::quorum::{self, describe_failures, gather};
use super::reach::Missed;
use super::trace::{self, timed, Recorder, Traced, Tracer};
use super::{silent, Coordinator, Level};
use crate::error::{Error, Result};
use crate::storage::Durability;
use crate::version::SiblingSet;

impl Coordinator {
    /// Read a document at `level`: join the replicas' sibling sets, repair the stale ones.
    pub async fn get(
        &self,
        collection: &str,
        key: &str,
        level: Level,
        timeout: Duration,
    ) -> Result<SiblingSet> {
        self.read(collection, key, level, timeout, None).await
    }

    /// [`Coordinator::get`], recording what happened for the client to see.
    pub async fn get_traced(
        &self,
        collection: &str,
        key: &str,
        level: Level,
        timeout: Duration,
    ) -> Traced<SiblingSet> {
        let rec = Recorder::new("read", self.me());
        let result = self.read(collection, key, level, timeout, Some(&rec)).await;
        Traced {
            result,
            trace: rec.snapshot(),
        }
    }

    pub(super) async fn read(
        &self,
        collection: &str,
        key: &str,
        level: Level,
        timeout: Duration,
        tracer: Tracer<'_>,
    ) -> Result<SiblingSet> {
        let n = self.n(collection);
        level.check(n, true)?;
        self.membership.readiness().map_err(Error::Unavailable)?;
        let replicas = self.replicas(collection, key);
        self.trace_plan(tracer, &replicas, level, n);
        let required = self.check_available("read", level, collection, key, &replicas)?;
        let started = Instant::now();
        let deadline = started + timeout;
        // Ask our own copy first (no network), then the others in preference order; only
        // as many as the level needs, the rest on standby for speculative retry.
        let mut order: Vec<&String> = replicas
            .live
            .iter()
            .filter(|n| n.as_str() == self.me())
            .collect();
        order.extend(replicas.live.iter().filter(|n| n.as_str() != self.me()));
        let mut calls: Vec<(String, BoxFuture<'static, Result<SiblingSet, Missed>>)> = order
            .into_iter()
            .enumerate()
            .map(|(i, node)| {
                let call = self.reach.read(node, collection, key, deadline);
                let call = match tracer {
                    Some(rec) => {
                        let role = if node == self.me() {
                            ReplicaRole::Local
                        } else if i < required {
                            ReplicaRole::Replica
                        } else {
                            ReplicaRole::Standby
                        };
                        let index = rec.event(node, role, "");
                        timed(tracer, index, call, trace::digest)
                    }
                    None => call,
                };
                (node.clone(), call)
            })
            .collect();
        if let Some(rec) = tracer {
            for down in replicas.all.iter().filter(|n| !replicas.live.contains(n)) {
                rec.event(down, ReplicaRole::Replica, "down");
            }
        }
        let standby = calls.split_off(required.min(calls.len()));
        let speculate_at = Instant::now() + self.config.speculative_retry;
        let gathered = gather(calls, standby, required, speculate_at, deadline).await;
        if gathered.ok.len() < required {
            let silent = silent(&replicas.live, &gathered);
            return Err(Error::Timeout(format!(
                "{level} read of {collection}/{key} {}: {} of {} replicas answered (needed {required}) [{}]",
                quorum::not_met(&gathered, required, started, timeout),
                gathered.ok.len(),
                replicas.all.len(),
                describe_failures(&gathered.failed, silent, gathered.timed_out(required)),
            )));
        }
        let mut merged = SiblingSet::new();
        for (_, s) in &gathered.ok {
            merged.merge(s);
        }
        // An expired document reads as deleted at once, and read repair spreads the
        // expired form (it wins over the unexpired one in every merge).
        merged.expire(self.clock.now_ms());
        if let Some(rec) = tracer {
            let stale: Vec<String> = gathered
                .ok
                .iter()
                .filter(|(_, s)| *s != merged)
                .map(|(node, _)| node.clone())
                .collect();
            rec.update(|t| {
                t.replies_differed = !stale.is_empty();
                t.read_repaired = stale;
            });
        }
        self.spawn_read_repair(collection, key, gathered, merged.clone(), deadline);
        Ok(merged)
    }

    /// After answering a read, wait for the slower replicas too, then bring every replica
    /// that answered with less than the full join up to it.
    fn spawn_read_repair(
        &self,
        collection: &str,
        key: &str,
        mut g: quorum::Gathered<SiblingSet>,
        mut merged: SiblingSet,
        deadline: Instant,
    ) {
        if g.pending == 0 && g.ok.iter().all(|(_, s)| *s == merged) {
            return;
        }
        let (collection, key) = (collection.to_string(), key.to_string());
        let reach = self.reach.clone();
        let stats = self.stats.clone();
        let repair_give_up = deadline + self.config.request_timeout;
        tokio::spawn(async move {
            while g.pending > 0 {
                match tokio::time::timeout_at(deadline, g.rest.recv()).await {
                    Ok(Some((node, Ok(s)))) => {
                        g.pending -= 1;
                        merged.merge(&s);
                        g.ok.push((node, s));
                    }
                    Ok(Some((_, Err(_)))) => g.pending -= 1,
                    Ok(None) | Err(_) => break,
                }
            }
            let encoded = Bytes::from(merged.encode());
            for (node, _) in g.ok.iter().filter(|(_, s)| *s != merged) {
                stats.read_repairs.fetch_add(1, Ordering::Relaxed);
                match reach
                    .write(
                        node,
                        &collection,
                        &key,
                        encoded.clone(),
                        Durability::Memory,
                        repair_give_up,
                    )
                    .await
                {
                    Ok(()) => tracing::debug!(%node, %collection, %key, "read repair"),
                    Err(e) => tracing::debug!(%node, error = %e, "read repair failed"),
                }
            }
        });
    }
}
