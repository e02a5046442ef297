//! The sandbox ledger: every notification created, request served, ack and webhook
//! attempt, with its (virtual) time, so tests can check ordering and count calls.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    NotificationCreated,
    Request,
    Ack,
    Webhook,
    /// A Payments Direct search page served: `id` is its window, `<after>..<before>`.
    SearchWindow,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: EntryKind,
    pub provider: String,
    /// The notification or payment concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `METHOD /path` for requests and webhooks; the endpoint name for acks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

#[derive(Default)]
pub struct Ledger {
    entries: Vec<LedgerEntry>,
}

impl Ledger {
    pub fn record(
        &mut self,
        at: DateTime<Utc>,
        kind: EntryKind,
        provider: &str,
        id: Option<String>,
        endpoint: Option<String>,
        status: Option<u16>,
    ) {
        let seq = self.entries.len() as u64;
        self.entries.push(LedgerEntry { seq, at, kind, provider: provider.to_owned(), id, endpoint, status });
    }

    /// Entries matching the optional filters, in order.
    pub fn query(&self, kind: Option<EntryKind>, provider: Option<&str>, since: u64) -> Vec<LedgerEntry> {
        self.entries
            .iter()
            .skip(usize::try_from(since).unwrap_or(usize::MAX))
            .filter(|e| kind.is_none_or(|k| e.kind == k) && provider.is_none_or(|p| e.provider == p))
            .cloned()
            .collect()
    }
}
