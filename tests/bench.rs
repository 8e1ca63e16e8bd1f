//! Runs `ffrelay bench --quick` through the real binary and checks the shape of its
//! output. Timings are never asserted: the machine running the tests decides them.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ffrelay"))
        .arg("bench")
        .args(args)
        .env_remove("FFRELAY_CONFIG")
        .output()
        .expect("failed to run ffrelay bench")
}

#[test]
fn quick_table_has_expected_rows() {
    let output = bench(&["--quick", "--only", "enqueue,claim"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");

    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("ffrelay bench (quick sizes"),
        "{stdout}"
    );
    assert!(lines[1].starts_with("measure"), "{stdout}");
    let measures: Vec<&str> = lines[2..]
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        measures,
        ["enqueue", "enqueue", "claim", "claim", "claim", "claim"]
    );
    assert!(stdout.contains("Outbox::enqueue"), "{stdout}");
    assert!(
        stdout.contains("`ffrelay enqueue --format lines`"),
        "{stdout}"
    );
    assert!(stdout.contains("claim time growth"), "{stdout}");
    assert!(!stdout.contains("ingest"), "{stdout}");
}

#[test]
fn unknown_measure_is_rejected() {
    let output = bench(&["--quick", "--only", "nosuch"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("nosuch"), "{stderr}");
}
