//! Examples are the `*.rs` programs beside this crate's manifest.
