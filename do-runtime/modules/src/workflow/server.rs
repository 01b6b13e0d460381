//! The capability servers: `Workflow` (an object's workflows), `Run` (one run) and
//! `Approval` (one approval request).

use super::approval;
use super::engine::Engine;
use capnp::capability::Rc as CapRc;
use rpc_core::params::text;
use schema::object_capnp::{approval as approval_cap, run, workflow};
use std::rc::Rc;

/// Serves `Workflow` for one object.
pub struct WorkflowServer {
    engine: Rc<Engine>,
}

impl WorkflowServer {
    /// The server over `engine`.
    pub fn new(engine: Rc<Engine>) -> Self {
        WorkflowServer { engine }
    }
}

/// Serves `Run` for one run.
pub struct RunServer {
    engine: Rc<Engine>,
    id: String,
}

/// Serves `Approval` for one approval request.
pub struct ApprovalServer {
    engine: Rc<Engine>,
    id: String,
}

impl workflow::Server for WorkflowServer {
    async fn start(
        self: CapRc<Self>,
        params: workflow::StartParams,
        mut results: workflow::StartResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let id = self.engine.start(&text(p.get_name())?, &text(p.get_input())?, &text(p.get_id())?)?;
        results.get().set_run(capnp_rpc::new_client(RunServer { engine: self.engine.clone(), id }));
        Ok(())
    }

    async fn run(
        self: CapRc<Self>,
        params: workflow::RunParams,
        mut results: workflow::RunResults,
    ) -> capnp::Result<()> {
        let id = text(params.get()?.get_id())?;
        self.engine.run_row(&id)?;
        results.get().set_run(capnp_rpc::new_client(RunServer { engine: self.engine.clone(), id }));
        Ok(())
    }

    async fn list(
        self: CapRc<Self>,
        params: workflow::ListParams,
        mut results: workflow::ListResults,
    ) -> capnp::Result<()> {
        let runs = self.engine.list(&text(params.get()?.get_filter())?)?;
        let mut list = results.get().init_runs(runs.len() as u32);
        for (i, r) in runs.iter().enumerate() {
            r.fill(list.reborrow().get(i as u32));
        }
        Ok(())
    }

    async fn approval(
        self: CapRc<Self>,
        params: workflow::ApprovalParams,
        mut results: workflow::ApprovalResults,
    ) -> capnp::Result<()> {
        let id = text(params.get()?.get_id())?;
        approval::load(&self.engine, &id)?;
        results.get().set_approval(capnp_rpc::new_client(ApprovalServer { engine: self.engine.clone(), id }));
        Ok(())
    }

    async fn approvals(
        self: CapRc<Self>,
        params: workflow::ApprovalsParams,
        mut results: workflow::ApprovalsResults,
    ) -> capnp::Result<()> {
        let rows = approval::list(&self.engine, &text(params.get()?.get_status())?)?;
        let mut list = results.get().init_approvals(rows.len() as u32);
        for (i, a) in rows.iter().enumerate() {
            a.fill(list.reborrow().get(i as u32));
        }
        Ok(())
    }

    async fn names(
        self: CapRc<Self>,
        _: workflow::NamesParams,
        mut results: workflow::NamesResults,
    ) -> capnp::Result<()> {
        let names = self.engine.names();
        let mut list = results.get().init_names(names.len() as u32);
        for (i, n) in names.iter().enumerate() {
            list.set(i as u32, n);
        }
        Ok(())
    }
}

impl run::Server for RunServer {
    async fn status(self: CapRc<Self>, _: run::StatusParams, mut results: run::StatusResults) -> capnp::Result<()> {
        self.engine.run_row(&self.id)?.fill(results.get().init_info());
        Ok(())
    }

    async fn result(self: CapRc<Self>, _: run::ResultParams, mut results: run::ResultResults) -> capnp::Result<()> {
        let out = self.engine.result(&self.id).await?;
        results.get().set_result(out);
        Ok(())
    }

    async fn cancel(self: CapRc<Self>, _: run::CancelParams, mut results: run::CancelResults) -> capnp::Result<()> {
        results.get().set_cancelled(self.engine.cancel(&self.id)?);
        Ok(())
    }

    async fn history(self: CapRc<Self>, _: run::HistoryParams, mut results: run::HistoryResults) -> capnp::Result<()> {
        let steps = self.engine.history(&self.id)?;
        let mut list = results.get().init_steps(steps.len() as u32);
        for (i, s) in steps.iter().enumerate() {
            s.fill(list.reborrow().get(i as u32));
        }
        Ok(())
    }
}

impl approval_cap::Server for ApprovalServer {
    async fn info(
        self: CapRc<Self>,
        _: approval_cap::InfoParams,
        mut results: approval_cap::InfoResults,
    ) -> capnp::Result<()> {
        approval::load(&self.engine, &self.id)?.fill(results.get().init_info());
        Ok(())
    }

    async fn approve(
        self: CapRc<Self>,
        params: approval_cap::ApproveParams,
        mut results: approval_cap::ApproveResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let a = approval::answer(&self.engine, &self.id, true, &text(p.get_by())?, &text(p.get_comment())?)?;
        a.fill(results.get().init_info());
        Ok(())
    }

    async fn reject(
        self: CapRc<Self>,
        params: approval_cap::RejectParams,
        mut results: approval_cap::RejectResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let a = approval::answer(&self.engine, &self.id, false, &text(p.get_by())?, &text(p.get_comment())?)?;
        a.fill(results.get().init_info());
        Ok(())
    }
}
