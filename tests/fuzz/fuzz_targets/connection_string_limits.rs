#![no_main]
#[path = "../../src/fuzz_bodies.rs"]
mod bodies;
libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::connection_string_limits(data));
