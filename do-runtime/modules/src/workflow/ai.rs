//! The hook of a cascade's generative and agentic tiers: [`Ai::complete`] turns a
//! prompt (and the JSON Schema the answer must follow) into JSON. The host provides
//! the implementation (natively, an OpenAI-compatible HTTP endpoint named by the
//! environment); nothing here is tied to one vendor.

use rpc_core::RpcError;
use std::future::Future;
use std::pin::Pin;

/// What [`Ai::complete`] returns.
pub type AiFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, RpcError>>>>;

/// A model that answers prompts with JSON.
pub trait Ai {
    /// Asks `prompt`; the answer is JSON following `schema` (a JSON Schema) when given.
    /// A model that cannot be reached is UNAVAILABLE (retryable); one that answers
    /// something other than JSON is INTERNAL.
    fn complete(&self, prompt: &str, schema: Option<&serde_json::Value>) -> AiFuture;
}
