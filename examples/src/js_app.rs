//! The server the JavaScript tests and the browser page test run against: the example
//! classes (`Counter`, `Cart`, `Inventory`), the built-in class for any other name, and
//! a broker with a fixed signing key and admin key (test values, never for production).

use do_runtime::{App, BrokerConfig, HostConfig};
use std::path::Path;
use std::time::Duration;

/// The broker's admin key in [`app`].
pub const ADMIN_KEY: &str = "js-test-admin-key";

/// The app: example classes, built-in class for other names, a broker keyed for tests.
pub fn app(data_dir: &Path) -> Result<App, Box<dyn std::error::Error>> {
    let keys = rpc_broker::token::KeyRing::parse(
        "js1:anMtdGVzdC1zaWduaW5nLWtleS1qcy10ZXN0LXNpZ25pbmcta2V5LTAxMjM",
        Some("js1"),
    )?;
    let broker = BrokerConfig {
        keys,
        admin_key: Some(ADMIN_KEY.into()),
        db_path: data_dir.join("broker.sqlite"),
        call_timeout: Duration::from_secs(10),
        require_tokens: false,
        max_shards: 8,
    };
    Ok(App::new()
        .class::<crate::counter::Counter>("Counter")
        .class::<crate::shop::Cart>("Cart")
        .class::<crate::shop::Inventory>("Inventory")
        .any_class_builtin()
        .host(HostConfig { data_dir: data_dir.to_path_buf(), ..HostConfig::default() })
        .broker(broker))
}
