//! Property tests of the protocol (properties 9, 31 and 32: docs/PROPERTIES.md#p9): frames
//! round-trip through JSON, every server frame has a `type`, and no input
//! makes the parser panic.

use proptest::prelude::*;

use super::inbound::{InboundLimits, parse_client_frame};
use super::{ClientCommand, ErrorCode, ErrorInfo, Message, MessageType, Metadata, Sender, Timestamp};

fn message_type() -> impl Strategy<Value = MessageType> {
    proptest::sample::select(MessageType::ALL.to_vec())
}

fn sender() -> impl Strategy<Value = Sender> {
    prop_oneof![Just(Sender::User), Just(Sender::Ai), Just(Sender::Admin)]
}

fn error_info() -> impl Strategy<Value = ErrorInfo> {
    let codes = vec![
        ErrorCode::InvalidToken,
        ErrorCode::InvalidMessage,
        ErrorCode::RateLimited,
        ErrorCode::LlmUnavailable,
        ErrorCode::ServiceUnavailable,
    ];
    (
        proptest::sample::select(codes),
        ".*",
        any::<bool>(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(code, message, recoverable, retry_after)| ErrorInfo {
            code,
            message,
            recoverable,
            retry_after,
        })
}

prop_compose! {
    fn message()(
        kind in message_type(),
        session_id in proptest::option::of("[a-z0-9-]{1,36}"),
        id in proptest::option::of("[A-Za-z0-9_.:-]{1,64}"),
        message_id in proptest::option::of(".*"),
        seq in proptest::option::of(any::<u64>()),
        content in proptest::option::of(".*"),
        file_id in proptest::option::of(".*"),
        model_id in proptest::option::of(".*"),
        ms in proptest::option::of(0u64..4_102_444_800_000),
        sender in proptest::option::of(sender()),
        metadata in proptest::option::of(proptest::collection::btree_map(".*", ".*", 0..4)),
        error in proptest::option::of(error_info()),
        done in proptest::option::of(any::<bool>()),
    ) -> Message {
        let mut m = Message::new(kind);
        m.session_id = session_id;
        m.id = id;
        m.message_id = message_id;
        m.seq = seq;
        m.content = content;
        m.file_id = file_id;
        m.model_id = model_id;
        m.timestamp = ms.map(Timestamp::from_millis);
        m.sender = sender;
        m.metadata = metadata.map(|m: Metadata| m);
        m.error = error;
        m.done = done;
        m
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_frame_round_trips_through_json(m in message()) {
        let bytes = m.to_json();
        let back: Message = serde_json::from_slice(&bytes).expect("our own JSON parses");
        prop_assert_eq!(back, m);
    }

    #[test]
    fn every_frame_is_a_json_object_with_a_type(m in message()) {
        let value: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        prop_assert_eq!(value["type"].as_str(), Some(m.kind.as_str()));
    }

    #[test]
    fn any_text_is_parsed_or_refused_without_panicking(text in ".*") {
        // Parsed or refused, either answer will do: the property is that it returns.
        let _ = parse_client_frame(&text, &InboundLimits::default());
    }

    #[test]
    fn any_json_object_is_parsed_or_refused_without_panicking(
        kind in prop_oneof![message_type().prop_map(|t| t.as_str().to_owned()), ".*"],
        fields in proptest::collection::btree_map(
            prop_oneof![Just("content".to_owned()), Just("id".to_owned()), Just("session_id".to_owned()),
                        Just("metadata".to_owned()), Just("file_id".to_owned()), Just("model_id".to_owned()),
                        Just("timestamp".to_owned()), ".*"],
            prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                ".*".prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".*", ".*", 0..3).prop_map(|m| serde_json::json!(m)),
            ],
            0..6,
        ),
    ) {
        let mut object = serde_json::Map::new();
        object.insert("type".into(), kind.into());
        for (k, v) in fields {
            object.insert(k, v);
        }
        let text = serde_json::Value::Object(object).to_string();
        match parse_client_frame(&text, &InboundLimits::default()) {
            Ok(frame) => prop_assert!(frame.command.kind().is_client_sendable()),
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
    }

    #[test]
    fn user_messages_keep_their_text_minus_control_characters(
        content in "[^\\p{Cc}\\p{Cf}]{0,200}",
        id in "[A-Za-z0-9_.:-]{1,64}",
    ) {
        let frame = serde_json::json!({ "type": "user_message", "id": id, "content": content }).to_string();
        match parse_client_frame(&frame, &InboundLimits::default()) {
            Ok(f) => {
                let ClientCommand::UserMessage { id: got_id, content: got, .. } = f.command else {
                    panic!("a user message")
                };
                prop_assert_eq!(got_id.as_deref(), Some(id.as_str()));
                prop_assert_eq!(got, content.trim());
            }
            Err(e) => {
                prop_assert!(content.trim().is_empty());
                prop_assert_eq!(e.code, ErrorCode::MissingField);
            }
        }
    }
}
