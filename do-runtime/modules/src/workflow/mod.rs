//! Workflows: code that survives crashes. A workflow is an async function of a
//! [`Flow`] and a JSON input, registered by name on a class ([`Workflows`]). Each
//! step's result is recorded in the object's SQLite before the run goes on; after a
//! crash, a restart or a wake-up the function runs again from the top and every
//! recorded step answers from the record instead of running again (replay), so the
//! run continues at the first step that had not completed.
//!
//! A run that sleeps, waits for an event or for a person, or backs off before a retry
//! is *suspended*: its future is dropped and nothing but its rows remains; the object's
//! alarm (or the event, or the answer) wakes it and it replays to where it stopped.
//!
//! - [`engine`]: runs, replay, suspension, the alarm, results, cancel, limits, pruning.
//! - [`flow`]: what a workflow calls: steps (with [`retry`] policies, timeouts and
//!   [`breaker`]s), `now`/`random`, sleeps, waits for events, approvals, durable calls
//!   between objects and delayed sends ([`outbox`]), [`cascade`]s over [`ai`] tiers.
//! - [`server`]: the `Workflow`, `Run` and `Approval` capability servers.

pub mod ai;
pub mod approval;
pub mod breaker;
pub mod cascade;
pub mod engine;
pub mod flow;
pub mod outbox;
pub mod retry;
pub mod server;
pub mod store;

pub use ai::Ai;
pub use approval::Decision;
pub use breaker::BreakerConfig;
pub use cascade::{Answer, Answered, Cascade, Tier};
pub use engine::{Engine, WorkflowLimits};
pub use flow::{EventMatch, Flow, WaitFor};
pub use retry::{RetryPolicy, StepOptions};

use rpc_core::RpcError;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// What a workflow returns, boxed.
pub type WorkflowFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, RpcError>>>>;

/// A registered workflow, its type erased.
pub type WorkflowFn = Rc<dyn Fn(Flow, serde_json::Value) -> WorkflowFuture>;

/// The workflows of a class `C`, by name: each gets the live instance, the run's
/// [`Flow`] and its input.
///
/// ```ignore
/// fn workflows(w: &mut Workflows<Self>) {
///     w.add("order", |shop: Rc<Shop>, flow: Flow, input: Value| async move {
///         let reserved: Value = flow.step("reserve", || async { shop.reserve(&input) }).await?;
///         flow.sleep("cool-off", Duration::from_secs(60)).await?;
///         Ok(reserved)
///     });
/// }
/// ```
pub struct Workflows<C> {
    pub(crate) entries: Vec<(String, ClassWorkflow<C>)>,
}

/// A workflow of a class, before the instance is bound.
pub(crate) type ClassWorkflow<C> = Rc<dyn Fn(Rc<C>, Flow, serde_json::Value) -> WorkflowFuture>;

impl<C: 'static> Workflows<C> {
    pub(crate) fn new() -> Self {
        Workflows { entries: Vec::new() }
    }

    /// Registers the workflow `name` (a name of letters, digits, `_`, `-` and `.`,
    /// starting with a letter; at most 64 bytes; checked when the class loads).
    pub fn add<F, Fut>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(Rc<C>, Flow, serde_json::Value) -> Fut + 'static,
        Fut: Future<Output = Result<serde_json::Value, RpcError>> + 'static,
    {
        self.entries.push((name.to_string(), Rc::new(move |c, flow, input| Box::pin(f(c, flow, input)))));
        self
    }
}

/// Checks a workflow's name: INVALID_ARGUMENT unless it is a letter followed by letters,
/// digits, `_`, `-` or `.`, at most 64 bytes.
pub fn check_name(name: &str) -> Result<(), RpcError> {
    let ok = name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RpcError::invalid_argument(format!(
            "{name:?} is not a workflow name (a letter, then letters, digits, '_', '-' or '.'; at most 64 bytes)"
        )))
    }
}
