//! Operators' requests: collections and topology changes. They go to one node (the first
//! that answers); the cluster spreads the result by gossip.

use ringdb_proto::v1 as pb;

use crate::{Client, Result};

/// A collection and the options it was created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// Its name.
    pub name: String,
    /// N: replicas per key.
    pub replication: u32,
}

impl From<pb::CollectionInfo> for Collection {
    fn from(c: pb::CollectionInfo) -> Self {
        Collection {
            name: c.name,
            replication: c.replication,
        }
    }
}

impl Client {
    /// Create a collection with `replication` replicas per key (0: the cluster default).
    /// Fails with `AlreadyExists` if it exists, unless `if_not_exists`.
    pub async fn create_collection(
        &self,
        name: &str,
        replication: u32,
        if_not_exists: bool,
    ) -> Result<Collection> {
        let r = self
            .call(true, |mut n| {
                let req = pb::CreateCollectionRequest {
                    name: name.to_string(),
                    replication,
                    if_not_exists,
                };
                async move { n.admin.create_collection(req).await }
            })
            .await?
            .into_inner();
        r.collection
            .map(Collection::from)
            .ok_or_else(|| crate::Error::Internal("empty answer to CreateCollection".into()))
    }

    /// Every collection the cluster knows (as one node sees it) and the default N.
    pub async fn collections(&self) -> Result<(Vec<Collection>, u32)> {
        let r = self
            .call(true, |mut n| async move {
                n.admin
                    .list_collections(pb::ListCollectionsRequest {})
                    .await
            })
            .await?
            .into_inner();
        Ok((
            r.collections.into_iter().map(Collection::from).collect(),
            r.default_replication,
        ))
    }

    /// Decommission the first given node: it streams its data to the new owners, then
    /// leaves the ring. Returns once it is LEAVING; `status` shows when it is LEFT.
    pub async fn decommission(&self) -> Result<String> {
        let mut admin = self.nodes[0].admin.clone();
        let r = admin
            .decommission(pb::DecommissionRequest {})
            .await
            .map_err(crate::Error::from)?;
        Ok(r.into_inner().message)
    }

    /// Remove dead node `node_id`, re-replicating its ranges from the surviving replicas.
    /// Returns once the removal has started.
    pub async fn remove_node(&self, node_id: &str) -> Result<String> {
        let r = self
            .call(false, |mut n| {
                let req = pb::RemoveNodeRequest {
                    node_id: node_id.to_string(),
                };
                async move { n.admin.remove_node(req).await }
            })
            .await?;
        Ok(r.into_inner().message)
    }
}
