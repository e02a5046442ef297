//! `paybridge backfill`: runs a backfill with its progress on stderr and the summary on
//! stdout. Ctrl-C (or SIGTERM) stops it after the current page is confirmed, a second one at
//! once. Exit 0 when complete, 130 when stopped, 1 on failure, 2 on bad input.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use paybridge::backfill::period::stamp;
use paybridge::backfill::{Ending, Progress, Report, Request, SetupError, Tally};
use paybridge::config::Config;

/// The most often a plain progress line is written.
const LINE_EVERY: Duration = Duration::from_secs(2);

pub fn run(path: &Path, config: Config, request: Request) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("paybridge backfill: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut progress = StderrProgress::Unstarted { source: request.source.clone() };
    let result = runtime.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            paybridge::wait_for_signal().await;
            eprintln!("stopping after the current page is confirmed (again to quit at once)");
            trigger.cancel();
            paybridge::wait_for_signal().await;
            eprintln!("quitting: the current page may be partly published (same ids when published again)");
            std::process::exit(130);
        });
        paybridge::backfill::run(&config, &request, stop, &mut progress).await
    });
    match result {
        Ok(report) => {
            print!("{}", summary(&report, path));
            match report.ending {
                Ending::Complete => ExitCode::SUCCESS,
                Ending::Interrupted => ExitCode::from(130),
                Ending::Failed(_) => ExitCode::FAILURE,
            }
        }
        Err(e @ SetupError::Input(_)) => {
            eprintln!("paybridge backfill: {e}");
            ExitCode::from(2)
        }
        Err(e @ SetupError::Unavailable(_)) => {
            eprintln!("paybridge backfill: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Backfill progress on stderr: a bar on a terminal, plain periodic lines otherwise (logs,
/// CI, `kubectl logs`).
enum StderrProgress {
    Unstarted { source: String },
    Bar(ProgressBar),
    Lines { source: String, last: Option<Instant> },
}

impl Progress for StderrProgress {
    fn begin(&mut self, slices: usize) {
        let Self::Unstarted { source } = self else { return };
        *self = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(slices as u64);
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} slices (eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Self::Bar(bar)
        } else {
            Self::Lines { source: std::mem::take(source), last: None }
        };
    }

    fn page(&mut self, tally: &Tally, slices_done: usize, slices: usize) {
        match self {
            Self::Unstarted { .. } => {}
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

    fn finish(&mut self) {
        if let Self::Bar(bar) = self {
            bar.finish();
        }
    }
}

/// The summary on stdout: what was done and, unless complete, how to go on.
fn summary(report: &Report, config_path: &Path) -> String {
    let period = format!("{} to {}", stamp(report.from), stamp(report.to));
    let mut out = match &report.ending {
        Ending::Complete => format!("backfill of {} from {period}: complete\n", report.source),
        Ending::Interrupted => format!("backfill of {} from {period}: stopped on request\n", report.source),
        Ending::Failed(reason) => format!("backfill of {} from {period}: FAILED: {reason}\n", report.source),
    };
    let t = &report.tally;
    out.push_str(&format!(
        "  pages: {}\n  read: {}\n  published: {}\n  rejected to DLQ: {}\n",
        t.pages, t.read, t.published, t.dead_lettered
    ));
    if report.ending != Ending::Complete {
        out.push_str(&format!(
            "  everything created before {} is published; resume with:\n    paybridge backfill --config {} --source {} --from {} --to {}\n",
            stamp(report.done_until),
            shell_word(&config_path.display().to_string()),
            shell_word(&report.source),
            stamp(report.done_until),
            stamp(report.to)
        ));
    }
    out
}

/// `word` as one POSIX shell word (quoted when it holds anything but plain characters).
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paybridge::backfill::period;

    fn report(ending: Ending) -> Report {
        let at = |s: &str| period::parse_time(s).unwrap_or_default();
        Report {
            source: "co main".into(),
            from: at("2026-11-20T00:00:00Z"),
            to: at("2026-11-21T10:30:00.250Z"),
            tally: Tally { pages: 3, read: 250, published: 249, dead_lettered: 1 },
            done_until: at("2026-11-20T05:00:00Z"),
            ending,
        }
    }

    #[test]
    fn the_summary_counts_and_unless_complete_says_how_to_resume() {
        let done = summary(&report(Ending::Complete), Path::new("/etc/paybridge.toml"));
        assert!(done.contains(": complete\n"), "{done}");
        assert!(done.contains("pages: 3\n  read: 250\n  published: 249\n  rejected to DLQ: 1\n"), "{done}");
        assert!(!done.contains("resume"), "{done}");
        let stopped = summary(&report(Ending::Interrupted), Path::new("/etc/pay bridge.toml"));
        assert!(stopped.contains("stopped on request"), "{stopped}");
        assert!(
            stopped.contains(
                "paybridge backfill --config '/etc/pay bridge.toml' --source 'co main' --from 2026-11-20T05:00:00Z --to 2026-11-21T10:30:00.250Z\n"
            ),
            "{stopped}"
        );
        let failed = summary(&report(Ending::Failed("broker down".into())), Path::new("p.toml"));
        assert!(failed.contains("FAILED: broker down") && failed.contains("--from 2026-11-20T05:00:00Z"), "{failed}");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
