//! Which build this is.

/// This build's version (the crate's) and the commit it was built from (`build.rs`:
/// `PAYBRIDGE_COMMIT` or git, "unknown" without either).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("PAYBRIDGE_COMMIT");
