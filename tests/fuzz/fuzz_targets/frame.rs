//! PLACEHOLDER so `cargo xtask fuzz` has a target to run: feeds the bytes to nothing.
//! Replace with the command-frame decoder target (test-plan T11).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(data);
});
