//! Fuzz target `dpop_verify` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::dpop_verify(data));
