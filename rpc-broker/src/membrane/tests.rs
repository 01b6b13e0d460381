//! The membrane around a small object: what a token allows gets through, everything
//! else is refused with its code, and the modules handed out are wrapped too. Calls go
//! through `ClientHook::call`, as calls from a peer do (a future client forwards them).

use super::*;
use crate::token::{KeyRing, MintRequest};
use capnp::capability::Rc as CapRc;
use schema::object_capnp::storage;

/// An object whose storage counts 42 and creates nothing.
struct Obj;
struct Store;

impl object::Server for Obj {
    async fn info(self: CapRc<Self>, _: object::InfoParams, mut r: object::InfoResults) -> capnp::Result<()> {
        r.get().set_name("acme");
        Ok(())
    }

    async fn storage(self: CapRc<Self>, _: object::StorageParams, mut r: object::StorageResults) -> capnp::Result<()> {
        r.get().set_storage(capnp_rpc::new_client(Store));
        Ok(())
    }
}

impl storage::Server for Store {
    async fn count(self: CapRc<Self>, _: storage::CountParams, mut r: storage::CountResults) -> capnp::Result<()> {
        r.get().set_count(42);
        Ok(())
    }

    async fn create(self: CapRc<Self>, _: storage::CreateParams, _: storage::CreateResults) -> capnp::Result<()> {
        Ok(())
    }
}

const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

fn rights(methods: &[&str], scope: Scope) -> Rights {
    let keys = KeyRing::parse(&format!("k1:{SECRET}"), None).expect("a valid key spec");
    let req = MintRequest {
        target: "Customer/acme".into(),
        methods: methods.iter().map(|s| (*s).to_string()).collect(),
        scope,
        ttl_ms: 10_000,
        subject: "ann".into(),
        namespace: "default".into(),
    };
    let token = keys.mint(&req, 1_000, "t1").expect("mint");
    keys.verify(&token, 2_000).expect("verify")
}

fn during() -> i64 {
    2_000
}

fn after() -> i64 {
    20_000
}

/// The object behind a membrane, as a peer holds it; and the membrane's metrics.
fn redeemed(methods: &[&str], scope: Scope, now_ms: fn() -> i64) -> (object::Client, Arc<BrokerMetrics>) {
    let metrics = Arc::new(BrokerMetrics::default());
    let policy = Policy {
        rights: rights(methods, scope),
        target: "Customer/acme".into(),
        now_ms,
        revocations: Arc::new(Revocations::in_memory()),
    };
    let wrapped: object::Client = wrap(capnp_rpc::new_client(Obj), policy, Duration::from_secs(5), metrics.clone());
    (capnp_rpc::new_future_client(futures::future::ready(Ok(wrapped))), metrics)
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
    tokio::task::LocalSet::new().block_on(&rt, f)
}

async fn count(obj: &object::Client) -> Result<u64, RpcError> {
    let storage = obj.storage_request().send().pipeline.get_storage();
    Ok(storage.count_request().send().promise.await?.get()?.get_count())
}

async fn create(obj: &object::Client) -> Result<(), RpcError> {
    let storage = obj.storage_request().send().pipeline.get_storage();
    storage.create_request().send().promise.await?;
    Ok(())
}

fn code<T: std::fmt::Debug>(r: Result<T, RpcError>) -> Code {
    r.expect_err("refused").code
}

#[test]
fn allowed_methods_get_through() {
    let (obj, metrics) = redeemed(&["storage.*"], Scope::Read, during);
    assert_eq!(run(count(&obj)), Ok(42));
    // The getter's module is wrapped: its calls are counted by the same stack.
    let text = metrics.render();
    assert!(text.contains("method=\"storage.count\"} 1"), "{text}");
    assert!(text.contains("method=\"object.storage\"} 1"), "{text}");
}

#[test]
fn methods_the_token_does_not_list_are_forbidden() {
    let (obj, _) = redeemed(&["storage.count"], Scope::Write, during);
    assert_eq!(run(count(&obj)), Ok(42));
    assert_eq!(code(run(create(&obj))), Code::Forbidden);
}

#[test]
fn a_method_above_the_token_scope_is_refused() {
    let (obj, metrics) = redeemed(&["storage.*"], Scope::Read, during);
    assert_eq!(code(run(create(&obj))), Code::InsufficientScope);
    let text = metrics.render();
    assert!(text.contains("method=\"storage.create\"} 1"), "{text}");
}

#[test]
fn an_expired_token_opens_nothing() {
    let (obj, _) = redeemed(&["*"], Scope::Admin, after);
    assert_eq!(code(run(count(&obj))), Code::Expired);
    let info = run(async { obj.info_request().send().promise.await.map(|_| ()).map_err(RpcError::from) });
    assert_eq!(code(info), Code::Expired);
}

#[test]
fn getters_hand_out_modules_inside_the_membrane() {
    let (obj, _) = redeemed(&["storage.count"], Scope::Read, during);
    run(async {
        // The module itself, resolved (not pipelined), is still behind the membrane.
        let storage = obj.storage_request().send().promise.await.expect("the getter is allowed");
        let storage = storage.get().expect("results").get_storage().expect("a capability");
        assert_eq!(
            storage
                .count_request()
                .send()
                .promise
                .await
                .map(|r| r.get().map(schema::object_capnp::storage::count_results::Reader::get_count).ok())
                .ok(),
            Some(Some(42))
        );
        let refused = storage.create_request().send().promise.await.map(|_| ()).map_err(RpcError::from);
        assert_eq!(code(refused), Code::Forbidden);
    });
}

#[test]
fn getters_called_in_process_are_refused() {
    let policy = Policy {
        rights: rights(&["*"], Scope::Admin),
        target: "Customer/acme".into(),
        now_ms: during,
        revocations: Arc::new(Revocations::in_memory()),
    };
    let metrics = Arc::new(BrokerMetrics::default());
    let local: object::Client = wrap(capnp_rpc::new_client(Obj), policy, Duration::from_secs(5), metrics);
    let r = run(async { local.storage_request().send().promise.await.map(|_| ()).map_err(RpcError::from) });
    assert_eq!(code(r), Code::Forbidden);
    let info = run(async { local.info_request().send().promise.await.map(|_| ()).map_err(RpcError::from) });
    assert_eq!(info, Ok(()));
}

#[test]
fn revoking_cuts_off_a_capability_already_redeemed() {
    let revocations = Arc::new(Revocations::in_memory());
    let policy = Policy {
        rights: rights(&["*"], Scope::Admin),
        target: "Customer/acme".into(),
        now_ms: during,
        revocations: revocations.clone(),
    };
    let wrapped: object::Client =
        wrap(capnp_rpc::new_client(Obj), policy, Duration::from_secs(5), Arc::new(BrokerMetrics::default()));
    let obj: object::Client = capnp_rpc::new_future_client(futures::future::ready(Ok(wrapped)));
    let storage = run(async {
        obj.storage_request()
            .send()
            .promise
            .await
            .map(|r| r.get().and_then(object::storage_results::Reader::get_storage))
    })
    .expect("the getter")
    .expect("a module");
    let count_on = |s: &storage::Client| {
        let s = s.clone();
        run(async move { Ok::<u64, RpcError>(s.count_request().send().promise.await?.get()?.get_count()) })
    };
    assert_eq!(count_on(&storage), Ok(42));
    revocations.revoke_blocking("t1", 3_000).expect("revoke");
    assert_eq!(code(run(count(&obj))), Code::Revoked, "the object");
    assert_eq!(code(count_on(&storage)), Code::Revoked, "a module it handed out before");
}
