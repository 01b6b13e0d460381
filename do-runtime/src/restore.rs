//! `dotdo restore`: rebuilds an object's SQLite file from its newest snapshot in the
//! cold tier, in the recovery order of [`do_modules::snapshot`]. The file there (if any:
//! a damaged one, say) and its WAL are kept beside it as `<file>.before-restore-<ms>`.
//! Run it while the object is not loaded (with the server stopped, or before anything
//! calls the object).

use crate::host::registry::ObjectKey;
use crate::host::sqlite::SqliteDb;
use do_modules::snapshot::{self, Manifest};
use rpc_core::{Code, RpcError};
use std::path::{Path, PathBuf};

/// What `dotdo restore` is asked.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RestoreArgs {
    /// The data directory the server uses.
    #[arg(long, default_value = ".dotdo")]
    pub data: PathBuf,
    /// The cold tier holding the snapshots: a directory, or s3://bucket/prefix.
    #[arg(long, value_name = "DIR|URL")]
    pub cold: String,
    /// The object's namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// The object's class.
    pub class: String,
    /// The object's name.
    pub name: String,
}

/// The object's SQLite file under `data`.
pub fn object_file(data: &Path, key: &ObjectKey) -> PathBuf {
    data.join(&key.namespace).join(&key.class).join(format!("{}.sqlite", key.id()))
}

fn io(what: &str, e: &std::io::Error) -> RpcError {
    RpcError::new(Code::Internal, format!("{what}: {e}"))
}

/// Moves `file` and its `-wal`/`-shm` aside with `suffix`; whether there was a file.
fn move_aside(file: &Path, suffix: &str) -> Result<bool, RpcError> {
    let mut moved = false;
    for ext in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{ext}", file.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}{ext}{suffix}", file.display()));
            std::fs::rename(&from, &to).map_err(|e| io("cannot move the old file aside", &e))?;
            moved |= ext.is_empty();
        }
    }
    Ok(moved)
}

/// Restores the object `args` names; the manifest it restored.
pub async fn run(args: &RestoreArgs) -> Result<Manifest, RpcError> {
    rpc_core::ident::namespace(&args.namespace)?;
    rpc_core::ident::class(&args.class)?;
    rpc_core::ident::object_name(&args.name)?;
    let key = ObjectKey { namespace: args.namespace.clone(), class: args.class.clone(), name: args.name.clone() };
    let cold = do_cold::ColdStore::open(&args.cold)?;
    let id = key.id();
    let manifest = snapshot::latest(&cold, &id).await?.ok_or_else(|| {
        RpcError::new(
            Code::NotFound,
            format!("no snapshot of {}/{}/{} in {}", key.namespace, key.class, key.name, cold.location),
        )
    })?;
    let file = object_file(&args.data, &key);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create the object's directory", &e))?;
    }
    let suffix = format!(".before-restore-{}", rpc_core::params::now_ms());
    let had = move_aside(&file, &suffix)?;
    let restored = async {
        let db = SqliteDb::open(&file)?;
        snapshot::restore(&db, &cold, &manifest).await
    }
    .await;
    if let Err(e) = restored {
        // Put back what was there.
        let _ = move_aside(&file, ".failed-restore");
        if had {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::rename(format!("{}{ext}{suffix}", file.display()), format!("{}{ext}", file.display()));
            }
        }
        return Err(e);
    }
    Ok(manifest)
}
