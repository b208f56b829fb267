#![no_main]

use libfuzzer_sys::fuzz_target;
use reflex_codecs::WitmotionDecoder;

fuzz_target!(|data: &[u8]| {
    reflex_codecs_fuzz::check(WitmotionDecoder::new, data);
});
