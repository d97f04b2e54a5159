//! Subscriber handlers.

use crate::error::Result;
use crate::types::DatabaseEvent;

/// Receives the events of a subscription, in order, at least once.
///
/// An `Err` is retried with backoff; a panic is caught and treated like an `Err`. Closures
/// `Fn(&DatabaseEvent) -> Result<()>` are handlers:
///
/// ```
/// use azoth_core::{DatabaseEvent, EventHandler};
/// let handler = |event: &DatabaseEvent| -> azoth_core::Result<()> {
///     let _ = event.event_id();
///     Ok(())
/// };
/// fn takes(_: impl EventHandler) {}
/// takes(handler);
/// ```
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one event. Returning `Err` asks for the event to be delivered again.
    fn handle(&self, event: &DatabaseEvent) -> Result<()>;
}

impl<F> EventHandler for F
where
    F: Fn(&DatabaseEvent) -> Result<()> + Send + Sync + 'static,
{
    fn handle(&self, event: &DatabaseEvent) -> Result<()> {
        self(event)
    }
}

impl EventHandler for Box<dyn EventHandler> {
    fn handle(&self, event: &DatabaseEvent) -> Result<()> {
        (**self).handle(event)
    }
}

impl EventHandler for std::sync::Arc<dyn EventHandler> {
    fn handle(&self, event: &DatabaseEvent) -> Result<()> {
        (**self).handle(event)
    }
}
