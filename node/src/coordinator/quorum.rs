//! One helper for every fan-out: call the replicas in parallel, return as soon as enough
//! succeeded (or enough failed that the level can no longer be met, or time ran out), and
//! hand back the calls still in flight so the caller can use their answers later.

use std::fmt::Display;
use std::future::Future;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a fan-out produced by the time the caller could answer.
pub struct Gathered<T> {
    /// Replicas that answered, with their answers.
    pub ok: Vec<(String, T)>,
    /// Replicas that failed, with why.
    pub failed: Vec<(String, String)>,
    /// Calls not yet finished; they keep running and report here.
    pub rest: mpsc::UnboundedReceiver<(String, Result<T, String>)>,
    /// How many calls are still in flight.
    pub pending: usize,
}

/// Spawn every call and wait for `required` successes, impossibility, or `deadline`.
/// Calls are spawned, so none is cancelled when this returns.
pub async fn gather<T, E, F>(
    calls: Vec<(String, F)>,
    required: usize,
    deadline: Instant,
) -> Gathered<T>
where
    T: Send + 'static,
    E: Display + Send + 'static,
    F: Future<Output = Result<T, E>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut pending = calls.len();
    for (node, call) in calls {
        let tx = tx.clone();
        tokio::spawn(async move {
            let r = call.await.map_err(|e| e.to_string());
            let _ = tx.send((node, r));
        });
    }
    drop(tx);
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    while ok.len() < required && ok.len() + pending >= required {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((node, r))) => {
                pending -= 1;
                match r {
                    Ok(v) => ok.push((node, v)),
                    Err(e) => failed.push((node, e)),
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    Gathered {
        ok,
        failed,
        rest: rx,
        pending,
    }
}

/// "n2: connection refused; n3: no answer" for error messages.
pub fn describe_failures(
    failed: &[(String, String)],
    silent: impl IntoIterator<Item = String>,
) -> String {
    let mut parts: Vec<String> = failed.iter().map(|(n, e)| format!("{n}: {e}")).collect();
    parts.extend(silent.into_iter().map(|n| format!("{n}: no answer")));
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn returns_at_quorum_and_leaves_the_slow_call_running() {
        let calls: Vec<(
            String,
            std::pin::Pin<Box<dyn Future<Output = Result<u32, String>> + Send>>,
        )> = vec![
            ("a".into(), Box::pin(async { Ok(1) })),
            ("b".into(), Box::pin(async { Ok(2) })),
            (
                "c".into(),
                Box::pin(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(3)
                }),
            ),
        ];
        let mut g = gather(calls, 2, Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(g.ok.len(), 2);
        assert_eq!(g.pending, 1);
        let (node, late) = g.rest.recv().await.unwrap();
        assert_eq!((node.as_str(), late), ("c", Ok(3)));
    }

    #[tokio::test]
    async fn stops_early_when_the_level_cannot_be_met() {
        let calls: Vec<(
            String,
            std::pin::Pin<Box<dyn Future<Output = Result<u32, String>> + Send>>,
        )> = vec![
            ("a".into(), Box::pin(async { Err("refused".to_string()) })),
            ("b".into(), Box::pin(async { Err("refused".to_string()) })),
            (
                "c".into(),
                Box::pin(async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(3)
                }),
            ),
        ];
        let g = gather(calls, 2, Instant::now() + Duration::from_secs(30)).await;
        assert_eq!(g.failed.len(), 2);
        assert!(g.ok.is_empty());
    }
}
