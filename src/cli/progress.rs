//! Progress of the operator commands on stderr: a bar on a terminal, a plain line per step
//! otherwise (so a log or a CronJob's output stays readable).

use std::cell::Cell;
use std::io::IsTerminal;

use paybridge::progress::Progress;

/// A bar per step on a terminal, a line per step otherwise.
pub enum StderrProgress {
    /// The bar, and the position the current step started at.
    Bar(indicatif::ProgressBar, Cell<u64>),
    /// The command's name, to start each line with.
    Lines(&'static str),
}

impl StderrProgress {
    /// Progress for `command` (the subcommand's name) on stderr.
    pub fn for_stderr(command: &'static str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Lines(command);
        }
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template("{spinner} {msg} {wide_bar} {pos}/{len} records")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        Self::Bar(bar, Cell::new(0))
    }

    /// A line of the command's output on stdout, kept clear of the bar.
    pub fn say_out(&self, line: &str) {
        match self {
            Self::Bar(bar, _) => bar.suspend(|| println!("{line}")),
            Self::Lines(_) => println!("{line}"),
        }
    }
}

impl Progress for StderrProgress {
    fn start(&self, what: &str, first: u64, len: u64) {
        match self {
            Self::Bar(bar, start) => {
                start.set(first);
                bar.set_message(what.to_owned());
                bar.set_length(len);
                bar.set_position(0);
            }
            Self::Lines(command) => eprintln!("{command}: {what}, {len} records"),
        }
    }

    fn at(&self, at: u64) {
        if let Self::Bar(bar, start) = self {
            bar.set_position(at.saturating_sub(start.get()));
        }
    }

    fn say(&self, line: &str) {
        match self {
            Self::Bar(bar, _) => bar.println(line),
            Self::Lines(command) => eprintln!("{command}: {line}"),
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar, _) = self {
            bar.finish_and_clear();
        }
    }
}
