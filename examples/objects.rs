//! Durable Objects: storage (create, query), events (a subscription called back over
//! the WebSocket) and a schedule, all reached through `gateway.object(class, name)`.
//!
//! `cargo run -p examples --example objects [ws://host:port/rpc]`

use capnp::capability::Rc;
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
        let mut req = session.bootstrap.object_request();
        req.get().set_class("Customer");
        req.get().set_name("acme");
        let object = req.send().pipeline.get_object();
        let storage = object.storage_request().send().pipeline.get_storage();
        let events = object.events_request().send().pipeline.get_events();
        let schedule = object.schedule_request().send().pipeline.get_schedule();

        // Subscribe to every change of a Contact.
        let (printed, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let mut sub = events.subscribe_request();
        sub.get().set_pattern("Contact.*");
        sub.get().set_handler(capnp_rpc::new_client(Printer(printed)));
        let _subscription = sub.send().promise.await?;

        for (name, age) in [("Ann", 31), ("Bob", 25), ("Cid", 40)] {
            let mut c = storage.create_request();
            c.get().set_type("Contact");
            c.get().set_data(format!(r#"{{"name": "{name}", "age": {age}}}"#));
            c.send().promise.await?;
        }
        let mut q = storage.query_request();
        q.get().set_query(r#"{"type": "Contact", "where": {"age": {"$gte": 30}}, "sort": ["-age"]}"#);
        let r = q.send().promise.await?;
        for t in r.get()?.get_things()? {
            println!("{} v{} {}", t.get_id()?.to_str()?, t.get_version(), t.get_data()?.to_str()?);
        }

        // A schedule sends its action as an event.
        let mut s = schedule.schedule_request();
        s.get().set_spec(rpc_client::schedule::every_n(1).seconds().as_str());
        s.get().set_action("Contact.reminded");
        s.get().set_data(r#"{"note": "call Ann"}"#);
        let entry = s.send().promise.await?;
        println!("scheduled {}", entry.get()?.get_entry()?.get_spec()?.to_str()?);
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
        let mut cancel = schedule.cancel_request();
        cancel.get().set_id(entry.get()?.get_entry()?.get_id()?.to_str()?);
        cancel.send().promise.await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
