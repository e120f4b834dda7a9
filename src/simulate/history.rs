//! Recorded history of one service, the input of `ballast replay`: per
//! row, when, the service's average CPU and its running tasks. Read from a
//! CSV file (`time,cpu_percent,running_tasks`, docs/simulation.md,
//! "Replay") with located errors, or built from CloudWatch datapoints by
//! the AWS adapter.
//!
//! The load is reconstructed as CPU x tasks: with the simulated cloud's
//! 1 % of one task's CPU per request per second, a row of 4 tasks at 50 %
//! is a load of 200. Each row's values hold until the next row (a
//! CloudWatch datapoint is the average of its period).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::desired::{Diagnostic, LoadError};

/// The header a history CSV starts with.
pub const CSV_HEADER: &str = "time,cpu_percent,running_tasks";

/// Loads are kept to a millionth, so that a history exported as CPU and
/// tasks and read back gives exactly the load it was made from.
const LOAD_RESOLUTION: f64 = 1e6;

/// One recorded instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// Since the first row.
    pub at: Duration,
    /// The service's average CPU percent over the row's period.
    pub cpu: f64,
    /// Tasks running.
    pub tasks: u32,
}

/// A service's recorded history: at least one row, times ascending from 0.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Where it came from, for the report (`FILE` or `CLUSTER/SERVICE`).
    pub source: String,
    /// The wall-clock time of the first row, when known.
    pub started: Option<SystemTime>,
    pub rows: Vec<Row>,
    /// How long the history covers: the last row lasts as long as the
    /// typical (median) gap between rows.
    pub duration: Duration,
}

/// A history that could not be read: every problem, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct HistoryError(pub LoadError);

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0.diagnostics {
            writeln!(f, "{d}")?;
        }
        let n = self.0.diagnostics.len();
        write!(f, "{n} problem{} in the history", if n == 1 { "" } else { "s" })
    }
}

impl History {
    /// A history of timed rows (any order, any origin; at least one row).
    /// `None` when there are no rows.
    pub fn from_samples(source: impl Into<String>, mut samples: Vec<(SystemTime, f64, u32)>) -> Option<History> {
        samples.sort_by_key(|(t, _, _)| *t);
        samples.dedup_by_key(|(t, _, _)| *t);
        let first = samples.first()?.0;
        let rows = samples
            .into_iter()
            .map(|(t, cpu, tasks)| Row { at: t.duration_since(first).unwrap_or_default(), cpu, tasks })
            .collect();
        Some(History::new(source.into(), Some(first), rows))
    }

    fn new(source: String, started: Option<SystemTime>, rows: Vec<Row>) -> History {
        let mut gaps: Vec<Duration> = rows.windows(2).map(|w| w[1].at - w[0].at).collect();
        gaps.sort();
        let typical = gaps.get(gaps.len() / 2).copied().unwrap_or(Duration::from_secs(60));
        let duration = rows.last().map_or(Duration::ZERO, |r| r.at + typical);
        History { source, started, rows, duration }
    }

    /// The load (requests per second at `cpu_per_rps` percent of a task's
    /// CPU per request per second) from each row on: CPU x tasks.
    pub fn load(&self, cpu_per_rps: f64) -> Vec<(Duration, f64)> {
        self.rows.iter().map(|r| (r.at, round_load(r.cpu * f64::from(r.tasks) / cpu_per_rps))).collect()
    }

    /// The history as CSV (`time` in seconds from the first row).
    pub fn to_csv(&self) -> String {
        let mut out = format!("{CSV_HEADER}\n");
        for r in &self.rows {
            out.push_str(&format!("{},{},{}\n", r.at.as_secs_f64(), r.cpu, r.tasks));
        }
        out
    }

    /// Reads a history CSV file; every problem is reported with its line
    /// and column.
    pub fn read_csv(path: &Path) -> Result<History, HistoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            HistoryError(LoadError {
                diagnostics: vec![Diagnostic::at(
                    path,
                    None,
                    format!("cannot read the history: {e}"),
                    "give the path of a CSV file with the columns time,cpu_percent,running_tasks",
                )],
            })
        })?;
        Self::parse_csv(path, &text)
    }

    /// Parses history CSV text; `path` names it in the errors.
    pub fn parse_csv(path: &Path, text: &str) -> Result<History, HistoryError> {
        let mut problems = Vec::new();
        let mut problem = |line: usize, column: usize, message: String, help: &str| {
            problems.push(Diagnostic {
                file: PathBuf::from(path),
                line: Some(line),
                column: Some(column),
                message,
                help: Some(help.to_string()),
            });
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
        let header = lines.by_ref().find(|(_, l)| !l.trim().is_empty());
        match header {
            Some((_, l)) if l.split(',').map(str::trim).eq(CSV_HEADER.split(',')) => {}
            Some((n, l)) => problem(
                n,
                1,
                format!("expected the header `{CSV_HEADER}`, found `{l}`"),
                "start the file with the header line time,cpu_percent,running_tasks",
            ),
            None => problem(
                1,
                1,
                "the history is empty".into(),
                "write the header time,cpu_percent,running_tasks, then one row per datapoint",
            ),
        }
        // (line, column of `time`, instant) of the previous row.
        let mut previous: Option<(usize, Time)> = None;
        let mut timed: Vec<(Time, f64, u32)> = Vec::new();
        for (n, l) in lines {
            if l.trim().is_empty() {
                continue;
            }
            let fields = fields(l);
            if fields.len() != 3 {
                let column = fields.get(3).map_or(l.len() + 1, |f| f.0);
                problem(
                    n,
                    column,
                    format!("expected 3 fields (time,cpu_percent,running_tasks), found {}", fields.len()),
                    "write one datapoint per line: a time, the CPU percent, the running task count",
                );
                continue;
            }
            let (tc, time) = fields[0];
            let (cc, cpu) = fields[1];
            let (kc, tasks) = fields[2];
            let time = match parse_time(time) {
                Some(t) => Some(t),
                None => {
                    problem(
                        n,
                        tc,
                        format!("`{time}` is not a time"),
                        "write an RFC 3339 time (2026-12-01T10:00:00Z) or seconds from the start (90)",
                    );
                    None
                }
            };
            let cpu = match cpu.parse::<f64>() {
                Ok(c) if c.is_finite() && c >= 0.0 => Some(c),
                _ => {
                    problem(n, cc, format!("`{cpu}` is not a CPU percent"), "write a number, 0 or more, like 57.3");
                    None
                }
            };
            let tasks = match tasks.parse::<u32>() {
                Ok(t) => Some(t),
                Err(_) => {
                    problem(
                        n,
                        kc,
                        format!("`{tasks}` is not a task count"),
                        "write a whole number of running tasks, 0 or more",
                    );
                    None
                }
            };
            if let Some(t) = time {
                if let Some((pn, p)) = previous
                    && !p.before(&t)
                {
                    problem(
                        n,
                        tc,
                        format!("the time does not come after the previous row's (line {pn})"),
                        "sort the rows by time, oldest first, one row per instant, all times of one kind",
                    );
                }
                previous = Some((n, t));
            }
            if let (Some(t), Some(c), Some(k)) = (time, cpu, tasks) {
                timed.push((t, c, k));
            }
        }
        if timed.is_empty() && header.is_some_and(|(_, l)| l.split(',').map(str::trim).eq(CSV_HEADER.split(','))) {
            let last = text.lines().count().max(1);
            problem(last, 1, "the history has no rows".into(), "add one row per datapoint after the header");
        }
        if !problems.is_empty() {
            return Err(HistoryError(LoadError { diagnostics: problems }));
        }
        let source = path.display().to_string();
        Ok(match timed[0].0 {
            Time::At(_) => History::from_samples(
                source,
                timed
                    .into_iter()
                    .map(|(t, c, k)| (if let Time::At(t) = t { t } else { SystemTime::UNIX_EPOCH }, c, k))
                    .collect(),
            )
            .expect("at least one row"),
            Time::Offset(_) => {
                let rows = timed
                    .into_iter()
                    .map(|(t, cpu, tasks)| Row {
                        at: if let Time::Offset(d) = t { d } else { Duration::ZERO },
                        cpu,
                        tasks,
                    })
                    .collect::<Vec<_>>();
                let first = rows[0].at;
                let rows = rows.into_iter().map(|r| Row { at: r.at - first, ..r }).collect();
                History::new(source, None, rows)
            }
        })
    }
}

/// The load kept to [`LOAD_RESOLUTION`].
pub fn round_load(load: f64) -> f64 {
    (load * LOAD_RESOLUTION).round() / LOAD_RESOLUTION
}

/// A row's time: a wall-clock instant, or seconds from the start.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Time {
    At(SystemTime),
    Offset(Duration),
}

impl Time {
    /// Strictly earlier, and of the same kind.
    fn before(&self, other: &Time) -> bool {
        match (self, other) {
            (Time::At(a), Time::At(b)) => a < b,
            (Time::Offset(a), Time::Offset(b)) => a < b,
            _ => false,
        }
    }
}

fn parse_time(s: &str) -> Option<Time> {
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Time::Offset(Duration::from_secs_f64(secs)));
    }
    humantime::parse_rfc3339_weak(s).ok().map(Time::At)
}

/// The comma-separated fields of a line, trimmed, with the 1-based column
/// each starts at.
fn fields(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for part in line.split(',') {
        let lead = part.len() - part.trim_start().len();
        out.push((line[..start + lead].chars().count() + 1, part.trim()));
        start += part.len() + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<History, HistoryError> {
        History::parse_csv(Path::new("h.csv"), text)
    }

    #[test]
    fn a_csv_in_seconds_gives_rows_from_zero_and_the_load_as_cpu_times_tasks() {
        let h = parse("time,cpu_percent,running_tasks\n60,50,4\n120,85.5,4\n\n180,60,10\n").unwrap();
        assert_eq!(h.rows.len(), 3);
        assert_eq!(h.rows[0], Row { at: Duration::ZERO, cpu: 50.0, tasks: 4 });
        assert_eq!(h.rows[2].at, Duration::from_secs(120));
        assert_eq!(h.duration, Duration::from_secs(180), "the last row lasts the typical gap");
        let load = h.load(1.0);
        assert_eq!(
            load,
            vec![(Duration::ZERO, 200.0), (Duration::from_secs(60), 342.0), (Duration::from_secs(120), 600.0)]
        );
        // A round trip keeps every load exactly.
        let again = parse(&h.to_csv()).unwrap();
        assert_eq!(again.load(1.0), load);
    }

    #[test]
    fn rfc3339_times_keep_their_wall_clock_start() {
        let h =
            parse("time,cpu_percent,running_tasks\n2026-12-01T10:00:00Z,50,4\n2026-12-01T10:01:00Z,70,4\n").unwrap();
        assert_eq!(h.started, Some(humantime::parse_rfc3339("2026-12-01T10:00:00Z").unwrap()));
        assert_eq!(h.rows[1].at, Duration::from_secs(60));
    }

    #[test]
    fn every_problem_is_located_by_line_and_column() {
        let text = "time,cpu_percent,running_tasks\n0,50,4\n60, high,4\n120,50,2.5\n90,50,4\n150,50\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("h.csv:3:5: `high` is not a CPU percent"), "{err}");
        assert!(err.contains("h.csv:4:8: `2.5` is not a task count"), "{err}");
        assert!(err.contains("h.csv:5:1: the time does not come after the previous row's (line 4)"), "{err}");
        assert!(err.contains("h.csv:6:7: expected 3 fields"), "{err}");
        assert!(err.ends_with("4 problems in the history"), "{err}");
        let header = parse("when,cpu,tasks\n0,1,1\n").unwrap_err().to_string();
        assert!(header.contains("h.csv:1:1: expected the header `time,cpu_percent,running_tasks`"), "{header}");
        assert!(parse("time,cpu_percent,running_tasks\n").unwrap_err().to_string().contains("no rows"));
        let mixed = parse("time,cpu_percent,running_tasks\n0,1,1\n2026-12-01T10:00:00Z,1,1\n").unwrap_err();
        assert!(mixed.to_string().contains("h.csv:3:1:"), "{mixed}");
    }
}
