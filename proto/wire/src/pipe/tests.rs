//! The multiplexer over in-memory streams: a stand-in for the other end reads the outbound
//! batches and answers through a channel, so every case runs without sockets.

use std::pin::Pin;
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedSender};

use super::*;

/// Generous: these waits end as soon as the condition holds.
const DEADLINE: Duration = Duration::from_secs(10);

type TestPipe = Pipe<u32, String, String>;

/// The batches a test pipe sent.
type Sent = Pin<Box<dyn Stream<Item = Vec<(u64, u32)>> + Send>>;

/// The other end of a test pipe: what the pipe sent, and where to answer.
struct Peer {
    requests: Sent,
    answers: UnboundedSender<Result<Answers<String, String>, String>>,
}

impl Peer {
    /// The next batch the pipe sent.
    async fn batch(&mut self) -> Vec<(u64, u32)> {
        tokio::time::timeout(DEADLINE, self.requests.next())
            .await
            .expect("a batch in time")
            .expect("the stream is open")
    }

    /// Send one message of answers.
    fn answer(&self, answers: Answers<String, String>) {
        self.answers.unbounded_send(Ok(answers)).unwrap();
    }
}

fn wording() -> Wording<String> {
    Wording {
        ended: "test pipe ended",
        hung_up: "hung up".into(),
        closed: "closed".into(),
    }
}

/// Opens a stream whose other end is handed to the test as a [`Peer`].
struct InMemory(oneshot::Sender<Peer>);

impl Connect<u32, String, String> for InMemory {
    async fn connect(
        self,
        outbound: impl Stream<Item = Vec<(u64, u32)>> + Send + 'static,
    ) -> Result<impl Stream<Item = Result<Answers<String, String>, String>> + Send + 'static, String>
    {
        let (answers, inbound) = unbounded();
        let _ = self.0.send(Peer {
            requests: Box::pin(outbound),
            answers,
        });
        Ok(inbound)
    }
}

/// Opens nothing: the other end refuses.
struct Refused;

impl Connect<u32, String, String> for Refused {
    async fn connect(
        self,
        _: impl Stream<Item = Vec<(u64, u32)>> + Send + 'static,
    ) -> Result<impl Stream<Item = Result<Answers<String, String>, String>> + Send + 'static, String>
    {
        Err::<futures::stream::Empty<_>, _>("refused".to_string())
    }
}

/// A pipe whose other end is the returned [`Peer`].
async fn connected() -> (Arc<TestPipe>, Peer) {
    let (peer_tx, peer_rx) = oneshot::channel();
    let pipe = TestPipe::open(wording(), InMemory(peer_tx));
    let peer = tokio::time::timeout(DEADLINE, peer_rx)
        .await
        .expect("opened in time")
        .unwrap();
    (pipe, peer)
}

/// `pipe.call(request)`, running on its own.
fn calling(pipe: &Arc<TestPipe>, request: u32) -> tokio::task::JoinHandle<Result<String, String>> {
    let pipe = pipe.clone();
    tokio::spawn(async move { pipe.call(request).await })
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("done in time")
}

#[tokio::test]
async fn answers_reach_their_callers_by_id_in_any_order() {
    let (pipe, mut peer) = connected().await;
    let calls: Vec<_> = (0..3u32).map(|r| calling(&pipe, r)).collect();
    let mut sent = Vec::new();
    while sent.len() < 3 {
        sent.extend(peer.batch().await);
    }
    let mut ids: Vec<u64> = sent.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every request has an id of its own: {sent:?}");
    // Answer in reverse order, one request failing on its own.
    sent.reverse();
    peer.answer(
        sent.iter()
            .map(|(id, r)| match r {
                1 => (*id, Err(format!("refused {r}"))),
                _ => (*id, Ok(format!("answer to {r}"))),
            })
            .collect(),
    );
    let mut got = Vec::new();
    for c in calls {
        got.push(within(c).await.unwrap());
    }
    assert_eq!(
        got,
        [
            Ok("answer to 0".to_string()),
            Err("refused 1".to_string()),
            Ok("answer to 2".to_string())
        ]
    );
    assert!(!pipe.is_broken(), "a request's own failure breaks nothing");
}

#[tokio::test]
async fn a_broken_pipe_fails_its_waiters_and_every_later_call() {
    let (pipe, mut peer) = connected().await;
    let waiting = calling(&pipe, 1);
    peer.batch().await;
    peer.answers.unbounded_send(Err("reset".into())).unwrap();
    assert_eq!(within(waiting).await.unwrap(), Err("reset".to_string()));
    assert!(pipe.is_broken());
    assert_eq!(within(pipe.call(2)).await, Err("reset".to_string()));
}

#[tokio::test]
async fn a_stream_the_other_end_closes_or_never_opens_breaks_the_pipe() {
    let (pipe, mut peer) = connected().await;
    let waiting = calling(&pipe, 1);
    peer.batch().await;
    drop(peer.answers);
    assert_eq!(within(waiting).await.unwrap(), Err("hung up".to_string()));

    let refused = TestPipe::open(wording(), Refused);
    assert_eq!(within(refused.call(1)).await, Err("refused".to_string()));
    assert!(refused.is_broken());
}

#[tokio::test]
async fn a_caller_that_stops_waiting_is_forgotten() {
    let (pipe, mut peer) = connected().await;
    let abandoned = calling(&pipe, 1);
    let sent = peer.batch().await;
    assert_eq!(pipe.lock().waiting.len(), 1);
    abandoned.abort();
    assert!(within(abandoned).await.unwrap_err().is_cancelled());
    assert!(pipe.lock().waiting.is_empty(), "the waiter is gone");
    // Its late answer goes nowhere, and the pipe carries on.
    peer.answer(vec![(sent[0].0, Ok("late".into()))]);
    let next = calling(&pipe, 2);
    let sent = peer.batch().await;
    peer.answer(vec![(sent[0].0, Ok("on time".into()))]);
    assert_eq!(within(next).await.unwrap(), Ok("on time".to_string()));
    assert!(pipe.lock().waiting.is_empty());
}

#[tokio::test]
async fn dropping_the_pipe_ends_its_stream() {
    let (pipe, mut peer) = connected().await;
    let answered = calling(&pipe, 1);
    let sent = peer.batch().await;
    peer.answer(vec![(sent[0].0, Ok("done".into()))]);
    assert_eq!(within(answered).await.unwrap(), Ok("done".to_string()));
    drop(pipe);
    assert!(
        within(peer.requests.next()).await.is_none(),
        "the outbound stream ended with the pipe"
    );
}

#[tokio::test]
async fn a_batch_is_the_first_item_and_all_queued_up_to_the_max() {
    let (tx, rx) = mpsc::channel(16);
    for i in 0..5 {
        tx.send(i).await.unwrap();
    }
    let mut batches = std::pin::pin!(batched(rx, 2));
    assert_eq!(within(batches.next()).await, Some(vec![0, 1]));
    assert_eq!(within(batches.next()).await, Some(vec![2, 3]));
    assert_eq!(within(batches.next()).await, Some(vec![4]));
    // A task that is ready to run when the first item arrives queues its item while the
    // batcher yields (this test's runtime has one thread), so both share a message.
    tx.send(5).await.unwrap();
    let sender = tx.clone();
    let ready = tokio::spawn(async move { sender.send(6).await.unwrap() });
    assert_eq!(within(batches.next()).await, Some(vec![5, 6]));
    ready.await.unwrap();
    drop(tx);
    assert_eq!(within(batches.next()).await, None);
}
