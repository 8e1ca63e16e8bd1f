//! `ffrelay enqueue`: reads updates from a file or stdin and stores them in one
//! transaction. Every record is validated first, so a bad record stores nothing.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::config::Settings;
use crate::outbox::NewJob;
use crate::updates::{JobOptions, Kind, parse_lines, parse_strict, prepare};

/// Inputs larger than this show a progress bar on a terminal.
const PROGRESS_THRESHOLD: usize = 10_000;

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// conversions, custom-events, cost or reset.
    kind: Kind,
    /// Input file; standard input when absent or "-".
    file: Option<PathBuf>,
    /// json (one body or an array of bodies), ndjson (a body per line), or lines
    /// (HIT_ID[:TRANSACTION_ID][, PAYOUT] per line, conversions only).
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Idempotency key; with several records, record N gets KEY:N (N from 1).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Ordering key for every record, instead of the derived default.
    #[arg(long)]
    ordering_key: Option<String>,
    /// Earliest send time: RFC 3339 or Unix seconds.
    #[arg(long)]
    not_before: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Ndjson,
    Lines,
}

pub async fn run(args: EnqueueArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let text = read_input(args.file.as_ref())?;
    let bodies = parse_records(&args, &text)?;
    let jobs = build_jobs(&args, bodies)?;
    let outbox = super::open_outbox(settings).await?;

    let bar = progress_bar(jobs.len());
    let stored = outbox
        .enqueue_with_progress(&jobs, |done| bar.set_position(done as u64))
        .await
        .with_context(|| format!("failed to store {} jobs; nothing was stored", jobs.len()))?;
    bar.finish_and_clear();
    outbox.close().await;

    let created = stored.iter().filter(|job| job.created).count();
    let seconds = started.elapsed().as_secs_f64();
    let existing = stored.len() - created;
    println!(
        "stored {created} new jobs of kind {} ({existing} already present) in {seconds:.2} s",
        args.kind
    );
    Ok(ExitCode::SUCCESS)
}

fn read_input(file: Option<&PathBuf>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    match file.filter(|path| path.as_os_str() != "-") {
        Some(path) => {
            bytes =
                std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("failed to read standard input")?;
        }
    }
    decode_input(bytes)
}

/// Decodes the input as UTF-8 and drops a leading byte order mark, which editors and
/// spreadsheet exports on Windows write at the start of a UTF-8 file.
fn decode_input(bytes: Vec<u8>) -> anyhow::Result<String> {
    let text = String::from_utf8(bytes).map_err(|err| {
        anyhow::anyhow!(
            "input is not valid UTF-8 at byte {}; nothing was stored",
            err.utf8_error().valid_up_to()
        )
    })?;
    match text.strip_prefix('\u{feff}') {
        Some(rest) => Ok(rest.to_owned()),
        None => Ok(text),
    }
}

/// Parses the input into (record label, body) pairs.
fn parse_records(args: &EnqueueArgs, text: &str) -> anyhow::Result<Vec<(String, Value)>> {
    match args.format {
        Format::Json => parse_json(text),
        Format::Ndjson => parse_ndjson(text),
        Format::Lines => {
            if args.kind != Kind::Conversions {
                bail!("--format lines is for conversions only, not {}", args.kind);
            }
            let records = parse_lines(text)
                .map_err(|(line, err)| anyhow::anyhow!("line {line}: {err}; nothing was stored"))?;
            Ok(records
                .into_iter()
                .map(|(line, body)| (format!("line {line}"), body))
                .collect())
        }
    }
}

fn parse_json(text: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let value: Value = parse_strict(text.as_bytes()).map_err(|err| {
        anyhow::anyhow!(
            "invalid JSON at line {}, column {}: {err}; nothing was stored",
            err.line(),
            err.column()
        )
    })?;
    Ok(match value {
        Value::Array(bodies) => bodies
            .into_iter()
            .enumerate()
            .map(|(index, body)| (format!("element {index}"), body))
            .collect(),
        body => vec![("the body".to_owned(), body)],
    })
}

fn parse_ndjson(text: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let body = parse_strict(line.as_bytes()).map_err(|err| {
            anyhow::anyhow!(
                "line {}: invalid JSON: {err}; nothing was stored",
                index + 1
            )
        })?;
        records.push((format!("line {}", index + 1), body));
    }
    Ok(records)
}

fn build_jobs(args: &EnqueueArgs, bodies: Vec<(String, Value)>) -> anyhow::Result<Vec<NewJob>> {
    if bodies.is_empty() {
        bail!("the input contains no records; nothing was stored");
    }
    if args.idempotency_key.as_deref().is_some_and(str::is_empty) {
        bail!(
            "--idempotency-key is empty: give a key, or leave the option out; nothing was stored"
        );
    }
    let several = bodies.len() > 1;
    let mut jobs = Vec::with_capacity(bodies.len());
    for (index, (label, body)) in bodies.into_iter().enumerate() {
        let idempotency_key = args.idempotency_key.as_ref().map(|key| match several {
            true => format!("{key}:{}", index + 1),
            false => key.clone(),
        });
        let options = JobOptions {
            idempotency_key,
            ordering_key: args.ordering_key.clone(),
            not_before: args.not_before.clone(),
        };
        let job = prepare(args.kind, &body, options)
            .map_err(|err| anyhow::anyhow!("{label}: {err}; nothing was stored"))?;
        jobs.push(job);
    }
    Ok(jobs)
}

fn progress_bar(total: usize) -> ProgressBar {
    if total < PROGRESS_THRESHOLD {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} jobs {per_sec} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(format: Format, idempotency_key: Option<&str>) -> EnqueueArgs {
        EnqueueArgs {
            kind: Kind::Conversions,
            file: None,
            format,
            idempotency_key: idempotency_key.map(str::to_owned),
            ordering_key: None,
            not_before: None,
        }
    }

    #[test]
    fn byte_order_mark_is_dropped_in_every_format() {
        let cases = [
            (Format::Lines, "\u{feff}abc123, 1.5\r\n"),
            (
                Format::Ndjson,
                "\u{feff}{\"hits\":[{\"hitID\":\"abc123\"}]}\r\n",
            ),
            (Format::Json, "\u{feff}{\"hits\":[{\"hitID\":\"abc123\"}]}"),
        ];
        for (format, text) in cases {
            let text = decode_input(text.as_bytes().to_vec()).unwrap();
            let records = parse_records(&args(format, None), &text);
            let records = records.unwrap_or_else(|err| panic!("{format:?}: {err}"));
            assert_eq!(records.len(), 1, "{format:?}");
            assert_eq!(records[0].1["hits"][0]["hitID"], "abc123", "{format:?}");
        }
    }

    #[test]
    fn empty_idempotency_key_is_rejected() {
        let body = json!({"hits": [{"hitID": "abc123"}]});
        let records = vec![
            ("line 1".to_owned(), body.clone()),
            ("line 2".to_owned(), body),
        ];
        let err = build_jobs(&args(Format::Lines, Some("")), records).unwrap_err();
        assert!(
            err.to_string().contains("--idempotency-key is empty"),
            "{err}"
        );
    }
}
