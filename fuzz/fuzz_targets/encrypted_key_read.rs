//! Fuzz target `encrypted_key_read` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::encrypted_key_read(data));
