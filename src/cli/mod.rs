//! The command line: argument parsing, logging setup and one function per command.
//!
//! Commands load the settings they need, so `mock-api` and `demo` work without any
//! configuration. Errors reach `main` as `anyhow` chains and become exit code 1, or 2 for
//! invalid configuration.

mod enqueue;
mod jobs;
mod logging;
mod ops;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, Settings, Sources};

/// Queue-backed update relay for the FunnelFlux Pro Reporting API.
#[derive(Debug, Parser)]
#[command(name = "ffrelay", version, about, max_term_width = 100)]
pub struct Cli {
    /// TOML configuration file; FFRELAY_CONFIG names one too.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: migrations, delivery workers and the HTTP server.
    Serve,
    /// Write updates into the outbox without the daemon.
    Enqueue(enqueue::EnqueueArgs),
    /// Inspect and steer jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Show counts by status and kind, the oldest pending age and recent outcomes.
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Data reset helpers.
    #[command(subcommand)]
    Reset(ops::ResetCommand),
    /// Run a local stand-in for the FunnelFlux API with fault injection.
    MockApi(crate::mock_api::MockApiArgs),
    /// Run the whole pipeline on built-in defaults and print a summary.
    Demo(crate::demo::DemoArgs),
    /// Measure throughput, latency, rate-limit fidelity, memory and claim cost.
    Bench(crate::bench::BenchArgs),
    /// Exit 0 when the local server answers /healthz.
    Healthcheck,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration with secrets redacted.
    Config,
}

/// Parses the command line, runs the command and maps the result to an exit code.
pub fn main() -> ExitCode {
    ignore_file_size_signal();
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Jobs(_) | Command::Stats { .. } | Command::Config | Command::Reset(_)
    ) {
        stop_on_closed_output();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            let invalid_config = err
                .downcast_ref::<ConfigError>()
                .is_some_and(|err| matches!(err, ConfigError::Invalid(_)));
            ExitCode::from(if invalid_config { 2 } else { 1 })
        }
    }
}

/// The error and its causes on one line, skipping causes whose text an outer message
/// already contains (several error types repeat their source in their own message).
fn describe(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Makes a write past the file-size limit (`ulimit -f`) fail with an error that SQLite
/// reports as a full disk, instead of killing the process with SIGXFSZ.
fn ignore_file_size_signal() {
    // SAFETY: called once at startup before any other thread exists; SIG_IGN installs no
    // handler code, so no async-signal-safety rule applies.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Ends a report command quietly when its output pipe closes, as in `ffrelay stats |
/// head -3`, instead of panicking in `println!`. The Rust runtime ignores SIGPIPE, so a
/// write to a closed pipe would otherwise fail with an error that `println!` turns into a
/// panic. Only commands that print a report and hold no transaction open while printing
/// get the default action back.
fn stop_on_closed_output() {
    // SAFETY: called once at startup before any other thread exists; SIG_DFL installs no
    // handler code, so no async-signal-safety rule applies.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::MockApi(args) => {
            logging::init_default();
            crate::mock_api::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        command => {
            let settings = load_settings(cli.config)?;
            logging::init(&settings.log);
            run_with_settings(command, settings).await
        }
    }
}

async fn run_with_settings(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => crate::daemon::serve(settings)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Enqueue(args) => enqueue::run(args, &settings).await,
        Command::Jobs(command) => jobs::run(command, &settings).await,
        Command::Stats { json } => jobs::stats(&settings, json).await,
        Command::Reset(command) => ops::reset(command, &settings).await,
        Command::Healthcheck => ops::healthcheck(&settings).await,
        Command::Migrate => ops::migrate(&settings).await,
        Command::Config => {
            print!("{}", settings.redacted());
            Ok(ExitCode::SUCCESS)
        }
        Command::MockApi(_) | Command::Demo(_) | Command::Bench(_) => {
            unreachable!("handled in run")
        }
    }
}

/// Installs text logs at `level` (`RUST_LOG` wins when set), for commands without settings.
pub fn init_logging(level: &str) {
    logging::init(&crate::config::LogSettings {
        level: level.to_owned(),
        format: crate::config::LogFormat::Text,
    });
}

/// Loads settings from the defaults, `--config` or `FFRELAY_CONFIG`, and the environment.
pub fn load_settings(flag: Option<PathBuf>) -> Result<Settings, ConfigError> {
    let file = crate::config::config_file(flag.as_deref());
    Settings::load(&Sources::from_process(file))
}

/// Opens the outbox named in the settings.
pub(crate) async fn open_outbox(settings: &Settings) -> anyhow::Result<crate::outbox::Outbox> {
    let path = &settings.database.path;
    crate::outbox::Outbox::open(path, settings.database.busy_timeout)
        .await
        .map_err(|err| anyhow::anyhow!("failed to open the outbox {}: {err}", path.display()))
}
