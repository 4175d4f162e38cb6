//! The name of every Redis key of a deployment, in one place: the queue's lists and sets, the
//! workers' heartbeats, the event channels, the login throttle and the LLM fleet's budget,
//! circuit and statistics. Each carries the deployment's prefix as a hash tag.

use crate::queue::Lane;

/// Key names. Every key carries the prefix as a hash tag, so on a Redis Cluster they all live
/// in one slot and the Lua scripts may touch several of them.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: format!("{{{prefix}}}"),
        }
    }

    /// The set of queued ids that versions before lanes kept (see `Queue::upgrade`).
    pub fn legacy_members(&self) -> String {
        format!("{}:queue:members", self.prefix)
    }

    /// Interactive job ids waiting for a worker; pushed on the left, taken from the right.
    pub fn ready(&self) -> String {
        format!("{}:queue:ready", self.prefix)
    }

    /// Batch job ids waiting for a worker; taken when no interactive job waits (or on the
    /// batch's share of the claims).
    pub fn ready_batch(&self) -> String {
        format!("{}:queue:ready:batch", self.prefix)
    }

    /// The ready list of `lane`.
    pub fn ready_of(&self, lane: Lane) -> String {
        match lane {
            Lane::Interactive => self.ready(),
            Lane::Batch => self.ready_batch(),
        }
    }

    /// Job ids waiting for a time (score: unix milliseconds).
    pub fn delayed(&self) -> String {
        format!("{}:queue:delayed", self.prefix)
    }

    /// Ids a worker took and has not finished with.
    pub fn inflight(&self, worker_id: &str) -> String {
        format!("{}:queue:inflight:{worker_id}", self.prefix)
    }

    /// Present while the worker is alive.
    pub fn heartbeat(&self, worker_id: &str) -> String {
        format!("{}:queue:heartbeat:{worker_id}", self.prefix)
    }

    /// Hash of every id that is in a ready list, `delayed` or an in-flight list, to its lane's
    /// code ([`Lane::code`]): a push of an id already here is a no-op. (Named `lanes`: the
    /// `members` set of earlier versions had no lane.)
    pub fn members(&self) -> String {
        format!("{}:queue:lanes", self.prefix)
    }

    /// Held by the reconciler making its pass, so replicas take turns (see `lifecycle`).
    pub fn reconciler(&self) -> String {
        format!("{}:queue:reconciler", self.prefix)
    }

    /// Every worker id that may own an in-flight list, for the reaper.
    pub fn workers(&self) -> String {
        format!("{}:queue:workers", self.prefix)
    }

    /// Channel on which job status changes are published (for long polls).
    pub fn job_events(&self) -> String {
        format!("{}:events:jobs", self.prefix)
    }

    /// Channel on which account changes are published (a logout, a new password or role, a
    /// disabled account), so every API process drops what it remembers of those sessions.
    pub fn account_events(&self) -> String {
        format!("{}:events:accounts", self.prefix)
    }

    /// Failed logins of one account (its email's SHA-256, hex), remembered for the login
    /// throttle.
    pub fn login_failures(&self, account: &str) -> String {
        format!("{}:login:failures:{account}", self.prefix)
    }

    /// Present while logins to one account are refused; expires when they may resume.
    pub fn login_lock(&self, account: &str) -> String {
        format!("{}:login:lock:{account}", self.prefix)
    }

    /// Channel on which cancellations are published, so the worker running the attempt stops.
    pub fn cancellations(&self) -> String {
        format!("{}:events:cancel", self.prefix)
    }

    /// The next free slot of a model's request or token budget (see `budget`).
    pub fn llm_budget(&self, model: &str, kind: &str) -> String {
        format!("{}:llm:budget:{model}:{kind}", self.prefix)
    }

    /// Present while the fleet's calls to a model are paused after a 429.
    pub fn llm_pause(&self, model: &str) -> String {
        format!("{}:llm:pause:{model}", self.prefix)
    }

    /// Present while interactive calls to a model were made recently (see `budget`).
    pub fn llm_interactive_active(&self, model: &str) -> String {
        format!("{}:llm:interactive:{model}", self.prefix)
    }

    /// A model's open circuit (see `circuit`).
    pub fn llm_circuit(&self, model: &str) -> String {
        format!("{}:llm:circuit:{model}", self.prefix)
    }

    /// Held by the one worker probing a model's open circuit.
    pub fn llm_probe(&self, model: &str) -> String {
        format!("{}:llm:probe:{model}", self.prefix)
    }

    /// One minute's LLM call counts per model (see `llm::stats`).
    pub fn llm_minute(&self, minute: i64) -> String {
        format!("{}:stats:llm:{minute}", self.prefix)
    }

    /// The budget the workers run with, for the admin statistics.
    pub fn llm_limits(&self) -> String {
        format!("{}:llm:limits", self.prefix)
    }

    /// Each model tier's routes in the order calls try them (see `llm::endpoint`), published
    /// by the workers for readiness checks.
    pub fn llm_routes(&self) -> String {
        format!("{}:llm:routes", self.prefix)
    }

    /// Models whose circuit is open, for readiness checks.
    pub fn llm_open_circuits(&self) -> String {
        format!("{}:llm:circuits", self.prefix)
    }

    /// Every key this deployment owns starts with this (tests clean up by it).
    pub fn pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }
}
