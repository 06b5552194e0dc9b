//! Fuzz target `edge_auth_headers` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::edge_auth_headers(data));
