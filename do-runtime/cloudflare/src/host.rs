//! Time, randomness, background work and the alarm of a Durable Object, for the module
//! servers ([`Env`], [`Alarm`]).

use do_modules::host::{Alarm, Env, Task};
use std::time::Duration;
use wasm_bindgen::prelude::*;
use worker::Storage;

#[wasm_bindgen]
extern "C" {
    /// `crypto.getRandomValues`: the platform's cryptographic randomness.
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
}

/// Random bytes from `crypto.getRandomValues`.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    get_random_values(&mut buf);
    buf
}

/// The Worker's clock (`Date.now()`, which inside a request advances with I/O, as the
/// platform documents), randomness and event loop.
pub struct CfEnv;

impl Env for CfEnv {
    fn now_ms(&self) -> i64 {
        js_sys::Date::now() as i64
    }

    fn random_u64(&self) -> u64 {
        u64::from_le_bytes(random_bytes::<8>())
    }

    fn spawn(&self, task: Task) {
        wasm_bindgen_futures::spawn_local(task);
    }

    fn sleep(&self, duration: Duration) -> Task {
        Box::pin(worker::Delay::from(duration))
    }
}

/// The object's one alarm: `storage.setAlarm` / `deleteAlarm`. The platform calls the
/// object's `alarm()` handler when it comes due, loading the object if it was evicted.
pub struct CfAlarm(pub std::rc::Rc<Storage>);

impl Alarm for CfAlarm {
    fn set_alarm(&self, at_ms: Option<i64>) {
        let storage = self.0.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let set = match at_ms {
                // A time, not an offset (worker's `From<i64>` is an offset).
                Some(at) => {
                    let when = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at as f64));
                    storage.set_alarm(worker::ScheduledTime::new(when)).await
                }
                None => storage.delete_alarm().await,
            };
            if let Err(e) = set {
                worker::console_error!("the object's alarm could not be set: {e}");
            }
        });
    }
}
