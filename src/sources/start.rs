//! Starting a configured source: the one place that knows the kinds of source. The bridge
//! gets each back as a [`Source`] and wires them all the same way.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::SourceContext;
use super::checkout::Checkout;
use super::payments_direct::{PaymentsDirect, Role};
use super::ripplenet::{Poller, Ripplenet, health_name};
use super::runtime::Singleton;
use super::webhook::WebhookSource;
use crate::config::{KafkaConfig, SourceConfig};

/// A started source, ready to run.
pub trait Source: Send {
    /// Starts its tasks; its webhook path and intake when its webhooks are on.
    fn run(self: Box<Self>, tasks: &mut JoinSet<()>) -> Option<(String, Arc<dyn WebhookSource>)>;
}

/// What every source is started with.
pub struct Wiring<'a> {
    pub ctx: SourceContext,
    pub kafka: &'a KafkaConfig,
    pub pipeline_capacity: usize,
    /// `[cluster]`: the gate of a singleton task (None without `[cluster]`).
    pub singleton: &'a (dyn Fn(&str) -> Option<Singleton> + Sync),
}

/// Starts the source `config` describes; the reason when it cannot.
pub async fn start(config: &SourceConfig, wiring: &Wiring<'_>) -> Result<Box<dyn Source>, String> {
    let webhook_path = config.webhook_path();
    Ok(match config {
        SourceConfig::Ripplenet(cfg) => {
            let source = Ripplenet::new(cfg.clone(), wiring.ctx.clone()).map_err(|e| e.to_string())?;
            let sweeper = (wiring.singleton)(&health_name(&cfg.name, Poller::Sent));
            Box::new(RipplenetRun { source, capacity: wiring.pipeline_capacity, sweeper, webhook_path })
        }
        SourceConfig::Checkout(cfg) => {
            let source = Checkout::new(cfg.clone(), wiring.ctx.clone()).map_err(|e| e.to_string())?;
            Box::new(CheckoutRun { source, capacity: wiring.pipeline_capacity })
        }
        SourceConfig::PaymentsDirect(cfg) => {
            let cycle = (wiring.singleton)(&cfg.name);
            let role = if cycle.is_some() { Role::Webhooks } else { Role::Whole };
            let source = PaymentsDirect::start(cfg.clone(), wiring.kafka, wiring.ctx.clone(), role).await?;
            Box::new(PaymentsDirectRun { source, cycle, kafka: wiring.kafka.clone(), webhook_path })
        }
    })
}

struct RipplenetRun {
    source: Arc<Ripplenet>,
    capacity: usize,
    sweeper: Option<Singleton>,
    webhook_path: Option<String>,
}

impl Source for RipplenetRun {
    fn run(self: Box<Self>, tasks: &mut JoinSet<()>) -> Option<(String, Arc<dyn WebhookSource>)> {
        self.source.spawn(tasks, self.capacity, self.sweeper);
        let hook: Arc<dyn WebhookSource> = self.source;
        self.webhook_path.map(|path| (path, hook))
    }
}

struct CheckoutRun {
    source: Arc<Checkout>,
    capacity: usize,
}

impl Source for CheckoutRun {
    fn run(self: Box<Self>, tasks: &mut JoinSet<()>) -> Option<(String, Arc<dyn WebhookSource>)> {
        self.source.spawn(tasks, self.capacity);
        None
    }
}

struct PaymentsDirectRun {
    source: Arc<PaymentsDirect>,
    /// `[cluster]`: the cursor cycle's singleton gate.
    cycle: Option<Singleton>,
    kafka: KafkaConfig,
    webhook_path: Option<String>,
}

impl Source for PaymentsDirectRun {
    fn run(self: Box<Self>, tasks: &mut JoinSet<()>) -> Option<(String, Arc<dyn WebhookSource>)> {
        match self.cycle {
            Some(cycle) => self.source.spawn_singleton(tasks, cycle, self.kafka),
            None => self.source.spawn(tasks),
        }
        let hook: Arc<dyn WebhookSource> = self.source;
        self.webhook_path.map(|path| (path, hook))
    }
}
