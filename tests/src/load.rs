//! Loading many documents quickly for tests that are about counts: pipelined puts with many
//! in flight, retrying only the refusals that wrote nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use ringdb_client::{Client, Error, WriteOptions};
use serde_json::Value;

/// How long one document may keep being refused before the load gives up: rules out
/// "never", not "slow".
const REFUSED_FOR: Duration = Duration::from_secs(120);

/// Put every `(key, document)` into `collection` with `opts`, `in_flight` at a time, and
/// return how many puts were refused and retried. A put refused with UNAVAILABLE or
/// RESOURCE_EXHAUSTED wrote nothing, so it is retried: on a starved machine the failure
/// detector may briefly call a live node down while hundreds of writes are in flight. Any
/// other error (a timeout may have written) panics with the key.
pub async fn put_all<I>(
    client: &Client,
    collection: &str,
    docs: I,
    opts: &WriteOptions,
    in_flight: usize,
) -> u64
where
    I: IntoIterator<Item = (String, Value)>,
{
    let retried = AtomicU64::new(0);
    futures::stream::iter(docs)
        .for_each_concurrent(in_flight, |(key, doc)| {
            let retried = &retried;
            async move {
                let deadline = tokio::time::Instant::now() + REFUSED_FOR;
                let mut pause = Duration::from_millis(20);
                loop {
                    match client.put_with(collection, &key, &doc, opts).await {
                        Ok(_) => return,
                        Err(Error::Unavailable(_) | Error::Overloaded(_))
                            if tokio::time::Instant::now() < deadline =>
                        {
                            retried.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_secs(1));
                        }
                        Err(e) => panic!("load {collection}/{key}: {e}"),
                    }
                }
            }
        })
        .await;
    retried.into_inner()
}
