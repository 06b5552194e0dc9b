//! Fuzz target `jwks_parse` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::jwks_parse(data));
