//! Start-up and idle memory: `paybridge run` with each source alone and with all three,
//! against empty sandboxes: the time from spawn to /readyz 200 (several starts), and the
//! resident memory once it has been idle for a while.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::measure;
use crate::running::Running;
use crate::setup::{self, Topics};
use crate::support::Broker;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Startup {
    /// ripplenet, checkout, payments_direct or all three.
    pub sources: String,
    /// Spawn to /readyz 200 of each start, ms.
    pub start_to_ready_ms: Vec<f64>,
    pub median_ms: f64,
    /// Resident memory after `idle_s` seconds without work (the last start).
    pub idle_rss_mib: f64,
    /// Of it: anonymous memory (heap, stacks) and pages of files (the binary, libraries).
    #[serde(default)]
    pub idle_rss_anon_mib: f64,
    #[serde(default)]
    pub idle_rss_file_mib: f64,
    #[serde(default)]
    pub threads: usize,
    pub idle_s: f64,
}

pub async fn measure_all(broker: &Broker, starts: usize, idle: Duration) -> Vec<Startup> {
    let keys = crate::support::keys::rsa_keys();
    let sb = crate::support::checkout::sandbox(&keys).await;
    let key = keys.private_file.display().to_string();
    let sections = [
        ("ripplenet", vec![setup::ripplenet(&sb, "")]),
        ("checkout", vec![setup::checkout(&sb, &key)]),
        ("payments_direct", vec![setup::payments_direct(&sb)]),
        ("all three", vec![setup::ripplenet(&sb, ""), setup::checkout(&sb, &key), setup::payments_direct(&sb)]),
    ];
    let mut results = Vec::new();
    for (name, sections) in sections {
        let topics = Topics::new(broker, "bench-start");
        let config = setup::bridge_config(broker, &topics, None, &sections);
        let mut times = Vec::new();
        let (mut idle_rss, mut split) = (0.0, (0.0, 0.0, 0));
        for i in 0..starts {
            let run = Running::start(&config, broker.pid());
            times.push(run.ready.as_secs_f64() * 1e3);
            if i + 1 == starts {
                tokio::time::sleep(idle).await;
                idle_rss = measure::rss_mib(run.bridge.pid());
                split = measure::rss_split(run.bridge.pid());
            }
            run.finish(1, name);
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        results.push(Startup {
            sources: name.into(),
            median_ms: sorted.get(sorted.len() / 2).copied().unwrap_or_default(),
            start_to_ready_ms: times,
            idle_rss_mib: idle_rss,
            idle_rss_anon_mib: split.0,
            idle_rss_file_mib: split.1,
            threads: split.2,
            idle_s: idle.as_secs_f64(),
        });
    }
    results
}
