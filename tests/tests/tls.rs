//! TLS on the client side: `wss://` and `https://` against a real server behind a TLS
//! terminator on 127.0.0.1 (as a deployment puts one in front), with a certificate made
//! at test time and trusted through `Options::tls`; an untrusted certificate and a
//! server that does not speak TLS are typed errors.

mod common;

use common::{chain, directory, server, within};
use rpc_core::{Code, Limits};
use std::sync::Arc;

/// A TLS terminator on 127.0.0.1 in front of `upstream`, with a certificate for
/// `localhost` and 127.0.0.1 made now; returns its address and the certificate (PEM).
fn terminator(upstream: std::net::SocketAddr) -> (std::net::SocketAddr, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("a certificate");
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else { return };
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
    });
    (addr, pem)
}

fn options(pem: &str) -> rpc_client::Options {
    let tls = rpc_client::tls::config_with_roots_pem(pem.as_bytes(), false).expect("roots");
    rpc_client::Options { tls: Some(tls), ..Default::default() }
}

#[test]
fn wss_and_https_carry_pipelined_chains_through_tls() {
    let s = server(Limits::default());
    let (tls, pem) = terminator(s.http_addr);
    let port = tls.port();
    rpc_client::run(async {
        for host in ["localhost", "127.0.0.1"] {
            let url = format!("wss://{host}:{port}/rpc");
            let session =
                within("wss", rpc_client::connect_as::<rpc_client::api::session::Gateway>(&url, options(&pem)))
                    .await
                    .expect("wss connects");
            assert_eq!(chain(&directory(session.bootstrap.raw()), "a", "b").await.expect("chain"), "contents of a/b");
            let batch = rpc_client::batch_as::<rpc_client::api::session::Gateway>(
                &format!("https://{host}:{port}/rpc"),
                options(&pem),
            )
            .await
            .expect("https");
            let text = within("https", batch.bootstrap.demo().directory().open("x").file().read()).await;
            assert_eq!(text.expect("a chain in one HTTPS request").text, "contents of x");
        }
    });
    s.stop();
}

#[test]
fn an_untrusted_certificate_or_a_plain_server_is_a_typed_error() {
    let s = server(Limits::default());
    let (tls, _) = terminator(s.http_addr);
    let (_, other) = terminator(s.http_addr);
    rpc_client::run(async {
        // Trusting another certificate: the handshake fails, and says why.
        let url = format!("wss://localhost:{}/rpc", tls.port());
        let e = rpc_client::connect_as::<rpc_client::api::session::Gateway>(&url, options(&other)).await;
        let e = e.map(|_| ()).expect_err("untrusted");
        assert_eq!(e.code, Code::Disconnected);
        assert!(e.message.contains("certificate"), "{e:?}");
        let batch = rpc_client::batch_as::<rpc_client::api::session::Gateway>(
            &format!("https://localhost:{}/rpc", tls.port()),
            options(&other),
        )
        .await
        .expect("a batch session starts without a connection");
        let e = batch.bootstrap.demo().directory().echo(1).await.map(|_| ()).expect_err("untrusted over https");
        assert_eq!(e.code, Code::Disconnected, "{e:?}");
        // The server's plain port does not speak TLS.
        let plain = format!("wss://127.0.0.1:{}/rpc", s.http_addr.port());
        let e = rpc_client::connect_as::<rpc_client::api::session::Gateway>(&plain, options(&other)).await;
        assert_eq!(e.map(|_| ()).expect_err("no TLS there").code, Code::Disconnected);
        // The server keeps serving plain connections.
        common::still_serving(&s).await;
    });
    s.stop();
}
