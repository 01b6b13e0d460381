//! dotdo's cold tier on a native host: [`ColdStore`] implements `do_modules`'
//! [`Cold`] over an object store, a local directory or S3 (and stores that speak its
//! API: MinIO, R2, moto), keeping tables as Parquet ([`encode`], [`decode`]).
//!
//! Where it is: `DIR` (or `file://DIR`), or `s3://bucket/prefix` with the credentials,
//! region and endpoint from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`...),
//! any of which the URL's query may set instead (`?endpoint=http://127.0.0.1:9000&
//! aws_allow_http=true&region=us-east-1`; keys as object_store's `AmazonS3ConfigKey`
//! parses them).

mod parquet_table;

pub use parquet_table::{decode, encode};

use do_modules::host::{Cold, Pending, Table};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rpc_core::{Code, RpcError};
use std::sync::Arc;

/// An object store and the prefix of dotdo's keys in it; cheap to clone.
#[derive(Clone, Debug)]
pub struct ColdStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Where it is, without credentials (for logs and errors).
    pub location: String,
}

fn store_error(what: &str, e: &object_store::Error) -> RpcError {
    tracing::warn!(error = %e, what, "cold tier");
    RpcError::new(Code::Unavailable, format!("the cold tier could not {what}: {e}"))
}

impl ColdStore {
    /// Opens the store `spec` names (see the crate docs). A directory is created if
    /// missing; an S3 bucket must exist.
    pub fn open(spec: &str) -> Result<ColdStore, RpcError> {
        let bad = |m: String| RpcError::invalid_argument(format!("cold tier {spec:?}: {m}"));
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket".into()));
            }
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| bad(format!("{pair:?} is not key=value")))?;
                let key: object_store::aws::AmazonS3ConfigKey =
                    k.parse().map_err(|_| bad(format!("unknown option {k:?}")))?;
                builder = builder.with_config(key, v);
            }
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            Ok(ColdStore {
                store: Arc::new(store),
                prefix: prefix.trim_matches('/').to_string(),
                location: format!("s3://{path}"),
            })
        } else {
            let dir = spec.strip_prefix("file://").unwrap_or(spec);
            if dir.is_empty() {
                return Err(bad("no directory".into()));
            }
            std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create the directory: {e}")))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(e.to_string()))?;
            Ok(ColdStore { store: Arc::new(store), prefix: String::new(), location: dir.to_string() })
        }
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Stores `bytes` under `key`.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RpcError> {
        self.store.put(&self.path(key), PutPayload::from(bytes)).await.map_err(|e| store_error("write", &e))?;
        Ok(())
    }

    /// The bytes under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RpcError> {
        match self.store.get(&self.path(key)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| store_error("read", &e))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("read", &e)),
        }
    }

    /// Every key under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, RpcError> {
        use futures::TryStreamExt;
        let base = self.path(prefix.trim_end_matches('/'));
        let found: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&base)).try_collect().await.map_err(|e| store_error("list", &e))?;
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        Ok(found
            .into_iter()
            .map(|m| m.location.to_string().strip_prefix(&strip).map(str::to_string).unwrap_or_default())
            .collect())
    }
}

impl Cold for ColdStore {
    fn put_table(&self, key: &str, table: Table) -> Pending<u64> {
        let (this, key) = (self.clone(), key.to_string());
        Box::pin(async move {
            let bytes = encode(&table)?;
            let n = bytes.len() as u64;
            this.put(&key, bytes).await?;
            Ok(n)
        })
    }

    fn get_table(&self, key: &str) -> Pending<Option<Table>> {
        let (this, key) = (self.clone(), key.to_string());
        Box::pin(async move { this.get(&key).await?.map(|b| decode(&b)).transpose() })
    }

    fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Pending<()> {
        let (this, key) = (self.clone(), key.to_string());
        Box::pin(async move { this.put(&key, bytes).await })
    }

    fn get_bytes(&self, key: &str) -> Pending<Option<Vec<u8>>> {
        let (this, key) = (self.clone(), key.to_string());
        Box::pin(async move { this.get(&key).await })
    }

    fn list(&self, prefix: &str) -> Pending<Vec<String>> {
        let (this, prefix) = (self.clone(), prefix.to_string());
        Box::pin(async move { this.keys(&prefix).await })
    }
}
