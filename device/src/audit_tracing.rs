//! Audit events as [`tracing`] events (feature `tracing`).
//!
//! [`emit`] records one [`AuditEvent`] under the target [`TRACING_TARGET`]: refusals and
//! revocations at `WARN`, everything else at `INFO`, with the fields `event` (its name),
//! `device_id` (when it names one) and `audit` (the event as one JSON object). Like the
//! JSON Lines sink, it takes only [`AuditEvent`]s, which hold no secret by construction.

use crate::AuditEvent;

/// The `tracing` target of audit events.
pub const TRACING_TARGET: &str = "handoff_device::audit";

/// Records `event` with the current `tracing` subscriber.
pub fn emit(event: &AuditEvent) {
    let name = event.name();
    let device = event.device_id().map(|d| d.as_str()).unwrap_or("");
    let json = serde_json::to_string(event).unwrap_or_default();
    if event.is_refusal() {
        tracing::warn!(target: TRACING_TARGET, event = name, device_id = device, audit = %json);
    } else {
        tracing::info!(target: TRACING_TARGET, event = name, device_id = device, audit = %json);
    }
}
