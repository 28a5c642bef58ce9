//! Tombstone purging, the storage side: which keys hold only tombstones, and removing one
//! only if it still holds exactly what every replica was found to hold.

use super::worker::Job;
use crate::keys::{parse_entry, storage_key};
use crate::{Space, Storage, StorageError};
use ringdb_core::merkle::entry_hash;
use ringdb_core::ring::token_for;

impl Storage {
    /// Keys noted as holding only tombstones since before `noted_before_ms`, up to `limit`.
    pub async fn dead_keys(
        &self,
        noted_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let rows = self
            .run(move |e| e.aux_scan(Space::Dead, &[], limit))
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(_, v)| {
                v.as_slice()
                    .try_into()
                    .is_ok_and(|b: [u8; 8]| u64::from_be_bytes(b) <= noted_before_ms)
            })
            .filter_map(|(k, _)| parse_entry(k, Vec::new()))
            .map(|e| (e.collection, e.key))
            .collect())
    }

    /// Drop a key from the purge candidates (it is live again, or gone).
    pub async fn forget_dead(&self, collection: &str, key: &str) -> Result<(), StorageError> {
        let k = storage_key(token_for(collection, key), collection, key);
        self.run(move |e| e.aux_delete(Space::Dead, &k)).await
    }

    /// The anti-entropy hash of a key's stored entry (`None` when absent).
    pub async fn entry_hash_of(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<u64>, StorageError> {
        let k = storage_key(token_for(collection, key), collection, key);
        Ok(self
            .read_raw(collection, key)
            .await?
            .map(|raw| entry_hash(&k, &raw)))
    }

    /// Delete a key if its entry still hashes to `hash`. Returns whether it was deleted.
    pub async fn purge_if(
        &self,
        collection: &str,
        key: &str,
        hash: u64,
    ) -> Result<bool, StorageError> {
        let k = storage_key(token_for(collection, key), collection, key);
        self.call(k, |key, reply| Job::Purge { key, hash, reply })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::{Durability, MemEngine, Mint, PoolConfig, Storage};
    use ringdb_core::clock::ManualClock;
    use ringdb_core::version::CausalContext;

    #[tokio::test]
    async fn only_a_tombstone_that_is_still_the_same_is_purged() {
        let s = Storage::start(Arc::new(MemEngine::default()), PoolConfig::default()).unwrap();
        let write = |value: Option<&'static [u8]>, context: CausalContext| Mint {
            actor: "n1.1".into(),
            context,
            value: value.map(Bytes::from_static),
            timestamp_ms: 1,
            expires_ms: None,
        };
        let m = s
            .mint(
                "c",
                "k",
                write(Some(b"{}"), CausalContext::new()),
                Durability::Memory,
            )
            .await
            .unwrap();
        assert!(s.dead_keys(u64::MAX, 10).await.unwrap().is_empty());
        s.mint("c", "k", write(None, m.context), Durability::Memory)
            .await
            .unwrap();
        let dead = s.dead_keys(u64::MAX, 10).await.unwrap();
        assert_eq!(dead, vec![("c".to_string(), "k".to_string())]);
        assert!(
            s.dead_keys(0, 10).await.unwrap().is_empty(),
            "not yet past the grace"
        );
        let h = s.entry_hash_of("c", "k").await.unwrap().unwrap();
        let root = s.trees().roots();
        assert!(
            !s.purge_if("c", "k", h ^ 1).await.unwrap(),
            "a different state is kept"
        );
        assert!(s.purge_if("c", "k", h).await.unwrap());
        assert!(s.read("c", "k").await.unwrap().is_empty());
        assert!(s.dead_keys(u64::MAX, 10).await.unwrap().is_empty());
        assert_ne!(s.trees().roots(), root, "the tree forgot the entry");
        assert_eq!(s.trees().roots()[0].1, 0);
        assert_eq!(s.stats().keys.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_key_is_noted_dead_at_the_time_of_the_clock_storage_was_given() {
        let clock = Arc::new(ManualClock::new(5_000));
        let s = Storage::start_with_clock(
            Arc::new(MemEngine::default()),
            PoolConfig::default(),
            clock.clone(),
        )
        .unwrap();
        let tombstone = Mint {
            actor: "n1.1".into(),
            context: CausalContext::new(),
            value: None,
            timestamp_ms: 1,
            expires_ms: None,
        };
        s.mint("c", "k", tombstone, Durability::Memory)
            .await
            .unwrap();
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(
            s.dead_keys(4_999, 10).await.unwrap().is_empty(),
            "noted at 5000 by the injected clock, whatever the system clock says"
        );
        assert_eq!(s.dead_keys(5_000, 10).await.unwrap().len(), 1);
    }
}
