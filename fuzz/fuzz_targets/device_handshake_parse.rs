//! Fuzz target `device_handshake_parse` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::device_handshake_parse(data));
