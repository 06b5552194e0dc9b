//! Fuzz target `jws_decode_verify` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::jws_decode_verify(data));
