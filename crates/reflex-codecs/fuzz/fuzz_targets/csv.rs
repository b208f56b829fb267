#![no_main]

use libfuzzer_sys::fuzz_target;
use reflex_codecs::CsvDecoder;

fuzz_target!(|data: &[u8]| {
    reflex_codecs_fuzz::check(|| CsvDecoder::new(3, true), data);
    reflex_codecs_fuzz::check(|| CsvDecoder::new(1, false), data);
});
