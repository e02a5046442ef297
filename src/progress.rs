//! How a long-running operator command (trace, dlq, reconcile) reports its progress: the
//! library calls these; the binary draws them (a bar on a terminal, lines otherwise).

/// Progress of a command that reads steps of records (a partition, a period).
pub trait Progress {
    /// A step of `len` records described by `what`, whose position counts from `first`.
    fn start(&self, what: &str, first: u64, len: u64);
    /// The step reached position `at` (counted like `first`).
    fn at(&self, at: u64);
    /// A line between steps.
    fn say(&self, line: &str);
    /// The command is done reading.
    fn finish(&self);
}
