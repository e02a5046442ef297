//! Reading a stopped tansu broker's own SQLite store, for topics too long to read back over
//! the Kafka protocol.
//!
//! tansu 0.6.0 answers every fetch by summing record sizes over the whole rest of the
//! partition (`record_fetch.sql`), so reading a partition back costs the square of its
//! length: the ~290,000 records of a 100,000-notification chaos run could not be read back in
//! 50 minutes, while the same store reads in seconds. The records are the ones the broker
//! confirmed (tansu writes a produce into its store before it answers).

use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;

use super::Record;

/// Every record of `topic` in the store at `db`, in partition and offset order, with its
/// headers. The broker must be stopped (opening the store completes what its journal holds;
/// nothing is written).
pub fn records(db: &Path, topic: &str) -> Vec<Record> {
    let connection = Connection::open(db).unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let mut headers = record_headers(&connection, topic);
    let mut statement = connection
        .prepare(
            "select tp.partition, r.offset_id, r.timestamp, r.k, r.v
             from record r join topition tp on r.topition = tp.id join topic t on tp.topic = t.id
             where t.name = ?1 order by tp.partition, r.offset_id",
        )
        .unwrap_or_else(|e| panic!("the tansu store's schema changed: {e}"));
    let rows = statement
        .query_map([topic], |row| {
            Ok(Record {
                partition: row.get(0)?,
                offset: row.get(1)?,
                timestamp: row.get(2)?,
                key: row.get::<_, Option<Vec<u8>>>(3)?.map(|k| String::from_utf8_lossy(&k).into_owned()),
                value: row.get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default(),
                headers: Vec::new(),
            })
        })
        .unwrap_or_else(|e| panic!("read {topic} from the store: {e}"));
    rows.map(|row| {
        let mut record = row.unwrap_or_else(|e| panic!("a record of {topic} in the store: {e}"));
        record.headers = headers.remove(&(record.partition, record.offset)).unwrap_or_default();
        record
    })
    .collect()
}

/// The headers of every record of `topic`, by partition and offset.
fn record_headers(connection: &Connection, topic: &str) -> HashMap<(i32, i64), Vec<(String, String)>> {
    let mut statement = connection
        .prepare(
            "select tp.partition, h.offset_id, h.k, h.v
             from header h join topition tp on h.topition = tp.id join topic t on tp.topic = t.id
             where t.name = ?1 order by tp.partition, h.offset_id, h.rowid",
        )
        .unwrap_or_else(|e| panic!("the tansu store's schema changed: {e}"));
    let rows = statement
        .query_map([topic], |row| {
            let text = |bytes: Option<Vec<u8>>| String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned();
            Ok(((row.get(0)?, row.get(1)?), (text(row.get(2)?), text(row.get(3)?))))
        })
        .unwrap_or_else(|e| panic!("read the headers of {topic} from the store: {e}"));
    let mut headers: HashMap<(i32, i64), Vec<(String, String)>> = HashMap::new();
    for row in rows {
        let (at, header) = row.unwrap_or_else(|e| panic!("a header of {topic} in the store: {e}"));
        headers.entry(at).or_default().push(header);
    }
    headers
}
