//! The native host's model for workflow cascades: an OpenAI-compatible chat completions
//! endpoint (`POST {base}/chat/completions`), named by the environment, with nothing
//! vendor-specific beyond that API. `http://` (a local model server) or `https://`
//! (with the client's TLS roots: the platform's and `DOTDO_CA_FILE`'s).

use bytes::Bytes;
use do_modules::workflow::ai::{Ai, AiFuture};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rpc_core::{Code, RpcError};
use std::time::Duration;

/// Where the model is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiConfig {
    /// The API's base URL, e.g. `http://127.0.0.1:8080/v1` (`DOTDO_AI_BASE_URL`).
    pub base_url: String,
    /// The bearer key, if the endpoint wants one (`DOTDO_AI_API_KEY`).
    pub api_key: Option<String>,
    /// The model's name (`DOTDO_AI_MODEL`, default `gpt-4o-mini`).
    pub model: String,
    /// How long one completion may take (`DOTDO_AI_TIMEOUT_SECS`, default 60).
    pub timeout: Duration,
}

impl AiConfig {
    /// The configuration in the environment, if `DOTDO_AI_BASE_URL` is set.
    pub fn from_env() -> Option<AiConfig> {
        let base_url = std::env::var("DOTDO_AI_BASE_URL").ok().filter(|s| !s.trim().is_empty())?;
        Some(AiConfig {
            base_url,
            api_key: std::env::var("DOTDO_AI_API_KEY").ok().filter(|s| !s.is_empty()),
            model: std::env::var("DOTDO_AI_MODEL")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "gpt-4o-mini".into()),
            timeout: std::env::var("DOTDO_AI_TIMEOUT_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or(Duration::from_secs(60), Duration::from_secs),
        })
    }
}

/// Most bytes of a model's response read.
const MAX_RESPONSE: usize = 4 << 20;

/// A client of an OpenAI-compatible endpoint.
pub struct OpenAiCompatible {
    config: AiConfig,
    client: Result<Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>, RpcError>,
}

impl OpenAiCompatible {
    /// A client for `config` (on the current thread's tokio runtime).
    pub fn new(config: AiConfig) -> Self {
        let client = rpc_client::tls::default_config().map(|tls| {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.enforce_http(false);
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*tls).clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            Client::builder(TokioExecutor::new()).build(connector)
        });
        OpenAiCompatible { config, client }
    }
}

/// The request body for `prompt`, asking for JSON (following `schema` when given).
pub fn request_body(model: &str, prompt: &str, schema: Option<&serde_json::Value>) -> serde_json::Value {
    let format = match schema {
        Some(s) => serde_json::json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": s}}),
        None => serde_json::json!({"type": "json_object"}),
    };
    serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Answer with one JSON value and nothing else."},
            {"role": "user", "content": prompt},
        ],
        "response_format": format,
    })
}

/// The JSON answer in a chat completions response body.
pub fn answer_of(body: &[u8]) -> Result<serde_json::Value, RpcError> {
    let bad = |why: String| RpcError::new(Code::Internal, format!("the model's response {why}"));
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(format!("is not JSON: {e}")))?;
    let content = v
        .pointer("/choices/0/message/content")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad("has no choices[0].message.content".into()))?;
    let trimmed = content.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|s| s.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(unfenced.trim()).map_err(|e| bad(format!("content is not JSON: {e}")))
}

fn status_error(status: u16, body: &[u8]) -> RpcError {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).to_string();
    let code = match status {
        401 | 403 => Code::Unauthorized,
        408 | 429 | 500..=599 => Code::Unavailable,
        _ => Code::InvalidArgument,
    };
    RpcError::new(code, format!("the model answered HTTP {status}: {text}"))
}

impl Ai for OpenAiCompatible {
    fn complete(&self, prompt: &str, schema: Option<&serde_json::Value>) -> AiFuture {
        let url = format!("{}/chat/completions", self.config.base_url.trim_end_matches('/'));
        let body = request_body(&self.config.model, prompt, schema).to_string();
        let (client, key, timeout) = (self.client.clone(), self.config.api_key.clone(), self.config.timeout);
        Box::pin(async move {
            let client = client?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(RpcError::invalid_argument("the model's URL must be http:// or https://"));
            }
            let mut req = hyper::Request::post(url.as_str()).header(hyper::header::CONTENT_TYPE, "application/json");
            if let Some(k) = key {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {k}"));
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| RpcError::invalid_argument(format!("the model's URL: {e}")))?;
            let exchange = async {
                let resp = client
                    .request(req)
                    .await
                    .map_err(|e| RpcError::new(Code::Unavailable, format!("cannot reach the model: {e}")))?;
                let status = resp.status().as_u16();
                let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
                    .collect()
                    .await
                    .map_err(|e| RpcError::new(Code::Unavailable, format!("the model's response: {e}")))?
                    .to_bytes();
                if !(200..300).contains(&status) {
                    return Err(status_error(status, &bytes));
                }
                answer_of(&bytes)
            };
            tokio::time::timeout(timeout, exchange).await.unwrap_or_else(|_| {
                Err(RpcError::new(Code::Timeout, format!("the model took longer than {timeout:?}")))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_the_content_as_json_fenced_or_not() {
        let body = |c: &str| serde_json::json!({"choices": [{"message": {"content": c}}]}).to_string();
        assert_eq!(answer_of(body(r#"{"a": 1}"#).as_bytes()).expect("json"), serde_json::json!({"a": 1}));
        assert_eq!(answer_of(body("```json\n[1, 2]\n```").as_bytes()).expect("fenced"), serde_json::json!([1, 2]));
        assert_eq!(answer_of(body("not json").as_bytes()).map_err(|e| e.code), Err(Code::Internal));
        assert_eq!(answer_of(b"{}").map_err(|e| e.code), Err(Code::Internal));
        assert_eq!(status_error(429, b"slow down").code, Code::Unavailable);
        assert_eq!(status_error(401, b"").code, Code::Unauthorized);
        let req = request_body("m", "p", Some(&serde_json::json!({"type": "object"})));
        assert_eq!(req["response_format"]["type"], "json_schema");
        assert_eq!(req["messages"][1]["content"], "p");
    }
}
