//! `dotdo token new-key | mint | verify | attenuate`: capability tokens on the command
//! line. Keys come from `DOTDO_TOKEN_KEY_FILE` or `DOTDO_TOKEN_KEYS` (see
//! `rpc_broker::token::KeyRing::from_env`).

use rpc_broker::token::{attenuate, Caveat, KeyRing, MintRequest, Scope};
use rpc_core::{Code, RpcError};

/// Usage of the token commands.
pub const USAGE: &str = "\
  dotdo token new-key
  dotdo token mint --target Class/name --methods storage.get,storage.query --scope read [--ttl-ms N] [--sub WHO]
  dotdo token verify TOKEN
  dotdo token attenuate TOKEN [--methods LIST] [--scope read|write] [--ttl-ms N]";

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn flags(args: &[String]) -> Result<(Vec<String>, std::collections::HashMap<String, String>), RpcError> {
    let mut positional = Vec::new();
    let mut named = std::collections::HashMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.strip_prefix("--") {
            Some(name) => {
                let v =
                    it.next().ok_or_else(|| RpcError::new(Code::InvalidArgument, format!("--{name} needs a value")))?;
                named.insert(name.to_string(), v.clone());
            }
            None => positional.push(a.clone()),
        }
    }
    Ok((positional, named))
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect()
}

/// Runs a token command; returns what to print.
pub fn run(args: &[String]) -> Result<String, RpcError> {
    let (pos, named) = flags(args.get(1..).unwrap_or(&[]))?;
    match args.first().map(String::as_str) {
        Some("new-key") => {
            let (kid, secret) = KeyRing::generate()?;
            Ok(format!(
                "{kid}:{secret}\n# export DOTDO_TOKEN_KEYS=\"{kid}:{secret}\" (append to keep older keys verifying)"
            ))
        }
        Some("mint") => {
            let get = |k: &str| {
                named.get(k).cloned().ok_or_else(|| RpcError::new(Code::InvalidArgument, format!("mint needs --{k}")))
            };
            let req = MintRequest {
                target: get("target")?,
                methods: list(&get("methods")?),
                scope: Scope::parse(&get("scope")?)?,
                ttl_ms: named
                    .get("ttl-ms")
                    .map(|v| v.parse())
                    .transpose()
                    .map_err(|_| RpcError::new(Code::InvalidArgument, "--ttl-ms is a number"))?
                    .unwrap_or(3_600_000),
                subject: named.get("sub").cloned().unwrap_or_default(),
                namespace: named.get("namespace").cloned().unwrap_or_else(|| "default".into()),
            };
            let id = format!("cli-{:x}", now_ms());
            KeyRing::from_env()?.mint(&req, now_ms(), &id)
        }
        Some("verify") => {
            let token = pos.first().ok_or_else(|| RpcError::new(Code::InvalidArgument, "verify needs a token"))?;
            let r = KeyRing::from_env()?.verify(token, now_ms())?;
            Ok(serde_json::json!({
                "target": r.target, "methods": r.methods(), "scope": r.scope.as_str(), "expiresAt": r.expires_at,
                "issuedAt": r.issued_at, "subject": r.subject, "tokenId": r.token_id, "keyId": r.key_id,
            })
            .to_string())
        }
        Some("attenuate") => {
            let token = pos.first().ok_or_else(|| RpcError::new(Code::InvalidArgument, "attenuate needs a token"))?;
            let caveat = Caveat {
                methods: named.get("methods").map(|m| list(m)),
                scope: named.get("scope").map(|s| Scope::parse(s)).transpose()?,
                expires_at: named
                    .get("ttl-ms")
                    .map(|v| v.parse::<i64>().map(|t| now_ms() + t))
                    .transpose()
                    .map_err(|_| RpcError::new(Code::InvalidArgument, "--ttl-ms is a number"))?,
            };
            attenuate(token, &caveat)
        }
        _ => Err(RpcError::new(Code::InvalidArgument, format!("usage:\n{USAGE}"))),
    }
}
