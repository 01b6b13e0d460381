//! An HTTP batch body: `serve_batch` against the demo directory, with the default
//! limits. A batch must be answered (or refused with a typed error) and an answer must
//! be well-framed messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpc_core::batch::serve_batch;
use rpc_core::{framing, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let body = data.to_vec();
    let answered =
        dotdo_fuzz::run_local(async move { serve_batch(&body, dotdo_fuzz::demo_bootstrap(&limits), limits).await });
    match answered {
        None => panic!("the batch was not answered within {:?} of virtual time", dotdo_fuzz::INPUT_DEADLINE),
        Some(Ok(reply)) => {
            for m in framing::split(&reply).expect("the reply splits into messages") {
                framing::decode(m, limits.reader_options()).expect("each reply message decodes");
            }
        }
        Some(Err(_)) => {}
    }
});
