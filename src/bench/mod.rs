//! `ffrelay bench`: measures the quality targets against raw baselines in one run.
//!
//! Each measure works on a database in a temporary folder and on an in-process mock API
//! on 127.0.0.1, and returns table rows that put the relay's figure beside a baseline
//! measured in the same run (raw SQLite, a plain reqwest loop, or a configured value).
//! `--quick` runs every measure at a small size so that CI proves the command works; its
//! figures are not judged against the targets. No test asserts a timing.

mod claim;
mod drain;
mod enqueue;
mod ingest;
mod latency;
mod memory;
mod ratelimit;
mod raw;
mod report;
mod setup;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::ValueEnum;

use report::Row;

/// Options of `ffrelay bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Run every measure at a small size (seconds in total); figures are not judged.
    #[arg(long)]
    quick: bool,
    /// Run only these measures, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME,...")]
    only: Vec<Measure>,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Log level of the relay and the mock API while the benchmark runs.
    #[arg(long, default_value = "error", value_name = "LEVEL")]
    log_level: String,
}

/// A measure that `--only` can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Measure {
    /// HTTP ingest, one update per request, 64 clients.
    Ingest,
    /// Batched enqueue through the library and the `enqueue` command.
    Enqueue,
    /// Draining conversions in batches, and cost jobs one request each.
    Drain,
    /// Enqueue-to-delivered latency at 100 jobs/s.
    Latency,
    /// Achieved rate against a mock limited to the configured rate.
    Ratelimit,
    /// Resident memory of `ffrelay serve`, idle and draining.
    Memory,
    /// Claim time as the outbox grows.
    Claim,
}

impl Measure {
    const ALL: [Measure; 7] = [
        Measure::Ingest,
        Measure::Enqueue,
        Measure::Drain,
        Measure::Latency,
        Measure::Ratelimit,
        Measure::Memory,
        Measure::Claim,
    ];

    fn name(self) -> &'static str {
        match self {
            Measure::Ingest => "ingest",
            Measure::Enqueue => "enqueue",
            Measure::Drain => "drain",
            Measure::Latency => "latency",
            Measure::Ratelimit => "ratelimit",
            Measure::Memory => "memory",
            Measure::Claim => "claim",
        }
    }
}

/// Sizes of every measure, full or quick.
#[derive(Debug, Clone)]
pub struct Scale {
    pub quick: bool,
    pub ingest_requests: usize,
    pub ingest_raw_rows: usize,
    pub enqueue_jobs: u64,
    pub drain_conversions: u64,
    pub drain_cost_jobs: u64,
    pub latency_span: Duration,
    pub ratelimit_span: Duration,
    pub memory_jobs: u64,
    pub claim_sizes: Vec<u64>,
    pub claim_repeats: usize,
}

impl Scale {
    /// Returns the sizes the targets are defined for.
    pub fn full() -> Scale {
        Scale {
            quick: false,
            ingest_requests: 100_000,
            ingest_raw_rows: 5_000,
            enqueue_jobs: 500_000,
            drain_conversions: 1_000_000,
            drain_cost_jobs: 20_000,
            latency_span: Duration::from_secs(20),
            ratelimit_span: Duration::from_secs(20),
            memory_jobs: 1_000_000,
            claim_sizes: vec![10_000, 1_000_000, 10_000_000],
            claim_repeats: 21,
        }
    }

    /// Returns small sizes that finish in seconds, even in a debug build.
    pub fn quick() -> Scale {
        Scale {
            quick: true,
            ingest_requests: 2_000,
            ingest_raw_rows: 200,
            enqueue_jobs: 20_000,
            drain_conversions: 20_000,
            drain_cost_jobs: 500,
            latency_span: Duration::from_secs(2),
            ratelimit_span: Duration::from_secs(2),
            memory_jobs: 20_000,
            claim_sizes: vec![2_000, 20_000, 100_000],
            claim_repeats: 5,
        }
    }
}

/// Runs the selected measures and prints the table or JSON.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    crate::cli::init_logging(&args.log_level);
    let scale = if args.quick {
        Scale::quick()
    } else {
        Scale::full()
    };
    let selected: Vec<Measure> = Measure::ALL
        .into_iter()
        .filter(|measure| args.only.is_empty() || args.only.contains(measure))
        .collect();
    let mut rows = Vec::new();
    for measure in selected {
        eprintln!("bench: running {}", measure.name());
        let started = Instant::now();
        let measured = run_measure(measure, &scale)
            .await
            .with_context(|| format!("the {} measure failed", measure.name()))?;
        eprintln!(
            "bench: {} took {:.1} s",
            measure.name(),
            started.elapsed().as_secs_f64()
        );
        rows.extend(measured);
    }
    if scale.quick {
        rows.iter_mut().for_each(|row| row.met = None);
    }
    print(&rows, &scale, args.json)?;
    Ok(ExitCode::SUCCESS)
}

async fn run_measure(measure: Measure, scale: &Scale) -> anyhow::Result<Vec<Row>> {
    match measure {
        Measure::Ingest => ingest::run(scale).await,
        Measure::Enqueue => enqueue::run(scale).await,
        Measure::Drain => drain::run(scale).await,
        Measure::Latency => latency::run(scale).await,
        Measure::Ratelimit => ratelimit::run(scale).await,
        Measure::Memory => memory::run(scale).await,
        Measure::Claim => claim::run(scale).await,
    }
}

fn print(rows: &[Row], scale: &Scale, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", report::json(rows)?);
        return Ok(());
    }
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mode = if scale.quick {
        "quick sizes, figures not judged"
    } else {
        "full sizes"
    };
    println!("ffrelay bench ({mode}, {cores} cores)");
    print!("{}", report::table(rows));
    Ok(())
}
