//! The shop of `examples/schema/shop.capnp`: `Inventory` keeps stock and reservations in
//! its own SQL tables and expires reservations by its alarm; `Cart` keeps its lines in
//! the key-value API, reserves stock by calling the Inventory object, writes an Order
//! Thing at checkout in one transaction with emptying the cart, and counts its orders
//! from its own `Order.created` events.

use crate::shop_capnp::{cart, inventory, line};
use crate::shop_interfaces;
use capnp::capability::Rc;
use do_runtime::{Class, Context, Event, SqlValue};
use rpc_core::{Code, RpcError};
use schema::object_capnp::object;
use serde::{Deserialize, Serialize};

/// How long a cart's reservation holds stock.
pub const RESERVATION_MS: u32 = 15 * 60 * 1000;

/// The inventory the carts reserve from.
pub const INVENTORY: &str = "main";

/// The stock of a shop.
pub struct Inventory {
    ctx: Context,
}

fn int(v: Option<&SqlValue>) -> i64 {
    v.and_then(SqlValue::as_i64).unwrap_or(0)
}

impl Inventory {
    fn in_stock(&self, sku: &str) -> Result<i64, RpcError> {
        let sku = SqlValue::Text(sku.into());
        let stock = self.ctx.sql("SELECT quantity FROM stock WHERE sku = ?", std::slice::from_ref(&sku))?;
        let held = self.ctx.sql("SELECT SUM(quantity) FROM reservations WHERE sku = ?", &[sku])?;
        Ok(int(stock.first().and_then(|r| r.first())) - int(held.first().and_then(|r| r.first())))
    }

    /// Sets the alarm to the soonest reservation's end (or clears it).
    fn rearm(&self) -> Result<(), RpcError> {
        let next = self.ctx.sql("SELECT MIN(until) FROM reservations", &[])?;
        self.ctx.set_alarm(next.first().and_then(|r| r.first()).and_then(SqlValue::as_i64))
    }

    fn take(&self, reservation: &str, commit: bool) -> Result<bool, RpcError> {
        self.ctx.transaction(|ctx| {
            let id = SqlValue::Text(reservation.into());
            let rows = ctx.sql("SELECT sku, quantity FROM reservations WHERE id = ?", std::slice::from_ref(&id))?;
            let Some(row) = rows.first() else { return Ok(false) };
            if commit {
                ctx.execute(
                    "UPDATE stock SET quantity = quantity - ? WHERE sku = ?",
                    &[row[1].clone(), row[0].clone()],
                )?;
            }
            ctx.execute("DELETE FROM reservations WHERE id = ?", &[id])?;
            Ok(true)
        })
    }
}

impl Class for Inventory {
    type Client = inventory::Client;
    const INTERFACES: &'static [schema::InterfaceDesc] = shop_interfaces::INTERFACES;
    const MIGRATIONS: &'static [&'static str] = &[
        "CREATE TABLE stock (sku TEXT PRIMARY KEY, quantity INTEGER NOT NULL)",
        "CREATE TABLE reservations (id TEXT PRIMARY KEY, sku TEXT NOT NULL, quantity INTEGER NOT NULL, holder TEXT NOT NULL, until INTEGER NOT NULL)",
    ];

    fn create(ctx: Context) -> Result<Self, RpcError> {
        Ok(Inventory { ctx })
    }

    /// Expires the reservations whose time is up.
    async fn on_alarm(self: std::rc::Rc<Self>) -> Result<(), RpcError> {
        let now = SqlValue::Integer(self.ctx.now_ms());
        self.ctx.execute("DELETE FROM reservations WHERE until <= ?", &[now])?;
        self.rearm()
    }
}

impl object::Server for Inventory {}

impl inventory::Server for Inventory {
    async fn restock(
        self: Rc<Self>,
        params: inventory::RestockParams,
        mut results: inventory::RestockResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let sku = rpc_core::params::text(p.get_sku())?;
        self.ctx.execute(
            "INSERT INTO stock (sku, quantity) VALUES (?1, ?2) ON CONFLICT (sku) DO UPDATE SET quantity = quantity + ?2",
            &[SqlValue::Text(sku.clone()), SqlValue::Integer(p.get_quantity().into())],
        )?;
        results.get().set_available(self.in_stock(&sku)?);
        Ok(())
    }

    async fn reserve(
        self: Rc<Self>,
        params: inventory::ReserveParams,
        mut results: inventory::ReserveResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (sku, holder) = (rpc_core::params::text(p.get_sku())?, rpc_core::params::text(p.get_holder())?);
        let quantity = i64::from(p.get_quantity());
        let available = self.in_stock(&sku)?;
        if quantity > available {
            return Err(
                RpcError::new(Code::Conflict, format!("{available} of {sku} available, {quantity} asked")).into()
            );
        }
        let id = format!("r{:016x}", self.ctx.random_u64());
        let until = self.ctx.now_ms() + i64::from(p.get_ttl_ms());
        self.ctx.execute(
            "INSERT INTO reservations (id, sku, quantity, holder, until) VALUES (?, ?, ?, ?, ?)",
            &[
                SqlValue::Text(id.clone()),
                SqlValue::Text(sku),
                SqlValue::Integer(quantity),
                SqlValue::Text(holder),
                SqlValue::Integer(until),
            ],
        )?;
        self.rearm()?;
        results.get().set_reservation(&id);
        Ok(())
    }

    async fn release(
        self: Rc<Self>,
        params: inventory::ReleaseParams,
        mut results: inventory::ReleaseResults,
    ) -> capnp::Result<()> {
        let released = self.take(&rpc_core::params::text(params.get()?.get_reservation())?, false)?;
        self.rearm()?;
        results.get().set_released(released);
        Ok(())
    }

    async fn commit(
        self: Rc<Self>,
        params: inventory::CommitParams,
        mut results: inventory::CommitResults,
    ) -> capnp::Result<()> {
        let committed = self.take(&rpc_core::params::text(params.get()?.get_reservation())?, true)?;
        self.rearm()?;
        results.get().set_committed(committed);
        Ok(())
    }

    async fn available(
        self: Rc<Self>,
        params: inventory::AvailableParams,
        mut results: inventory::AvailableResults,
    ) -> capnp::Result<()> {
        results.get().set_available(self.in_stock(&rpc_core::params::text(params.get()?.get_sku())?)?);
        Ok(())
    }
}

/// One line of a cart, as the cart stores it (key `line:<sku>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// What.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// The Inventory's reservation holding them.
    pub reservation: String,
}

/// A customer's cart.
pub struct Cart {
    pub(crate) ctx: Context,
}

impl Cart {
    fn stored_lines(&self) -> Result<Vec<Line>, RpcError> {
        Ok(self.ctx.kv().list::<Line>("line:", 1000)?.into_iter().map(|(_, l)| l).collect())
    }

    fn inventory(&self) -> Result<inventory::Client, RpcError> {
        self.ctx.object_as::<inventory::Client>("Inventory", INVENTORY)
    }

    /// Reserves `quantity` of `sku` in the Inventory (a call to another object).
    async fn reserve(&self, sku: &str, quantity: u32) -> Result<String, RpcError> {
        let mut req = self.inventory()?.reserve_request();
        {
            let mut r = req.get();
            r.set_sku(sku);
            r.set_quantity(quantity);
            r.set_holder(&self.ctx.address().name);
            r.set_ttl_ms(RESERVATION_MS);
        }
        let reply = req.send().promise.await?;
        rpc_core::params::text(reply.get()?.get_reservation())
    }

    async fn release(&self, reservation: &str) -> Result<(), RpcError> {
        let mut req = self.inventory()?.release_request();
        req.get().set_reservation(reservation);
        req.send().promise.await?;
        Ok(())
    }
}

fn write_lines(lines: &[Line], mut out: capnp::struct_list::Builder<'_, line::Owned>) {
    for (i, l) in lines.iter().enumerate() {
        let mut b = out.reborrow().get(i as u32);
        b.set_sku(&l.sku);
        b.set_quantity(l.quantity);
        b.set_reservation(&l.reservation);
    }
}

impl Class for Cart {
    type Client = cart::Client;
    const INTERFACES: &'static [schema::InterfaceDesc] = shop_interfaces::INTERFACES;
    const EVENTS: &'static [&'static str] = &["Order.created"];

    fn create(ctx: Context) -> Result<Self, RpcError> {
        Ok(Cart { ctx })
    }

    /// The `order` workflow ([`crate::order`]).
    fn workflows(w: &mut do_runtime::Workflows<Self>) {
        crate::order::register(w);
    }

    /// Counts the orders this cart placed (its storage records `Order.created`).
    async fn on_event(self: std::rc::Rc<Self>, _event: Event) -> Result<(), RpcError> {
        let kv = self.ctx.kv();
        kv.put("orders", &(kv.get::<u64>("orders")?.unwrap_or(0) + 1))
    }
}

impl object::Server for Cart {}

impl cart::Server for Cart {
    async fn add(self: Rc<Self>, params: cart::AddParams, mut results: cart::AddResults) -> capnp::Result<()> {
        let p = params.get()?;
        let (sku, quantity) = (rpc_core::params::text(p.get_sku())?, p.get_quantity());
        if quantity == 0 {
            return Err(RpcError::invalid_argument("add at least one").into());
        }
        let key = format!("line:{sku}");
        let old = self.ctx.kv().get::<Line>(&key)?;
        // More of a sku already in the cart: its reservation is replaced by one for all.
        if let Some(old) = &old {
            self.release(&old.reservation).await?;
        }
        let total = old.as_ref().map_or(0, |l| l.quantity) + quantity;
        let reservation = match self.reserve(&sku, total).await {
            Ok(r) => r,
            Err(e) => {
                // Not enough: keep what the cart had.
                if let Some(old) = old {
                    let again = self.reserve(&sku, old.quantity).await?;
                    self.ctx.kv().put(&key, &Line { reservation: again, ..old })?;
                }
                return Err(e.into());
            }
        };
        self.ctx.kv().put(&key, &Line { sku, quantity: total, reservation })?;
        let lines = self.stored_lines()?;
        write_lines(&lines, results.get().init_lines(lines.len() as u32));
        Ok(())
    }

    async fn lines(self: Rc<Self>, _: cart::LinesParams, mut results: cart::LinesResults) -> capnp::Result<()> {
        let lines = self.stored_lines()?;
        write_lines(&lines, results.get().init_lines(lines.len() as u32));
        Ok(())
    }

    async fn checkout(
        self: Rc<Self>,
        _: cart::CheckoutParams,
        mut results: cart::CheckoutResults,
    ) -> capnp::Result<()> {
        let lines = self.stored_lines()?;
        for l in &lines {
            let mut req = self.inventory()?.commit_request();
            req.get().set_reservation(&l.reservation);
            if !req.send().promise.await?.get()?.get_committed() {
                return Err(RpcError::new(Code::Expired, format!("the reservation of {} expired", l.sku)).into());
            }
        }
        // The Order and the emptied cart commit together, or neither does.
        let order = self.ctx.transaction(|ctx| {
            let items: Vec<_> =
                lines.iter().map(|l| serde_json::json!({"sku": l.sku, "quantity": l.quantity})).collect();
            let order = ctx.storage().create(
                "Order",
                "",
                &serde_json::json!({ "cart": ctx.address().name, "lines": items }),
            )?;
            for l in &lines {
                ctx.kv().delete(&format!("line:{}", l.sku))?;
            }
            if lines.is_empty() {
                return Err(RpcError::invalid_argument("the cart is empty"));
            }
            Ok(order)
        })?;
        results.get().set_order(&order.id);
        Ok(())
    }

    async fn orders(self: Rc<Self>, _: cart::OrdersParams, mut results: cart::OrdersResults) -> capnp::Result<()> {
        results.get().set_count(self.ctx.kv().get::<u64>("orders")?.unwrap_or(0));
        Ok(())
    }
}

/// A server of the shop's classes (`Cart`, `Inventory`) on a free loopback port with
/// its objects in a fresh directory named for `example`; the examples' set-up. Call
/// [`ShopServer::stop`] at the end (it removes the directory).
pub fn serve(example: &str) -> std::io::Result<ShopServer> {
    let data = std::env::temp_dir().join(format!("dotdo-{example}-{}", std::process::id()));
    let config = rpc_server::ServerConfig {
        http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        tcp_addr: None,
        workers: 1,
        ..rpc_server::ServerConfig::default()
    };
    let running = do_runtime::App::new()
        .class::<Cart>("Cart")
        .class::<Inventory>("Inventory")
        .host(do_runtime::HostConfig { data_dir: data.clone(), ..do_runtime::HostConfig::default() })
        .start(config)?;
    Ok(ShopServer { running, data })
}

/// What [`serve`] started.
pub struct ShopServer {
    /// The running server.
    pub running: do_runtime::Running,
    data: std::path::PathBuf,
}

impl ShopServer {
    /// The server's `ws://` URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/rpc", self.running.server.http_addr)
    }

    /// Stops the server and removes its objects' directory.
    pub fn stop(self) {
        self.running.server.stop();
        let _ = std::fs::remove_dir_all(self.data);
    }
}
