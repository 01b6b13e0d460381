//! A streaming session's two read deadlines, on one timer: the idle timeout (no frame in
//! either direction) and the partial-frame timeout (a frame started and not finished).
//!
//! A frame only records the time (no timer is touched per frame); the one timer is armed
//! for the nearest deadline and, when it fires early because of activity since, re-armed.

use rpc_core::{Code, RpcError};
use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The deadlines of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// No frame in either direction for this long closes the session.
    pub idle: Duration,
    /// A frame not completed this long after its first byte closes the session.
    pub frame: Duration,
}

/// The clock of one session (see the module docs).
#[derive(Debug)]
pub(crate) struct SessionTimer {
    timeouts: Timeouts,
    last_activity: Instant,
    partial_since: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
}

impl SessionTimer {
    pub(crate) fn new(timeouts: Timeouts) -> Self {
        let now = Instant::now();
        SessionTimer {
            timeouts,
            last_activity: now,
            partial_since: None,
            sleep: Box::pin(tokio::time::sleep_until(now + timeouts.idle)),
        }
    }

    /// A frame went in or out.
    pub(crate) fn activity(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Whether a frame has started and is not complete yet.
    pub(crate) fn partial(&mut self, partial: bool) {
        match (partial, self.partial_since) {
            (true, None) => self.partial_since = Some(Instant::now()),
            (false, Some(_)) => self.partial_since = None,
            _ => {}
        }
    }

    /// The error ending the session if a deadline has passed at `now`, else the nearest
    /// deadline.
    fn check(&self, now: Instant) -> Result<Instant, RpcError> {
        let idle_at = self.last_activity + self.timeouts.idle;
        let frame_at = self.partial_since.map(|t| t + self.timeouts.frame);
        if frame_at.is_some_and(|at| at <= now) {
            return Err(RpcError::new(
                Code::Timeout,
                format!("a frame was not completed within {} ms", self.timeouts.frame.as_millis()),
            ));
        }
        if idle_at <= now {
            return Err(RpcError::new(
                Code::Timeout,
                format!("the session was idle for {} ms", self.timeouts.idle.as_millis()),
            ));
        }
        Ok(frame_at.map_or(idle_at, |f| f.min(idle_at)))
    }

    /// The error ending the session once a deadline has passed; otherwise arms the timer
    /// so `cx` is woken at the nearest one.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Option<RpcError> {
        loop {
            let at = match self.check(Instant::now()) {
                Ok(at) => at,
                Err(e) => return Some(e),
            };
            if self.sleep.deadline() != at {
                self.sleep.as_mut().reset(at);
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    fn code(r: Result<Instant, RpcError>) -> Option<Code> {
        r.err().map(|e| e.code)
    }

    #[tokio::test]
    async fn activity_postpones_the_idle_deadline() {
        let mut t = SessionTimer::new(Timeouts { idle: Duration::from_secs(10), frame: Duration::from_secs(3) });
        let t0 = t.last_activity;
        assert_eq!(t.check(at(t0, 9)).ok(), Some(at(t0, 10)));
        t.last_activity = at(t0, 9);
        assert_eq!(code(t.check(at(t0, 18))), None, "9 s since the last frame");
        assert_eq!(code(t.check(at(t0, 19))), Some(Code::Timeout));
    }

    #[tokio::test]
    async fn a_partial_frame_has_its_own_shorter_deadline() {
        let mut t = SessionTimer::new(Timeouts { idle: Duration::from_secs(10), frame: Duration::from_secs(3) });
        let t0 = t.last_activity;
        t.partial(true);
        let started = t.partial_since.expect("a partial frame");
        t.partial(true);
        assert_eq!(t.partial_since, Some(started), "more bytes of the same frame keep its start");
        assert_eq!(t.check(started).ok(), Some(started + Duration::from_secs(3)));
        t.last_activity = at(t0, 2);
        assert_eq!(code(t.check(started + Duration::from_secs(3))), Some(Code::Timeout), "3 s after its first byte");
        t.partial(false);
        assert_eq!(code(t.check(at(t0, 5))), None, "a completed frame clears it");
    }
}
