//! Fuzz target `stores_row_decode` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::stores_row_decode(data));
