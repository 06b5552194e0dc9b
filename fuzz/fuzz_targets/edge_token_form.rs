//! Fuzz target `edge_token_form` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::edge_token_form(data));
