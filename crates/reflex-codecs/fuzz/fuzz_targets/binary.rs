#![no_main]

use libfuzzer_sys::fuzz_target;
use reflex_codecs::BinaryDecoder;

fuzz_target!(|data: &[u8]| {
    reflex_codecs_fuzz::check(|| BinaryDecoder::new(2), data);
    reflex_codecs_fuzz::check(|| BinaryDecoder::new(0), data);
});
