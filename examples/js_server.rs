//! Serves the example classes for JavaScript clients (`js/`): `GET /` is the page,
//! `/capnweb` the Cap'n Web gateway. The broker's admin key is `js-test-admin-key`.
//!
//! `cargo run -p examples --example js_server -- [PORT]` (default 8797)

use rpc_server::ServerConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map(|p| p.parse()).transpose()?.unwrap_or(8797);
    let data = std::env::temp_dir().join(format!("dotdo-js-server-{}", std::process::id()));
    std::fs::create_dir_all(&data)?;
    let server = ServerConfig {
        http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        tcp_addr: None,
        workers: 1,
        ..ServerConfig::default()
    };
    let running = examples::js_app::app(&data)?.start(server)?;
    println!("listening on http://{}", running.server.http_addr);
    running.server.wait();
    Ok(())
}
