//! Fuzz target `login_redirect_check` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_entries::login_redirect_check(data));
