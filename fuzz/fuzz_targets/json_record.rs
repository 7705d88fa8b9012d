#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| watchbell_fuzz::json_record(data));
