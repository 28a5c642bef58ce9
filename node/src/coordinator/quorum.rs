//! One helper for every fan-out: call the replicas in parallel, return as soon as enough
//! succeeded (or enough failed that the level can no longer be met, or time ran out), and
//! hand back the calls still in flight so the caller can use their answers later.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

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

/// Spawn `calls` and wait for `required` successes, impossibility, or `deadline`. The
/// `standby` calls are spawned too once `speculate_at` passes, or as soon as failures make
/// the level unreachable without them. Calls are spawned, so none is cancelled when this
/// returns.
pub async fn gather<T, E, F>(
    calls: Vec<(String, F)>,
    standby: Vec<(String, F)>,
    required: usize,
    speculate_at: Instant,
    deadline: Instant,
) -> Gathered<T>
where
    T: Send + 'static,
    E: Display + Send + 'static,
    F: Future<Output = Result<T, E>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spawn = |batch: Vec<(String, F)>,
                 tx: &mpsc::UnboundedSender<(String, Result<T, String>)>| {
        for (node, call) in batch {
            let tx = tx.clone();
            tokio::spawn(async move {
                let r = call.await.map_err(|e| e.to_string());
                let _ = tx.send((node, r));
            });
        }
    };
    let mut pending = calls.len();
    spawn(calls, &tx);
    let mut standby = Some(standby).filter(|s| !s.is_empty());
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    while ok.len() < required {
        if ok.len() + pending < required || (standby.is_some() && Instant::now() >= speculate_at) {
            match standby.take() {
                Some(batch) => {
                    pending += batch.len();
                    spawn(batch, &tx);
                    continue;
                }
                None if ok.len() + pending < required => break,
                None => {}
            }
        }
        let wake = if standby.is_some() {
            speculate_at.min(deadline)
        } else {
            deadline
        };
        tokio::select! {
            r = rx.recv() => match r {
                Some((node, r)) => {
                    pending -= 1;
                    match r {
                        Ok(v) => ok.push((node, v)),
                        Err(e) => failed.push((node, e)),
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
    }
    drop(tx);
    Gathered {
        ok,
        failed,
        rest: rx,
        pending,
    }
}

impl<T> Gathered<T> {
    /// Whether the fan-out stopped because time ran out (else failures made the level
    /// impossible while some calls were still running).
    pub fn timed_out(&self, required: usize) -> bool {
        self.ok.len() + self.pending >= required
    }
}

/// Why a fan-out fell short, as error messages say it: "failed after 3.2 ms" when failures
/// made the level impossible, "not met in 2000 ms" when time ran out.
pub fn not_met<T>(g: &Gathered<T>, required: usize, started: Instant, timeout: Duration) -> String {
    if g.timed_out(required) {
        return format!("not met in {} ms", timeout.as_millis());
    }
    let took = started.elapsed();
    if took < Duration::from_millis(10) {
        format!("failed after {:.1} ms", took.as_secs_f64() * 1000.0)
    } else {
        format!("failed after {} ms", took.as_millis())
    }
}

/// "n2: connection refused; n3: no answer" for error messages; replicas that had not
/// answered are "no answer" when time ran out, "still running" when the request stopped
/// early.
pub fn describe_failures(
    failed: &[(String, String)],
    silent: impl IntoIterator<Item = String>,
    timed_out: bool,
) -> String {
    let mut parts: Vec<String> = failed.iter().map(|(n, e)| format!("{n}: {e}")).collect();
    let word = if timed_out {
        "no answer"
    } else {
        "still running"
    };
    parts.extend(silent.into_iter().map(|n| format!("{n}: {word}")));
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    type Call = std::pin::Pin<Box<dyn Future<Output = Result<u32, String>> + Send>>;

    #[tokio::test]
    async fn returns_at_quorum_and_leaves_the_slow_call_running() {
        let calls: Vec<(String, Call)> = vec![
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
        let now = Instant::now();
        let mut g = gather(calls, vec![], 2, now, now + Duration::from_secs(5)).await;
        assert_eq!(g.ok.len(), 2);
        assert_eq!(g.pending, 1);
        let (node, late) = g.rest.recv().await.unwrap();
        assert_eq!((node.as_str(), late), ("c", Ok(3)));
    }

    #[tokio::test]
    async fn stops_early_when_the_level_cannot_be_met() {
        let calls: Vec<(String, Call)> = vec![
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
        let now = Instant::now();
        let g = gather(calls, vec![], 2, now, now + Duration::from_secs(30)).await;
        assert_eq!(g.failed.len(), 2);
        assert!(g.ok.is_empty());
    }

    fn slow(ms: u64, v: u32) -> Call {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(v)
        })
    }

    #[tokio::test]
    async fn standby_replicas_are_asked_when_the_first_ones_are_slow() {
        let now = Instant::now();
        let calls = vec![
            ("a".to_string(), slow(0, 1)),
            ("b".to_string(), slow(10_000, 2)),
        ];
        let standby = vec![("c".to_string(), slow(0, 3))];
        let g = gather(
            calls,
            standby,
            2,
            now + Duration::from_millis(20),
            now + Duration::from_secs(5),
        )
        .await;
        let mut got: Vec<&str> = g.ok.iter().map(|(n, _)| n.as_str()).collect();
        got.sort();
        assert_eq!(got, ["a", "c"]);
        assert!(
            now.elapsed() < Duration::from_secs(5),
            "answered without waiting for b"
        );
    }

    #[tokio::test]
    async fn standby_replicas_are_asked_at_once_when_one_fails() {
        let now = Instant::now();
        let calls: Vec<(String, Call)> = vec![
            ("a".into(), slow(0, 1)),
            ("b".into(), Box::pin(async { Err("down".to_string()) })),
        ];
        let standby: Vec<(String, Call)> = vec![("c".into(), slow(0, 3))];
        let g = gather(
            calls,
            standby,
            2,
            now + Duration::from_secs(60),
            now + Duration::from_secs(120),
        )
        .await;
        assert_eq!(g.ok.len(), 2);
        assert_eq!(g.failed.len(), 1);
    }

    #[tokio::test]
    async fn standby_calls_are_not_made_when_the_first_ones_suffice() {
        let now = Instant::now();
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = asked.clone();
        let calls: Vec<(String, Call)> = vec![("a".into(), slow(0, 1))];
        let standby: Vec<(String, Call)> = vec![(
            "b".into(),
            Box::pin(async move {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(2)
            }),
        )];
        let g = gather(
            calls,
            standby,
            1,
            now + Duration::from_millis(50),
            now + Duration::from_secs(5),
        )
        .await;
        assert_eq!(g.ok.len(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!asked.load(std::sync::atomic::Ordering::SeqCst));
    }
}
