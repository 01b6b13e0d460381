//! `GET /`: a small page that tries dotdo from a browser over Cap'n Web, and
//! `GET /capnweb.js`: the `capnweb` ES module it imports.
//!
//! The module is served from a file when one is found (`DOTDO_CAPNWEB_JS`, or
//! `node_modules/capnweb/dist/index.js`, `js/node_modules/...` or `../js/node_modules/...`
//! from the working directory, where `npm install` puts it); otherwise the page's browser is redirected to
//! the same version on the jsDelivr CDN.

use crate::Body;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::{Response, StatusCode};

/// The page (no build step: one HTML file with a module script).
const INDEX: &str = include_str!("../page/index.html");

/// The `capnweb` version the page is written against.
pub const CAPNWEB_VERSION: &str = "0.12.0";

pub(crate) fn index() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(INDEX.as_bytes())));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

/// The module's bytes, read from the first file found (once: the file does not change
/// while the server runs).
fn local_module() -> Option<&'static [u8]> {
    static MODULE: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    MODULE.get_or_init(read_module).as_deref()
}

fn read_module() -> Option<Vec<u8>> {
    let mut candidates: Vec<std::path::PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("DOTDO_CAPNWEB_JS") {
        candidates.push(p.into());
    }
    // `../js/...`: from a crate of the workspace (where `cargo test` runs).
    for dir in ["node_modules", "js/node_modules", "../js/node_modules"] {
        candidates.push(std::path::Path::new(dir).join("capnweb/dist/index.js"));
    }
    candidates.into_iter().find_map(|p| std::fs::read(p).ok())
}

pub(crate) fn capnweb_module() -> Response<Body> {
    match local_module() {
        Some(js) => {
            let mut r = Response::new(Full::new(Bytes::from_static(js)));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
            r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
            r
        }
        None => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::FOUND;
            let url = format!("https://cdn.jsdelivr.net/npm/capnweb@{CAPNWEB_VERSION}/dist/index.js");
            if let Ok(v) = HeaderValue::from_str(&url) {
                r.headers_mut().insert(LOCATION, v);
            }
            r
        }
    }
}
