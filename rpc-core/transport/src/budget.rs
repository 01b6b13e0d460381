//! The server-wide budget for bytes held in partial frames.
//!
//! Each connection reads into a fixed buffer of [`FREE_PER_CONNECTION`] bytes at no
//! charge; a frame that needs more (a large message still arriving) takes the excess
//! from one [`FrameBudget`] shared by every session, and gives it back when the frame is
//! complete or the connection ends. A connection whose partial frame would pass the
//! budget is refused with OVERLOADED, so memory held by partial frames stays under
//! `budget + FREE_PER_CONNECTION × connections`.

use rpc_core::{Code, RpcError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes each connection may hold in a partial frame without drawing on the budget.
pub const FREE_PER_CONNECTION: usize = 64 * 1024;

/// A server-wide count of bytes held in partial frames, with a cap.
#[derive(Debug)]
pub struct FrameBudget {
    limit: usize,
    used: AtomicUsize,
}

impl FrameBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(FrameBudget { limit, used: AtomicUsize::new(0) })
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_add(n).filter(|&t| t <= self.limit))
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One connection's share of a [`FrameBudget`]: what it holds beyond its free buffer.
/// Dropping it gives everything back.
#[derive(Debug)]
pub struct Share {
    budget: Arc<FrameBudget>,
    /// Bytes taken from the budget.
    taken: usize,
}

impl Share {
    /// A share of `budget` holding nothing.
    pub fn new(budget: Arc<FrameBudget>) -> Self {
        Share { budget, taken: 0 }
    }

    /// Sets the bytes this connection holds in its partial frame to `held`; the part over
    /// [`FREE_PER_CONNECTION`] is taken from (or given back to) the budget. Refused with
    /// OVERLOADED, holding what it held before, when the budget cannot cover it.
    pub fn hold(&mut self, held: usize) -> Result<(), RpcError> {
        let want = held.saturating_sub(FREE_PER_CONNECTION);
        if want > self.taken {
            if !self.budget.take(want - self.taken) {
                return Err(RpcError::new(
                    Code::Overloaded,
                    format!(
                        "the server's budget of {} bytes for partial frames is spent: send smaller messages or retry later",
                        self.budget.limit
                    ),
                ));
            }
        } else if want < self.taken {
            self.budget.give(self.taken - want);
        }
        self.taken = want;
        Ok(())
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        if self.taken > 0 {
            self.budget.give(self.taken);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_draw_on_one_budget_and_give_back() {
        let budget = FrameBudget::new(100_000);
        let mut a = Share::new(budget.clone());
        let mut b = Share::new(budget.clone());
        a.hold(FREE_PER_CONNECTION).expect("the free part costs nothing");
        assert_eq!(budget.used(), 0);
        a.hold(FREE_PER_CONNECTION + 60_000).expect("within the budget");
        assert_eq!(budget.used(), 60_000);
        let e = b.hold(FREE_PER_CONNECTION + 50_000).expect_err("over the budget");
        assert_eq!(e.code, Code::Overloaded);
        assert_eq!(budget.used(), 60_000, "a refused share takes nothing");
        a.hold(10).expect("shrinking always works");
        assert_eq!(budget.used(), 0);
        b.hold(FREE_PER_CONNECTION + 50_000).expect("room again");
        drop(b);
        assert_eq!(budget.used(), 0, "a dropped share gives back what it took");
    }
}
