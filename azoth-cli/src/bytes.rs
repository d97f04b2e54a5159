//! Keys, values and payloads on the command line and in output: UTF-8 text or base64.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::error::{CliError, CliResult};

/// An argument as bytes: its UTF-8 text, or decoded from base64 when `base64` is set.
///
/// # Errors
/// [`CliError::Input`] naming the argument when the base64 is invalid.
pub fn from_arg(what: &str, arg: &str, base64: bool) -> CliResult<Vec<u8>> {
    if base64 {
        decode_base64(arg)
            .map_err(|e| CliError::Input(format!("invalid base64 in the {what} {arg:?}: {e}")))
    } else {
        Ok(arg.as_bytes().to_vec())
    }
}

/// Decodes standard base64 (padding required).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(text)
}

/// Encodes as standard base64.
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Bytes for a human to read: the text itself when it is UTF-8, else an escaped form
/// (`\xff`) that cannot be confused with the raw bytes.
pub fn display(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(bytes.escape_ascii().to_string()),
    }
}

/// Bytes in a table or list: base64 when asked, else [`display`].
pub fn show(bytes: &[u8], base64: bool) -> Cow<'_, str> {
    if base64 {
        Cow::Owned(encode_base64(bytes))
    } else {
        display(bytes)
    }
}

/// Adds `bytes` to a JSON object as `name` (UTF-8 text) or `name_b64` (base64, used for
/// bytes that are not UTF-8, and always when `force_base64` is set).
pub fn put_json(object: &mut Map<String, Value>, name: &str, bytes: &[u8], force_base64: bool) {
    match std::str::from_utf8(bytes) {
        Ok(text) if !force_base64 => {
            object.insert(name.to_owned(), Value::String(text.to_owned()));
        }
        _ => {
            object.insert(format!("{name}_b64"), Value::String(encode_base64(bytes)));
        }
    }
}

/// Reads `name` or `name_b64` back from a JSON object; `Ok(None)` when neither is there.
///
/// # Errors
/// A message when the field is not a string, both forms are given, or the base64 is invalid.
pub fn take_json(object: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, String> {
    let b64_name = format!("{name}_b64");
    match (object.get(name), object.get(&b64_name)) {
        (Some(_), Some(_)) => Err(format!("both `{name}` and `{b64_name}` are given")),
        (Some(Value::String(text)), None) => Ok(Some(text.as_bytes().to_vec())),
        (Some(_), None) => Err(format!("`{name}` must be a string")),
        (None, Some(Value::String(text))) => decode_base64(text)
            .map(Some)
            .map_err(|e| format!("invalid base64 in `{b64_name}`: {e}")),
        (None, Some(_)) => Err(format!("`{b64_name}` must be a string")),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_arguments_decode_and_bad_ones_are_named() {
        assert_eq!(
            from_arg("key", "YmluYXJ5X2tleQ==", true).unwrap(),
            b"binary_key"
        );
        assert_eq!(from_arg("key", "plain", false).unwrap(), b"plain");
        let e = from_arg("key", "not base64!", true).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid base64 in the key"),
            "{e}"
        );
    }

    #[test]
    fn json_fields_round_trip_text_and_binary() {
        let mut object = Map::new();
        put_json(&mut object, "key", b"user:1", false);
        put_json(&mut object, "value", &[0xff, 0x00], false);
        assert_eq!(object["key"], "user:1");
        assert_eq!(object["value_b64"], "/wA=");
        assert_eq!(take_json(&object, "key").unwrap().unwrap(), b"user:1");
        assert_eq!(take_json(&object, "value").unwrap().unwrap(), [0xff, 0x00]);
        assert_eq!(take_json(&object, "payload").unwrap(), None);
    }

    #[test]
    fn display_escapes_binary() {
        assert_eq!(display(b"abc"), "abc");
        assert_eq!(display(&[b'a', 0xff]), "a\\xff");
    }
}
