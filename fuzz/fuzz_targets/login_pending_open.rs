//! Fuzz target `login_pending_open` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::login_pending_open(data));
