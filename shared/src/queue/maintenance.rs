//! Queue upkeep that any worker process may run (each step is one atomic script, so many
//! replicas running it at once is safe): due delayed jobs go back to their lane's ready list, and
//! dead workers' in-flight jobs are handed back.

use std::sync::LazyLock;

use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::{Queue, QueueConfig};

/// Most ids moved by one script call, so Redis is never blocked for long.
pub const PER_CALL: usize = 1000;

/// Moves up to ARGV[1] due ids from `delayed` to the consuming end of their lane's ready list:
/// a job that has waited out its time (a retry's backoff, a snooze, a dead worker's lease) goes
/// before jobs that were queued after it was due, not behind a backlog.
/// KEYS: delayed, ready, ready:batch, members. Uses the server's clock, so hosts' clocks need
/// not agree.
static PROMOTE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
        for _, id in ipairs(due) do
            local batch = redis.call('HGET', KEYS[4], id) == 'b'
            redis.call('RPUSH', batch and KEYS[3] or KEYS[2], id)
            redis.call('ZREM', KEYS[1], id)
        end
        return #due",
    )
});

/// If the worker's heartbeat is gone, moves up to ARGV[2] of its in-flight ids to the consuming
/// end of their lane's ready list, and forgets the worker once its list is empty.
/// KEYS: heartbeat, inflight, ready, ready:batch, members, workers. ARGV: worker id, most ids per call.
static REAP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
        local n = 0
        while n < tonumber(ARGV[2]) do
            local id = redis.call('LPOP', KEYS[2])
            if not id then break end
            local batch = redis.call('HGET', KEYS[5], id) == 'b'
            redis.call('RPUSH', batch and KEYS[4] or KEYS[3], id)
            n = n + 1
        end
        if redis.call('LLEN', KEYS[2]) == 0 then redis.call('SREM', KEYS[6], ARGV[1]) end
        return n",
    )
});

/// Moves every due delayed id to `ready`; returns how many.
#[tracing::instrument(skip_all, err)]
pub async fn promote_due(queue: &Queue) -> redis::RedisResult<usize> {
    let keys = queue.redis().keys();
    let mut conn = queue.redis().connection();
    let mut total = 0;
    loop {
        let moved: usize = PROMOTE
            .key(keys.delayed())
            .key(keys.ready())
            .key(keys.ready_batch())
            .key(keys.members())
            .arg(PER_CALL)
            .invoke_async(&mut conn)
            .await?;
        total += moved;
        if moved < PER_CALL {
            return Ok(total);
        }
    }
}

/// Hands back the in-flight ids of every worker whose heartbeat lapsed; returns how many.
#[tracing::instrument(skip_all, err)]
pub async fn reap_dead_workers(queue: &Queue) -> redis::RedisResult<usize> {
    let keys = queue.redis().keys();
    let mut conn = queue.redis().connection();
    let workers: Vec<String> = conn.smembers(keys.workers()).await?;
    let mut total = 0;
    for worker in workers {
        loop {
            let moved: i64 = REAP
                .key(keys.heartbeat(&worker))
                .key(keys.inflight(&worker))
                .key(keys.ready())
                .key(keys.ready_batch())
                .key(keys.members())
                .key(keys.workers())
                .arg(&worker)
                .arg(PER_CALL)
                .invoke_async(&mut conn)
                .await?;
            if moved > 0 {
                tracing::info!(worker.id = %worker, queue.handed_back = moved, "returned a dead worker's jobs");
                total += moved as usize;
            }
            if moved < PER_CALL as i64 {
                break;
            }
        }
    }
    Ok(total)
}

/// Runs promotion and reaping on their intervals until `stop`.
pub async fn run(queue: Queue, config: QueueConfig, stop: CancellationToken) {
    let mut promote = tokio::time::interval(config.promote_interval);
    let mut reap = tokio::time::interval(config.reap_interval);
    promote.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = promote.tick() => {
                if let Err(e) = promote_due(&queue).await {
                    tracing::warn!(error = %e, "promoting delayed jobs failed");
                }
            }
            _ = reap.tick() => {
                if let Err(e) = reap_dead_workers(&queue).await {
                    tracing::warn!(error = %e, "reaping dead workers failed");
                }
            }
        }
    }
}
