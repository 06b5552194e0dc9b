//! Each device's share of the nonce store: a bounded table of slots per device, each held
//! until the nonce's own expiry (timestamp + skew).

use std::collections::HashMap;
use std::sync::Mutex;

use handoff_core::UnixTime;
use handoff_core::replay::ReplayKey;

use super::wire::DeviceId;

/// Default number of live handshake nonces one device may hold (a device handshakes once
/// per session; 16 in a window of at most twice the skew is far above honest use).
pub const DEFAULT_NONCE_QUOTA: usize = 16;
/// Default number of devices whose slots the gateway tracks at once.
pub const DEFAULT_QUOTA_DEVICES: usize = 65_536;

pub(crate) enum QuotaRefusal {
    /// The device holds its whole share; the oldest slot frees at `retry_at`.
    Exceeded { retry_at: UnixTime },
    /// The table tracks as many devices as it may (fail closed).
    Full,
    /// A thread panicked while holding the table (fail closed).
    Poisoned,
}

/// Slots per device. Slots are taken only by authenticated, approved devices (after the
/// MAC), so the table never grows on unauthenticated traffic.
pub(crate) struct NonceQuota {
    per_device: usize,
    max_devices: usize,
    /// Per device: (replay key, until) of each live slot.
    slots: Mutex<HashMap<DeviceId, Vec<(ReplayKey, UnixTime)>>>,
}

impl NonceQuota {
    pub(crate) fn new(per_device: usize, max_devices: usize) -> Self {
        Self {
            per_device,
            max_devices,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn per_device(&self) -> usize {
        self.per_device
    }

    pub(crate) fn max_devices(&self) -> usize {
        self.max_devices
    }

    /// Takes one slot for `device` until `until` (inclusive, as the replay entry). A nonce
    /// that already holds a live slot takes no second one: replaying a captured message
    /// costs the device nothing (the nonce store refuses the replay).
    pub(crate) fn take(
        &self,
        device: &DeviceId,
        key: &ReplayKey,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<(), QuotaRefusal> {
        let mut map = self.slots.lock().map_err(|_| QuotaRefusal::Poisoned)?;
        if let Some(held) = map.get_mut(device) {
            held.retain(|(_, u)| *u >= now);
            if held.iter().any(|(k, _)| k == key) {
                return Ok(());
            }
            if held.len() >= self.per_device {
                let oldest = held.iter().map(|(_, u)| *u).min().unwrap_or(now);
                return Err(QuotaRefusal::Exceeded {
                    retry_at: oldest.saturating_add(1),
                });
            }
            held.push((*key, until));
            return Ok(());
        }
        if map.len() >= self.max_devices {
            // Amortised: drop every device whose slots have all expired.
            map.retain(|_, held| {
                held.retain(|(_, u)| *u >= now);
                !held.is_empty()
            });
            if map.len() >= self.max_devices {
                return Err(QuotaRefusal::Full);
            }
        }
        let mut held = Vec::with_capacity(self.per_device.min(DEFAULT_NONCE_QUOTA));
        held.push((*key, until));
        map.insert(device.clone(), held);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> UnixTime {
        UnixTime::from_secs(1_000 + s)
    }

    #[test]
    fn slots_are_per_device_and_free_at_their_expiry() {
        let q = NonceQuota::new(2, 2);
        let (a, b, c) = (
            DeviceId::new("a").unwrap(),
            DeviceId::new("b").unwrap(),
            DeviceId::new("c").unwrap(),
        );
        let k = |i: u8| ReplayKey::from_bytes([i; 32]);
        assert!(q.take(&a, &k(1), t(10), t(0)).is_ok());
        assert!(q.take(&a, &k(2), t(20), t(0)).is_ok());
        // The same nonce again (a replay) takes no slot.
        assert!(q.take(&a, &k(2), t(20), t(0)).is_ok());
        assert!(matches!(
            q.take(&a, &k(3), t(20), t(0)),
            Err(QuotaRefusal::Exceeded { retry_at }) if retry_at == t(11)
        ));
        assert!(q.take(&b, &k(4), t(5), t(0)).is_ok());
        // Two devices tracked: a third fails closed while both hold live slots.
        assert!(matches!(
            q.take(&c, &k(5), t(5), t(0)),
            Err(QuotaRefusal::Full)
        ));
        // At t(6) b's slot has expired: c gets b's place.
        assert!(q.take(&c, &k(5), t(30), t(6)).is_ok());
        // At t(11) a's first slot has expired.
        assert!(q.take(&a, &k(6), t(40), t(11)).is_ok());
    }
}
