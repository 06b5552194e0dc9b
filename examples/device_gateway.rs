//! A device's life at a gateway (`cargo run --example device_gateway`).
//!
//! A device asks to pair (pending) and is refused until an operator approves it; it then
//! connects with the HMAC-SHA256 handshake, heartbeats, has its session token rotated
//! (and a lost-response retry gets the same successor), a captured handshake is replayed
//! and refused for its used nonce, and the operator revokes the device, which ends its
//! session. Every audit event is written as a JSON line to a file (default
//! `$TMPDIR/device_gateway-audit.jsonl`, or `-- --audit-log PATH`), then read back and
//! checked: one JSON object per line, and no token or secret in it.
//!
//! The gateway, registry, nonce store and session table are in memory; time is a
//! simulated clock read once from the system and advanced by hand.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use examples::{
    During, ExampleError, JsonLines, Narrator, SimClock, check_json_lines, expect, expect_refused,
    system_rng,
};
use handoff_core::replay::InMemoryReplayLog;
use handoff_core::{HmacSecret, UnixTime, b64};
use handoff_device::{
    AuditEvent, DeviceCredentials, DeviceError, DeviceId, DeviceRecord, DeviceRegistry,
    DeviceSession, FailureReason, Gateway, GatewayId, HeartbeatDecision, InMemoryDeviceRegistry,
    KeyId, OperatorId, PresentedToken, SessionId, SessionPolicy, SessionToken, SessionUpdate,
    body_hash,
};

const USAGE: &str = "\
usage: cargo run --example device_gateway [-- --audit-log PATH]

  --audit-log PATH   where to write the audit events as JSON lines
                     (default: $TMPDIR/device_gateway-audit.jsonl, overwritten)
  --help             this text";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<PathBuf>, ExampleError> {
    let mut path = std::env::temp_dir().join("device_gateway-audit.jsonl");
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--audit-log" => {
                path = args
                    .next()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| ExampleError::Usage("--audit-log needs a path".into()))?
                    .into();
            }
            "--help" | "-h" => return Ok(None),
            other => {
                let shown: String = other.chars().take(64).collect();
                return Err(ExampleError::Usage(format!("unknown argument {shown:?}")));
            }
        }
    }
    Ok(Some(path))
}

fn main() -> ExitCode {
    let path = match parse_args(std::env::args().skip(1)) {
        Ok(Some(p)) => p,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("device_gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let result =
        SimClock::from_system().and_then(|clock| run(std::io::stdout().lock(), clock, &path));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("device_gateway FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The session table a real gateway keeps in its database: records by session id,
/// written with compare-and-set on `version`.
#[derive(Default)]
struct Sessions(HashMap<SessionId, DeviceSession>);

impl Sessions {
    fn insert(&mut self, session: DeviceSession) {
        self.0.insert(session.session_id, session);
    }

    fn load(&self, id: SessionId, step: &str) -> Result<DeviceSession, ExampleError> {
        self.0
            .get(&id)
            .cloned()
            .ok_or_else(|| ExampleError::Unexpected {
                step: step.into(),
                expected: "a stored session".into(),
                got: "no session with that id".into(),
            })
    }

    /// `UPDATE device_sessions SET ... WHERE session_id = $1 AND version = $2`.
    fn compare_and_set(&mut self, update: &SessionUpdate, step: &str) -> Result<(), ExampleError> {
        let stored = self.0.get_mut(&update.session.session_id);
        match stored {
            Some(s) if s.version == update.expected_version => {
                *s = update.session.clone();
                Ok(())
            }
            _ => Err(ExampleError::Unexpected {
                step: step.into(),
                expected: "the stored session at the expected version".into(),
                got: "a version conflict".into(),
            }),
        }
    }
}

/// Writes each audit event as a JSON line and echoes it.
struct Audit {
    lines: JsonLines<BufWriter<File>>,
    echo: Vec<String>,
}

impl Audit {
    fn write<W: Write>(
        &mut self,
        event: &AuditEvent,
        out: &mut Narrator<W>,
    ) -> Result<(), ExampleError> {
        let line = self.lines.write(event)?;
        out.info(format!("audit> {line}"));
        self.echo.push(line);
        Ok(())
    }
}

/// The device's heartbeat: parse the token, load the session and the device, decide.
fn heartbeat(
    gateway: &Gateway,
    registry: &InMemoryDeviceRegistry,
    sessions: &Sessions,
    token: &SessionToken,
    now: UnixTime,
    step: &str,
) -> Result<HeartbeatDecision, ExampleError> {
    let presented = PresentedToken::parse(token.expose()).during(step)?;
    let session = sessions.load(presented.session_id(), step)?;
    let device = registry
        .load(&session.device_id)
        .during(step)?
        .ok_or_else(|| ExampleError::Unexpected {
            step: step.into(),
            expected: "a registered device".into(),
            got: "none".into(),
        })?;
    Ok(gateway.heartbeat(&session, &device, &presented, now))
}

fn unexpected(step: &str, expected: &str, got: impl core::fmt::Debug) -> ExampleError {
    ExampleError::Unexpected {
        step: step.into(),
        expected: expected.into(),
        got: format!("{got:?}"),
    }
}

#[allow(clippy::too_many_lines)] // one story, told in order
fn run<W: Write>(out: W, mut clock: SimClock, audit_path: &Path) -> Result<W, ExampleError> {
    let mut rng = system_rng();
    let mut out = Narrator::new(
        out,
        "device_gateway: pairing, HMAC handshake, heartbeats, rotation, replay, revocation",
    );
    out.info("(simulated clock: read once from the system, then advanced by hand)");
    out.info(format!(
        "audit log: {} (JSON lines, overwritten)",
        audit_path.display()
    ));
    let file = File::create(audit_path).map_err(|e| {
        ExampleError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot create the audit log {}: {e}", audit_path.display()),
        ))
    })?;
    let mut audit = Audit {
        lines: JsonLines::new(BufWriter::new(file)),
        echo: Vec::new(),
    };

    // The gateway: its id is in every MAC; `not_before` = its start (in-memory nonces).
    let policy = SessionPolicy {
        idle_timeout: 90,
        max_lifetime: 3600,
        rotate_after: 120,
        overlap: 10,
    };
    let gateway = Gateway::builder(
        GatewayId::new("gw-eu-1").during("configure the gateway")?,
        clock.now(),
        HmacSecret::generate(&mut rng),
    )
    .skew_secs(300)
    .session_policy(policy)
    .build()
    .during("configure the gateway")?;
    let registry = InMemoryDeviceRegistry::new(1_000);
    let nonces = InMemoryReplayLog::new(10_000);
    let mut sessions = Sessions::default();
    let alice = OperatorId::new("alice").during("operator id")?;

    // The device: its id, key id and a 32-byte secret provisioned at the factory.
    let device_id = DeviceId::new("sensor-42").during("device id")?;
    let key_id = KeyId::new("k1").during("key id")?;
    let secret = HmacSecret::generate(&mut rng);
    let forbidden_secret = [
        b64::encode(secret.expose_secret()),
        hex(secret.expose_secret()),
    ];
    let creds = DeviceCredentials::new(device_id.clone(), key_id.clone(), secret.clone());
    let body = br#"{"firmware":"1.4.2"}"#;

    let mut step = "ask to pair";
    out.step("device", format!("{step} ({})", clock.label()));
    let request =
        DeviceRecord::request_pairing(device_id.clone(), key_id, secret, clock.now(), 600);
    registry.insert(&request.record).during(step)?;
    audit.write(&request.audit, &mut out)?;
    expect(
        request.record.state().name() == "pending",
        step,
        "a pending record",
    )?;
    out.ok("sensor-42 is pending; an operator has 600 s to decide");

    clock.advance(10);
    step = "try to connect before approval";
    out.step("device", format!("{step} ({})", clock.label()));
    let early = creds.handshake(gateway.gateway_id(), clock.now(), body_hash(body), &mut rng);
    let rejection = expect_refused(
        gateway.handshake(
            early.to_wire().as_bytes(),
            body,
            &registry,
            &nonces,
            clock.now(),
            &mut rng,
        ),
        step,
    )?;
    audit.write(&rejection.audit, &mut out)?;
    expect(
        rejection.error == DeviceError::Unauthorized,
        step,
        "a uniform unauthorized",
    )?;
    expect(
        matches!(
            *rejection.audit,
            AuditEvent::HandshakeFailed {
                reason: FailureReason::NotApproved,
                ..
            }
        ),
        step,
        "not_approved in the audit event",
    )?;
    out.refused(
        "the device only learns \"unauthorized\"; the audit says not_approved",
        &rejection.error,
    );

    clock.advance(20);
    step = "approve the pending device";
    out.step("operator alice", format!("{step} ({})", clock.label()));
    let record = registry
        .load(&device_id)
        .during(step)?
        .ok_or_else(|| unexpected(step, "the record", "none"))?;
    let approved = record.approve(&alice, clock.now()).during(step)?;
    audit.write(&approved.commit(&registry).during(step)?, &mut out)?;
    out.ok("sensor-42 approved (written with compare-and-set on the record version)");

    clock.advance(10);
    step = "connect with the HMAC handshake";
    out.step("device", format!("{step} ({})", clock.label()));
    let hello = creds.handshake(gateway.gateway_id(), clock.now(), body_hash(body), &mut rng);
    let captured = hello.to_wire(); // an eavesdropper keeps a copy
    out.info(format!(
        "dvh1 message: device, key, timestamp, 16-byte nonce, body hash, MAC over all of them and the gateway id ({} bytes)",
        captured.len()
    ));
    let issued = gateway
        .handshake(
            captured.as_bytes(),
            body,
            &registry,
            &nonces,
            clock.now(),
            &mut rng,
        )
        .map_err(|r| unexpected(step, "a session", r.error))?;
    for event in &issued.audit {
        audit.write(event, &mut out)?;
    }
    let mut token = issued.token;
    let mut forbidden = vec![token.expose().to_owned()];
    sessions.insert(issued.session);
    out.ok(format!(
        "session issued; the device holds a dvs1 token of {} chars, the gateway only its hash",
        token.expose().len()
    ));

    clock.advance(60);
    step = "heartbeat";
    out.step("device", format!("{step} ({})", clock.label()));
    match heartbeat(&gateway, &registry, &sessions, &token, clock.now(), step)? {
        HeartbeatDecision::Extended { update } => {
            sessions.compare_and_set(&update, step)?;
            audit.write(&update.audit, &mut out)?;
            out.ok(format!(
                "idle expiry moved to {} (never past the absolute expiry {})",
                update.session.expires_at(),
                update.session.absolute_expiry()
            ));
        }
        other => return Err(unexpected(step, "an extended session", other)),
    }

    clock.advance(70);
    step = "heartbeat after rotate_after (120 s)";
    out.step("device", format!("{step} ({})", clock.label()));
    let previous = token.clone();
    match heartbeat(&gateway, &registry, &sessions, &token, clock.now(), step)? {
        HeartbeatDecision::Rotated {
            update,
            token: next,
        } => {
            sessions.compare_and_set(&update, step)?;
            audit.write(&update.audit, &mut out)?;
            expect(next != previous, step, "a new token")?;
            expect(update.session.generation == 1, step, "generation 1")?;
            token = next;
            forbidden.push(token.expose().to_owned());
            out.ok(
                "the token rotated (generation 1); the previous one stays good for a 10 s overlap",
            );
        }
        other => return Err(unexpected(step, "a rotated token", other)),
    }

    clock.advance(3);
    step = "retry with the previous token (the rotation response was lost)";
    out.step("device", format!("{step} ({})", clock.label()));
    match heartbeat(&gateway, &registry, &sessions, &previous, clock.now(), step)? {
        HeartbeatDecision::Rotated {
            update,
            token: again,
        } => {
            sessions.compare_and_set(&update, step)?;
            audit.write(&update.audit, &mut out)?;
            expect(again == token, step, "the very same successor")?;
            out.ok("inside the overlap the previous token gets the same successor, no new chain");
        }
        other => return Err(unexpected(step, "the same successor", other)),
    }

    clock.advance(7);
    step = "replay the captured handshake (same nonce)";
    out.step("attacker", format!("{step} ({})", clock.label()));
    let rejection = expect_refused(
        gateway.handshake(
            captured.as_bytes(),
            body,
            &registry,
            &nonces,
            clock.now(),
            &mut rng,
        ),
        step,
    )?;
    audit.write(&rejection.audit, &mut out)?;
    expect(
        rejection.error == DeviceError::Replayed,
        step,
        "the nonce already used",
    )?;
    out.refused(
        "MAC and timestamp are still valid, but the nonce was reserved at first use",
        &rejection.error,
    );

    clock.advance(20);
    step = "revoke the device";
    out.step("operator alice", format!("{step} ({})", clock.label()));
    let record = registry
        .load(&device_id)
        .during(step)?
        .ok_or_else(|| unexpected(step, "the record", "none"))?;
    let revoked = record.revoke(&alice, clock.now()).during(step)?;
    audit.write(&revoked.commit(&registry).during(step)?, &mut out)?;
    out.ok("sensor-42 revoked (terminal)");

    clock.advance(10);
    step = "heartbeat after revocation";
    out.step("device", format!("{step} ({})", clock.label()));
    match heartbeat(&gateway, &registry, &sessions, &token, clock.now(), step)? {
        HeartbeatDecision::Refused {
            error,
            update: Some(update),
            audit: event,
        } => {
            sessions.compare_and_set(&update, step)?;
            audit.write(&event, &mut out)?;
            expect(
                update.session.revoked_at.is_some(),
                step,
                "the session revoked",
            )?;
            out.refused("the session ends with the device", &error);
        }
        other => {
            return Err(unexpected(
                step,
                "a refusal that revokes the session",
                other,
            ));
        }
    }
    let retry = creds.handshake(gateway.gateway_id(), clock.now(), body_hash(body), &mut rng);
    let rejection = expect_refused(
        gateway.handshake(
            retry.to_wire().as_bytes(),
            body,
            &registry,
            &nonces,
            clock.now(),
            &mut rng,
        ),
        step,
    )?;
    audit.write(&rejection.audit, &mut out)?;
    expect(
        rejection.error == DeviceError::Unauthorized,
        step,
        "unauthorized",
    )?;
    out.refused("a new handshake from the revoked device", &rejection.error);

    step = "read the audit log back";
    out.step("gateway", format!("{step}: {}", audit_path.display()));
    let written = audit.lines.lines();
    let file = audit.lines.finish()?;
    drop(file);
    let text = std::fs::read_to_string(audit_path)?;
    forbidden.extend(forbidden_secret);
    let forbidden_refs: Vec<&str> = forbidden.iter().map(String::as_str).collect();
    let events = check_json_lines(&text, &forbidden_refs)?;
    expect(
        events.len() == written && text.lines().eq(audit.echo.iter().map(String::as_str)),
        step,
        "every event written once, in order",
    )?;
    let expected = [
        "pairing_requested",
        "handshake_failed",
        "approved",
        "handshake_ok",
        "session_issued",
        "session_extended",
        "session_rotated",
        "session_rotated",
        "handshake_failed",
        "revoked",
        "session_revoked",
        "handshake_failed",
    ];
    expect(events == expected, step, "the expected sequence of events")?;
    out.ok(format!(
        "{} JSON lines, each with an \"event\" member, none containing a session token or the device secret",
        events.len()
    ));

    out.finish("every outcome as expected")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_story_runs_and_the_audit_log_checks_out() {
        let path =
            std::env::temp_dir().join(format!("device_gateway-test-{}.jsonl", std::process::id()));
        let clock = SimClock::starting_at(UnixTime::from_secs(1_800_000_000));
        let out = String::from_utf8(run(Vec::new(), clock, &path).unwrap()).unwrap();
        let log = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(log.lines().count(), 12);
        assert!(log.contains("\"reason\":\"not_approved\""), "{log}");
        assert!(log.contains("\"reason\":\"replay\""), "{log}");
        assert!(!log.contains("dvs1."), "{log}");
        assert!(
            out.contains("refused, as expected: MAC and timestamp are still valid"),
            "{out}"
        );
        assert!(out.contains("== done: 11 steps"), "{out}");
    }

    #[test]
    fn parses_arguments() {
        let p = parse_args(["--audit-log".to_owned(), "/tmp/x.jsonl".to_owned()]).unwrap();
        assert_eq!(p, Some(PathBuf::from("/tmp/x.jsonl")));
        assert_eq!(parse_args(["--help".to_owned()]).unwrap(), None);
        assert!(parse_args(["--audit-log".to_owned()]).is_err());
        assert!(parse_args(["--audit-log".to_owned(), String::new()]).is_err());
        assert!(parse_args(["-x".to_owned()]).is_err());
    }

    #[test]
    fn an_unwritable_audit_path_is_an_error() {
        let clock = SimClock::starting_at(UnixTime::from_secs(1_800_000_000));
        let e = run(Vec::new(), clock, Path::new("/nonexistent-dir/audit.jsonl")).unwrap_err();
        assert!(e.to_string().contains("cannot create the audit log"), "{e}");
    }
}
