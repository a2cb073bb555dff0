#![no_main]
//! See artispace::fuzzing::headers for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| artispace::fuzzing::headers(data));
