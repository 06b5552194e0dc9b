//! Fuzz target `refresh_token_parse` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::refresh_token_parse(data));
