//! The write path: a coordinator that is not a replica of the key forwards the write to
//! one that is; the replica mints the version, applies it, replicates it to the other live
//! replicas (and joining ones, uncounted) and stores hints for the replicas that are down.
//! Deletes are writes of a tombstone, read first when no context is given.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use ringdb_proto::v1::{CoordinateWriteRequest, ReplicaOutcome, ReplicaRole, RequestTrace};
use tokio::time::Instant;

use super::quorum::{describe_failures, gather, not_met};
use super::reach::{self, Missed};
use super::trace::{no_digest, timed, Recorder, Traced, Tracer};
use super::{
    from_code, proto_durability, silent, Coordinator, Level, Replicas, WriteOp, WriteReply,
};
use crate::error::{Error, Result};
use crate::storage::{Durability, Mint};
use crate::transport::TransportError;
use crate::version::{CausalContext, SiblingSet};

/// What one write is to do, worked out once per request and passed along.
struct WritePlan {
    /// The key's replicas (primary, live, joining).
    replicas: Replicas,
    /// Acknowledgements the level needs.
    required: usize,
}

impl WritePlan {
    /// Whether `node` is one of the key's N replicas.
    fn names(&self, node: &str) -> bool {
        self.replicas.all.iter().any(|r| r == node)
    }
}

impl Coordinator {
    /// Write a document (or tombstone) at `op.level`, from any node.
    pub async fn put(&self, op: WriteOp) -> Result<WriteReply> {
        self.write(op, None).await
    }

    /// [`Coordinator::put`], recording what happened for the client to see.
    pub async fn put_traced(&self, op: WriteOp) -> Traced<WriteReply> {
        let rec = Recorder::new("write", self.me());
        let result = self.write(op, Some(&rec)).await;
        Traced {
            result,
            trace: rec.snapshot(),
        }
    }

    /// Mint the version here (this node is a replica of the key) and replicate it.
    pub async fn coordinate_write(&self, op: WriteOp) -> Result<WriteReply> {
        self.coordinate(op, None).await
    }

    /// [`Coordinator::coordinate_write`] for a write `forwarded_from` asked to trace.
    pub async fn coordinate_write_traced(
        &self,
        op: WriteOp,
        forwarded_from: &str,
    ) -> Traced<WriteReply> {
        let rec = Recorder::new("write", self.me());
        rec.update(|t| t.forwarded_from = forwarded_from.to_string());
        let result = self.coordinate(op, Some(&rec)).await;
        Traced {
            result,
            trace: rec.snapshot(),
        }
    }

    /// Delete: a tombstone superseding `context`, or, without one, whatever a read at the
    /// same level sees.
    pub async fn delete(&self, op: WriteOp, context: Option<CausalContext>) -> Result<WriteReply> {
        self.remove(op, context, None).await
    }

    /// [`Coordinator::delete`], recording what happened (the read first, if any, too).
    pub async fn delete_traced(
        &self,
        op: WriteOp,
        context: Option<CausalContext>,
    ) -> Traced<WriteReply> {
        let rec = Recorder::new("delete", self.me());
        let result = self.remove(op, context, Some(&rec)).await;
        Traced {
            result,
            trace: rec.snapshot(),
        }
    }

    /// Plan a write: check the level against N, create the collection on a client's first
    /// write (`first_write`; a forwarded write was planned so by its first coordinator), find
    /// the replicas, record them in the trace, and fail if too few are up.
    fn plan_write(&self, op: &WriteOp, tracer: Tracer<'_>, first_write: bool) -> Result<WritePlan> {
        let n = self.n(&op.collection);
        op.level.check(n, false)?;
        self.membership.readiness().map_err(Error::Unavailable)?;
        // A first write creates its collection with the default options.
        if first_write
            && self
                .membership
                .schema()
                .ensure(&op.collection, self.me(), self.clock.now_ms())
        {
            self.membership.note_change();
        }
        let replicas = self.replicas(&op.collection, &op.key);
        self.trace_plan(tracer, &replicas, op.level, n);
        let required =
            self.check_available("write", op.level, &op.collection, &op.key, &replicas)?;
        Ok(WritePlan { replicas, required })
    }

    async fn write(&self, op: WriteOp, tracer: Tracer<'_>) -> Result<WriteReply> {
        let plan = self.plan_write(&op, tracer, true)?;
        if plan.names(self.me()) {
            return self.mint_and_replicate(op, plan, tracer).await;
        }
        // Not a replica: hand the write to the first live one, which mints the version.
        let minter = plan.replicas.live[0].clone();
        let addr = self
            .membership
            .address(&minter)
            .ok_or_else(|| Error::Internal(format!("no address for {minter}")))?;
        self.stats.forwarded_writes.fetch_add(1, Ordering::Relaxed);
        let req = CoordinateWriteRequest {
            collection: op.collection.clone(),
            key: op.key.clone(),
            document: op.value.clone(),
            context: Bytes::from(op.context.encode()),
            consistency: op.level.to_proto() as i32,
            durability: proto_durability(op.durability) as i32,
            timeout_ms: op.timeout.as_millis() as u32,
            expires_ms: op.expires_ms.unwrap_or(0),
            trace: tracer.is_some(),
            forwarded_from: if tracer.is_some() {
                self.me().to_string()
            } else {
                String::new()
            },
        };
        let forwarded = tracer.map(|rec| {
            let index = rec.event(&minter, ReplicaRole::Forwarded, "not a replica: forwarded");
            (rec, index, Instant::now())
        });
        let grace = op.timeout + Duration::from_millis(500);
        let reply = tokio::time::timeout(grace, self.transport.coordinate_write(&addr, req)).await;
        if let Some((rec, index, asked)) = forwarded {
            let remote = match &reply {
                Ok(Ok(r)) => r.trace.clone(),
                _ => None,
            };
            note_forward(rec, index, asked, &reply, remote, &minter);
        }
        match reply {
            Ok(Ok(r)) => Ok(WriteReply {
                context: CausalContext::decode(&r.context).map_err(|e| Error::Internal(e.to_string()))?,
                acknowledged_by: r.acknowledged_by,
                hinted_for: r.hinted_for,
            }),
            Ok(Err(TransportError::Rejected { code, message })) => Err(from_code(code, message)),
            Ok(Err(TransportError::Refused {
                reason,
                unsent: true,
            })) => Err(Error::Unavailable(format!(
                "write of {}/{} forwarded to replica {minter}: {reason}; nothing was written",
                op.collection, op.key
            ))),
            Ok(Err(e)) => Err(Error::Timeout(format!(
                "write of {}/{} forwarded to replica {minter} failed: {e}; it may or may not have been stored",
                op.collection, op.key
            ))),
            Err(_) => Err(Error::Timeout(format!(
                "write of {}/{} forwarded to replica {minter}: no answer in {}ms; the write may still have been stored",
                op.collection,
                op.key,
                grace.as_millis()
            ))),
        }
    }

    /// When a document written now expires: its own TTL, else its collection's default.
    pub fn expiry_for(&self, collection: &str, ttl_secs: u64) -> Option<u64> {
        let ttl = match ttl_secs {
            0 => self.membership.schema().ttl_secs(collection),
            t => t,
        };
        (ttl > 0).then(|| self.clock.now_ms().saturating_add(ttl.saturating_mul(1000)))
    }

    /// A write forwarded here to mint (`coordinate_write`): plan it in this node's view of
    /// the ring, where it must be a replica of the key.
    async fn coordinate(&self, op: WriteOp, tracer: Tracer<'_>) -> Result<WriteReply> {
        let plan = self.plan_write(&op, tracer, false)?;
        if !plan.names(self.me()) {
            return Err(Error::Unavailable(format!(
                "node {} is not a replica of {}/{} in its view of the ring; retry",
                self.me(),
                op.collection,
                op.key
            )));
        }
        self.mint_and_replicate(op, plan, tracer).await
    }

    /// Mint the version here (a replica of the key, by `plan`) and replicate it.
    async fn mint_and_replicate(
        &self,
        op: WriteOp,
        plan: WritePlan,
        tracer: Tracer<'_>,
    ) -> Result<WriteReply> {
        let WritePlan { replicas, required } = plan;
        let started = Instant::now();
        let deadline = started + op.timeout;
        let mint = Mint {
            actor: self.actor.clone(),
            context: op.context,
            value: op.value,
            timestamp_ms: self.clock.now_ms(),
            expires_ms: op.expires_ms,
        };
        // Apply in memory first; the local fsync then runs in parallel with the remote writes.
        let minted = self
            .storage
            .mint(&op.collection, &op.key, mint, Durability::Memory)
            .await?;
        let event = |node: &str, role: ReplicaRole, detail: &str| {
            tracer.map_or(0, |rec| rec.event(node, role, detail))
        };
        let mut calls: Vec<(String, BoxFuture<'static, Result<(), Missed>>)> =
            Vec::with_capacity(replicas.live.len());
        let hinted = Arc::new(Mutex::new(Vec::new()));
        for node in &replicas.live {
            if node == self.me() {
                let storage = self.storage.clone();
                let durable = op.durability == Durability::Durable;
                let call = async move {
                    if durable {
                        storage.sync().await.map_err(Missed::unhinted)
                    } else {
                        Ok(())
                    }
                }
                .boxed();
                let index = event(node, ReplicaRole::Local, "minted here");
                calls.push((node.clone(), timed(tracer, index, call, no_digest)));
            } else {
                let call = self.reach.write(
                    node,
                    &op.collection,
                    &op.key,
                    minted.stored.clone(),
                    op.durability,
                    deadline,
                );
                let index = event(node, ReplicaRole::Replica, "");
                let call = timed(tracer, index, noting_hint(call, node, &hinted), no_digest);
                calls.push((node.clone(), call));
            }
        }
        // Joining replicas-to-be get the write too, uncounted (a failure becomes a hint).
        for node in replicas.pending.iter().filter(|n| self.membership.is_up(n)) {
            let call = self.reach.write(
                node,
                &op.collection,
                &op.key,
                minted.stored.clone(),
                op.durability,
                deadline,
            );
            let index = event(node, ReplicaRole::Joining, "uncounted");
            tokio::spawn(timed(
                tracer,
                index,
                noting_hint(call, node, &hinted),
                no_digest,
            ));
        }
        // Replicas believed down get the write as a hint, delivered when they are back.
        let down = replicas
            .all
            .iter()
            .chain(&replicas.pending)
            .filter(|n| !self.membership.is_up(n));
        let mut stores = Vec::new();
        for node in down {
            let role = if replicas.pending.contains(node) {
                ReplicaRole::Joining
            } else {
                ReplicaRole::Replica
            };
            let index = event(node, role, "down");
            let (reach, node, c, k, enc) = (
                self.reach.clone(),
                node.clone(),
                op.collection.clone(),
                op.key.clone(),
                minted.stored.clone(),
            );
            stores.push((
                index,
                tokio::spawn(
                    async move { reach.hints.store(&node, &c, &k, enc).await.then_some(node) },
                ),
            ));
        }
        let gathered = gather(calls, Vec::new(), required, deadline, deadline).await;
        if gathered.ok.len() >= required {
            // The hints for down replicas were written alongside the replication; the
            // receipt names them once they are stored.
            let mut hinted_for = Vec::new();
            for (index, store) in stores {
                let stored = store.await.ok().flatten();
                if let Some(rec) = tracer {
                    rec.note_event(
                        index,
                        if stored.is_some() {
                            "hint stored"
                        } else {
                            "no hint stored (hint limit reached or storage failed)"
                        },
                    );
                }
                hinted_for.extend(stored);
            }
            hinted_for.extend(hinted.lock().map(|h| h.clone()).unwrap_or_default());
            if let Some(rec) = tracer {
                rec.update(|t| t.hinted_for = hinted_for.clone());
            }
            return Ok(WriteReply {
                context: minted.context,
                acknowledged_by: gathered.ok.into_iter().map(|(n, _)| n).collect(),
                hinted_for,
            });
        }
        let silent = silent(&replicas.live, &gathered);
        let stored: Vec<&str> = gathered.ok.iter().map(|(n, _)| n.as_str()).collect();
        Err(Error::Timeout(format!(
            "{} write of {}/{} {}: {} of {} replicas acknowledged (needed {required}) [{}]; {}",
            op.level,
            op.collection,
            op.key,
            not_met(&gathered, required, started, op.timeout),
            gathered.ok.len(),
            replicas.all.len(),
            describe_failures(&gathered.failed, silent, gathered.timed_out(required)),
            if stored.is_empty() {
                "the write may still have been stored".to_string()
            } else {
                format!(
                    "the write is stored on {} so far and may reach the others later",
                    stored.join(", ")
                )
            },
        )))
    }

    async fn remove(
        &self,
        mut op: WriteOp,
        context: Option<CausalContext>,
        tracer: Tracer<'_>,
    ) -> Result<WriteReply> {
        op.value = None;
        op.context = match context {
            Some(c) => c,
            None => {
                let read_level = if op.level == Level::Any {
                    Level::One
                } else {
                    op.level
                };
                let first = tracer.map(|_| Recorder::new("read", self.me()));
                let seen = self
                    .read(
                        &op.collection,
                        &op.key,
                        read_level,
                        op.timeout,
                        first.as_ref(),
                    )
                    .await;
                // Nothing to write only when the key is unknown to the read quorum. A key
                // whose versions are all deleted may hold that tombstone on fewer than W
                // replicas (an earlier delete that timed out): acknowledging without writing
                // would let the next quorum read miss it, so the tombstone is written again.
                let live = seen.as_ref().is_ok_and(|s: &SiblingSet| !s.is_empty());
                if let (Some(rec), Some(first)) = (tracer, &first) {
                    let read = first.snapshot();
                    rec.update(|t| {
                        if !live {
                            // No write follows: the read's plan is the request's.
                            t.token = read.token;
                            t.replicas = read.replicas.clone();
                            t.level = op.level.to_proto() as i32;
                            t.required = read.required;
                            if seen.is_ok() {
                                t.note = "the key is unknown: nothing was written".into();
                            }
                        }
                        t.read = Some(Box::new(read));
                    });
                }
                let seen = seen?;
                if !live {
                    // Nobody ever wrote the key (as far as a quorum knows): nothing to delete.
                    return Ok(WriteReply {
                        context: seen.context().clone(),
                        acknowledged_by: Vec::new(),
                        hinted_for: Vec::new(),
                    });
                }
                seen.context().clone()
            }
        };
        self.write(op, tracer).await
    }
}

/// Record how a forwarded write went and take in the trace the replica returned.
fn note_forward<R>(
    rec: &Arc<Recorder>,
    index: usize,
    asked: Instant,
    reply: &std::result::Result<
        std::result::Result<R, TransportError>,
        tokio::time::error::Elapsed,
    >,
    remote: Option<RequestTrace>,
    minter: &str,
) {
    let micros = asked.elapsed().as_micros() as u64;
    let (outcome, why) = match reply {
        Ok(Ok(_)) => (ReplicaOutcome::Ok, String::new()),
        Ok(Err(e)) => (ReplicaOutcome::Failed, e.to_string()),
        Err(_) => (ReplicaOutcome::Timeout, "no answer in time".to_string()),
    };
    rec.update(|t| {
        t.forwarded_from = t.coordinator.clone();
        t.forwarded_to = minter.to_string();
        if let Some(e) = t.events.get_mut(index) {
            e.outcome = outcome as i32;
            e.micros = micros;
            if !why.is_empty() {
                e.detail = why;
            }
        }
        if let Some(remote) = remote {
            t.events.extend(remote.events);
            t.hinted_for = remote.hinted_for;
        }
    });
}

/// A replica write that adds its node to `hinted` when it fails but leaves a hint, for
/// the write's receipt.
fn noting_hint(
    call: BoxFuture<'static, Result<(), reach::Missed>>,
    node: &str,
    hinted: &Arc<Mutex<Vec<String>>>,
) -> BoxFuture<'static, Result<(), Missed>> {
    let (node, hinted) = (node.to_string(), hinted.clone());
    call.map(move |r| {
        r.inspect_err(|m| {
            if m.hinted {
                if let Ok(mut h) = hinted.lock() {
                    h.push(node);
                }
            }
        })
    })
    .boxed()
}
