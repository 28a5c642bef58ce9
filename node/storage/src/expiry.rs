//! Purging expired documents: the storage side of TTL. Every replica turns a version into
//! a tombstone at the instant its TTL passes (reads already treat it so); the sweep makes
//! the stored bytes follow, using the expiry index the writers keep.

use crate::keys::parse_entry;
use crate::{Durability, Space, Storage, StorageError};

impl Storage {
    /// Turn up to `limit` documents whose TTL passed by `now_ms` into tombstones. Returns
    /// how many index entries were processed (0: nothing was due).
    pub async fn sweep_expired(&self, now_ms: u64, limit: usize) -> Result<usize, StorageError> {
        let due = self
            .run(move |e| {
                let first = e.aux_scan(Space::Expiry, &[], limit)?;
                Ok(first
                    .into_iter()
                    .take_while(|(k, _)| {
                        k.get(..8)
                            .and_then(|b| b.try_into().ok())
                            .is_some_and(|b: [u8; 8]| u64::from_be_bytes(b) <= now_ms)
                    })
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>())
            })
            .await?;
        for index_key in &due {
            let Some(entry) = parse_entry(index_key[8..].to_vec(), Vec::new()) else {
                continue;
            };
            let stored = self.read(&entry.collection, &entry.key).await?;
            let mut expired = stored.clone();
            if expired.expire(now_ms) {
                // The merge keeps the expired form of each dot; a write that landed since
                // the read is kept as well.
                self.merge(&entry.collection, &entry.key, expired, Durability::Memory)
                    .await?;
            }
            let k = index_key.clone();
            self.run(move |e| e.aux_delete(Space::Expiry, &k)).await?;
        }
        Ok(due.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::{Durability, MemEngine, Mint, PoolConfig, Storage};
    use ringdb_core::version::CausalContext;

    #[tokio::test]
    async fn the_sweep_turns_due_documents_into_tombstones_and_leaves_the_rest() {
        let s = Storage::start(Arc::new(MemEngine::default()), PoolConfig::default()).unwrap();
        let mint = |expires_ms| Mint {
            actor: "n1.1".into(),
            context: CausalContext::new(),
            value: Some(Bytes::from_static(b"{}")),
            timestamp_ms: 1,
            expires_ms,
        };
        s.mint("c", "soon", mint(Some(1_000)), Durability::Memory)
            .await
            .unwrap();
        s.mint("c", "later", mint(Some(9_000)), Durability::Memory)
            .await
            .unwrap();
        s.mint("c", "never", mint(None), Durability::Memory)
            .await
            .unwrap();
        assert_eq!(
            s.sweep_expired(500, 100).await.unwrap(),
            0,
            "nothing due yet"
        );
        assert_eq!(s.sweep_expired(1_000, 100).await.unwrap(), 1);
        let soon = s.read("c", "soon").await.unwrap();
        assert_eq!(soon.live_values().count(), 0);
        assert_eq!(
            soon.versions().len(),
            1,
            "a tombstone with the same dot stays"
        );
        assert_eq!(s.read("c", "later").await.unwrap().live_values().count(), 1);
        assert_eq!(s.sweep_expired(10_000, 100).await.unwrap(), 1);
        assert_eq!(s.read("c", "later").await.unwrap().live_values().count(), 0);
        assert_eq!(s.read("c", "never").await.unwrap().live_values().count(), 1);
        assert_eq!(
            s.sweep_expired(u64::MAX, 100).await.unwrap(),
            0,
            "index emptied"
        );
    }
}
