//! `paybridge doctor`: the preflight's command line (the checks are `paybridge::doctor`).

use std::path::PathBuf;
use std::process::ExitCode;

use paybridge::config;
use paybridge::doctor::{self, Check, Status};

#[derive(clap::Args)]
pub struct DoctorArgs {
    #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
    config: PathBuf,
    #[arg(long, value_enum, default_value = "pretty")]
    format: super::Format,
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let mut checks = Vec::new();
    let loaded = match config::load_file(&args.config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            checks.push(Check::fail(
                "config",
                format!("{}: {}", args.config.display(), errors.to_string().trim_end()),
                "fix the named keys (paybridge config validate --config <file> says the same)",
            ));
            return report(&args, &checks);
        }
    };
    super::init_command_tracing(&loaded.log);
    let missing = config::file_errors(&loaded);
    checks.push(if missing.is_empty() {
        Check::pass("config", format!("{} is valid; {} source(s)", args.config.display(), loaded.sources.len()))
    } else {
        Check::fail(
            "config",
            config::ConfigErrors(missing).to_string().trim_end().to_owned(),
            "mount or create the named files (Kubernetes: the Secret or ConfigMap volume)",
        )
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    checks.extend(runtime.block_on(doctor::run(&loaded)));
    report(&args, &checks)
}

fn report(args: &DoctorArgs, checks: &[Check]) -> ExitCode {
    match args.format {
        super::Format::Json => {
            let body = serde_json::json!({ "ok": doctor::all_hold(checks), "checks": checks });
            println!("{body}");
        }
        super::Format::Pretty => {
            for check in checks {
                let mark = match check.status {
                    Status::Pass => "✓",
                    Status::Warn => "!",
                    Status::Fail => "✗",
                    Status::Skip => "-",
                };
                println!("{mark} {}: {}", check.check, check.detail);
                if let Some(fix) = check.fix.as_ref().filter(|_| check.status != Status::Pass) {
                    println!("    fix: {fix}");
                }
            }
            let count = |status| checks.iter().filter(|c| c.status == status).count();
            println!(
                "{} passed, {} failed, {} warning(s), {} skipped",
                count(Status::Pass),
                count(Status::Fail),
                count(Status::Warn),
                count(Status::Skip)
            );
        }
    }
    if doctor::all_hold(checks) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
