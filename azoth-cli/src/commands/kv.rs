//! The key-value commands: put, get, delete, exists, scan.

use azoth::{Database, OperationId, prefix_successor};
use serde_json::{Map, Value, json};

use crate::args::{KeyArgs, PutArgs, ScanArgs};
use crate::bytes::{self, from_arg};
use crate::error::{CliError, CliResult};
use crate::open::Handle;
use crate::output::Output;

fn failed(what: &'static str) -> impl FnOnce(azoth::AzothError) -> CliError {
    move |source| CliError::Azoth {
        context: what.to_owned(),
        source,
    }
}

fn acknowledged(out: &mut Output<'_>, id: OperationId, text: &str) -> CliResult {
    if out.json {
        out.json_line(&json!({ "event_id": id.sequence, "ts": id.timestamp }))
    } else {
        out.line(format_args!("{text} (event {})", id.sequence))
    }
}

/// `put KEY VALUE [--base64]`.
pub fn put(db: &Database, args: &PutArgs, out: &mut Output<'_>) -> CliResult {
    let key = from_arg("key", &args.key, args.base64)?;
    let value = from_arg("value", &args.value, args.base64)?;
    let id = db.put(&key, &value).map_err(failed("put"))?;
    acknowledged(out, id, "Successfully stored key-value pair")
}

/// `delete KEY [--base64]`.
pub fn delete(db: &Database, args: &KeyArgs, out: &mut Output<'_>) -> CliResult {
    let key = from_arg("key", &args.key, args.base64)?;
    let id = db.delete(&key).map_err(failed("delete"))?;
    acknowledged(out, id, "Deleted")
}

/// `get KEY [--base64]`: the value as stored (or base64); nothing when the key is absent
/// (`null` with `--json`).
pub fn get(handle: &Handle, args: &KeyArgs, out: &mut Output<'_>) -> CliResult {
    let key = from_arg("key", &args.key, args.base64)?;
    let value = handle.get(&key).map_err(failed("get"))?;
    match (value, out.json) {
        (None, true) => out.json_line(&Value::Null),
        (None, false) => Ok(()),
        (Some(value), true) => out.json_line(&entry_json(&key, &value, args.base64)),
        (Some(value), false) if args.base64 => out.line(bytes::encode_base64(&value)),
        (Some(value), false) => out.raw_line(&value),
    }
}

/// `exists KEY [--base64]`: `true` or `false`.
pub fn exists(handle: &Handle, args: &KeyArgs, out: &mut Output<'_>) -> CliResult {
    let key = from_arg("key", &args.key, args.base64)?;
    let found = handle.exists(&key).map_err(failed("exists"))?;
    if out.json {
        out.json_line(&Value::Bool(found))
    } else {
        out.line(found)
    }
}

/// `scan [--prefix P | --start S --end E] [--limit N]`: one entry per line, `key<TAB>value`
/// (one JSON object per line with `--json`).
pub fn scan(handle: &Handle, args: &ScanArgs, out: &mut Output<'_>) -> CliResult {
    let (start, end) = match &args.prefix {
        Some(prefix) => {
            let prefix = from_arg("prefix", prefix, args.base64)?;
            let end = prefix_successor(&prefix);
            (Some(prefix), end)
        }
        None => (
            args.start
                .as_deref()
                .map(|s| from_arg("start key", s, args.base64))
                .transpose()?,
            args.end
                .as_deref()
                .map(|e| from_arg("end key", e, args.base64))
                .transpose()?,
        ),
    };
    let entries = handle
        .range(start.as_deref(), end.as_deref())
        .map_err(failed("scan"))?;
    for entry in entries.take(args.limit.unwrap_or(usize::MAX)) {
        let entry = entry.map_err(failed("scan"))?;
        let value = entry.value.unwrap_or_default();
        if out.json {
            out.json_line(&entry_json(&entry.key, &value, args.base64))?;
        } else {
            out.line(format_args!(
                "{}\t{}",
                bytes::show(&entry.key, args.base64),
                bytes::show(&value, args.base64)
            ))?;
        }
    }
    Ok(())
}

fn entry_json(key: &[u8], value: &[u8], force_base64: bool) -> Value {
    let mut object = Map::new();
    bytes::put_json(&mut object, "key", key, force_base64);
    bytes::put_json(&mut object, "value", value, force_base64);
    Value::Object(object)
}
