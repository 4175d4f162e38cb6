//! Group commit: writes of one kind that are waiting at the same moment share one statement and
//! one commit, so PostgreSQL's cost per statement and per commit is paid once per group instead
//! of once per job.
//!
//! No timer: a group is whatever is waiting when a slot frees up. At most `parallel` groups run
//! at once; while they run, new writes queue and form the next group, so groups grow with load
//! and a lone write goes out at once (the same round trip as without grouping). A group whose
//! statement fails is run again one write at a time, so one bad write fails only itself.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// What a group's statement receives: the writes, in their order of arrival.
pub type Writes<I> = Arc<Vec<I>>;

type Statement<I, O> =
    dyn Fn(Writes<I>) -> BoxFuture<'static, Result<Vec<O>, sqlx::Error>> + Send + Sync;

/// A grouped write of one kind (`I` in, `O` out per write). Cheap to clone; the driver task
/// starts with the first write (so a group can be built outside a runtime) and ends with the
/// last clone.
pub struct Group<I, O> {
    op: &'static str,
    parallel: usize,
    max: usize,
    statement: Arc<Statement<I, O>>,
    sender: Arc<OnceLock<mpsc::UnboundedSender<Pending<I, O>>>>,
}

impl<I, O> Clone for Group<I, O> {
    fn clone(&self) -> Self {
        Group {
            op: self.op,
            parallel: self.parallel,
            max: self.max,
            statement: self.statement.clone(),
            sender: self.sender.clone(),
        }
    }
}

struct Pending<I, O> {
    write: I,
    reply: oneshot::Sender<Result<O, sqlx::Error>>,
}

impl<I, O> Group<I, O>
where
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    /// `statement` runs a group (1 to `max` writes) and returns one output per write, in
    /// order; at most `parallel` run at once. `op` names the group in the `db_group_size`
    /// histogram and the `db_group_fallbacks_total` counter.
    pub fn new<F, Fut>(op: &'static str, parallel: usize, max: usize, statement: F) -> Self
    where
        F: Fn(Writes<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, sqlx::Error>> + Send + 'static,
    {
        Group {
            op,
            parallel: parallel.max(1),
            max: max.max(1),
            statement: Arc::new(move |writes| Box::pin(statement(writes)) as BoxFuture<'static, _>),
            sender: Arc::new(OnceLock::new()),
        }
    }

    /// Runs `write` in the next group; its own result, or its own error.
    pub async fn run(&self, write: I) -> Result<O, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let sender = self.sender.get_or_init(|| self.start());
        if sender.send(Pending { write, reply }).is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    fn start(&self) -> mpsc::UnboundedSender<Pending<I, O>> {
        let (sender, mut waiting) = mpsc::unbounded_channel::<Pending<I, O>>();
        let slots = Arc::new(Semaphore::new(self.parallel));
        let (op, max, statement) = (self.op, self.max, self.statement.clone());
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                // Everything that arrived while the slots were busy joins this group.
                let mut group = vec![first];
                while group.len() < max {
                    match waiting.try_recv() {
                        Ok(pending) => group.push(pending),
                        Err(_) => break,
                    }
                }
                let statement = statement.clone();
                tokio::spawn(async move {
                    run_group(op, group, &*statement).await;
                    drop(slot);
                });
            }
        });
        sender
    }
}

async fn run_group<I, O>(op: &'static str, group: Vec<Pending<I, O>>, statement: &Statement<I, O>) {
    metrics::histogram!("db_group_size", "op" => op).record(group.len() as f64);
    let (writes, replies): (Vec<I>, Vec<_>) = group.into_iter().map(|p| (p.write, p.reply)).unzip();
    let writes = Arc::new(writes);
    match statement(writes.clone()).await {
        Ok(outputs) => answer(op, replies, outputs),
        Err(e) if replies.len() == 1 => {
            let _ = replies.into_iter().next().map(|reply| reply.send(Err(e)));
        }
        Err(e) => {
            metrics::counter!("db_group_fallbacks_total", "op" => op).increment(1);
            tracing::warn!(db.op = op, writes = replies.len(), error = %e, "grouped write failed; running its writes one at a time");
            // The statement's future, the only other owner, has completed.
            let Ok(writes) = Arc::try_unwrap(writes) else {
                for reply in replies {
                    let _ = reply.send(Err(stopped()));
                }
                return;
            };
            for (write, reply) in writes.into_iter().zip(replies) {
                match statement(Arc::new(vec![write])).await {
                    Ok(outputs) => answer(op, vec![reply], outputs),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
    }
}

/// Sends each write its own output, in order. A statement that lost or invented rows is a bug:
/// then every write of the group gets an error, and none takes another's answer.
fn answer<O>(
    op: &'static str,
    replies: Vec<oneshot::Sender<Result<O, sqlx::Error>>>,
    outputs: Vec<O>,
) {
    if outputs.len() == replies.len() {
        for (reply, output) in replies.into_iter().zip(outputs) {
            let _ = reply.send(Ok(output));
        }
        return;
    }
    tracing::error!(
        db.op = op,
        writes = replies.len(),
        outputs = outputs.len(),
        "a grouped statement returned the wrong number of outputs"
    );
    for reply in replies {
        let _ = reply.send(Err(sqlx::Error::Protocol(format!(
            "grouped {op} returned {} outputs",
            outputs.len()
        ))));
    }
}

fn stopped() -> sqlx::Error {
    sqlx::Error::WorkerCrashed
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn writes_waiting_together_share_one_statement_and_each_gets_its_own_output() {
        let groups = Arc::new(Mutex::new(Vec::new()));
        let seen = groups.clone();
        let group = Group::new("test", 1, 100, move |writes: Writes<u32>| {
            seen.lock().unwrap().push(writes.len());
            async move {
                // Slow enough that the other writes queue behind the first group.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(writes.iter().map(|w| w * 10).collect())
            }
        });
        let outputs = futures::future::join_all((0..50).map(|i| {
            let group = group.clone();
            async move { group.run(i).await.unwrap() }
        }))
        .await;
        assert_eq!(outputs, (0..50).map(|i| i * 10).collect::<Vec<_>>());
        let sizes = groups.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 50);
        assert!(sizes.len() < 50, "no write was grouped: {sizes:?}");
    }

    #[tokio::test]
    async fn a_failed_group_is_run_one_write_at_a_time_so_only_the_bad_write_fails() {
        let group = Group::new("test", 1, 100, |writes: Writes<u32>| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if writes.contains(&13) {
                return Err(sqlx::Error::RowNotFound);
            }
            Ok(writes.to_vec())
        });
        let results = futures::future::join_all((10..20).map(|i| {
            let group = group.clone();
            async move { group.run(i).await }
        }))
        .await;
        for (i, result) in (10..20).zip(results) {
            match result {
                Ok(output) => assert_eq!(output, i),
                Err(sqlx::Error::RowNotFound) => assert_eq!(i, 13),
                Err(e) => panic!("write {i}: {e}"),
            }
        }
    }

    #[tokio::test]
    async fn a_statement_with_the_wrong_number_of_outputs_fails_its_writes() {
        let group = Group::new("test", 2, 100, |_: Writes<u32>| async {
            Ok(Vec::<u32>::new())
        });
        assert!(group.run(1).await.is_err());
    }
}
