//! The host's clock: the system clock, or a manual one that tests advance (a test
//! seam, as quinn's fake clock): objects read time through their `Env` and the alarm
//! waker sleeps on this clock, so a test moves time forward instead of sleeping.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Milliseconds since the Unix epoch, from the system clock or a manual one. Clones
/// share the same time.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<watch::Sender<i64>>>);

impl Clock {
    /// The system clock (the default).
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands at `start_ms` until [`Clock::advance`] moves it.
    pub fn manual(start_ms: i64) -> Clock {
        Clock(Some(Arc::new(watch::Sender::new(start_ms))))
    }

    /// The time now, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Some(t) => *t.borrow(),
        }
    }

    /// Moves a manual clock forward by `by`, waking whatever sleeps on it; returns the
    /// new time. The system clock cannot be moved: it only reports its time.
    pub fn advance(&self, by: Duration) -> i64 {
        match &self.0 {
            None => self.now_ms(),
            Some(t) => {
                let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
                t.send_modify(|now| *now = now.saturating_add(by));
                *t.borrow()
            }
        }
    }

    /// Completes once the clock reads `at_ms` or later.
    pub async fn sleep_until(&self, at_ms: i64) {
        match &self.0 {
            None => {
                let wait = at_ms.saturating_sub(self.now_ms()).max(0);
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            Some(t) => {
                let mut rx = t.subscribe();
                // The sender lives as long as this clock, so `wait_for` cannot fail.
                let _ = rx.wait_for(|now| *now >= at_ms).await;
            }
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::System"),
            Some(t) => write!(f, "Clock::Manual({})", *t.borrow()),
        }
    }
}

/// Two clocks are equal when both are the system clock or both are the same manual one.
impl PartialEq for Clock {
    fn eq(&self, other: &Clock) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Clock {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_wakes_sleepers() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let sleeper = tokio::spawn({
                let clock = clock.clone();
                async move { clock.sleep_until(3_000).await }
            });
            tokio::task::yield_now().await;
            assert_eq!(clock.advance(Duration::from_millis(1_500)), 2_500);
            tokio::task::yield_now().await;
            assert!(!sleeper.is_finished(), "not there yet");
            clock.advance(Duration::from_millis(500));
            tokio::time::timeout(Duration::from_secs(5), sleeper).await.expect("woken").expect("no panic");
        });
        assert_eq!(clock.now_ms(), 3_000);
        assert_eq!(clock, clock.clone());
        assert_ne!(clock, Clock::manual(3_000));
        assert_eq!(Clock::system(), Clock::default());
    }
}
