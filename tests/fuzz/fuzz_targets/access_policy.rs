#![no_main]
#[path = "../../src/fuzz_bodies.rs"]
mod bodies;
libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::access_policy(data));
