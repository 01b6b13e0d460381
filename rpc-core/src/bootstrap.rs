//! The answers of the session's bootstrap capability (`session.capnp:Gateway`) that do
//! not depend on the host: `negotiate` and `describe`. The native server and the
//! Cloudflare Worker answer them with these, so a client sees the same either way.

use crate::negotiation::{negotiate as agree, Offer, ServerProtocol};
use crate::params::texts;
use schema::session_capnp::gateway;

fn set_strings(mut list: capnp::text_list::Builder<'_>, items: &[String]) {
    for (i, s) in items.iter().enumerate() {
        list.set(i as u32, s);
    }
}

/// Answers `Gateway.negotiate` for the session `session_id` in `namespace`.
pub fn negotiate(
    protocol: &ServerProtocol,
    session_id: &str,
    namespace: &str,
    params: &gateway::NegotiateParams,
    results: &mut gateway::NegotiateResults,
) -> capnp::Result<()> {
    let req = params.get()?.get_request()?;
    let offer = Offer {
        client_id: req.get_client_id()?.to_string().unwrap_or_default(),
        min_version: req.get_min_version(),
        max_version: req.get_max_version(),
        supported: texts(req.get_supported_features())?,
        required: texts(req.get_required_features())?,
    };
    let agreed = agree(protocol, &offer)?;
    let mut out = results.get().init_result();
    out.set_version(agreed.version);
    out.set_client_id(&offer.client_id);
    out.set_session_id(session_id);
    out.set_namespace(namespace);
    set_strings(out.reborrow().init_enabled_features(agreed.enabled.len() as u32), &agreed.enabled);
    set_strings(out.init_available_features(agreed.available.len() as u32), &agreed.available);
    Ok(())
}

/// Answers `Gateway.describe`: every interface this build knows (with its methods) and
/// the schema files they come from, each once.
pub fn describe(results: &mut gateway::DescribeResults) {
    let interfaces = schema::interfaces();
    let mut list = results.get().init_interfaces(interfaces.len() as u32);
    for (i, desc) in interfaces.iter().enumerate() {
        let mut item = list.reborrow().get(i as u32);
        item.set_name(desc.name);
        item.set_id(desc.id);
        let mut methods = item.init_methods(desc.methods.len() as u32);
        for (j, m) in desc.methods.iter().enumerate() {
            let mut mi = methods.reborrow().get(j as u32);
            mi.set_name(m.name);
            mi.set_ordinal(m.ordinal);
        }
    }
    // The schemas the interfaces come from, each once (the built-in files share one).
    let mut schemas: Vec<&'static [u8]> = Vec::new();
    for desc in &interfaces {
        if !desc.schema.is_empty() && !schemas.iter().any(|s| std::ptr::eq(*s, desc.schema) || *s == desc.schema) {
            schemas.push(desc.schema);
        }
    }
    let mut list = results.get().init_schemas(schemas.len() as u32);
    for (i, s) in schemas.iter().enumerate() {
        list.set(i as u32, s);
    }
}
