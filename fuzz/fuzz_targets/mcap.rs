#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reflex_fuzz::mcap::run(data));
