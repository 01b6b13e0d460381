//! `dotdo token new-key | mint | verify | attenuate`: capability tokens on the command
//! line. Keys come from `DOTDO_TOKEN_KEY_FILE` or `DOTDO_TOKEN_KEYS` (see
//! `rpc_broker::token::KeyRing::from_env`).

use rpc_broker::token::{attenuate, Caveat, KeyRing, MintRequest, Scope};
use rpc_core::RpcError;

/// A `dotdo token` command, as `clap` parses it.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a new signing key (`kid:secret`) to put in DOTDO_TOKEN_KEYS.
    NewKey,
    /// Mint a token with the configured key.
    Mint {
        /// The object the token opens: `Class/name`.
        #[arg(long)]
        target: String,
        /// The methods it may call, comma-separated (`storage.get,storage.query`, `storage.*`).
        #[arg(long)]
        methods: String,
        /// `read`, `write` or `admin`.
        #[arg(long)]
        scope: String,
        /// Lifetime in milliseconds.
        #[arg(long, default_value_t = 3_600_000)]
        ttl_ms: u64,
        /// Who the token is for.
        #[arg(long, default_value = "")]
        sub: String,
        /// The namespace the target lives in.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Check a token's signature and expiry and print its claims as JSON.
    Verify {
        /// The token.
        token: String,
    },
    /// Narrow a token (no key needed): fewer methods, a lower scope, an earlier expiry.
    Attenuate {
        /// The token.
        token: String,
        /// Keep only these methods, comma-separated.
        #[arg(long)]
        methods: Option<String>,
        /// Lower the scope to `read` or `write`.
        #[arg(long)]
        scope: Option<String>,
        /// Expire this many milliseconds from now.
        #[arg(long)]
        ttl_ms: Option<i64>,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect()
}

/// Runs a token command; returns what to print.
pub fn run(command: &TokenCommand) -> Result<String, RpcError> {
    match command {
        TokenCommand::NewKey => {
            let (kid, secret) = KeyRing::generate()?;
            Ok(format!(
                "{kid}:{secret}\n# export DOTDO_TOKEN_KEYS=\"{kid}:{secret}\" (append to keep older keys verifying)"
            ))
        }
        TokenCommand::Mint { target, methods, scope, ttl_ms, sub, namespace } => {
            let req = MintRequest {
                target: target.clone(),
                methods: list(methods),
                scope: Scope::parse(scope)?,
                ttl_ms: *ttl_ms,
                subject: sub.clone(),
                namespace: namespace.clone(),
            };
            // A random id (a failing random source fails the mint), so two mints in
            // the same millisecond are told apart and one can be revoked alone.
            KeyRing::from_env()?.mint_new(&req, now_ms())
        }
        TokenCommand::Verify { token } => {
            let r = KeyRing::from_env()?.verify(token, now_ms())?;
            Ok(serde_json::json!({
                "target": r.target, "methods": r.methods(), "scope": r.scope.as_str(), "expiresAt": r.expires_at,
                "issuedAt": r.issued_at, "subject": r.subject, "tokenId": r.token_id, "keyId": r.key_id,
            })
            .to_string())
        }
        TokenCommand::Attenuate { token, methods, scope, ttl_ms } => {
            let caveat = Caveat {
                methods: methods.as_deref().map(list),
                scope: scope.as_deref().map(Scope::parse).transpose()?,
                expires_at: ttl_ms.map(|t| now_ms().saturating_add(t)),
            };
            attenuate(token, &caveat)
        }
    }
}
