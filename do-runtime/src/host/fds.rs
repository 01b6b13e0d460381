//! How many objects the host can keep open: each live object holds about
//! [`FDS_PER_OBJECT`] file descriptors (its SQLite file, WAL and shared-memory index),
//! so the bound comes from the process's open-files limit (`RLIMIT_NOFILE`), less a
//! reserve for connections, listeners and the host's own files.

/// File descriptors one live object holds (database, `-wal`, `-shm`).
pub const FDS_PER_OBJECT: u64 = 3;

/// The open-files limit assumed when the process's own cannot be read (the usual soft
/// limit of a Linux shell).
pub const FALLBACK_NOFILE: u64 = 1024;

/// Descriptors kept for everything but objects: a quarter of the limit, at least 128
/// (sessions, listeners, the alarm indexes and the broker's store).
pub fn reserve(nofile: u64) -> u64 {
    (nofile / 4).max(128)
}

pub use rpc_server::open_files_limit;

/// Most objects each of `threads` object threads may keep live under an open-files
/// limit of `nofile`: what is left after the [`reserve`], [`FDS_PER_OBJECT`] each,
/// shared between the threads (at least one per thread).
pub fn live_objects_per_thread(nofile: u64, threads: usize) -> usize {
    let objects = nofile.saturating_sub(reserve(nofile)) / FDS_PER_OBJECT;
    let per_thread = objects / (threads.max(1) as u64);
    usize::try_from(per_thread).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_leaves_room_for_connections() {
        // At 1024 descriptors: 256 kept back, 768 / 3 = 256 objects, 128 per thread.
        assert_eq!(live_objects_per_thread(1024, 2), 128);
        assert_eq!(live_objects_per_thread(1024, 1), 256);
        assert_eq!(live_objects_per_thread(65_536, 4), 4096);
        // A tiny limit still allows an object per thread; no limit is no bound.
        assert_eq!(live_objects_per_thread(100, 8), 1);
        assert!(live_objects_per_thread(u64::MAX, 2) > 1 << 40);
        for nofile in [256, 1024, 4096, 1 << 20] {
            let total = live_objects_per_thread(nofile, 1) as u64;
            assert!(total * FDS_PER_OBJECT + reserve(nofile) <= nofile, "{nofile}");
        }
    }
}
