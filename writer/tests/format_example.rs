//! The byte examples in `docs/FORMAT.md` are what the encoder produces.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shared::plane::MessageHeader;
use shared::segment::{decode_frame, encode_message, Record, SegmentHeader};

/// The hex block after `<!-- example:NAME -->` in docs/FORMAT.md.
fn example(name: &str) -> Vec<u8> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/FORMAT.md")).unwrap();
    let marker = format!("<!-- example:{name} -->");
    let after = &doc[doc.find(&marker).unwrap() + marker.len()..];
    let block = after.split("```").nth(1).unwrap();
    block.split_whitespace().map(|h| u8::from_str_radix(h, 16).unwrap()).collect()
}

#[test]
fn header_example_matches_the_encoder() {
    let h = SegmentHeader {
        minor_version: 0,
        flags: 0,
        session_id: std::array::from_fn(|i| i as u8),
        created_ns: 1_700_000_000_000_000_000,
        segment_seq: 1,
        robot_id: 0xffff,
    };
    assert_eq!(example("header"), h.encode().to_vec());
    assert_eq!(SegmentHeader::decode(&example("header")).unwrap(), h);
}

#[test]
fn message_example_matches_the_encoder() {
    let h = MessageHeader {
        topic_id: 1,
        robot_id: 0,
        flags: 0,
        sequence: 1,
        receive_time_ns: 1000,
        publish_time_ns: 0,
        ingest_session: 7,
        payload_len: 2,
    };
    let mut out = Vec::new();
    encode_message(&mut out, &h, b"hi");
    assert_eq!(example("message"), out);
    let r = decode_frame(&out, 64).unwrap();
    let Record::Message(m) = Record::decode(&r).unwrap() else { panic!("not a message") };
    assert_eq!((m.header, m.payload), (h, &b"hi"[..]));
}
