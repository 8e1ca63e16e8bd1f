//! `ffrelay jobs ...` and `ffrelay stats`: operator views and actions on the outbox.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use crate::config::Settings;
use crate::outbox::{Job, ListFilter, Outbox, Status};
use crate::updates::Kind;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs with this status: pending, in_flight, delivered, failed, held, cancelled.
        #[arg(long)]
        status: Option<Status>,
        /// Only jobs of this kind.
        #[arg(long)]
        kind: Option<Kind>,
        /// Maximum number of jobs to print.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only jobs with an id below this one, for paging.
        #[arg(long)]
        before: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its attempts.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Requeue a failed or cancelled job, or every job of a status with --status.
    Retry {
        #[arg(required_unless_present = "status")]
        id: Option<i64>,
        /// Requeue every job with this status (failed or cancelled).
        #[arg(long, conflicts_with = "id")]
        status: Option<Status>,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a pending, held or failed job.
    Cancel {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Approve a held data reset so that it is performed.
    Approve {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: JobsCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let outbox = super::open_outbox(settings).await?;
    let result = dispatch(command, &outbox).await;
    outbox.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn dispatch(command: JobsCommand, outbox: &Outbox) -> anyhow::Result<()> {
    match command {
        JobsCommand::List {
            status,
            kind,
            limit,
            before,
            json,
        } => {
            let filter = ListFilter {
                status,
                kind: kind.map(|k| k.to_string()),
                limit,
                before_id: before,
            };
            let jobs = outbox.list(&filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                print_table(&jobs);
            }
        }
        JobsCommand::Show { id, json } => {
            let (job, attempts) = outbox.show(id).await?;
            if json {
                let shown = json!({"job": job, "attempts": attempts});
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&job)?);
                for attempt in attempts {
                    let status = attempt
                        .http_status
                        .map_or("-".to_string(), |s| s.to_string());
                    let error = attempt.error.or(attempt.response).unwrap_or_default();
                    println!(
                        "attempt {} status {status} {} in {} ms: {error}",
                        attempt.request_id, attempt.outcome, attempt.latency_ms
                    );
                }
            }
        }
        JobsCommand::Retry {
            id: Some(id), json, ..
        } => {
            outbox.retry(id).await?;
            report(json, "retry", json!({"id": id, "status": "pending"}));
        }
        JobsCommand::Retry {
            status: Some(status),
            json,
            ..
        } => {
            let count = outbox.retry_all(status).await?;
            report(json, "retry", json!({"status": status, "requeued": count}));
        }
        JobsCommand::Retry { .. } => bail!("give a job id or --status failed"),
        JobsCommand::Cancel { id, json } => {
            outbox.cancel(id).await?;
            report(json, "cancel", json!({"id": id, "status": "cancelled"}));
        }
        JobsCommand::Approve { id, json } => {
            outbox.approve(id).await?;
            report(
                json,
                "approve",
                json!({"id": id, "status": "pending", "approved": true}),
            );
        }
    }
    Ok(())
}

fn report(json: bool, action: &str, value: serde_json::Value) {
    if json {
        println!("{value}");
    } else {
        println!("{action}: {value}");
    }
}

fn print_table(jobs: &[Job]) {
    println!(
        "{:>10}  {:<13}  {:<10}  {:>8}  last error",
        "id", "kind", "status", "attempts"
    );
    for job in jobs {
        let error = job.last_error.as_deref().unwrap_or("");
        let error: String = error.chars().take(60).collect();
        println!(
            "{:>10}  {:<13}  {:<10}  {:>8}  {error}",
            job.id, job.kind, job.status, job.attempts
        );
    }
}

pub async fn stats(settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let outbox = super::open_outbox(settings).await?;
    let stats = outbox.stats().await?;
    let runs = outbox.run_states().await?;
    outbox.close().await;
    if json {
        let shown = json!({"stats": stats, "runs": runs});
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<10}  {:<13}  {:>10}", "status", "kind", "jobs");
    for (status, kind, count) in &stats.counts {
        println!("{status:<10}  {kind:<13}  {count:>10}");
    }
    match stats.oldest_pending_age_ms {
        Some(age) => println!("oldest pending job: {:.1} s old", age as f64 / 1000.0),
        None => println!("oldest pending job: none"),
    }
    for (outcome, count) in &stats.recent_outcomes {
        println!("attempts in the last hour, {outcome}: {count}");
    }
    for run in &runs {
        let reason = run.reason.as_deref().unwrap_or("");
        println!(
            "run {} (pid {}): {} {reason}",
            run.run_id, run.pid, run.state
        );
    }
    Ok(ExitCode::SUCCESS)
}
