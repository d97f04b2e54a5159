//! Projections: how events become view writes. The built-in projection applies `WriteEvent`s;
//! the application's [`Projection`]s turn its `AppEvent`s into puts and deletes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use azoth_core::{
    AzothError, DatabaseEvent, Key, Operation, OperationId, Result, StoreWrite, Value,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::validation::{check_key, check_value};
use crate::view::View;

/// Turns the application's events into view writes.
///
/// A projection must be deterministic: the same event over the same view state must give the
/// same writes, because the view is rebuilt by replaying the log through the projections
/// (on open, and by `rebuild_view`). It runs inside the commit group, before the group is
/// appended: an `Err` refuses that event's write request with that error, a panic with
/// [`AzothError::ProjectionPanicked`], and nothing of the request is written; the other
/// requests of the group commit.
///
/// Closures `Fn(&str, &[u8], &mut ProjectionContext<'_>) -> Result<()>` are projections:
///
/// ```
/// use azoth_projector::{ProjectionContext, Projection};
///
/// fn takes(_: impl Projection) {}
/// takes(|kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>| {
///     if kind == "UserRenamed" {
///         view.put(b"user:name", payload)?;
///     }
///     Ok(())
/// });
/// ```
pub trait Projection: Send + Sync + 'static {
    /// Writes what the event of type `kind` with `payload` means for the view.
    ///
    /// # Errors
    /// Whatever the projection decides; the write request that carried the event fails with it.
    fn project(&self, kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>) -> Result<()>;
}

impl<F> Projection for F
where
    F: Fn(&str, &[u8], &mut ProjectionContext<'_>) -> Result<()> + Send + Sync + 'static,
{
    fn project(&self, kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>) -> Result<()> {
        self(kind, payload, view)
    }
}

/// What a [`Projection`] sees of the view: the state just before its event (earlier events of
/// the same group included), and where it puts its writes.
pub struct ProjectionContext<'a> {
    view: &'a View,
    earlier: &'a [StoreWrite],
    out: Vec<(Key, Option<Value>)>,
    max_value_len: usize,
}

impl ProjectionContext<'_> {
    /// The value of `key` as of just before this event.
    ///
    /// # Errors
    /// Errors of the canonical store; `Closed`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some((_, v)) = self.out.iter().rev().find(|(k, _)| k == key) {
            return Ok(v.clone());
        }
        if let Some(w) = self.earlier.iter().rev().find(|w| w.key == key) {
            return Ok(w.value.clone());
        }
        Ok(self.view.get(key)?.and_then(|e| e.value))
    }

    /// Sets `key` to `value` in the view.
    ///
    /// # Errors
    /// `EmptyKey`, `KeyTooLarge`, `ValueTooLarge`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value, self.max_value_len)?;
        self.out.push((key.to_vec(), Some(value.to_vec())));
        Ok(())
    }

    /// Removes `key` from the view.
    ///
    /// # Errors
    /// `EmptyKey`, `KeyTooLarge`.
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.out.push((key.to_vec(), None));
        Ok(())
    }
}

/// Runs the built-in projection and the application's over events, appending view writes.
pub(crate) struct Projector<'a> {
    pub(crate) projections: &'a [Arc<dyn Projection>],
    pub(crate) view: &'a View,
    pub(crate) max_value_len: usize,
    /// How many projections the view was built with that this open lacks (see
    /// [`missing_projections`]): application events are then refused.
    pub(crate) missing_projections: usize,
}

/// The store metadata entry recording how many projections the view was opened with (u64,
/// little-endian); absent for a view never opened with one.
pub(crate) const PROJECTIONS_METADATA: &str = "azoth.view.projections";

/// How many projections the view in `store` was built with that `config` lacks: the
/// recorded count when `config` registers none (and does not allow that), else 0.
pub(crate) fn missing_projections(
    config: &crate::config::Config,
    store: &dyn azoth_core::CanonicalStore,
) -> Result<usize> {
    let recorded = recorded_projections(store)?;
    Ok(
        if config.projections.is_empty() && !config.allow_missing_projections {
            recorded
        } else {
            0
        },
    )
}

/// The projection count recorded in `store`; 0 if none is.
pub(crate) fn recorded_projections(store: &dyn azoth_core::CanonicalStore) -> Result<usize> {
    match store.get_metadata(PROJECTIONS_METADATA)? {
        None => Ok(0),
        Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
            .map(|b| usize::try_from(u64::from_le_bytes(b)).unwrap_or(usize::MAX))
            .map_err(|_| {
                AzothError::Encoding(format!(
                    "the view's {PROJECTIONS_METADATA} entry has {} bytes, not 8",
                    bytes.len()
                ))
            }),
    }
}

/// Records in `store` that the view is built with `count` projections, if it says otherwise.
pub(crate) fn record_projections(
    store: &dyn azoth_core::CanonicalStore,
    count: usize,
) -> Result<()> {
    if recorded_projections(store)? != count {
        store.put_metadata(PROJECTIONS_METADATA, &(count as u64).to_le_bytes())?;
    }
    Ok(())
}

impl Projector<'_> {
    /// Appends the view writes of `event` to `writes` (which holds the earlier writes of the
    /// group, visible to projections). On error `writes` is unchanged.
    pub(crate) fn project(&self, event: DatabaseEvent, writes: &mut Vec<StoreWrite>) -> Result<()> {
        match event {
            DatabaseEvent::WriteEvent {
                operation,
                operation_id,
            } => {
                writes.push(write_of(operation, operation_id));
                Ok(())
            }
            DatabaseEvent::AppEvent {
                kind,
                payload,
                operation_id,
            } => {
                if self.missing_projections > 0 {
                    return Err(AzothError::Config(format!(
                        "the view was built with {} projection(s) and this database is open \
                         with none: the application event of kind {kind:?} would be left out \
                         of the view; open with the application's projections, or set \
                         Config::allow_missing_projections",
                        self.missing_projections
                    )));
                }
                let mut ctx = ProjectionContext {
                    view: self.view,
                    earlier: writes,
                    out: Vec::new(),
                    max_value_len: self.max_value_len,
                };
                for projection in self.projections {
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        projection.project(&kind, &payload, &mut ctx)
                    }));
                    match outcome {
                        Ok(result) => result?,
                        Err(panic) => {
                            let detail = panic
                                .downcast_ref::<&str>()
                                .map(|s| (*s).to_owned())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "no message".to_owned());
                            return Err(AzothError::ProjectionPanicked { kind, detail });
                        }
                    }
                }
                let out = ctx.out;
                writes.extend(out.into_iter().map(|(key, value)| StoreWrite {
                    key,
                    value,
                    operation_id,
                }));
                Ok(())
            }
            // Reads and compactions change nothing in the view.
            _ => Ok(()),
        }
    }
}

fn write_of(operation: Operation, operation_id: OperationId) -> StoreWrite {
    match operation {
        Operation::Put { key, value } => StoreWrite {
            key,
            value: Some(value),
            operation_id,
        },
        Operation::Delete { key } => StoreWrite {
            key,
            value: None,
            operation_id,
        },
    }
}

/// Encodes an application event for [`Database::append_event`](crate::Database::append_event)
/// with rmp-serde (MessagePack with field names, so fields may be added later).
///
/// # Errors
/// [`AzothError::Encoding`] if `T`'s `Serialize` fails.
pub fn encode_payload<T: Serialize + ?Sized>(event: &T) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(event).map_err(|e| AzothError::Encoding(e.to_string()))
}

/// Decodes a payload written by [`encode_payload`] (or
/// [`Database::append_typed`](crate::Database::append_typed)).
///
/// # Errors
/// [`AzothError::Encoding`] if the bytes are not a `T`.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    rmp_serde::from_slice(payload).map_err(|e| AzothError::Encoding(e.to_string()))
}
