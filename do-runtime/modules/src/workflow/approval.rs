//! Approvals: a step that needs a person. The request is a row (who, what, a
//! deadline); the answer comes through the `Approval` capability (or a broker token that
//! opens it), wakes the run, and is recorded as the step's result.

use super::engine::Engine;
use super::store::{int, t, text};
use crate::host::SqlValue;
use rpc_core::{Code, RpcError};
use schema::object_capnp::approval_info;
use serde::{Deserialize, Serialize};

/// A person's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Decision {
    /// Approved by `by`.
    Approved {
        /// Who answered.
        by: String,
        /// What they said.
        comment: String,
    },
    /// Rejected by `by`.
    Rejected {
        /// Who answered.
        by: String,
        /// What they said.
        comment: String,
    },
    /// Nobody answered before the deadline (or the request was cancelled).
    Expired,
}

/// One approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    /// Its id (128 random bits). Anyone who may read the object's workflows can list
    /// it; anyone who may write them (or holds a token for `approval.*`) can answer it.
    pub id: String,
    /// The run that waits for it.
    pub run: String,
    /// The step.
    pub step: String,
    /// Whose answer is asked for.
    pub who: String,
    /// What is to be approved (JSON).
    pub what: String,
    /// The deadline, ms since the epoch.
    pub deadline: i64,
    /// pending | approved | rejected | expired | cancelled
    pub status: String,
    /// Who answered.
    pub answered_by: String,
    /// What they said.
    pub comment: String,
    /// When.
    pub answered_at: i64,
}

const COLUMNS: &str = "id, run, step, who, what, deadline, status, answered_by, comment, answered_at";

impl ApprovalRow {
    fn read(r: &[SqlValue]) -> ApprovalRow {
        ApprovalRow {
            id: text(r, 0),
            run: text(r, 1),
            step: text(r, 2),
            who: text(r, 3),
            what: text(r, 4),
            deadline: int(r, 5),
            status: text(r, 6),
            answered_by: text(r, 7),
            comment: text(r, 8),
            answered_at: int(r, 9),
        }
    }

    /// Fills an `ApprovalInfo`.
    pub fn fill(&self, mut b: approval_info::Builder<'_>) {
        b.set_id(&self.id);
        b.set_run(&self.run);
        b.set_step(&self.step);
        b.set_who(&self.who);
        b.set_what(&self.what);
        b.set_deadline(self.deadline);
        b.set_status(&self.status);
        b.set_answered_by(&self.answered_by);
        b.set_comment(&self.comment);
        b.set_answered_at(self.answered_at);
    }
}

pub(crate) fn create(
    engine: &Engine,
    id: &str,
    run: &str,
    step: &str,
    who: &str,
    what: &serde_json::Value,
    deadline: i64,
) -> Result<(), RpcError> {
    engine.sql.execute(
        "INSERT INTO dotdo_wf_approvals (id, run, step, who, what, deadline, status, created_at)
         VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        &[
            t(id),
            t(run),
            t(step),
            t(who),
            t(&what.to_string()),
            SqlValue::Integer(deadline),
            SqlValue::Integer(engine.env.now_ms()),
        ],
    )?;
    Ok(())
}

/// The approval `id`; NOT_FOUND when there is none.
pub fn load(engine: &Engine, id: &str) -> Result<ApprovalRow, RpcError> {
    let rows = engine.sql.query(&format!("SELECT {COLUMNS} FROM dotdo_wf_approvals WHERE id = ?"), &[t(id)])?;
    rows.first().map(|r| ApprovalRow::read(r)).ok_or_else(|| RpcError::new(Code::NotFound, "no such approval"))
}

/// Approvals in `status` (empty: all), newest first, at most 1,000 and no more than
/// [`super::engine::MAX_LIST_BYTES`] of requests and comments (always at least one).
pub fn list(engine: &Engine, status: &str) -> Result<Vec<ApprovalRow>, RpcError> {
    let rows = engine.sql.query(
        &format!(
            "SELECT {COLUMNS} FROM dotdo_wf_approvals WHERE (?1 = '' OR status = ?1)
             ORDER BY created_at DESC, id LIMIT 1000"
        ),
        &[t(status)],
    )?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for r in &rows {
        let a = ApprovalRow::read(r);
        bytes += a.what.len() + a.comment.len() + 256;
        if !out.is_empty() && bytes > super::engine::MAX_LIST_BYTES {
            break;
        }
        out.push(a);
    }
    Ok(out)
}

/// The decision on approval `id` at `now`, if there is one (a pending approval past
/// its deadline expires here, with its event).
pub(crate) fn settle(engine: &Engine, id: &str, now: i64) -> Result<Option<Decision>, RpcError> {
    let a = load(engine, id)?;
    Ok(match a.status.as_str() {
        "approved" => Some(Decision::Approved { by: a.answered_by, comment: a.comment }),
        "rejected" => Some(Decision::Rejected { by: a.answered_by, comment: a.comment }),
        "pending" if now >= a.deadline => {
            expire(engine, &a)?;
            Some(Decision::Expired)
        }
        "pending" => None,
        _ => Some(Decision::Expired),
    })
}

fn expire(engine: &Engine, a: &ApprovalRow) -> Result<(), RpcError> {
    let mut event = None;
    engine.sql.transaction(&mut || {
        let n = engine.sql.execute(
            "UPDATE dotdo_wf_approvals SET status = 'expired' WHERE id = ? AND status = 'pending'",
            &[t(&a.id)],
        )?;
        if n > 0 {
            let data = serde_json::json!({"id": a.id, "run": a.run});
            event = Some(engine.hub.record("Approval.expired", &data.to_string())?);
        }
        Ok(())
    })?;
    if let Some(e) = event {
        engine.hub.publish(&e);
    }
    Ok(())
}

/// Answers approval `id` (approve or reject) as `by` with `comment`, and wakes its
/// run. CONFLICT when it was answered (or cancelled) already, EXPIRED past its deadline,
/// NOT_FOUND when there is none.
pub fn answer(engine: &Engine, id: &str, approve: bool, by: &str, comment: &str) -> Result<ApprovalRow, RpcError> {
    if by.len() > 256 || comment.len() > 64 << 10 {
        return Err(RpcError::new(Code::LimitExceeded, "an answer's `by` is at most 256 bytes, its comment 64 KiB"));
    }
    let a = load(engine, id)?;
    let now = engine.env.now_ms();
    if a.status != "pending" {
        return Err(RpcError::new(Code::Conflict, format!("approval {id} is {} already", a.status)));
    }
    if now >= a.deadline {
        expire(engine, &a)?;
        engine.wake(&a.run);
        return Err(RpcError::new(Code::Expired, format!("approval {id} expired at {}", a.deadline)));
    }
    let status = if approve { "approved" } else { "rejected" };
    let by = if by.is_empty() { "anonymous" } else { by };
    let mut event = None;
    engine.sql.transaction(&mut || {
        engine.sql.execute(
            "UPDATE dotdo_wf_approvals SET status = ?, answered_by = ?, comment = ?, answered_at = ?
             WHERE id = ? AND status = 'pending'",
            &[t(status), t(by), t(comment), SqlValue::Integer(now), t(id)],
        )?;
        // The run is due now: if the process dies before the wake-up below, the alarm
        // wakes it.
        engine.sql.execute(
            "UPDATE dotdo_wf_runs SET wake_at = ? WHERE id = ? AND status = 'waiting'",
            &[SqlValue::Integer(now), t(&a.run)],
        )?;
        let data = serde_json::json!({"id": id, "run": a.run, "by": by});
        event = Some(engine.hub.record(&format!("Approval.{status}"), &data.to_string())?);
        Ok(())
    })?;
    if let Some(e) = event {
        engine.hub.publish(&e);
    }
    engine.rearm()?;
    engine.wake(&a.run);
    load(engine, id)
}
