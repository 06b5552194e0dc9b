//! Fuzz target `login_metadata_parse` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::login_metadata_parse(data));
