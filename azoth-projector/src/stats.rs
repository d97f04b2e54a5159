//! [`DatabaseStats`], the latency histogram behind its percentiles, and the Prometheus text
//! rendering.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use azoth_core::{EventId, EventLogStats, StoreStats};

use crate::maintenance::MaintenanceStats;
use crate::retention::RetentionStats;
use crate::subscription::SubscriptionStats;

/// Buckets of powers of two of nanoseconds: bucket `i` counts durations in `[2^(i-1), 2^i)` ns.
const BUCKETS: usize = 64;

/// About one call in this many is timed: each thread's first call, then calls drawn at
/// random (not every n-th, which a workload alternating reads and writes, or two databases,
/// would alias with). Two clock reads cost a tenth of a memtable `get`; a sample of calls
/// gives the same percentiles for any workload long enough to have percentiles worth reading.
const SAMPLE_EVERY: u64 = 16;

thread_local! {
    /// This thread's xorshift state for drawing the calls to time; 0 before its first call.
    static SAMPLER: Cell<u64> = const { Cell::new(0) };
}

/// Whether to time the call this thread is beginning.
fn sample_this_call() -> bool {
    SAMPLER.with(|state| {
        let mut x = state.get();
        if x == 0 {
            state.set(0x9E37_79B9_7F4A_7C15);
            return true;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x % SAMPLE_EVERY == 0
    })
}

/// A histogram of durations in power-of-two buckets of atomics, over a sample of the calls
/// (about one in [`SAMPLE_EVERY`] is timed), and the count of every call. Recording is a
/// relaxed `fetch_add` or two, so it costs nothing measurable on the write and read paths.
/// Percentiles are reported as the upper bound of their bucket (within a factor of two); the
/// sum of the timed durations is kept exactly, for the mean and the Prometheus `_sum`.
pub(crate) struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    /// Nanoseconds of every timed call together. A u64 holds 584 years of them.
    timed_nanos: AtomicU64,
    calls: AtomicU64,
}

/// A call being measured: [`LatencyHistogram::start`] made it, [`LatencyHistogram::finish`]
/// records it.
#[must_use]
pub(crate) struct Timing(Option<Instant>);

impl LatencyHistogram {
    pub(crate) fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            timed_nanos: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// Begins a call; it is timed if it falls in this thread's sample.
    pub(crate) fn start(&self) -> Timing {
        Timing(sample_this_call().then(Instant::now))
    }

    /// Ends a call begun with [`start`](Self::start): counts it, and records its duration if
    /// it was timed.
    pub(crate) fn finish(&self, timing: Timing) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(started) = timing.0 {
            self.record(started.elapsed());
        }
    }

    /// Adds one timed duration to the buckets.
    fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let index = (u64::BITS - nanos.leading_zeros()) as usize;
        self.timed_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.buckets[index.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let percentile = |p: f64| -> f64 {
            if count == 0 {
                return 0.0;
            }
            let rank = ((count as f64) * p).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    // Upper bound of bucket i, in microseconds.
                    return (1u128 << i) as f64 / 1000.0;
                }
            }
            f64::INFINITY
        };
        LatencySummary {
            count: self.calls.load(Ordering::Relaxed),
            timed: count,
            sum_us: self.timed_nanos.load(Ordering::Relaxed) as f64 / 1000.0,
            p50_us: percentile(0.50),
            p90_us: percentile(0.90),
            p99_us: percentile(0.99),
        }
    }
}

/// Latency percentiles of one kind of call, in microseconds (each the upper bound of a
/// power-of-two bucket, so within a factor of two of the true value).
///
/// About one call in 16 is timed; the percentiles and `sum_us` are of those `timed` calls.
/// Before any call is timed (`timed == 0`) the percentiles and `sum_us` are 0: read them
/// together with `timed`. [`DatabaseStats::metrics_text`] reports such quantiles as `NaN`, as
/// Prometheus does for a summary without observations.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// Calls since open, timed or not.
    pub count: u64,
    /// Calls timed since open: the sample the percentiles and `sum_us` describe.
    pub timed: u64,
    /// The durations of the timed calls added up (`sum_us / timed` is their mean).
    pub sum_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

/// What the database holds and how it has been doing since it was opened.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct DatabaseStats {
    /// The log: events, bytes, units, oldest and newest ids.
    pub log: EventLogStats,
    /// The canonical store under the view.
    pub store: StoreStats,
    /// Entries in the memtables (active and frozen), tombstones included.
    pub memtable_entries: u64,
    /// Approximate bytes of the memtables.
    pub memtable_bytes: u64,
    /// Frozen memtables waiting to be flushed.
    pub frozen_memtables: usize,
    /// The last event the canonical store reflects.
    pub checkpoint: EventId,
    /// Commit groups written since open (one log block and at most one sync each).
    pub groups_committed: u64,
    /// Write requests (puts, deletes, batches, events) acknowledged since open.
    pub requests_committed: u64,
    /// Events appended since open.
    pub events_committed: u64,
    /// Requests per commit group: how many writers shared each sync.
    pub mean_group_size: f64,
    /// Flushes of the memtable into the store since open.
    pub flushes: u64,
    /// Latency of writes, from the call to the acknowledgement.
    pub write_latency: LatencySummary,
    /// Latency of `get`, `get_entry` and `exists`.
    pub read_latency: LatencySummary,
    /// Each running (or failed) subscription, by name.
    pub subscriptions: Vec<SubscriptionStats>,
    /// Retention: what holds the log back and by whom, and what runs deleted.
    pub retention: RetentionStats,
    /// The background maintenance thread.
    pub maintenance: MaintenanceStats,
}

impl DatabaseStats {
    /// These statistics in the Prometheus text exposition format (version 0.0.4).
    ///
    /// The latencies are summaries in seconds over the timed calls (about one in 16): their
    /// quantiles, `_sum` and `_count` describe the same observations, so `_sum / _count` is
    /// the mean; a quantile is `NaN` until a call has been timed. Every call, timed or not, is
    /// counted by `azoth_write_calls_total` and `azoth_read_calls_total`.
    pub fn metrics_text(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "azoth_{name} {}", sample_value(value));
        };
        metric(
            "log_events",
            "gauge",
            "Events stored in the log.",
            self.log.event_count as f64,
        );
        metric(
            "log_bytes",
            "gauge",
            "Bytes used by the log.",
            self.log.total_bytes as f64,
        );
        metric(
            "log_files",
            "gauge",
            "Log units (segments) holding events.",
            self.log.file_count as f64,
        );
        metric(
            "log_oldest_event_id",
            "gauge",
            "Oldest event id stored.",
            self.log.oldest_event_id as f64,
        );
        metric(
            "log_newest_event_id",
            "gauge",
            "Newest event id stored.",
            self.log.newest_event_id as f64,
        );
        metric(
            "view_checkpoint",
            "gauge",
            "Last event id reflected by the canonical store.",
            self.checkpoint as f64,
        );
        metric(
            "view_store_entries",
            "gauge",
            "Keys in the canonical store.",
            self.store.entries as f64,
        );
        metric(
            "view_store_bytes",
            "gauge",
            "Bytes of the canonical store.",
            self.store.bytes as f64,
        );
        metric(
            "memtable_entries",
            "gauge",
            "Entries in the memtables.",
            self.memtable_entries as f64,
        );
        metric(
            "memtable_bytes",
            "gauge",
            "Approximate bytes of the memtables.",
            self.memtable_bytes as f64,
        );
        metric(
            "memtables_frozen",
            "gauge",
            "Frozen memtables waiting for a flush.",
            self.frozen_memtables as f64,
        );
        metric(
            "commit_groups_total",
            "counter",
            "Commit groups written.",
            self.groups_committed as f64,
        );
        metric(
            "write_requests_total",
            "counter",
            "Write requests acknowledged.",
            self.requests_committed as f64,
        );
        metric(
            "events_appended_total",
            "counter",
            "Events appended.",
            self.events_committed as f64,
        );
        metric(
            "flushes_total",
            "counter",
            "Memtable flushes.",
            self.flushes as f64,
        );
        for (name, summary) in [("write", &self.write_latency), ("read", &self.read_latency)] {
            latency_metrics(&mut out, name, summary);
        }
        self.subscription_metrics(&mut out);
        self.lifecycle_metrics(&mut out);
        out
    }

    /// Retention holds and totals, and the maintenance thread's counters.
    fn lifecycle_metrics(&self, out: &mut String) {
        let r = &self.retention;
        header(
            out,
            "retention_hold_event_id",
            "gauge",
            "Lowest position something still reads the log from; retention keeps every event after it.",
        );
        let _ = writeln!(out, "azoth_retention_hold_event_id {}", r.hold_position);
        header(
            out,
            "retention_holder_position_event_id",
            "gauge",
            "Position of each holder of the log.",
        );
        for hold in &r.holds {
            let _ = writeln!(
                out,
                "azoth_retention_holder_position_event_id{{holder=\"{}\"}} {}",
                escape_label(&hold.holder.label()),
                hold.position
            );
        }
        let held = r.last_run.as_ref().and_then(|l| l.held_back.as_ref());
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            header(out, name, kind, help);
            let _ = writeln!(out, "azoth_{name} {value}");
        };
        metric(
            "retention_held_back_events",
            "gauge",
            "Events the last retention run would have deleted but kept for a holder.",
            held.map_or(0, |h| h.events),
        );
        metric("retention_runs_total", "counter", "Retention runs.", r.runs);
        metric(
            "retention_deleted_units_total",
            "counter",
            "Log units deleted by retention.",
            r.units_deleted,
        );
        metric(
            "retention_deleted_events_total",
            "counter",
            "Events deleted by retention.",
            r.events_deleted,
        );
        metric(
            "retention_deleted_bytes_total",
            "counter",
            "Bytes deleted by retention.",
            r.bytes_deleted,
        );
        let m = &self.maintenance;
        metric(
            "maintenance_runs_total",
            "counter",
            "Passes of the maintenance thread.",
            m.runs,
        );
        metric(
            "maintenance_failures_total",
            "counter",
            "Failed maintenance steps.",
            m.failures,
        );
        metric(
            "maintenance_rotations_total",
            "counter",
            "Rotations by the maintenance thread.",
            m.rotations,
        );
        metric(
            "maintenance_archives_total",
            "counter",
            "Archives written by the maintenance thread.",
            m.archives_written,
        );
    }

    /// One labelled series per subscription and figure; nothing when there are none.
    fn subscription_metrics(&self, out: &mut String) {
        if self.subscriptions.is_empty() {
            return;
        }
        type Figure = fn(&SubscriptionStats) -> f64;
        let figures: [(&str, &str, &str, Figure); 6] = [
            (
                "subscription_position",
                "gauge",
                "Last event the handler finished.",
                |s| s.position as f64,
            ),
            (
                "subscription_lag_events",
                "gauge",
                "Events committed after the position.",
                |s| s.lag as f64,
            ),
            (
                "subscription_failed",
                "gauge",
                "1 when the subscription has failed.",
                |s| {
                    f64::from(u8::from(
                        s.mode == crate::subscription::SubscriptionMode::Failed,
                    ))
                },
            ),
            (
                "subscription_delivered_total",
                "counter",
                "Events handled.",
                |s| s.delivered as f64,
            ),
            (
                "subscription_errors_total",
                "counter",
                "Failed handler calls.",
                |s| s.errors as f64,
            ),
            (
                "subscription_dead_letters_total",
                "counter",
                "Events dead-lettered.",
                |s| s.dead_letters as f64,
            ),
        ];
        for (name, kind, help, value) in figures {
            header(out, name, kind, help);
            for s in &self.subscriptions {
                let _ = writeln!(
                    out,
                    "azoth_{name}{{subscription=\"{}\"}} {}",
                    escape_label(&s.name),
                    sample_value(value(s))
                );
            }
        }
    }
}

/// One latency summary, in seconds, and the counter of every call it samples.
fn latency_metrics(out: &mut String, name: &str, summary: &LatencySummary) {
    header(
        out,
        &format!("{name}_latency_seconds"),
        "summary",
        &format!("Latency of {name} calls, over the timed sample (about one call in 16)."),
    );
    for (q, us) in [
        ("0.5", summary.p50_us),
        ("0.9", summary.p90_us),
        ("0.99", summary.p99_us),
    ] {
        // No observation, no quantile: 0 would read as calls that took no time.
        let seconds = if summary.timed == 0 {
            f64::NAN
        } else {
            us / 1e6
        };
        let _ = writeln!(
            out,
            "azoth_{name}_latency_seconds{{quantile=\"{q}\"}} {}",
            sample_value(seconds)
        );
    }
    let _ = writeln!(
        out,
        "azoth_{name}_latency_seconds_sum {}",
        sample_value(summary.sum_us / 1e6)
    );
    let _ = writeln!(out, "azoth_{name}_latency_seconds_count {}", summary.timed);
    header(
        out,
        &format!("{name}_calls_total"),
        "counter",
        &format!("Calls that azoth_{name}_latency_seconds samples, timed or not."),
    );
    let _ = writeln!(out, "azoth_{name}_calls_total {}", summary.count);
}

/// The `# HELP` and `# TYPE` lines of the family `azoth_{name}`; each family gets them once.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP azoth_{name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE azoth_{name} {kind}");
}

/// A sample value as the text format spells it: Rust writes infinity as `inf`, Prometheus
/// reads `+Inf` and `-Inf`.
fn sample_value(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // Finite values print without an exponent, and NaN as `NaN`: both are valid.
        value.to_string()
    }
}

/// A HELP text: backslash and newline escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition_check::check_exposition;

    #[test]
    fn percentiles_fall_in_the_right_bucket() {
        let h = LatencyHistogram::new();
        for _ in 0..90 {
            h.record(Duration::from_nanos(1000));
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(1));
        }
        let s = h.summary();
        assert!(s.p50_us >= 1.0 && s.p50_us <= 2.048, "{s:?}");
        assert!(s.p99_us >= 1000.0 && s.p99_us <= 2100.0, "{s:?}");
        assert_eq!(LatencyHistogram::new().summary().p99_us, 0.0);
    }

    #[test]
    fn every_call_counts_and_about_one_in_sixteen_is_timed() {
        let (reads, writes) = (LatencyHistogram::new(), LatencyHistogram::new());
        let timed = |h: &LatencyHistogram| -> u64 {
            h.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                // Alternating, as a read-modify-write loop does: both kinds get samples.
                for _ in 0..8000 {
                    let timing = reads.start();
                    reads.finish(timing);
                    let timing = writes.start();
                    writes.finish(timing);
                }
            });
        });
        for h in [&reads, &writes] {
            assert_eq!(h.summary().count, 8000);
            assert!((250..750).contains(&timed(h)), "{} timed", timed(h));
        }
    }

    #[test]
    fn metrics_text_is_prometheus_shaped() {
        let text = DatabaseStats::default().metrics_text();
        assert!(text.contains("# TYPE azoth_log_events gauge\nazoth_log_events 0\n"));
        check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }

    #[test]
    fn quantiles_without_samples_are_nan_and_the_summary_has_sum_and_count() {
        let text = DatabaseStats::default().metrics_text();
        for name in ["write", "read"] {
            for q in ["0.5", "0.9", "0.99"] {
                let line = format!("azoth_{name}_latency_seconds{{quantile=\"{q}\"}} NaN\n");
                assert!(text.contains(&line), "{line}{text}");
            }
            assert!(text.contains(&format!("azoth_{name}_latency_seconds_sum 0\n")));
            assert!(text.contains(&format!("azoth_{name}_latency_seconds_count 0\n")));
        }
        // stats() itself keeps 0 for the percentiles of an empty sample.
        let empty = LatencyHistogram::new().summary();
        assert_eq!((empty.timed, empty.p50_us, empty.sum_us), (0, 0.0, 0.0));
    }

    #[test]
    fn the_summary_is_in_seconds_and_its_sum_and_count_match_the_timed_calls() {
        let h = LatencyHistogram::new();
        for _ in 0..3 {
            h.record(Duration::from_millis(2));
        }
        // Calls that were not timed count as calls, not as observations.
        h.calls.fetch_add(40, Ordering::Relaxed);
        let summary = h.summary();
        assert_eq!((summary.count, summary.timed), (40, 3));
        assert!((summary.sum_us - 6000.0).abs() < 1e-6, "{summary:?}");
        let stats = DatabaseStats {
            write_latency: summary,
            ..DatabaseStats::default()
        };
        let text = stats.metrics_text();
        check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let value = |series: &str| -> f64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
                .unwrap_or_else(|| panic!("no {series} in\n{text}"));
            line[series.len() + 1..].parse().unwrap()
        };
        assert!((value("azoth_write_latency_seconds_sum") - 0.006).abs() < 1e-9);
        assert_eq!(value("azoth_write_latency_seconds_count"), 3.0);
        assert_eq!(value("azoth_write_calls_total"), 40.0);
        // 2 ms falls in the bucket up to 2^21 ns.
        let p99 = value("azoth_write_latency_seconds{quantile=\"0.99\"}");
        assert!((0.002..=0.0021).contains(&p99), "{p99}");
        assert!(value("azoth_read_latency_seconds{quantile=\"0.5\"}").is_nan());
    }

    #[test]
    fn label_values_are_escaped() {
        let mut stats = DatabaseStats::default();
        let name = "quote\" back\\slash new\nline";
        stats.subscriptions.push(SubscriptionStats {
            name: name.to_owned(),
            position: 7,
            durable_position: 7,
            lag: 0,
            mode: crate::subscription::SubscriptionMode::Live,
            delivered: 7,
            errors: 0,
            dead_letters: 0,
            failure: None,
        });
        stats.retention.holds.push(crate::retention::RetentionHold {
            holder: crate::retention::RetentionHolder::Subscription(name.to_owned()),
            position: 7,
        });
        let text = stats.metrics_text();
        check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(text.contains(
            "azoth_subscription_position{subscription=\"quote\\\" back\\\\slash new\\nline\"} 7\n"
        ));
    }
}
