//! Two user classes working together (`examples/schema/shop.capnp`,
//! `examples/src/shop.rs`): a `Cart` reserves stock in an `Inventory` object, checks out
//! into an Order Thing, and counts its orders from its own events. Called pipelined
//! over WebSocket and HTTP batch.
//!
//! `cargo run -p examples --example shop`

use examples::shop::INVENTORY;
use examples::shop_client::{Cart as CartClient, Inventory as InventoryClient};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = examples::shop::serve("shop")?;
    let url = server.ws_url();
    let http = server.running.server.http_addr;
    let result = rpc_client::run(async move {
        let session = rpc_client::connect(&url).await?;
        let gateway = &session.bootstrap;
        let inventory = InventoryClient::new(gateway.object("Inventory", INVENTORY).object().cast());
        println!("restocked: {} mugs", inventory.restock("mug", 10).await?.available);

        // One round trip each: the cart object and the call on it are pipelined.
        let cart = CartClient::new(gateway.object("Cart", "ann").object().cast());
        cart.add("mug", 2).await?;
        let lines = cart.add("mug", 1).await?.lines;
        println!(
            "ann's cart: {} x {}; mugs left: {}",
            lines[0].quantity,
            lines[0].sku,
            inventory.available("mug").await?.available
        );

        // HTTP batch: another customer's cart, in one POST.
        let batch = rpc_client::batch(&format!("http://{http}/rpc")).await?;
        let bob = CartClient::new(batch.bootstrap.object("Cart", "bob").object().cast());
        println!("bob's cart: {} line(s)", bob.add("mug", 4).await?.lines.len());

        let order = cart.checkout().await?.order;
        let placed = cart.as_object().storage().get(&order).await?.thing;
        println!("order {order}: {}", placed.data);
        // The cart's own handler counts `Order.created` (delivered after the call).
        let counted = tokio::time::timeout(Duration::from_secs(10), async {
            while cart.orders().await?.count < 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, rpc_client::RpcError>(())
        })
        .await;
        if !matches!(counted, Ok(Ok(()))) {
            return Err("the cart's event handler did not count the order".into());
        }
        println!(
            "ann has placed {} order(s); mugs left: {}",
            cart.orders().await?.count,
            inventory.available("mug").await?.available
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    });
    server.stop();
    result
}
