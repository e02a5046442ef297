//! Backfill progress on stderr: a bar on a terminal, plain periodic lines otherwise (logs,
//! CI, `kubectl logs`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::Tally;

/// The most often a plain progress line is written.
pub const LINE_EVERY: Duration = Duration::from_secs(2);

pub enum Progress {
    Bar(ProgressBar),
    Lines { source: String, last: Option<Instant> },
}

impl Progress {
    /// A bar over `slices` when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr(source: &str, slices: usize) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(slices as u64);
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} slices (eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Self::Bar(bar)
        } else {
            Self::Lines { source: source.to_owned(), last: None }
        }
    }

    /// After a confirmed page; `slices_done` slices are complete.
    pub fn page(&mut self, tally: &Tally, slices_done: usize, slices: usize) {
        match self {
            Self::Bar(bar) => {
                bar.set_position(slices_done as u64);
                bar.set_message(tally.to_string());
            }
            Self::Lines { source, last } => {
                if last.is_some_and(|t| t.elapsed() < LINE_EVERY) {
                    return;
                }
                *last = Some(Instant::now());
                eprintln!("backfill {source}: {tally}; {slices_done}/{slices} slices done");
            }
        }
    }

    /// Prints `note` (e.g. "stopping after the current page") without tearing the bar.
    pub fn note(&self, note: &str) {
        match self {
            Self::Bar(bar) => bar.println(note),
            Self::Lines { .. } => eprintln!("{note}"),
        }
    }

    pub fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish();
        }
    }
}
