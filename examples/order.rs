//! A durable order workflow (`examples/src/order.rs`): reserve stock, charge with
//! retries, wait for the shipment event, ask a person when the amount is large. This
//! program plays the warehouse and the person: it sends the event and answers the
//! approval, then prints the run's result and its history.
//!
//! `cargo run -p examples --example order`

use examples::shop::INVENTORY;
use examples::shop_client::Inventory as InventoryClient;
use rpc_client::api::object::Run;
use std::time::Duration;

type Error = Box<dyn std::error::Error>;

/// Waits until the run's status is `want` (at most 20 s).
async fn until(run: &Run, want: &str) -> Result<(), Error> {
    let reached = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let info = run.status().await?.info;
            if info.status == want {
                return Ok::<_, rpc_client::RpcError>(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    match reached {
        Ok(r) => Ok(r?),
        Err(_) => Err(format!("the run did not reach {want:?}").into()),
    }
}

fn main() -> Result<(), Error> {
    let server = examples::shop::serve("order")?;
    let url = server.ws_url();
    let result = rpc_client::run(async move {
        let session = rpc_client::connect(&url).await?;
        let g = &session.bootstrap;
        let inventory = InventoryClient::new(g.object("Inventory", INVENTORY).object().cast());
        println!("restocked: {} lamps", inventory.restock("lamp", 5).await?.available);

        let cart = g.object("Cart", "ann").object();
        let workflow = cart.workflow().workflow();
        let run = workflow.start("order", r#"{"sku": "lamp", "quantity": 2, "amount": 1500}"#, "order-1").run();
        until(&run, "waiting").await?;
        println!(
            "order-1 is charged and waits for the warehouse; lamps left: {}",
            inventory.available("lamp").await?.available
        );

        cart.events().events().send("Shipment.sent", r#"{"order": "order-1", "carrier": "post"}"#).await?;
        until(&run, "waiting").await?;
        let pending = workflow.approvals("pending").await?.approvals;
        let approval = pending.first().ok_or("no approval was asked for")?;
        println!("{} is asked to approve {}", approval.who, approval.what);
        workflow.approval(&approval.id).approval().approve("fiona", "looks fine").await?;

        let out = run.result().await?.result;
        println!("order-1: {out}");
        for step in run.history().await?.steps {
            println!("  {:<8} {:<9} {:<9} attempts {}", step.name, step.kind, step.status, step.attempts);
        }
        Ok::<_, Error>(())
    });
    server.stop();
    result
}
