//! Result rows of the benchmark and their rendering as a text table or JSON.
//!
//! A row carries one figure, the baseline measured in the same run, and the target it is
//! judged against. The verdict is left empty in quick runs, whose sizes are too small for
//! a figure to mean anything against a target.

use serde::Serialize;

/// The bar a figure is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// The figure must be at least this value.
    AtLeast(f64),
    /// The figure must be below this value.
    Below(f64),
    /// The figure must be at most this value.
    AtMost(f64),
    /// No target: the row is context for another row.
    None,
}

impl Target {
    /// Checks whether `value` meets the target; `None` when there is no target.
    pub fn is_met_by(self, value: f64) -> Option<bool> {
        match self {
            Target::AtLeast(bar) => Some(value >= bar),
            Target::Below(bar) => Some(value < bar),
            Target::AtMost(bar) => Some(value <= bar),
            Target::None => None,
        }
    }

    fn render(self, unit: &str) -> String {
        match self {
            Target::AtLeast(bar) => format!(">= {} {unit}", number(bar)),
            Target::Below(bar) => format!("< {} {unit}", number(bar)),
            Target::AtMost(bar) => format!("<= {} {unit}", number(bar)),
            Target::None => "-".to_owned(),
        }
    }
}

/// One measured figure beside its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Name of the measure, as given to `--only`.
    pub measure: &'static str,
    /// Description of the figure, such as `requests/s, 64 clients`.
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
    /// The raw baseline in the same unit, when the measure has one.
    pub baseline: Option<f64>,
    /// Description of the baseline.
    pub baseline_label: String,
    pub target: Target,
    /// Whether the target was met; `None` without a target or in a quick run.
    pub met: Option<bool>,
}

impl Row {
    /// Creates a row without a baseline and without a verdict yet.
    pub fn new(
        measure: &'static str,
        metric: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Row {
        Row {
            measure,
            metric: metric.into(),
            value,
            unit,
            baseline: None,
            baseline_label: String::new(),
            target: Target::None,
            met: None,
        }
    }

    /// Adds the baseline figure and what it measured.
    pub fn baseline(mut self, value: f64, label: impl Into<String>) -> Row {
        self.baseline = Some(value);
        self.baseline_label = label.into();
        self
    }

    /// Sets the target; the verdict follows from the value.
    pub fn target(mut self, target: Target) -> Row {
        self.target = target;
        self.met = target.is_met_by(self.value);
        self
    }

    /// Returns the value divided by the baseline.
    pub fn ratio(&self) -> Option<f64> {
        self.baseline
            .filter(|baseline| *baseline != 0.0)
            .map(|baseline| self.value / baseline)
    }
}

/// Renders the rows as an aligned text table with a header line.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "measure", "metric", "value", "baseline", "ratio", "target", "met",
    ];
    let mut lines: Vec<[String; 7]> = vec![header.map(str::to_owned)];
    lines.extend(rows.iter().map(cells));
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            lines
                .iter()
                .map(|cells| cells[column].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for cells in &lines {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Renders the rows as a JSON array, with the ratio added to each row.
pub fn json(rows: &[Row]) -> serde_json::Result<String> {
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut value = serde_json::to_value(row)?;
            value["ratio"] = serde_json::json!(row.ratio());
            Ok(value)
        })
        .collect::<serde_json::Result<_>>()?;
    serde_json::to_string_pretty(&values)
}

fn cells(row: &Row) -> [String; 7] {
    let baseline = match row.baseline {
        Some(value) => format!("{} {} ({})", number(value), row.unit, row.baseline_label),
        None if row.baseline_label.is_empty() => "-".to_owned(),
        None => row.baseline_label.clone(),
    };
    let ratio = row
        .ratio()
        .map_or("-".to_owned(), |ratio| format!("{ratio:.2}x"));
    let met = match row.met {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    };
    [
        row.measure.to_owned(),
        row.metric.clone(),
        format!("{} {}", number(row.value), row.unit),
        baseline,
        ratio,
        row.target.render(row.unit),
        met.to_owned(),
    ]
}

/// Formats a figure with thousands separators above 1,000 and three significant digits
/// below.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value.abs() >= 999.5 {
        return thousands(value.round() as i64);
    }
    if value.abs() >= 100.0 {
        return format!("{value:.0}");
    }
    if value.abs() >= 10.0 {
        return format!("{value:.1}");
    }
    format!("{value:.2}")
}

fn thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_groups_thousands() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(-12_000.0), "-12,000");
        assert_eq!(number(999.6), "1,000");
    }

    #[test]
    fn number_keeps_small_digits() {
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(1.2345), "1.23");
    }

    #[test]
    fn target_verdicts() {
        assert_eq!(Target::AtLeast(10.0).is_met_by(10.0), Some(true));
        assert_eq!(Target::Below(10.0).is_met_by(10.0), Some(false));
        assert_eq!(Target::AtMost(2.0).is_met_by(2.0), Some(true));
        assert_eq!(Target::None.is_met_by(1.0), None);
    }

    #[test]
    fn table_lists_every_row() {
        let rows = vec![
            Row::new("enqueue", "updates/s", 120_000.0, "/s")
                .baseline(240_000.0, "raw inserts")
                .target(Target::AtLeast(100_000.0)),
        ];
        let text = table(&rows);
        assert!(text.starts_with("measure"));
        assert!(text.contains("enqueue"));
        assert!(text.contains("0.50x"));
        assert!(text.contains("yes"));
    }
}
