//! Results: a table for people, one JSON object per line for scripts, and the targets.

use serde_json::{Value, json};

use crate::measure::Compared;

/// One measured case.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) case: &'static str,
    pub(crate) tasks: usize,
    pub(crate) typed: f64,
    pub(crate) raw: Option<f64>,
    /// typed/raw; for compared rates the median of per-round ratios (see `compare`).
    pub(crate) ratio: Option<f64>,
    pub(crate) unit: &'static str,
}

impl Row {
    /// A row without a raw counterpart, measured by one task.
    pub(crate) fn typed_only(case: &'static str, typed: f64, unit: &'static str) -> Row {
        Self::typed_only_at(case, 1, typed, unit)
    }

    /// A row without a raw counterpart, measured with `tasks` tasks.
    pub(crate) fn typed_only_at(
        case: &'static str,
        tasks: usize,
        typed: f64,
        unit: &'static str,
    ) -> Row {
        Row {
            case,
            tasks,
            typed,
            raw: None,
            ratio: None,
            unit,
        }
    }

    /// A row of two single measurements (their ratio is typed/raw).
    pub(crate) fn pair(case: &'static str, typed: f64, raw: f64, unit: &'static str) -> Row {
        Self::pair_at(case, 1, typed, raw, unit)
    }

    /// A row of two single measurements with `tasks` tasks (their ratio is typed/raw).
    pub(crate) fn pair_at(
        case: &'static str,
        tasks: usize,
        typed: f64,
        raw: f64,
        unit: &'static str,
    ) -> Row {
        Row {
            case,
            tasks,
            typed,
            raw: Some(raw),
            ratio: Some(typed / raw),
            unit,
        }
    }

    /// A row from [`compare`](crate::measure::compare), rates scaled by `per_call`.
    pub(crate) fn compared(
        case: &'static str,
        tasks: usize,
        c: Compared,
        per_call: f64,
        unit: &'static str,
    ) -> Row {
        Row {
            case,
            tasks,
            typed: c.typed * per_call,
            raw: Some(c.raw * per_call),
            ratio: Some(c.ratio),
            unit,
        }
    }

    pub(crate) fn ratio(&self) -> Option<f64> {
        self.ratio
    }

    fn json(&self) -> Value {
        let mut line = json!({"case": self.case, "tasks": self.tasks, "typed": round(self.typed), "unit": self.unit});
        if let (Some(raw), Some(ratio)) = (self.raw, self.ratio()) {
            line["raw"] = json!(round(raw));
            line["ratio"] = json!((ratio * 1000.0).round() / 1000.0);
        }
        line
    }
}

/// A number the binary must show on this machine.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) value: f64,
    pub(crate) limit: f64,
    /// `true` for "at least", `false` for "at most".
    pub(crate) at_least: bool,
}

impl Target {
    pub(crate) fn met(&self) -> bool {
        if self.at_least {
            self.value >= self.limit
        } else {
            self.value <= self.limit
        }
    }
}

fn round(x: f64) -> f64 {
    if x.abs() >= 100.0 {
        x.round()
    } else {
        (x * 100.0).round() / 100.0
    }
}

/// Prints one row as it is measured: JSON, or a table line.
pub(crate) fn print_row(row: &Row, as_json: bool) {
    if as_json {
        println!("{}", row.json());
        return;
    }
    let raw = row
        .raw
        .map_or_else(|| "-".to_owned(), |r| format!("{:.0}", r));
    let ratio = row
        .ratio()
        .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
    println!(
        "{:<28} {:>5} {:>14.1} {:>14} {:>7}  {}",
        row.case, row.tasks, row.typed, raw, ratio, row.unit
    );
}

pub(crate) fn print_header(as_json: bool) {
    if !as_json {
        println!(
            "{:<28} {:>5} {:>14} {:>14} {:>7}  unit",
            "case", "tasks", "typed", "raw", "ratio"
        );
    }
}

/// Prints the targets; returns how many were missed.
pub(crate) fn print_targets(targets: &[Target], as_json: bool) -> usize {
    if !as_json {
        println!("\ntargets:");
    }
    for t in targets {
        let relation = if t.at_least { ">=" } else { "<=" };
        if as_json {
            println!(
                "{}",
                json!({"case": "target", "name": t.name, "value": round(t.value), "limit": t.limit,
                       "relation": relation, "met": t.met()})
            );
        } else {
            let verdict = if t.met() { "met" } else { "MISSED" };
            println!(
                "  {:<44} {:>10.3} {relation} {:<8} {verdict}",
                t.name, t.value, t.limit
            );
        }
    }
    targets.iter().filter(|t| !t.met()).count()
}
