//! Revoking a token cuts off the capabilities already redeemed with it, whichever
//! transport the revocation arrives on, and stays revoked across a restart.

mod common;

use common::*;
use rpc_broker::token::KeyRing;
use rpc_core::{Code, RpcError};
use schema::object_capnp::{object, storage};
use schema::session_capnp::gateway;
use std::path::Path;

const ADMIN: &str = "admin-secret-for-revocation-tests";
const K1: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

fn start(dir: &Path) -> rpc_server::ServerHandle {
    broker_server(dir, &format!("k1:{K1}"), "k1", ADMIN)
}

/// A token for `Customer/acme` with every method, and its id.
async fn mint(url: &str) -> Result<(String, String), RpcError> {
    let session = connect_any(url).await?;
    let b = broker_of(&session.bootstrap, ADMIN);
    let mut req = b.mint_request();
    {
        let mut r = req.get().init_request();
        r.set_target("Customer/acme");
        r.set_scope("admin");
        r.set_ttl_ms(60_000);
        r.init_methods(1).set(0, "*");
    }
    let token = req
        .send()
        .promise
        .await?
        .get()?
        .get_token()?
        .to_string()
        .map_err(|e| RpcError::new(Code::Internal, e.to_string()))?;
    // The id from the claims (checked with the server's key here: over HTTP the batch
    // ended with the mint's answer).
    let id = KeyRing::parse(&format!("k1:{K1}"), Some("k1"))?.verify(&token, rpc_core::params::now_ms())?.token_id;
    Ok((token, id))
}

async fn revoke(url: &str, id: &str) -> Result<(), RpcError> {
    let session = connect_any(url).await?;
    let mut req = broker_of(&session.bootstrap, ADMIN).revoke_request();
    req.get().set_token_id(id);
    req.send().promise.await?;
    Ok(())
}

async fn count(s: &storage::Client) -> Result<u64, RpcError> {
    let mut req = s.count_request();
    req.get().set_query("{}");
    Ok(req.send().promise.await?.get()?.get_count())
}

/// The redeemed object and its storage module, both resolved and held by the session.
async fn redeem(g: &gateway::Client, token: &str) -> Result<(object::Client, storage::Client), RpcError> {
    let mut req = broker_of(g, "").redeem_request();
    req.get().set_token(token);
    let object = req.send().promise.await?.get()?.get_object()?;
    let storage = object.storage_request().send().promise.await?.get()?.get_storage()?;
    Ok((object, storage))
}

#[test]
fn revoking_cuts_off_capabilities_already_redeemed() {
    let dir = data_dir("revocation");
    let s = start(&dir);
    let ws = format!("ws://{}/rpc", s.http_addr);
    let http = format!("http://{}/rpc", s.http_addr);
    // The revocation arrives over WebSocket, then over an HTTP batch; the capability is
    // held by a WebSocket session (an HTTP batch's capabilities end with its response).
    let revoked_ids = rpc_client::run(async {
        let mut ids = Vec::new();
        for revoke_over in [&ws, &http] {
            let (token, id) = mint(revoke_over).await.expect("mint");
            let session = rpc_client::connect(&ws).await.expect("connect");
            let (object, storage) = redeem(&session.bootstrap, &token).await.expect("redeem");
            assert_eq!(count(&storage).await, Ok(0), "before the revocation");
            revoke(revoke_over, &id).await.expect("revoke");
            let e = count(&storage).await.expect_err("revoked");
            assert_eq!(e.code, Code::Revoked, "a module redeemed before, revoked over {revoke_over}: {e}");
            let again = object.storage_request().send().promise.await.map(|_| ()).map_err(RpcError::from);
            assert_eq!(again.map_err(|e| e.code), Err(Code::Revoked), "the object itself");
            // Redeeming it again is refused too, over either transport.
            for url in [&ws, &http] {
                let session = connect_any(url).await.expect("connect");
                let e = redeem(&session.bootstrap, &token).await.map(|_| ()).expect_err("refused");
                assert_eq!(e.code, Code::Revoked, "{url}");
            }
            ids.push(token);
        }
        ids
    });
    s.stop();
    // The revocations are loaded again when the server restarts.
    let s = start(&dir);
    let ws = format!("ws://{}/rpc", s.http_addr);
    rpc_client::run(async {
        for token in &revoked_ids {
            let session = rpc_client::connect(&ws).await.expect("connect");
            let e = redeem(&session.bootstrap, token).await.map(|_| ()).expect_err("still revoked");
            assert_eq!(e.code, Code::Revoked);
        }
        let (fresh, _) = mint(&ws).await.expect("mint");
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (_, storage) = redeem(&session.bootstrap, &fresh).await.expect("a new token works");
        assert_eq!(count(&storage).await, Ok(0));
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tokens_minted_together_have_different_ids() {
    let dir = data_dir("revocation-ids");
    let s = start(&dir);
    let ws = format!("ws://{}/rpc", s.http_addr);
    rpc_client::run(async {
        let ids = futures::future::join_all((0..8).map(|_| mint(&ws))).await;
        let mut ids: Vec<String> = ids.into_iter().map(|r| r.expect("mint").1).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8, "every id is its own");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
