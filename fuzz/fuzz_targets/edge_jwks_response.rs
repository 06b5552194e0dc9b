//! Fuzz target `edge_jwks_response` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::edge_jwks_response(data));
