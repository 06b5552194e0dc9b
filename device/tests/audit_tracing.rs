#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Audit events through `tracing` (feature `tracing`): target, level and fields, captured
//! by a minimal subscriber.

use std::sync::{Arc, Mutex};

use handoff_core::UnixTime;
use handoff_device::audit_tracing::{TRACING_TARGET, emit};
use handoff_device::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// (target, level, fields) of one captured event.
type Line = (String, Level, Vec<(String, String)>);

#[derive(Default, Clone)]
struct Captured(Arc<Mutex<Vec<Line>>>);

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn core::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl Subscriber for Captured {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(Vec::new());
        event.record(&mut f);
        let m = event.metadata();
        self.0
            .lock()
            .unwrap()
            .push((m.target().to_owned(), *m.level(), f.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn audit_events_become_tracing_events_with_level_by_outcome() {
    let captured = Captured::default();
    let at = UnixTime::from_secs(1_700_000_000);
    let ok = AuditEvent::Approved {
        device_id: DeviceId::new("dev-1").unwrap(),
        by: OperatorId::new("alice").unwrap(),
        at,
    };
    let failed = AuditEvent::HandshakeFailed {
        device_id: None,
        key_id: None,
        reason: FailureReason::Unauthenticated,
        at,
    };
    tracing::subscriber::with_default(captured.clone(), || {
        emit(&ok);
        emit(&failed);
    });
    let got = captured.0.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let field = |i: usize, name: &str| {
        got[i]
            .2
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no field {name} in {:?}", got[i].2))
    };
    assert_eq!(got[0].0, TRACING_TARGET);
    assert_eq!(got[0].1, Level::INFO);
    assert_eq!(field(0, "event"), "approved");
    assert_eq!(field(0, "device_id"), "dev-1");
    let json: serde_json::Value = serde_json::from_str(&field(0, "audit")).unwrap();
    assert_eq!(json["by"], "alice");
    assert_eq!(got[1].1, Level::WARN);
    assert_eq!(field(1, "event"), "handshake_failed");
    assert_eq!(field(1, "device_id"), "");
    assert!(field(1, "audit").contains("\"reason\":\"unauthenticated\""));
}
