#![no_main]
//! See artispace::fuzzing::manifest for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| artispace::fuzzing::manifest(data));
