//! Reads criterion's results and renders the comparison table (`cargo run -p benches
//! --bin report`).
//!
//! Criterion writes `<criterion dir>/<group>/<function>[/<value>]/new/benchmark.json`
//! (the ids) next to `estimates.json` (the statistics); this module walks the directory
//! for those pairs, so it does not depend on how criterion escapes names.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Function name of the primitive alone.
pub const RAW: &str = "raw";
/// Function name of the full path through this family's public API.
pub const OURS: &str = "ours";
/// Function name of jsonwebtoken on its RustCrypto backend.
pub const JSONWEBTOKEN: &str = "jsonwebtoken";
/// Function name of jsonwebtoken on its aws-lc-rs backend.
pub const JSONWEBTOKEN_AWS_LC: &str = "jsonwebtoken-aws-lc";
/// Function name of jwt-simple (pure-Rust build).
pub const JWT_SIMPLE: &str = "jwt-simple";
/// The peers, in table order.
pub const PEERS: [&str; 3] = [JSONWEBTOKEN, JSONWEBTOKEN_AWS_LC, JWT_SIMPLE];
/// Function name of our public API built with the `aws-lc-rs` feature
/// (`cargo bench -p benches --features aws-lc`).
pub const OURS_AWS_LC: &str = "ours-aws-lc";
/// Function name of the aws-lc-rs primitive alone.
pub const RAW_AWS_LC: &str = "raw-aws-lc";
/// Function name of HMAC-SHA256 from a prepared (already keyed) state, cloned per MAC.
pub const RAW_PREPARED: &str = "raw-prepared";
/// `ours` with the custom claims borrowed from the payload (`verify-large` groups).
pub const OURS_BORROWED: &str = "ours-borrowed";

/// File name (inside the criterion directory) of the instruction counts written by the
/// `icount` bench target.
pub const ICOUNT_FILE: &str = "icount.json";

/// One instruction count: callgrind's instructions per iteration of an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IcountEntry {
    /// Group, as in criterion (`verify/EdDSA`).
    pub group: String,
    /// Function, as in criterion (`ours`).
    pub function: String,
    /// Instructions per iteration.
    pub instructions: f64,
}

/// Reads the instruction counts, if the `icount` bench target has written them.
///
/// # Errors
/// [`Error::Io`] or [`Error::Json`] when the file exists but cannot be read.
pub fn read_icount(path: &Path) -> Result<Vec<IcountEntry>, Error> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    parse_json(path)
}

/// Merges `new` into the counts at `path` (same group and function: replaced) and writes
/// the file back; returns how many counts it holds.
///
/// # Errors
/// [`Error::Io`] or [`Error::Json`] when the file cannot be read or written.
pub fn merge_icount(path: &Path, new: Vec<IcountEntry>) -> Result<usize, Error> {
    let mut all = read_icount(path)?;
    for e in new {
        all.retain(|o| !(o.group == e.group && o.function == e.function));
        all.push(e);
    }
    all.sort_by(|a, b| (&a.group, &a.function).cmp(&(&b.group, &b.function)));
    let text = serde_json::to_string_pretty(&all).map_err(|e| Error::Json {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(all.len())
}

/// The instruction counts as measurements (`mean_ns` holds instructions), so the same
/// ratios and targets apply to them.
#[must_use]
pub fn icount_measurements(counts: &[IcountEntry]) -> Vec<Measurement> {
    counts
        .iter()
        .map(|c| Measurement {
            group: c.group.clone(),
            function: c.function.clone(),
            value: None,
            mean_ns: c.instructions,
        })
        .collect()
}

/// Largest results file read, in bytes (criterion's are a few KiB).
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Deepest directory level searched below the criterion directory.
const MAX_DEPTH: usize = 6;

/// One benchmark's mean time.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Criterion group, for example `verify/EdDSA`.
    pub group: String,
    /// Function, for example `ours`.
    pub function: String,
    /// Parameter, for example `1024` in `jwks/lookup`.
    pub value: Option<String>,
    /// Mean time per iteration, in nanoseconds.
    pub mean_ns: f64,
}

impl Measurement {
    /// `function` or `function/value`.
    #[must_use]
    pub fn id(&self) -> String {
        match &self.value {
            Some(v) => format!("{}/{v}", self.function),
            None => self.function.clone(),
        }
    }
}

/// The replay log's memory per live entry, written by the `replay_memory` binary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReplayMemory {
    /// Live entries inserted.
    pub entries: u64,
    /// Resident-set growth while inserting them, in bytes.
    pub rss_delta_bytes: u64,
    /// `rss_delta_bytes / entries`.
    pub bytes_per_entry: f64,
}

/// File name (inside the criterion directory) of the [`ReplayMemory`] measurement.
pub const REPLAY_MEMORY_FILE: &str = "replay-memory.json";

/// Where criterion's results are: the first argument if given, else `$CRITERION_HOME`,
/// else `$CARGO_TARGET_DIR/criterion`, else the workspace's `target/criterion`.
#[must_use]
pub fn criterion_dir(arg: Option<String>) -> PathBuf {
    if let Some(a) = arg {
        return PathBuf::from(a);
    }
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        let t = if t.is_relative() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(t)
        } else {
            t
        };
        return t.join("criterion");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion")
}

#[derive(Deserialize)]
struct BenchmarkJson {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

#[derive(Deserialize)]
struct EstimatesJson {
    mean: Estimate,
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES).read_to_end(&mut buf).map_err(io)?;
    Ok(buf)
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let bytes = read_bounded(path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Reads every measurement under `dir` (criterion's `new/` results only), sorted by
/// group and id.
///
/// # Errors
/// [`Error::Io`] or [`Error::Json`] for an unreadable results file, [`Error::NoResults`]
/// when there is none.
pub fn collect(dir: &Path) -> Result<Vec<Measurement>, Error> {
    let mut out = Vec::new();
    walk(dir, 0, &mut out)?;
    if out.is_empty() {
        return Err(Error::NoResults(dir.display().to_string()));
    }
    // Numeric parameters in numeric order (1, 16, 1024), the rest by name.
    out.sort_by(|a, b| {
        let num = |m: &Measurement| m.value.as_deref().and_then(|v| v.parse::<u64>().ok());
        (&a.group, &a.function, num(a), a.id()).cmp(&(&b.group, &b.function, num(b), b.id()))
    });
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<Measurement>) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let bench = path.join("benchmark.json");
            let est = path.join("estimates.json");
            if bench.is_file() && est.is_file() {
                let b: BenchmarkJson = parse_json(&bench)?;
                let e: EstimatesJson = parse_json(&est)?;
                if !e.mean.point_estimate.is_finite() || e.mean.point_estimate <= 0.0 {
                    return Err(Error::Json {
                        path: est.display().to_string(),
                        detail: "the mean is not a positive number".into(),
                    });
                }
                out.push(Measurement {
                    group: b.group_id,
                    function: b.function_id.unwrap_or_default(),
                    value: b.value_str,
                    mean_ns: e.mean.point_estimate,
                });
            }
        } else if path
            .file_name()
            .is_some_and(|n| n != "base" && n != "report")
        {
            walk(&path, depth + 1, out)?;
        }
    }
    Ok(())
}

/// Reads the replay memory measurement, if the `replay_memory` binary has written one.
///
/// # Errors
/// [`Error::Io`] or [`Error::Json`] when the file exists but cannot be read.
pub fn read_replay_memory(dir: &Path) -> Result<Option<ReplayMemory>, Error> {
    let path = dir.join(REPLAY_MEMORY_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    parse_json(&path).map(Some)
}

/// The mean of `group`/`id`, if measured.
#[must_use]
pub fn mean(ms: &[Measurement], group: &str, id: &str) -> Option<f64> {
    ms.iter()
        .find(|m| m.group == group && m.id() == id)
        .map(|m| m.mean_ns)
}

/// Formats nanoseconds with a unit (`812 ns`, `45.3 us`, `1.92 ms`).
#[must_use]
pub fn format_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} us", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), format_ns)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn ratio_cell(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

/// A performance target and how the measurement compares.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// What is compared, for example `verify/EdDSA ours/raw`.
    pub name: String,
    /// The largest acceptable value.
    pub limit: f64,
    /// The measured value (`None`: not measured in this run).
    pub actual: Option<f64>,
    /// Unit of `limit` and `actual` (`x` for ratios, `B` for bytes).
    pub unit: &'static str,
}

impl TargetCheck {
    /// Whether the target was met (`None`: not measured).
    #[must_use]
    pub fn met(&self) -> Option<bool> {
        self.actual.map(|a| a <= self.limit)
    }

    /// One line of the report: met, missed by how much, or not measured.
    #[must_use]
    pub fn verdict(&self) -> String {
        match self.actual {
            None => "not measured".to_owned(),
            Some(a) if a <= self.limit => {
                format!("met ({a:.2}{} <= {}{})", self.unit, self.limit, self.unit)
            }
            Some(a) => format!(
                "MISSED by {:.1}% ({a:.3}{} > {}{})",
                (a / self.limit - 1.0) * 100.0,
                self.unit,
                self.limit,
                self.unit
            ),
        }
    }
}

/// The issue's targets, checked against the measurements (criterion means, or
/// instruction counts through [`icount_measurements`]).
#[must_use]
pub fn check_targets(ms: &[Measurement], replay: Option<&ReplayMemory>) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    let mut push = |name: String, limit: f64, actual: Option<f64>| {
        out.push(TargetCheck {
            name,
            limit,
            actual,
            unit: "x",
        });
    };
    let r = |g: &str, a: &str, b: &str| ratio(mean(ms, g, a), mean(ms, g, b));
    for alg in ["EdDSA", "ES256", "RS256"] {
        let g = format!("verify/{alg}");
        push(format!("{g} ours/raw"), 1.10, r(&g, OURS, RAW));
    }
    push(
        "verify/HS256 ours/raw-prepared".into(),
        2.0,
        r("verify/HS256", OURS, RAW_PREPARED),
    );
    push(
        "verify/HS256 ours/jsonwebtoken".into(),
        0.35,
        r("verify/HS256", OURS, JSONWEBTOKEN),
    );
    push(
        "verify-large/EdDSA ours/raw".into(),
        1.10,
        r("verify-large/EdDSA", OURS, RAW),
    );
    push(
        "verify-large/HS256 ours/jsonwebtoken".into(),
        0.6,
        r("verify-large/HS256", OURS, JSONWEBTOKEN),
    );
    for alg in ["ES256", "RS256", "PS256"] {
        for op in ["verify", "sign"] {
            let g = format!("{op}/{alg}");
            if mean(ms, &g, OURS_AWS_LC).is_none() {
                continue;
            }
            push(
                format!("{g} ours-aws-lc/jsonwebtoken-aws-lc"),
                1.0,
                r(&g, OURS_AWS_LC, JSONWEBTOKEN_AWS_LC),
            );
            push(
                format!("{g} ours-aws-lc/raw-aws-lc"),
                1.10,
                r(&g, OURS_AWS_LC, RAW_AWS_LC),
            );
        }
    }
    push(
        "verify/EdDSA ours/jsonwebtoken-aws-lc".into(),
        1.0,
        r("verify/EdDSA", OURS, JSONWEBTOKEN_AWS_LC),
    );
    out.push(TargetCheck {
        name: "replay log bytes per live entry (1M entries)".into(),
        limit: 96.0,
        actual: replay.map(|r| r.bytes_per_entry),
        unit: " B",
    });
    out.push(TargetCheck {
        name: "jwks/lookup 1024 keys / 1 key".into(),
        limit: 1.2,
        actual: ratio(
            mean(ms, "jwks/lookup", "keys/1024"),
            mean(ms, "jwks/lookup", "keys/1"),
        ),
        unit: "x",
    });
    out
}

/// Formats an instruction count (`1.23 M`, `45.6 k`, `812`).
#[must_use]
pub fn format_count(n: f64) -> String {
    if n < 10_000.0 {
        format!("{n:.0}")
    } else if n < 10_000_000.0 {
        format!("{:.1} k", n / 1_000.0)
    } else {
        format!("{:.2} M", n / 1_000_000.0)
    }
}

/// Renders the instruction counts: per group, every function with its count and its
/// ratio to `raw` (or `raw-aws-lc` for `ours-aws-lc`), then the targets on counts.
#[must_use]
pub fn render_icount(counts: &[IcountEntry]) -> String {
    let ms = icount_measurements(counts);
    let mut s = String::new();
    let _ = writeln!(s, "### instruction counts (callgrind, per operation)\n");
    let _ = writeln!(
        s,
        "| group | function | instructions | vs raw | vs jsonwebtoken | vs jsonwebtoken-aws-lc |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
    for m in &ms {
        let base = if m.function == OURS_AWS_LC {
            RAW_AWS_LC
        } else {
            RAW
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            m.group,
            m.function,
            format_count(m.mean_ns),
            ratio_cell(ratio(Some(m.mean_ns), mean(&ms, &m.group, base))),
            ratio_cell(ratio(Some(m.mean_ns), mean(&ms, &m.group, JSONWEBTOKEN))),
            ratio_cell(ratio(
                Some(m.mean_ns),
                mean(&ms, &m.group, JSONWEBTOKEN_AWS_LC)
            )),
        );
    }
    let _ = writeln!(s, "\n### targets on instruction counts\n");
    for t in check_targets(&ms, None) {
        if t.unit == "x" && t.actual.is_some() {
            let _ = writeln!(s, "- {}: {}", t.name, t.verdict());
        }
    }
    s
}

/// Renders the markdown report: the verify and sign tables (mean times, then ratios of
/// `ours` to the primitive and to each peer), the other groups, and the targets.
#[must_use]
pub fn render(ms: &[Measurement], replay: Option<&ReplayMemory>) -> String {
    let mut s = String::new();
    for op in ["verify", "sign"] {
        let _ = writeln!(s, "### {op}\n");
        let _ = writeln!(
            s,
            "| alg | raw | ours | jsonwebtoken | jsonwebtoken-aws-lc | jwt-simple | ours/raw | ours/jsonwebtoken | ours/jsonwebtoken-aws-lc | ours/jwt-simple |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for alg in ["EdDSA", "ES256", "RS256", "HS256"] {
            let g = format!("{op}/{alg}");
            let ours = mean(ms, &g, OURS);
            let raw = mean(ms, &g, RAW);
            let mut row = format!("| {alg} | {} | {} |", cell(raw), cell(ours));
            for p in PEERS {
                let _ = write!(row, " {} |", cell(mean(ms, &g, p)));
            }
            let _ = write!(row, " {} |", ratio_cell(ratio(ours, raw)));
            for p in PEERS {
                let _ = write!(row, " {} |", ratio_cell(ratio(ours, mean(ms, &g, p))));
            }
            let _ = writeln!(s, "{row}");
        }
        let _ = writeln!(s);
    }
    let others: Vec<&Measurement> = ms
        .iter()
        .filter(|m| !m.group.starts_with("verify/") && !m.group.starts_with("sign/"))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(s, "### other groups\n");
        let _ = writeln!(s, "| group | function | mean | ratio |");
        let _ = writeln!(s, "|---|---|---:|---|");
        for m in others {
            let note = if m.group == "jwks/lookup" {
                ratio(Some(m.mean_ns), mean(ms, "jwks/lookup", "keys/1"))
                    .map(|r| format!("{r:.2}x of 1 key"))
            } else if m.function == OURS {
                ratio(Some(m.mean_ns), mean(ms, &m.group, RAW)).map(|r| format!("{r:.2}x of raw"))
            } else {
                None
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                m.group,
                m.id(),
                format_ns(m.mean_ns),
                note.unwrap_or_default()
            );
        }
        let _ = writeln!(s);
    }
    if let Some(r) = replay {
        let _ = writeln!(
            s,
            "Replay log memory: {:.1} bytes per live entry ({} entries, RSS grew by {:.1} MiB).\n",
            r.bytes_per_entry,
            r.entries,
            r.rss_delta_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    let _ = writeln!(s, "### targets\n");
    for t in check_targets(ms, replay) {
        let _ = writeln!(s, "- {}: {}", t.name, t.verdict());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(group: &str, function: &str, value: Option<&str>, mean_ns: f64) -> Measurement {
        Measurement {
            group: group.into(),
            function: function.into(),
            value: value.map(Into::into),
            mean_ns,
        }
    }

    fn write_result(root: &Path, dir: &str, group: &str, function: &str, mean: f64) {
        let d = root.join(dir).join("new");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("benchmark.json"),
            format!(
                r#"{{"group_id":"{group}","function_id":"{function}","value_str":null,"throughput":null,"full_id":"{group}/{function}","directory_name":"{dir}","title":"{group}/{function}"}}"#
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("estimates.json"),
            format!(
                r#"{{"mean":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0}},"point_estimate":{mean},"standard_error":0.1}}}}"#
            ),
        )
        .unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("benches-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn collects_criterion_layout_and_skips_base() {
        let root = temp_dir("collect");
        write_result(&root, "verify_EdDSA/ours", "verify/EdDSA", "ours", 50_000.0);
        write_result(&root, "verify_EdDSA/raw", "verify/EdDSA", "raw", 45_000.0);
        // A stale `base` result must not be read.
        let base = root.join("verify_EdDSA/ours/base");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("benchmark.json"), "not json").unwrap();
        let ms = collect(&root).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(mean(&ms, "verify/EdDSA", "ours"), Some(50_000.0));
        assert_eq!(mean(&ms, "verify/EdDSA", "raw"), Some(45_000.0));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn empty_directory_is_an_error() {
        let root = temp_dir("empty");
        let err = collect(&root).unwrap_err();
        assert!(matches!(err, Error::NoResults(_)), "{err}");
        assert!(err.to_string().contains("cargo bench -p benches"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn malformed_estimates_are_an_error() {
        let root = temp_dir("malformed");
        write_result(&root, "g/f", "g", "f", 1.0);
        std::fs::write(root.join("g/f/new/estimates.json"), r#"{"mean":{}}"#).unwrap();
        assert!(matches!(collect(&root).unwrap_err(), Error::Json { .. }));
        write_result(&root, "g/f", "g", "f", -3.0);
        assert!(matches!(collect(&root).unwrap_err(), Error::Json { .. }));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn targets_report_met_and_missed_with_the_margin() {
        let ms = vec![
            m("verify/EdDSA", OURS, None, 50_000.0),
            m("verify/EdDSA", RAW, None, 40_000.0),
            m("verify/EdDSA", JSONWEBTOKEN_AWS_LC, None, 60_000.0),
            m("verify/ES256", OURS, None, 105.0),
            m("verify/ES256", RAW, None, 100.0),
            m("verify/HS256", OURS, None, 1_000.0),
            m("verify/HS256", JSONWEBTOKEN, None, 3_000.0),
            m("jwks/lookup", "keys", Some("1"), 20.0),
            m("jwks/lookup", "keys", Some("1024"), 30.0),
        ];
        let replay = ReplayMemory {
            entries: 1_000_000,
            rss_delta_bytes: 80_000_000,
            bytes_per_entry: 80.0,
        };
        let t = check_targets(&ms, Some(&replay));
        let by = |n: &str| t.iter().find(|t| t.name == n).unwrap().clone();
        let eddsa = by("verify/EdDSA ours/raw");
        assert_eq!(eddsa.met(), Some(false));
        assert!(
            eddsa.verdict().starts_with("MISSED by 13.6%"),
            "{}",
            eddsa.verdict()
        );
        assert_eq!(by("verify/ES256 ours/raw").met(), Some(true));
        assert_eq!(by("verify/RS256 ours/raw").met(), None);
        assert_eq!(by("verify/RS256 ours/raw").verdict(), "not measured");
        assert_eq!(by("verify/HS256 ours/jsonwebtoken").met(), Some(true));
        assert_eq!(
            by("verify/EdDSA ours/jsonwebtoken-aws-lc").met(),
            Some(true)
        );
        assert_eq!(
            by("replay log bytes per live entry (1M entries)").met(),
            Some(true)
        );
        let jwks = by("jwks/lookup 1024 keys / 1 key");
        assert_eq!(jwks.met(), Some(false));
        assert!(
            jwks.verdict().contains("MISSED by 25.0%"),
            "{}",
            jwks.verdict()
        );

        let text = render(&ms, Some(&replay));
        assert!(text.contains("| EdDSA | 40.0 us | 50.0 us |"), "{text}");
        assert!(text.contains("1.25x"), "{text}");
        assert!(text.contains("80.0 bytes per live entry"), "{text}");
        assert!(
            text.contains("| jwks/lookup | keys/1024 | 30 ns | 1.50x of 1 key |"),
            "{text}"
        );
    }

    #[test]
    fn instruction_counts_merge_by_id_and_meet_targets_like_times() {
        let root = temp_dir("icount");
        let path = root.join(ICOUNT_FILE);
        let e = |g: &str, f: &str, n: f64| IcountEntry {
            group: g.into(),
            function: f.into(),
            instructions: n,
        };
        assert_eq!(
            merge_icount(&path, vec![e("verify/HS256", OURS, 40_000.0)]).unwrap(),
            1
        );
        // A second run replaces the same operation and adds the others.
        let n = merge_icount(
            &path,
            vec![
                e("verify/HS256", OURS, 30_000.0),
                e("verify/HS256", RAW_PREPARED, 20_000.0),
                e("verify/HS256", JSONWEBTOKEN, 50_000.0),
            ],
        )
        .unwrap();
        assert_eq!(n, 3);
        let counts = read_icount(&path).unwrap();
        let ms = icount_measurements(&counts);
        assert_eq!(mean(&ms, "verify/HS256", OURS), Some(30_000.0));
        let t = check_targets(&ms, None);
        let by = |n: &str| t.iter().find(|t| t.name == n).unwrap().clone();
        assert_eq!(by("verify/HS256 ours/raw-prepared").met(), Some(true));
        assert_eq!(by("verify/HS256 ours/jsonwebtoken").met(), Some(false));
        let text = render_icount(&counts);
        assert!(text.contains("| verify/HS256 | ours | 30.0 k |"), "{text}");
        assert!(
            text.contains("verify/HS256 ours/jsonwebtoken: MISSED"),
            "{text}"
        );
        // No file yet: no counts, no error.
        assert!(read_icount(&root.join("none.json")).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn units() {
        assert_eq!(format_ns(812.0), "812 ns");
        assert_eq!(format_ns(45_300.0), "45.3 us");
        assert_eq!(format_ns(1_920_000.0), "1.92 ms");
    }
}
