//! The demonstration object set (`demo.capnp`): a directory that opens files, files
//! that open children and return text, and callbacks into the caller. Examples, tests
//! and benchmarks use it to show pipelining, capability passing and release; every
//! host serves it as `gateway.demo()`, each with its own timer for `sleep`.

use crate::layer::Stack;
use crate::params::text;
use crate::RpcError;
use capnp::capability::Rc;
use schema::demo_capnp::{callback, directory, file, tree};
use std::cell::Cell;

/// A timer: a future that completes after the duration (tokio's natively, the
/// platform's `setTimeout` in a Worker).
pub type Sleep = fn(std::time::Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Serves `Directory` for one session.
pub struct DirectoryServer {
    stack: Stack,
    timer: Sleep,
    live: std::rc::Rc<Cell<u32>>,
    /// `sleep` calls running now.
    sleeping: std::rc::Rc<Cell<u32>>,
}

/// Counts one running `sleep` call until it finishes or is cancelled (dropped).
struct Running(std::rc::Rc<Cell<u32>>);

impl Running {
    fn start(count: &std::rc::Rc<Cell<u32>>) -> Running {
        count.set(count.get() + 1);
        Running(count.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl DirectoryServer {
    /// A directory whose files are served inside `stack`, sleeping on `timer`.
    pub fn new(stack: Stack, timer: Sleep) -> Self {
        DirectoryServer { stack, timer, live: std::rc::Rc::default(), sleeping: std::rc::Rc::default() }
    }

    fn file(&self, name: String) -> file::Client {
        self.live.set(self.live.get() + 1);
        self.stack.server(FileServer { name, live: self.live.clone(), stack: self.stack.clone() })
    }
}

fn tree_depth(t: tree::Reader<'_>) -> capnp::Result<u32> {
    let mut deepest = 0;
    for child in t.get_children()? {
        deepest = deepest.max(tree_depth(child)?);
    }
    Ok(deepest + 1)
}

impl directory::Server for DirectoryServer {
    async fn open(
        self: Rc<Self>,
        params: directory::OpenParams,
        mut results: directory::OpenResults,
    ) -> capnp::Result<()> {
        let name = text(params.get()?.get_name())?;
        if name.is_empty() {
            return Err(RpcError::invalid_argument("a file needs a name").into());
        }
        results.get().set_file(self.file(name));
        Ok(())
    }

    async fn echo(
        self: Rc<Self>,
        params: directory::EchoParams,
        mut results: directory::EchoResults,
    ) -> capnp::Result<()> {
        results.get().set_x(params.get()?.get_x());
        Ok(())
    }

    async fn next(
        self: Rc<Self>,
        params: directory::NextParams,
        mut results: directory::NextResults,
    ) -> capnp::Result<()> {
        let n = params.get()?.get_n();
        let next = n.checked_add(1).ok_or_else(|| RpcError::invalid_argument("n + 1 overflows"))?;
        results.get().set_n(next);
        Ok(())
    }

    async fn subscribe(
        self: Rc<Self>,
        params: directory::SubscribeParams,
        mut results: directory::SubscribeResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let callback: callback::Client = p.get_callback()?;
        let value = text(p.get_value())?;
        let mut req = callback.notify_request();
        req.get().set_value(&value);
        let reply = req.send().promise.await?;
        let reply = text(reply.get()?.get_reply())?;
        results.get().set_reply(&reply);
        Ok(())
    }

    async fn live_files(
        self: Rc<Self>,
        _: directory::LiveFilesParams,
        mut results: directory::LiveFilesResults,
    ) -> capnp::Result<()> {
        results.get().set_count(self.live.get());
        Ok(())
    }

    async fn sleep(self: Rc<Self>, params: directory::SleepParams, _: directory::SleepResults) -> capnp::Result<()> {
        let millis = params.get()?.get_millis();
        let _running = Running::start(&self.sleeping);
        (self.timer)(std::time::Duration::from_millis(u64::from(millis))).await;
        Ok(())
    }

    async fn sleeping(
        self: Rc<Self>,
        _: directory::SleepingParams,
        mut results: directory::SleepingResults,
    ) -> capnp::Result<()> {
        results.get().set_count(self.sleeping.get());
        Ok(())
    }

    async fn sum(
        self: Rc<Self>,
        params: directory::SumParams,
        mut results: directory::SumResults,
    ) -> capnp::Result<()> {
        let mut total: i64 = 0;
        for v in params.get()?.get_values()? {
            total = total.checked_add(v).ok_or_else(|| RpcError::invalid_argument("sum overflows"))?;
        }
        results.get().set_total(total);
        Ok(())
    }

    async fn depth(
        self: Rc<Self>,
        params: directory::DepthParams,
        mut results: directory::DepthResults,
    ) -> capnp::Result<()> {
        results.get().set_depth(tree_depth(params.get()?.get_tree()?)?);
        Ok(())
    }
}

/// Serves one `File`; counts itself live until the last reference is released.
struct FileServer {
    name: String,
    live: std::rc::Rc<Cell<u32>>,
    stack: Stack,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.live.set(self.live.get().saturating_sub(1));
    }
}

impl file::Server for FileServer {
    async fn name(self: Rc<Self>, _: file::NameParams, mut results: file::NameResults) -> capnp::Result<()> {
        results.get().set_name(&self.name);
        Ok(())
    }

    async fn child(self: Rc<Self>, params: file::ChildParams, mut results: file::ChildResults) -> capnp::Result<()> {
        let name = text(params.get()?.get_name())?;
        self.live.set(self.live.get() + 1);
        let child =
            FileServer { name: format!("{}/{name}", self.name), live: self.live.clone(), stack: self.stack.clone() };
        results.get().set_file(self.stack.server(child));
        Ok(())
    }

    async fn read(self: Rc<Self>, _: file::ReadParams, mut results: file::ReadResults) -> capnp::Result<()> {
        results.get().set_text(format!("contents of {}", self.name));
        Ok(())
    }
}
