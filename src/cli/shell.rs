//! Shell completions and the man page, generated from the command line's own definitions.

use std::io::Write;
use std::process::ExitCode;

/// Writes the completion script for `shell` to stdout.
pub fn completions(mut command: clap::Command, shell: clap_complete::Shell) -> ExitCode {
    clap_complete::generate(shell, &mut command, "paybridge", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Writes paybridge.1 and a page per subcommand (paybridge-run.1, …) into `dir`, or the
/// top page (roff) to stdout without one.
pub fn man(command: clap::Command, dir: Option<&std::path::Path>) -> ExitCode {
    if let Some(dir) = dir {
        return match clap_mangen::generate_to(command, dir) {
            Ok(()) => {
                println!("man pages written to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot write the man pages into {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    let mut page = Vec::new();
    if let Err(e) = clap_mangen::Man::new(command).render(&mut page) {
        eprintln!("cannot render the man page: {e}");
        return ExitCode::FAILURE;
    }
    match std::io::stdout().write_all(&page) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the man page: {e}");
            ExitCode::FAILURE
        }
    }
}
