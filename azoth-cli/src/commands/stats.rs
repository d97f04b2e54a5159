//! `stats`: a readable table, JSON, or the Prometheus text format.
//!
//! A command opens the database for a moment, so the counters that cover "since open"
//! (groups committed, latencies) are about this command's own open and are left out of the
//! table; JSON carries every field.

use std::path::Path;

use azoth::{DatabaseStats, LatencySummary, LogBackend};
use serde_json::{Value, json};

use crate::error::{CliError, CliResult};
use crate::open::{Handle, backend_name};
use crate::output::Output;

/// `stats [--prometheus]`.
pub fn stats(
    handle: &Handle,
    dir: &Path,
    backend: Option<LogBackend>,
    prometheus: bool,
    out: &mut Output<'_>,
) -> CliResult {
    let stats = handle.stats().map_err(|source| CliError::Azoth {
        context: "reading statistics".to_owned(),
        source,
    })?;
    if prometheus {
        return out.text(&stats.metrics_text());
    }
    if out.json {
        return out.json_line(&to_json(&stats, dir, backend));
    }
    out.line("Azoth statistics:")?;
    for (name, value) in table(&stats, dir, backend) {
        out.line(format_args!("  {name:<18} {value}"))?;
    }
    Ok(())
}

fn table(
    stats: &DatabaseStats,
    dir: &Path,
    backend: Option<LogBackend>,
) -> Vec<(&'static str, String)> {
    let log = &stats.log;
    let ids = if log.event_count == 0 {
        "none".to_owned()
    } else {
        format!("{} ..= {}", log.oldest_event_id, log.newest_event_id)
    };
    let mut rows = vec![
        ("data directory", dir.display().to_string()),
        (
            "log backend",
            backend.map_or("unknown", backend_name).to_owned(),
        ),
        ("events", log.event_count.to_string()),
        ("event ids", ids),
        ("log size", human_bytes(log.total_bytes)),
        ("log files", log.file_count.to_string()),
        ("view entries", stats.store.entries.to_string()),
        ("view size", human_bytes(stats.store.bytes)),
        ("view checkpoint", stats.checkpoint.to_string()),
        ("unflushed entries", stats.memtable_entries.to_string()),
    ];
    for sub in &stats.subscriptions {
        rows.push((
            "subscription",
            format!("{} at {} (lag {})", sub.name, sub.position, sub.lag),
        ));
    }
    rows
}

fn to_json(stats: &DatabaseStats, dir: &Path, backend: Option<LogBackend>) -> Value {
    let log = &stats.log;
    json!({
        "data_dir": dir.display().to_string(),
        "log_backend": backend.map(backend_name),
        "log": {
            "events": log.event_count,
            "oldest_event_id": log.oldest_event_id,
            "newest_event_id": log.newest_event_id,
            "bytes": log.total_bytes,
            "files": log.file_count,
        },
        "view": {
            "entries": stats.store.entries,
            "bytes": stats.store.bytes,
            "checkpoint": stats.checkpoint,
            "memtable_entries": stats.memtable_entries,
            "memtable_bytes": stats.memtable_bytes,
            "frozen_memtables": stats.frozen_memtables,
        },
        "since_open": {
            "groups_committed": stats.groups_committed,
            "requests_committed": stats.requests_committed,
            "events_committed": stats.events_committed,
            "mean_group_size": stats.mean_group_size,
            "flushes": stats.flushes,
            "write_latency": latency(&stats.write_latency),
            "read_latency": latency(&stats.read_latency),
        },
        "subscriptions": stats.subscriptions.iter().map(|s| json!({
            "name": s.name,
            "position": s.position,
            "durable_position": s.durable_position,
            "lag": s.lag,
            "mode": format!("{:?}", s.mode),
            "delivered": s.delivered,
            "errors": s.errors,
            "dead_letters": s.dead_letters,
            "failure": s.failure,
        })).collect::<Vec<_>>(),
    })
}

fn latency(l: &LatencySummary) -> Value {
    json!({
        "count": l.count,
        "timed": l.timed,
        "sum_us": l.sum_us,
        "p50_us": l.p50_us,
        "p90_us": l.p90_us,
        "p99_us": l.p99_us,
    })
}

/// `1536` → `1.5 KiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_readable() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
    }
}
