//! Feeds arbitrary bytes to the block decoder: it must never panic, and whatever it accepts
//! must re-encode to the same bytes.
#![no_main]

use azoth_file::format::{SegmentHeader, decode_frame, encode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = SegmentHeader::decode(data);
    if let Ok(frame) = decode_frame(data) {
        let events: Vec<&[u8]> = frame.events().collect();
        assert_eq!(events.len(), frame.count as usize);
        // The chain hash is not known here, so compare everything before it.
        let mut buf = Vec::new();
        encode_frame(&mut buf, &[0u8; 32], frame.first_event_id, &events);
        let n = frame.byte_len() - 32;
        assert_eq!(buf[12..n], frame.bytes[12..n]);
    }
});
