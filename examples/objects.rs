//! Durable Objects: storage (create, query), events (a subscription called back over
//! the WebSocket) and a schedule, all reached through `gateway.object(class, name)`.
//!
//! `cargo run -p examples --example objects [ws://host:port/rpc]`

use capnp::capability::Rc;
use rpc_client::api::object::{Events, Handler, Schedule, Storage};
use schema::object_capnp::handler;
use std::time::Duration;

/// Prints every event it is handed, and says so on its channel.
struct Printer(tokio::sync::mpsc::UnboundedSender<()>);

impl handler::Server for Printer {
    async fn handle(self: Rc<Self>, params: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        let e = params.get()?.get_event()?;
        println!("  event {} {}", e.get_type()?.to_str()?, e.get_data()?.to_str()?);
        let _ = self.0.send(());
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = examples::target()?;
    let url = target.urls[0].clone();
    rpc_client::run(async move {
        let session = rpc_client::connect(&url).await?;
        // One object, named by class and name; its modules are capabilities.
        let object = session.bootstrap.object("Customer", "acme").object();
        let (storage, events): (Storage, Events) = (object.storage().into(), object.events().into());
        let schedule: Schedule = object.schedule().into();

        // Subscribe to every change of a Contact.
        let (printed, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let _subscription = events.subscribe("Contact.*", &Handler::serve(Printer(printed))).await?;

        for (name, age) in [("Ann", 31), ("Bob", 25), ("Cid", 40)] {
            storage.create("Contact", &format!(r#"{{"name": "{name}", "age": {age}}}"#), "").await?;
        }
        let page = storage.query(r#"{"type": "Contact", "where": {"age": {"$gte": 30}}, "sort": ["-age"]}"#).await?;
        for t in page.things {
            println!("{} v{} {}", t.id, t.version, t.data);
        }

        // A schedule sends its action as an event.
        let every_second = rpc_client::schedule::every_n(1).seconds();
        // No in-session handler (None): runs reach us through the events subscription.
        let entry =
            schedule.schedule(every_second.as_str(), "Contact.reminded", r#"{"note": "call Ann"}"#, None).await?.entry;
        println!("scheduled {}", entry.spec);
        // Three creates, then the first scheduled run: four events.
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            let mut n = 0;
            while n < 4 && seen.recv().await.is_some() {
                n += 1;
            }
            n
        })
        .await;
        if waited != Ok(4) {
            return Err("events did not arrive".into());
        }
        schedule.cancel(&entry.id).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
