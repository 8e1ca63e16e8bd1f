//! The `ffrelay` binary as a child process: its environment, one-shot commands, and a
//! `serve` process that is killed when the test ends, passes or panics.
//!
//! Children start from an empty environment plus `PATH`, so `FFRELAY_*` and `RUST_LOG`
//! variables of the shell that runs the tests never reach them.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ffrelay");

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The `FFRELAY__*` variables of a child: a database, a mock API, a free listen port,
/// fast backoff and polling, no client-side rate limit.
#[derive(Clone, Debug)]
pub struct RelayEnv {
    vars: BTreeMap<String, String>,
    port: u16,
}

impl RelayEnv {
    pub fn new(db: &Path, base_url: &str) -> RelayEnv {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let vars = [
            ("FFRELAY__API__BASE_URL", base_url),
            ("FFRELAY__API__ACCESS_TOKEN", "mock-access-0"),
            ("FFRELAY__API__REFRESH_TOKEN", "mock-refresh"),
            ("FFRELAY__API__REQUEST_TIMEOUT", "10s"),
            ("FFRELAY__DATABASE__PATH", db.to_str().unwrap()),
            ("FFRELAY__DATABASE__BUSY_TIMEOUT", "20s"),
            ("FFRELAY__SERVER__LISTEN", &listen),
            ("FFRELAY__DELIVERY__RATE_LIMIT_PER_SECOND", "0"),
            ("FFRELAY__DELIVERY__BACKOFF_INITIAL", "20ms"),
            ("FFRELAY__DELIVERY__BACKOFF_MAX", "500ms"),
            ("FFRELAY__DELIVERY__POLL_INTERVAL", "50ms"),
            ("FFRELAY__LOG__LEVEL", "info"),
        ]
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
        RelayEnv { vars, port }
    }

    /// Sets `FFRELAY__<key>`, for example `with("DELIVERY__LEASE", "60s")`.
    pub fn with(mut self, key: &str, value: &str) -> RelayEnv {
        if key == "SERVER__LISTEN" {
            self.port = value.rsplit(':').next().unwrap().parse().unwrap();
        }
        self.vars
            .insert(format!("FFRELAY__{key}"), value.to_owned());
        self
    }

    /// Removes `FFRELAY__<key>`.
    pub fn without(mut self, key: &str) -> RelayEnv {
        self.vars.remove(&format!("FFRELAY__{key}"));
        self
    }

    /// Returns the port of `server.listen`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the base URL of the child's HTTP server.
    pub fn server_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Builds a command that runs the binary with `args` in this environment only.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(&self.vars)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs a one-shot command to its end.
    pub async fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().await.unwrap();
        Output::from(output)
    }

    /// Runs `ffrelay stats --json` and returns job counts by status, summed over kinds.
    pub async fn status_counts(&self) -> BTreeMap<String, i64> {
        let output = self.run(&["stats", "--json"]).await;
        output.assert_success("ffrelay stats --json");
        let stats: Value = serde_json::from_str(&output.stdout).unwrap();
        let mut counts = BTreeMap::new();
        for row in stats["stats"]["counts"].as_array().unwrap() {
            let status = row[0].as_str().unwrap().to_owned();
            *counts.entry(status).or_insert(0) += row[2].as_i64().unwrap();
        }
        counts
    }
}

/// The result of a finished command, with its output as text.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Output {
    fn from(output: std::process::Output) -> Output {
        Output {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Output {
    /// Panics with the output when the command did not exit 0.
    pub fn assert_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }

    /// Returns the exit code, or `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// A running `ffrelay serve` (or another long-running command), killed with SIGKILL when
/// dropped. Its stdout and stderr go to a log file that the test reads after it exits.
pub struct Relay {
    child: Child,
    pid: u32,
    url: String,
    log: PathBuf,
}

impl Relay {
    /// Starts `ffrelay serve`, appending its output to `log`.
    pub fn spawn(env: &RelayEnv, log: &Path) -> Relay {
        Relay::spawn_command(env, &["serve"], log)
    }

    /// Starts the binary with `args`, appending its output to `log`.
    pub fn spawn_command(env: &RelayEnv, args: &[&str], log: &Path) -> Relay {
        let file = append(log);
        let mut command = env.command(args);
        command.stdout(file.try_clone().unwrap()).stderr(file);
        let child = command.spawn().unwrap();
        let pid = child.id().unwrap();
        Relay {
            child,
            pid,
            url: env.server_url(),
            log: log.to_path_buf(),
        }
    }

    /// Starts `ffrelay serve` and waits until `/healthz` responds.
    pub async fn start(env: &RelayEnv, log: &Path) -> Relay {
        let mut relay = Relay::spawn(env, log);
        relay.wait_ready().await;
        relay
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Polls `GET /healthz` until it returns 200, and panics when the process exits first.
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let url = format!("{}/healthz", self.url);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "ffrelay serve exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            let answer = client.get(&url).send().await;
            if answer.is_ok_and(|response| response.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ffrelay serve did not answer {url} within 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub async fn kill9(mut self) {
        self.child.kill().await.unwrap();
    }

    /// Sends a signal by name, such as `TERM` or `INT`, with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", name, &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {name} {} failed", self.pid);
    }

    /// Waits up to `limit` for the process to exit and returns its status, or `None` when
    /// it is still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(Result::unwrap)
    }

    /// Reads everything the process wrote to stdout and stderr so far, after the output of
    /// earlier runs that used the same log file.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}
