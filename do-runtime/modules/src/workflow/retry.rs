//! How a step is retried and bounded: [`RetryPolicy`] (attempts, exponential backoff
//! with jitter, which codes are worth retrying) and [`StepOptions`] (the policy, a
//! timeout, a circuit breaker).

use super::breaker::BreakerConfig;
use rpc_core::Code;
use std::time::Duration;

/// How a failed step is tried again. The wait before attempt `n + 1` is
/// `min(base * factor^(n-1), max)`, less up to `jitter` of it at random; the run sleeps
/// through it on the object's alarm (holding no memory), so a retry survives restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retry).
    pub max_attempts: u32,
    /// The first wait.
    pub base: Duration,
    /// Each wait is this many times the one before.
    pub factor: f64,
    /// The longest wait.
    pub max: Duration,
    /// The share of each wait taken off at random (0 to 1), so many runs failing
    /// together do not retry together.
    pub jitter: f64,
    /// Codes worth another attempt; a step failing with another code fails at once.
    pub retryable: Vec<Code>,
}

/// The codes of failures that another attempt may cure.
pub const TRANSIENT: &[Code] =
    &[Code::Timeout, Code::Overloaded, Code::Unavailable, Code::Disconnected, Code::Internal];

impl Default for RetryPolicy {
    /// Three attempts, 1 s then 2 s (up to 20% less), for transient codes.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(60),
            jitter: 0.2,
            retryable: TRANSIENT.to_vec(),
        }
    }
}

impl RetryPolicy {
    /// One attempt only.
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// What a durable call uses: up to 30 attempts, 1 s doubling to at most 10 minutes
    /// (about three hours in all), for transient codes: retried until acknowledged, in
    /// practice.
    pub fn until_acknowledged() -> Self {
        RetryPolicy { max_attempts: 30, max: Duration::from_secs(600), ..RetryPolicy::default() }
    }

    /// Whether a failure with `code` on attempt `attempt` (1-based) gets another.
    pub fn retries(&self, code: Code, attempt: u32) -> bool {
        attempt < self.max_attempts && self.retryable.contains(&code)
    }

    /// The wait after failed attempt `attempt` (1-based), before jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.factor.max(1.0).powi(i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX));
        let ms = (self.base.as_millis() as f64 * exp).min(self.max.as_millis() as f64);
        Duration::from_millis(ms.max(0.0) as u64)
    }

    /// The wait after failed attempt `attempt`, with jitter drawn from `random`.
    pub fn delay_with_jitter(&self, attempt: u32, random: u64) -> Duration {
        let d = self.delay(attempt).as_millis() as f64;
        let share = (random % 10_001) as f64 / 10_000.0 * self.jitter.clamp(0.0, 1.0);
        Duration::from_millis((d * (1.0 - share)).max(0.0) as u64)
    }
}

/// How one step runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOptions {
    /// Retries (default: [`RetryPolicy::default`]).
    pub retry: RetryPolicy,
    /// Each attempt fails with TIMEOUT past this (default: none).
    pub timeout: Option<Duration>,
    /// The circuit breaker of the dependency the step calls, if any.
    pub breaker: Option<BreakerConfig>,
}

impl StepOptions {
    /// Options with `retry`.
    pub fn retry(retry: RetryPolicy) -> Self {
        StepOptions { retry, ..StepOptions::default() }
    }

    /// These options with a timeout per attempt.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// These options behind the breaker `breaker`.
    pub fn with_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = Some(breaker);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let p = RetryPolicy { max: Duration::from_secs(5), ..RetryPolicy::default() };
        let waits: Vec<u128> = (1..=5).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(waits, vec![1000, 2000, 4000, 5000, 5000]);
        for r in [0, 1, 5_000, 10_000, u64::MAX] {
            let d = p.delay_with_jitter(2, r).as_millis();
            assert!((1600..=2000).contains(&d), "{d}");
        }
        assert!(p.retries(Code::Timeout, 2) && !p.retries(Code::Timeout, 3), "three attempts in all");
        assert!(!p.retries(Code::InvalidArgument, 1), "a bad argument is not retried");
        assert!(!RetryPolicy::none().retries(Code::Timeout, 1));
    }
}
