#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fleetcast_media::fuzzing::http_head(data);
});
