//! `ffrelay demo`: the whole pipeline on built-in defaults, in one process.
//!
//! It starts the mock API with realistic faults (some 503s, a burst of 429s with
//! `Retry-After`, an access token that expires mid-run, one poison hit, and a reset above
//! the guard), starts the relay on an ephemeral loopback port, and feeds it the sample data
//! from `examples/` through the three producer paths: the `ffrelay enqueue` command with
//! the lines format, HTTP ingest, and a direct SQL insert. It approves the held reset,
//! waits for the queue to drain, and prints a summary. The exit code is 0 only when every
//! job ended as expected.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{Settings, Sources};
use crate::daemon::Daemon;
use crate::mock_api::{Faults, MockApi, MockConfig};
use crate::outbox::{KindReport, ListFilter, Outbox, Status};

mod summary;

const CONVERSIONS: &str = include_str!("../examples/conversions.txt");
const CUSTOM_EVENTS: &str = include_str!("../examples/custom-events.ndjson");
const COST: &str = include_str!("../examples/cost.json");
const RESET: &str = include_str!("../examples/reset.json");

/// How long the demo waits for the queue to drain before it gives up.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Database file to use; a fresh file in a temporary folder when absent.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Log level of the relay and the mock while the demo runs (off, error, warn, info).
    #[arg(long, default_value = "off")]
    log_level: String,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    crate::cli::init_logging(&args.log_level);
    let temp = tempfile::tempdir().context("failed to create a temporary folder")?;
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| temp.path().join("demo.db"));
    if args.db.is_some() && db.exists() {
        bail!(
            "{} already exists; the demo needs a fresh database, so pass a new path",
            db.display()
        );
    }
    let poison = poison_hit()?;
    let api = start_mock(&poison).await?;
    let settings = demo_settings(&db, &api.base_url())?;
    let daemon = Daemon::start(&settings).await?;
    println!(
        "ffrelay demo: mock API at {}, relay at http://{}, database {}",
        api.base_url(),
        daemon.addr(),
        db.display()
    );
    let control = format!("http://{}/_mock/faults", api.addr());
    tokio::spawn(throttle_burst(control, api.faults()));

    let expected = enqueue_all(&daemon, &db, temp.path()).await?;
    let drained = drain(daemon.outbox(), expected.total()).await?;
    let reports = daemon.outbox().report().await?;
    let failed = failed_reasons(daemon.outbox()).await?;
    let refreshes = api.stats().refreshes;
    daemon.shutdown().await;
    api.shutdown().await;

    summary::print(&reports, refreshes, &failed);
    let ok = drained && expected.matches(&reports);
    if ok {
        println!(
            "demo passed: every job ended as expected (one poison conversion failed on purpose)"
        );
    } else {
        println!("demo FAILED: the outcomes above differ from what was expected ({expected:?})");
    }
    if args.db.is_none() {
        println!(
            "the demo database was temporary; pass --db PATH to keep it for `ffrelay jobs list`"
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The conversion hit the mock rejects, so that one job fails on purpose.
fn poison_hit() -> anyhow::Result<String> {
    let line = CONVERSIONS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .nth(10)
        .context("the sample conversions file is too short")?;
    Ok(line
        .split([':', ','])
        .next()
        .unwrap_or(line)
        .trim()
        .to_owned())
}

async fn start_mock(poison: &str) -> anyhow::Result<MockApi> {
    let faults = Faults {
        failure_rate: 0.05,
        failure_status: 503,
        poison_hits: vec![poison.to_owned()],
        reset_count: 250_000,
        ..Faults::default()
    };
    let config = MockConfig {
        token_ttl: Duration::from_secs(3),
        faults,
        ..MockConfig::default()
    };
    let listen = "127.0.0.1:0".parse().context("loopback address")?;
    MockApi::start(listen, config)
        .await
        .context("failed to start the mock API")
}

fn demo_settings(db: &Path, base_url: &str) -> anyhow::Result<Settings> {
    let env: HashMap<String, String> = [
        ("FFRELAY__API__BASE_URL", base_url),
        ("FFRELAY__API__ACCESS_TOKEN", "mock-access-0"),
        ("FFRELAY__API__REFRESH_TOKEN", "mock-refresh"),
        ("FFRELAY__API__TOKEN_REFRESH_MARGIN", "1s"),
        (
            "FFRELAY__DATABASE__PATH",
            db.to_str().context("database path is not UTF-8")?,
        ),
        ("FFRELAY__SERVER__LISTEN", "127.0.0.1:0"),
        ("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "0"),
        ("FFRELAY__DELIVERY__MAX_BATCH_ITEMS", "100"),
        ("FFRELAY__DELIVERY__BACKOFF_INITIAL", "100ms"),
        ("FFRELAY__DELIVERY__BACKOFF_MAX", "2s"),
        ("FFRELAY__DELIVERY__POLL_INTERVAL", "100ms"),
        ("FFRELAY__DELIVERY__SHUTDOWN_GRACE", "5s"),
        ("FFRELAY__RESET__MAX_HITS", "100000"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    Ok(Settings::load(&Sources { file: None, env })?)
}

/// Makes the mock answer 429 with `Retry-After: 1` for two seconds, shortly after the
/// start, through its control endpoint.
async fn throttle_burst(control: String, base: Faults) {
    let client = reqwest::Client::new();
    let throttled = Faults {
        rate_limit_per_second: Some(20.0),
        rate_limit_burst: 5,
        retry_after_secs: Some(1),
        ..base.clone()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    for faults in [throttled, base] {
        if let Err(err) = client.put(&control).json(&faults).send().await {
            tracing::warn!(error = %err, "failed to change the mock's faults");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Jobs the demo enqueued, and how each kind should end.
#[derive(Debug, Default)]
struct Expected {
    conversions: i64,
    custom_events: i64,
    cost: i64,
    resets: i64,
}

impl Expected {
    fn total(&self) -> i64 {
        self.conversions + self.custom_events + self.cost + self.resets
    }

    /// Everything delivered, except the one poison conversion, which failed.
    fn matches(&self, reports: &[KindReport]) -> bool {
        let find = |kind: &str| {
            reports
                .iter()
                .find(|r| r.kind == kind)
                .cloned()
                .unwrap_or_default()
        };
        let ok = |report: KindReport, delivered: i64, failed: i64| {
            report.delivered == delivered
                && report.failed == failed
                && report.held == 0
                && report.pending == 0
        };
        ok(find("conversions"), self.conversions - 1, 1)
            && ok(find("custom-events"), self.custom_events, 0)
            && ok(find("cost"), self.cost, 0)
            && ok(find("reset"), self.resets, 0)
    }
}

/// Feeds the sample data through the three producer paths; returns what was enqueued.
async fn enqueue_all(daemon: &Daemon, db: &Path, scratch: &Path) -> anyhow::Result<Expected> {
    let conversions = enqueue_with_cli(db, scratch).await?;
    println!(
        "enqueued {conversions} conversions with `ffrelay enqueue conversions --format lines`"
    );
    let base = format!("http://{}", daemon.addr());
    let custom_events = enqueue_over_http(&base).await?;
    println!("enqueued {custom_events} custom events with POST /v1/jobs");
    let cost = insert_with_sql(db).await?;
    println!("inserted {cost} cost updates with SQL into the jobs table");
    let reset: Value = serde_json::from_str(RESET).context("examples/reset.json is not JSON")?;
    post_jobs(&base, &json!({"kind": "reset", "payload": reset})).await?;
    println!("enqueued 1 data reset with POST /v1/jobs; it waits for every older job");
    let expected = Expected {
        conversions,
        custom_events,
        cost,
        resets: 1,
    };
    Ok(expected)
}

/// Runs this binary's `enqueue` command, as a producer script would.
async fn enqueue_with_cli(db: &Path, scratch: &Path) -> anyhow::Result<i64> {
    let file = scratch.join("conversions.txt");
    std::fs::write(&file, CONVERSIONS).context("failed to write the sample conversions")?;
    let exe = std::env::current_exe().context("cannot find the ffrelay binary")?;
    let output = tokio::process::Command::new(exe)
        .args(["enqueue", "conversions", "--format", "lines"])
        .arg(&file)
        .env("FFRELAY__DATABASE__PATH", db)
        .env_remove("FFRELAY_CONFIG")
        .output()
        .await
        .context("failed to run `ffrelay enqueue`")?;
    if !output.status.success() {
        bail!(
            "`ffrelay enqueue` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let records = CONVERSIONS
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    Ok(records.count() as i64)
}

async fn enqueue_over_http(base: &str) -> anyhow::Result<i64> {
    let mut count = 0;
    for line in CUSTOM_EVENTS.lines().filter(|line| !line.trim().is_empty()) {
        let payload: Value = serde_json::from_str(line).context("examples/custom-events.ndjson")?;
        post_jobs(base, &json!({"kind": "custom-events", "payload": payload})).await?;
        count += 1;
    }
    Ok(count)
}

async fn post_jobs(base: &str, body: &Value) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/jobs"))
        .json(body)
        .send()
        .await
        .context("POST /v1/jobs failed")?;
    if !response.status().is_success() {
        let status = response.status();
        bail!(
            "POST /v1/jobs responded with {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// Inserts cost rows with plain SQL over a connection of its own, playing a producer that
/// writes the `jobs` table itself; this is the producer's SQL, not the outbox's.
async fn insert_with_sql(db: &Path) -> anyhow::Result<i64> {
    let bodies: Vec<Value> =
        serde_json::from_str(COST).context("examples/cost.json is not JSON")?;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(5));
    let mut connection = sqlx::ConnectOptions::connect(&options).await?;
    for body in &bodies {
        sqlx::query("INSERT INTO jobs (kind, payload) VALUES ('cost', ?1)")
            .bind(body.to_string())
            .execute(&mut connection)
            .await?;
    }
    sqlx::Connection::close(connection).await?;
    Ok(bodies.len() as i64)
}

/// Shows a progress line and approves the held reset, until the queue is drained.
async fn drain(outbox: &Outbox, total: i64) -> anyhow::Result<bool> {
    let deadline = Instant::now() + DRAIN_LIMIT;
    let mut approved = false;
    loop {
        let stats = outbox.stats().await?;
        let (delivered, failed) = (stats.count(Status::Delivered), stats.count(Status::Failed));
        let held = stats.count(Status::Held);
        let open = stats.count(Status::Pending) + stats.count(Status::InFlight) + held;
        eprint!(
            "\r  delivered {delivered}/{total}, failed {failed}, held {held}, waiting {open}   "
        );
        let _ = std::io::stderr().flush();
        if held > 0 && !approved {
            approved = approve_held(outbox).await?;
        }
        if open == 0 && delivered + failed >= total {
            eprintln!();
            return Ok(true);
        }
        if Instant::now() >= deadline {
            eprintln!();
            println!("the queue did not drain within {} s", DRAIN_LIMIT.as_secs());
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn approve_held(outbox: &Outbox) -> anyhow::Result<bool> {
    let filter = ListFilter {
        status: Some(Status::Held),
        limit: 10,
        ..ListFilter::default()
    };
    for job in outbox.list(&filter).await? {
        eprintln!();
        println!(
            "reset job {} is held: it would delete {} hits, above reset.max_hits; approving it (`ffrelay jobs approve {}`)",
            job.id,
            job.reset_hits.unwrap_or(0),
            job.id
        );
        outbox.approve(job.id).await?;
    }
    Ok(true)
}

async fn failed_reasons(outbox: &Outbox) -> anyhow::Result<Vec<String>> {
    let filter = ListFilter {
        status: Some(Status::Failed),
        limit: 5,
        ..ListFilter::default()
    };
    let jobs = outbox.list(&filter).await?;
    Ok(jobs
        .into_iter()
        .map(|job| {
            format!(
                "job {} ({}): {}",
                job.id,
                job.kind,
                job.last_error.unwrap_or_default()
            )
        })
        .collect())
}
