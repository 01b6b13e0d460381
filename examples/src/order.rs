//! The shop's `order` workflow, run by a `Cart`: reserve stock in the Inventory (a
//! durable call), charge the customer (retried with backoff, behind a circuit
//! breaker), wait for the warehouse's `Shipment.sent` event, ask a person in finance
//! when the amount is large, then commit the reservation (another durable call). Each
//! step is recorded; a crash at any point resumes the order where it stopped.

use crate::shop::{Cart, INVENTORY, RESERVATION_MS};
use do_runtime::{BreakerConfig, Decision, Flow, RetryPolicy, StepOptions, WaitFor, Workflows};
use rpc_core::{Code, RpcError};
use serde_json::{json, Value};
use std::rc::Rc;
use std::time::Duration;

/// Orders of at least this amount need a person's approval.
pub const LARGE_ORDER: u64 = 1000;

/// Registers `order` on the Cart class. Input: `{"sku", "quantity", "amount"}`.
pub fn register(w: &mut Workflows<Cart>) {
    w.add("order", |cart: Rc<Cart>, flow: Flow, input: Value| async move {
        let sku = input["sku"].as_str().unwrap_or_default().to_string();
        let quantity = input["quantity"].as_u64().unwrap_or(1);
        let amount = input["amount"].as_u64().unwrap_or(0);
        let order = flow.run_id().to_string();

        // 1. Stock, held for this order: once, whatever crashes (the Inventory
        //    deduplicates the call on its key).
        let args = json!({"sku": sku, "quantity": quantity, "holder": order, "ttlMs": RESERVATION_MS});
        let reservation = flow.call("reserve", "Inventory", INVENTORY, "reserve", args).await?;

        // 2. The charge: a busy gateway is retried (0.5 s, then 1 s...), and after five
        //    failures in a minute the breaker fails charges fast for 30 s.
        let retry = RetryPolicy { max_attempts: 4, base: Duration::from_millis(500), ..RetryPolicy::default() };
        let options = StepOptions::retry(retry)
            .with_timeout(Duration::from_secs(10))
            .with_breaker(BreakerConfig::new("payments"));
        let charge = flow.step_with("charge", options, || charge(&cart, &order, amount)).await?;

        // 3. The warehouse says when it has shipped (an event on this cart's log).
        let wait = WaitFor::new("Shipment.sent", Some(Duration::from_secs(7 * 24 * 3600)))
            .with_filter(json!({"order": order}));
        let Some(shipped) = flow.wait_for_event("shipped", wait).await? else {
            flow.call("release", "Inventory", INVENTORY, "release", json!([reservation])).await?;
            return Err(RpcError::new(Code::Timeout, format!("order {order} was not shipped within a week")));
        };

        // 4. A person approves large orders (answered through the Approval capability
        //    or a token in an email).
        let approved_by = if amount >= LARGE_ORDER {
            let what = json!({"order": order, "amount": amount, "sku": sku});
            match flow.approval("review", "finance", what, Duration::from_secs(24 * 3600)).await? {
                Decision::Approved { by, .. } => by,
                other => {
                    flow.call("release", "Inventory", INVENTORY, "release", json!([reservation])).await?;
                    return Ok(json!({"order": order, "refused": serde_json::to_value(other).unwrap_or_default()}));
                }
            }
        } else {
            "auto".to_string()
        };

        flow.call("commit", "Inventory", INVENTORY, "commit", json!([reservation])).await?;
        Ok(json!({
            "order": order,
            "reservation": reservation,
            "charge": charge,
            "shippedAt": shipped.timestamp,
            "approvedBy": approved_by,
        }))
    });
}

/// The payment gateway, simulated: busy (UNAVAILABLE) on the first attempt of each
/// order, then it accepts. Attempts are counted in the cart's key-value entries.
async fn charge(cart: &Cart, order: &str, amount: u64) -> Result<Value, RpcError> {
    let kv = cart.ctx.kv();
    let key = format!("charge-attempts:{order}");
    let attempt = kv.get::<u32>(&key)?.unwrap_or(0) + 1;
    kv.put(&key, &attempt)?;
    if attempt == 1 {
        return Err(RpcError::new(Code::Unavailable, "the payment gateway is busy"));
    }
    Ok(json!({"charged": amount, "attempt": attempt}))
}
