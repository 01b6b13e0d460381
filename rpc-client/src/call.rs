//! A call in flight, as the typed clients return it: `.await` it for a plain Rust reply,
//! or use the capabilities of its results before it arrives (promise pipelining). Each
//! call carries [`CallOptions`]: a deadline past which it fails with `TIMEOUT` and is
//! cancelled on the server (the client's `Finish` drops the server's work on it).

use capnp::capability::RemotePromise;
use capnp::traits::{Owned, Pipelined};
use rpc_core::{Code, RpcError};
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// How calls are made: set on a typed client with `with_options` or `with_deadline`,
/// and inherited by the capabilities it hands out.
///
/// ```
/// use std::time::Duration;
/// let options = rpc_client::CallOptions { deadline: Some(Duration::from_millis(250)) };
/// assert_eq!(options.deadline, Some(Duration::from_millis(250)));
/// assert_eq!(rpc_client::CallOptions::default().deadline, None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// How long a call may take before it fails with `TIMEOUT` and is cancelled; `None`
    /// leaves it to the server's own call timeout.
    pub deadline: Option<Duration>,
}

/// A reply read from a call's results (capnp type `P`); generated for every method.
///
/// ```
/// use rpc_client::{CallOptions, FromResults};
/// // A method without results replies with `()`.
/// let results = capnp::message::Builder::new_default();
/// let reader = results.get_root_as_reader::<capnp::any_pointer::Reader<'_>>().unwrap();
/// let reply: () = <() as FromResults<capnp::any_pointer::Owned>>::read(reader, &CallOptions::default()).unwrap();
/// assert_eq!(reply, ());
/// ```
pub trait FromResults<P: Owned>: Sized {
    /// Reads the reply; capabilities in it make their calls with `options`.
    fn read(results: P::Reader<'_>, options: &CallOptions) -> Result<Self, RpcError>;
}

impl<P: Owned> FromResults<P> for () {
    fn read(_: P::Reader<'_>, _: &CallOptions) -> Result<(), RpcError> {
        Ok(())
    }
}

/// A call in flight whose results (capnp type `P`) become a `T`.
///
/// ```no_run
/// # async fn example(directory: rpc_client::api::demo::Directory) -> Result<(), rpc_client::RpcError> {
/// let call = directory.echo(7);      // a Call: sent, not awaited yet
/// let reply = call.await?;            // the reply as plain Rust values
/// assert_eq!(reply.x, 7);
/// # Ok(()) }
/// ```
pub struct Call<P: Pipelined + Owned + 'static, T> {
    remote: RemotePromise<P>,
    options: CallOptions,
    reply: PhantomData<fn() -> T>,
}

impl<P: Pipelined + Owned + 'static, T: FromResults<P>> Call<P, T> {
    /// A call of a sent request (what generated clients do for each method).
    ///
    /// ```no_run
    /// # async fn example(raw: schema::demo_capnp::directory::Client) -> Result<(), rpc_client::RpcError> {
    /// use rpc_client::api::demo::directory::EchoReply;
    /// let mut request = raw.echo_request();
    /// request.get().set_x(5);
    /// let call: rpc_client::Call<_, EchoReply> = rpc_client::Call::new(request.send(), Default::default());
    /// assert_eq!(call.await?.x, 5);
    /// # Ok(()) }
    /// ```
    pub fn new(remote: RemotePromise<P>, options: CallOptions) -> Self {
        Call { remote, options, reply: PhantomData }
    }

    /// The results' pipeline: capabilities of the results, callable before they arrive.
    ///
    /// ```no_run
    /// # async fn example(dir: rpc_client::api::demo::Directory) -> Result<(), rpc_client::RpcError> {
    /// let call = dir.open("docs").into_call();
    /// let file = call.pipeline().get_file(); // capnpc's raw pipeline
    /// let text = file.read_request().send().promise.await?;
    /// # let _ = text;
    /// # Ok(()) }
    /// ```
    pub fn pipeline(&self) -> &P::Pipeline {
        &self.remote.pipeline
    }

    /// The options this call was made with.
    ///
    /// ```no_run
    /// # async fn example(dir: rpc_client::api::demo::Directory) {
    /// let dir = dir.with_deadline(std::time::Duration::from_secs(1));
    /// assert_eq!(dir.echo(1).options().deadline, Some(std::time::Duration::from_secs(1)));
    /// # }
    /// ```
    pub fn options(&self) -> CallOptions {
        self.options
    }

    /// The raw capnp promise and pipeline, for anything the typed reply does not cover.
    ///
    /// ```no_run
    /// # async fn example(dir: rpc_client::api::demo::Directory) -> Result<(), rpc_client::RpcError> {
    /// let raw = dir.echo(9).into_raw();
    /// assert_eq!(raw.promise.await?.get()?.get_x(), 9);
    /// # Ok(()) }
    /// ```
    pub fn into_raw(self) -> RemotePromise<P> {
        self.remote
    }
}

impl<P: Pipelined + Owned + 'static, T: FromResults<P>> IntoFuture for Call<P, T> {
    type Output = Result<T, RpcError>;
    type IntoFuture = CallFuture<P, T>;

    fn into_future(self) -> CallFuture<P, T> {
        CallFuture {
            promise: self.remote.promise,
            deadline: self.options.deadline.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            options: self.options,
            reply: PhantomData,
        }
    }
}

/// The future of an awaited [`Call`].
///
/// ```no_run
/// # async fn example(dir: rpc_client::api::demo::Directory) -> Result<(), rpc_client::RpcError> {
/// use std::future::IntoFuture;
/// let futures: Vec<_> = (0..3).map(|i| dir.echo(i).into_future()).collect();
/// for (i, reply) in futures::future::join_all(futures).await.into_iter().enumerate() {
///     assert_eq!(reply?.x, i as u64);
/// }
/// # Ok(()) }
/// ```
pub struct CallFuture<P: Pipelined + Owned + 'static, T> {
    promise: capnp::capability::Promise<capnp::capability::Response<P>, capnp::Error>,
    deadline: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    options: CallOptions,
    reply: PhantomData<fn() -> T>,
}

impl<P: Pipelined + Owned + 'static, T: FromResults<P>> Future for CallFuture<P, T> {
    type Output = Result<T, RpcError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(r) = Pin::new(&mut this.promise).poll(cx) {
            let response = r.map_err(RpcError::from)?;
            return Poll::Ready(response.get().map_err(RpcError::from).and_then(|r| T::read(r, &this.options)));
        }
        if let Some((limit, sleep)) = &mut this.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                // Dropping the promise (with this future) cancels the call on the server.
                return Poll::Ready(Err(RpcError::new(
                    Code::Timeout,
                    format!("the call did not finish within its deadline of {limit:?}"),
                )));
            }
        }
        Poll::Pending
    }
}
