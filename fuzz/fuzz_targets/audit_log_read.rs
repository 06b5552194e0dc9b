//! Fuzz target `audit_log_read` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::audit_log_read(data));
