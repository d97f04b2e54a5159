//! The dump format: one event as one JSON object on one line.
//!
//! ```text
//! {"id":1,"ts":1700000000000000,"type":"put","key":"user:1","value":"Ada"}
//! {"id":2,"ts":1700000000000001,"type":"delete","key":"user:1"}
//! {"id":3,"ts":1700000000000002,"type":"app","kind":"Deposited","payload_b64":"AQI="}
//! {"id":4,"ts":1700000000000003,"type":"read","key":"user:1"}
//! {"id":5,"ts":1700000000000004,"type":"compaction","level":0}
//! ```
//!
//! `id` is the event id and `ts` the commit time (microseconds since the Unix epoch). Bytes that
//! are UTF-8 are written as `key` / `value` / `payload`, other bytes as `key_b64` /
//! `value_b64` / `payload_b64`. Reading a line back ([`parse_line`]) ignores `id` and `ts`:
//! the database that imports assigns its own.

use azoth::{DatabaseEvent, EventId, Operation};
use serde_json::{Map, Value};

use crate::bytes::{put_json, take_json};

/// One event as a JSON object. `force_base64` writes every key, value and payload as base64.
pub fn to_json(id: EventId, event: &DatabaseEvent, force_base64: bool) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), id.into());
    object.insert("ts".into(), event.operation_id().timestamp.into());
    match event {
        DatabaseEvent::WriteEvent { operation, .. } => match operation {
            Operation::Put { key, value } => {
                object.insert("type".into(), "put".into());
                put_json(&mut object, "key", key, force_base64);
                put_json(&mut object, "value", value, force_base64);
            }
            Operation::Delete { key } => {
                object.insert("type".into(), "delete".into());
                put_json(&mut object, "key", key, force_base64);
            }
        },
        DatabaseEvent::AppEvent { kind, payload, .. } => {
            object.insert("type".into(), "app".into());
            object.insert("kind".into(), kind.as_str().into());
            put_json(&mut object, "payload", payload, force_base64);
        }
        DatabaseEvent::ReadEvent { key, .. } => {
            object.insert("type".into(), "read".into());
            put_json(&mut object, "key", key, force_base64);
        }
        DatabaseEvent::CompactionEvent { level, .. } => {
            object.insert("type".into(), "compaction".into());
            object.insert("level".into(), (*level).into());
        }
        _ => {
            object.insert("type".into(), "unknown".into());
        }
    }
    Value::Object(object)
}

/// What a line of a dump asks an import to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A put or delete of the view.
    Write(Operation),
    /// An application event.
    App {
        /// Its kind.
        kind: String,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// An event that changes no state (a read or a compaction): not imported.
    Skip,
}

/// Parses one line of a dump.
///
/// # Errors
/// A message saying what is wrong with the line.
pub fn parse_line(line: &str) -> Result<Record, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("not a JSON object".into());
    };
    let kind_of_event = match object.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err("`type` must be a string".into()),
        None => return Err("missing `type`".into()),
    };
    let key = || -> Result<Vec<u8>, String> {
        take_json(&object, "key")?.ok_or_else(|| "missing `key` (or `key_b64`)".to_owned())
    };
    match kind_of_event {
        "put" => {
            let key = key()?;
            let value = take_json(&object, "value")?
                .ok_or_else(|| "missing `value` (or `value_b64`)".to_owned())?;
            Ok(Record::Write(Operation::Put { key, value }))
        }
        "delete" => Ok(Record::Write(Operation::Delete { key: key()? })),
        "app" => {
            let kind = match object.get("kind") {
                Some(Value::String(kind)) => kind.clone(),
                Some(_) => return Err("`kind` must be a string".into()),
                None => return Err("missing `kind`".into()),
            };
            let payload = take_json(&object, "payload")?
                .ok_or_else(|| "missing `payload` (or `payload_b64`)".to_owned())?;
            Ok(Record::App { kind, payload })
        }
        "read" | "compaction" => Ok(Record::Skip),
        other => Err(format!(
            "unknown `type` {other:?} (expected put, delete, app, read or compaction)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azoth::OperationId;

    fn round_trip(event: DatabaseEvent) -> Record {
        let line = to_json(7, &event, false).to_string();
        parse_line(&line).unwrap()
    }

    #[test]
    fn writes_and_app_events_round_trip() {
        let op = OperationId::new(10, 7);
        let put = Operation::Put {
            key: vec![0xff, 1],
            value: b"v".to_vec(),
        };
        assert_eq!(
            round_trip(DatabaseEvent::WriteEvent {
                operation: put.clone(),
                operation_id: op
            }),
            Record::Write(put)
        );
        assert_eq!(
            round_trip(DatabaseEvent::AppEvent {
                kind: "Deposited".into(),
                payload: vec![1, 2],
                operation_id: op
            }),
            Record::App {
                kind: "Deposited".into(),
                payload: vec![1, 2]
            }
        );
        assert_eq!(
            round_trip(DatabaseEvent::CompactionEvent {
                level: 0,
                operation_id: op
            }),
            Record::Skip
        );
    }

    #[test]
    fn the_line_format_is_stable() {
        let event = DatabaseEvent::WriteEvent {
            operation: Operation::Put {
                key: b"user:1".to_vec(),
                value: b"Ada".to_vec(),
            },
            operation_id: OperationId::new(1_700_000_000_000_000, 1),
        };
        assert_eq!(
            to_json(1, &event, false).to_string(),
            r#"{"id":1,"ts":1700000000000000,"type":"put","key":"user:1","value":"Ada"}"#
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert!(parse_line("nope").unwrap_err().starts_with("not JSON"));
        assert_eq!(parse_line("[1]").unwrap_err(), "not a JSON object");
        assert_eq!(parse_line("{}").unwrap_err(), "missing `type`");
        assert!(
            parse_line(r#"{"type":"put","key":"k"}"#)
                .unwrap_err()
                .contains("missing `value`")
        );
        assert!(
            parse_line(r#"{"type":"put","key_b64":"!!","value":"v"}"#)
                .unwrap_err()
                .contains("invalid base64")
        );
        assert!(
            parse_line(r#"{"type":"jump"}"#)
                .unwrap_err()
                .contains("unknown `type`")
        );
    }
}
