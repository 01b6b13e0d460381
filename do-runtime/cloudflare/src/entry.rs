//! The Worker's entry points: the built-in class under every name, `Counter` and `Ledger`.

use worker::{event, Context, Env, Request, Response, Result};

#[event(start)]
fn start() {
    let mut classes = do_modules::class::Classes::default();
    for added in [
        classes.add::<example_classes::counter::Counter>("Counter"),
        classes.add::<example_classes::ledger::Ledger>("Ledger"),
    ] {
        if let Err(e) = added {
            worker::console_error!("a class could not be registered: {}", e.message);
        }
    }
    crate::serve_classes(classes);
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    crate::routes::fetch(req, env).await
}
