//! Test helper (placeholder until the race worker lands).
fn main() {}
