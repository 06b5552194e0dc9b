//! Fuzz target `login_token_response_parse` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::login_token_response_parse(data));
