//! Cascades: a step answered by the first of several tiers that answers with enough
//! confidence — code, then a generative model, then an agentic one, then a person.
//! Each tier's attempt is a step of its own (`name/1.code`, `name/2.generative`...),
//! so a replay skips the tiers that already answered or failed; the tier that
//! answered is recorded on the cascade's step.

use super::flow::Flow;
use super::retry::{RetryPolicy, StepOptions};
use super::Decision;
use rpc_core::{Code, RpcError};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A tier's answer and how sure it is (0 to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The answer (JSON).
    pub value: serde_json::Value,
    /// How sure the tier is.
    pub confidence: f64,
}

/// The answer of a cascade and the tier that gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answered {
    /// The answer.
    pub value: serde_json::Value,
    /// `code`, `generative`, `agentic` or `human`.
    pub tier: String,
    /// The tier's confidence.
    pub confidence: f64,
}

/// What a code tier runs.
pub type CodeTier = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<Answer, RpcError>>>>>;

/// One tier.
pub enum Tier {
    /// Code: its answer, or an error to move on.
    Code(CodeTier),
    /// One completion of the host's model. The model's JSON is the answer; when it is
    /// an object with `answer` and `confidence`, those are taken (else confidence 1).
    Generative {
        /// The prompt.
        prompt: String,
        /// The JSON Schema of the answer.
        schema: Option<serde_json::Value>,
    },
    /// The model in a loop: each turn sees the previous turn's output, until one says
    /// `"done": true` or `max_turns` have run; the last turn's answer counts.
    Agentic {
        /// The task.
        prompt: String,
        /// The JSON Schema of each turn's output.
        schema: Option<serde_json::Value>,
        /// Turns at most.
        max_turns: u32,
    },
    /// A person, through an approval: approved, the comment is the answer (as JSON if
    /// it parses, else as text) with confidence 1; rejected or expired, the cascade
    /// fails.
    Human {
        /// Whose answer is asked for.
        who: String,
        /// How long they have.
        timeout: Duration,
    },
}

impl Tier {
    /// A code tier.
    pub fn code<F, Fut>(f: F) -> Tier
    where
        F: FnOnce() -> Fut + 'static,
        Fut: Future<Output = Result<Answer, RpcError>> + 'static,
    {
        Tier::Code(Box::new(move || Box::pin(f())))
    }

    fn kind(&self) -> &'static str {
        match self {
            Tier::Code(_) => "code",
            Tier::Generative { .. } => "generative",
            Tier::Agentic { .. } => "agentic",
            Tier::Human { .. } => "human",
        }
    }
}

/// A question and the tiers that may answer it.
pub struct Cascade {
    /// What is asked (shown to the models and the person, with earlier tiers' answers).
    pub question: serde_json::Value,
    /// The tiers, in order.
    pub tiers: Vec<Tier>,
    /// An answer below this confidence moves on to the next tier.
    pub min_confidence: f64,
}

fn answer_of(v: serde_json::Value) -> Answer {
    let confidence = v.get("confidence").and_then(serde_json::Value::as_f64);
    match (v.get("answer").cloned(), confidence) {
        (Some(answer), Some(c)) => Answer { value: answer, confidence: c },
        (None, Some(c)) => Answer { value: v, confidence: c },
        _ => Answer { value: v, confidence: 1.0 },
    }
}

fn no_model() -> RpcError {
    RpcError::new(Code::Unavailable, "no AI model is configured on this host (DOTDO_AI_BASE_URL)")
}

impl Flow {
    /// Runs `cascade` as the step `name`: the first tier whose answer reaches the
    /// confidence wins and is recorded with its tier. When none does, the last tier's
    /// error (UNAVAILABLE when it answered with too little confidence).
    pub async fn cascade(&self, name: &str, cascade: Cascade) -> Result<Answered, RpcError> {
        let key = self.step_key(name)?;
        if let Some(r) = self.recorded_step(&key) {
            if r.status == "completed" {
                return serde_json::from_str(r.result.as_deref().unwrap_or("null"))
                    .map_err(|e| RpcError::new(Code::Internal, format!("recorded cascade: {e}")));
            }
            if r.status == "failed" {
                return Err(RpcError::new(Code::parse(&r.error_code).unwrap_or(Code::Internal), r.error));
            }
        }
        let once = StepOptions::retry(RetryPolicy::none());
        let mut tried: Vec<serde_json::Value> = Vec::new();
        let mut last = RpcError::new(Code::Unavailable, "the cascade has no tiers");
        for (i, tier) in cascade.tiers.into_iter().enumerate() {
            let kind = tier.kind();
            let sub = format!("{key}/{}.{kind}", i + 1);
            let context = serde_json::json!({"question": cascade.question, "earlier": tried});
            let answer: Result<Answer, RpcError> = match tier {
                Tier::Code(f) => self.attempt(&sub, "tier", &once, |_| f()).await,
                Tier::Generative { prompt, schema } => {
                    let ai = self.ai();
                    self.attempt(&sub, "tier", &once, |_| async move {
                        let ai = ai.ok_or_else(no_model)?;
                        let prompt = format!("{prompt}\n\nContext (JSON): {context}");
                        Ok(answer_of(ai.complete(&prompt, schema.as_ref()).await?))
                    })
                    .await
                }
                Tier::Agentic { prompt, schema, max_turns } => {
                    let ai = self.ai();
                    self.attempt(&sub, "tier", &once, |_| async move {
                        let ai = ai.ok_or_else(no_model)?;
                        let mut previous = serde_json::Value::Null;
                        for turn in 1..=max_turns.max(1) {
                            let prompt = format!(
                                "{prompt}\n\nContext (JSON): {context}\nTurn {turn} of {max_turns}. Your previous output: {previous}\nSay \"done\": true when finished."
                            );
                            previous = ai.complete(&prompt, schema.as_ref()).await?;
                            if previous.get("done").and_then(serde_json::Value::as_bool) == Some(true) {
                                break;
                            }
                        }
                        Ok(answer_of(previous))
                    })
                    .await
                }
                Tier::Human { who, timeout } => match self.approval_at(&sub, "tier", &who, context, timeout).await? {
                    Decision::Approved { comment, .. } => Ok(Answer {
                        value: serde_json::from_str(&comment).unwrap_or(serde_json::Value::String(comment)),
                        confidence: 1.0,
                    }),
                    Decision::Rejected { by, comment } => {
                        Err(RpcError::new(Code::Forbidden, format!("{by} rejected it: {comment}")))
                    }
                    Decision::Expired => Err(RpcError::new(Code::Timeout, format!("{who} did not answer in time"))),
                },
            };
            match answer {
                Ok(a) if a.confidence >= cascade.min_confidence => {
                    let answered = Answered { value: a.value, tier: kind.to_string(), confidence: a.confidence };
                    let json = serde_json::to_value(&answered)
                        .map_err(|e| RpcError::new(Code::Internal, format!("answer: {e}")))?;
                    self.record_completed(&key, "cascade", kind, &json).await?;
                    return Ok(answered);
                }
                Ok(a) => {
                    last = RpcError::new(
                        Code::Unavailable,
                        format!(
                            "the {kind} tier answered with confidence {} (< {})",
                            a.confidence, cascade.min_confidence
                        ),
                    );
                    tried.push(serde_json::json!({"tier": kind, "answer": a.value, "confidence": a.confidence}));
                }
                Err(e) => {
                    tried.push(serde_json::json!({"tier": kind, "error": e.message, "code": e.code.as_str()}));
                    last = e;
                }
            }
        }
        self.record_failed(&key, "cascade", &last).await?;
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::answer_of;
    use serde_json::json;

    #[test]
    fn a_model_answer_reads_its_confidence() {
        let a = answer_of(json!({"answer": "yes", "confidence": 0.4}));
        assert_eq!((a.value, a.confidence), (json!("yes"), 0.4));
        let a = answer_of(json!({"label": "spam", "confidence": 0.9}));
        assert_eq!(a.value["label"], "spam");
        assert_eq!(answer_of(json!([1, 2])).confidence, 1.0);
    }
}
