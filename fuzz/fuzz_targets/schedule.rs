//! Schedule specs: `Spec::parse` on cron (5 or 6 fields) and readable forms (`every 5
//! minutes`, `every Monday at 9am`), and the next run of a spec that parses, from
//! times across the whole range.
#![no_main]

use do_modules::schedule::spec::Spec;
use libfuzzer_sys::fuzz_target;
use rpc_core::Code;

const TIMES: [i64; 6] = [i64::MIN, -1, 0, 1_704_067_200_000, 253_402_300_799_000, i64::MAX];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Spec::parse(text) {
        Ok(spec) => {
            for t in TIMES {
                if let Some(next) = spec.next_after(t) {
                    assert!(next > t, "{text:?}: the next run {next} is not after {t}");
                }
            }
        }
        Err(e) => assert_eq!(e.code, Code::InvalidArgument, "{text:?}: {e:?}"),
    }
});
