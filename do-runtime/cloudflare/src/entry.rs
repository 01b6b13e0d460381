//! The Worker's entry points: the built-in class under every name, and `Counter`.

use worker::{event, Context, Env, Request, Response, Result};

#[event(start)]
fn start() {
    let mut classes = do_modules::class::Classes::default();
    if let Err(e) = classes.add::<example_classes::counter::Counter>("Counter") {
        worker::console_error!("Counter could not be registered: {}", e.message);
    }
    crate::serve_classes(classes);
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    crate::routes::fetch(req, env).await
}
