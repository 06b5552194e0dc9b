//! The async registry seam: [`AsyncDeviceRegistry`] has the contract of
//! [`DeviceRegistry`](crate::DeviceRegistry) for stores whose clients are async.
//! Runtime-agnostic: the trait only names futures. The transitions stay in
//! [`DeviceRecord`]'s Sans-IO methods; the registry only loads and compare-and-sets.

use core::future::Future;

use crate::{DeviceError, DeviceId, DeviceRecord};

/// An async [`DeviceRegistry`](crate::DeviceRegistry): same contract, same errors.
pub trait AsyncDeviceRegistry: Send + Sync {
    /// Loads a device record.
    fn load(
        &self,
        device_id: &DeviceId,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, DeviceError>> + Send;

    /// Inserts a new record if the device id is free.
    fn insert(&self, record: &DeviceRecord)
    -> impl Future<Output = Result<(), DeviceError>> + Send;

    /// Replaces the stored record if its version equals `expected_version`.
    fn compare_and_set(
        &self,
        expected_version: u64,
        record: &DeviceRecord,
    ) -> impl Future<Output = Result<(), DeviceError>> + Send;
}
