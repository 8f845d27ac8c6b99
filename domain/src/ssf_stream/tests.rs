use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use serde_json::json;

use super::*;
use crate::services::fixtures::{services, t0};

type StreamTest = TestFramework<SsfStream>;

fn pos(n: u32) -> String {
    format!("{n:020}")
}

fn config(delivery: Delivery) -> StreamConfig {
    StreamConfig {
        delivery,
        events_requested: None,
        description: None,
    }
}

fn created(delivery: Delivery) -> SsfStreamEvent {
    SsfStreamEvent::SsfStreamCreated {
        receiver: "rx".into(),
        config: config(delivery),
        start_after: pos(10),
        created_at: t0(),
    }
}

fn folded(events: Vec<SsfStreamEvent>) -> SsfStream {
    let mut stream = SsfStream::default();
    for event in events {
        stream.apply(event);
    }
    stream
}

#[test]
fn another_receivers_stream_is_as_good_as_absent() {
    StreamTest::with(services())
        .given(vec![created(Delivery::Poll)])
        .when(SsfStreamCommand::Delete {
            receiver: "other".into(),
        })
        .then_expect_error(SsfStreamError::NotFound);
    StreamTest::with(services())
        .given(vec![
            created(Delivery::Poll),
            SsfStreamEvent::SsfStreamDeleted { deleted_at: t0() },
        ])
        .when(SsfStreamCommand::Verify {
            receiver: "rx".into(),
            state: None,
        })
        .then_expect_error(SsfStreamError::NotFound);
}

#[test]
fn enabling_a_disabled_stream_resumes_at_the_head_so_what_happened_meanwhile_is_dropped() {
    let disabled = SsfStreamEvent::SsfStreamStatusChanged {
        status: StreamStatus::Disabled,
        reason: None,
        resume_after: None,
        changed_at: t0(),
    };
    StreamTest::with(services())
        .given(vec![created(Delivery::Poll), disabled.clone()])
        .when(SsfStreamCommand::SetStatus {
            receiver: "rx".into(),
            status: StreamStatus::Enabled,
            reason: Some("back".into()),
            head: pos(50),
        })
        .then_expect_events(vec![SsfStreamEvent::SsfStreamStatusChanged {
            status: StreamStatus::Enabled,
            reason: Some("back".into()),
            resume_after: Some(pos(50)),
            changed_at: t0(),
        }]);
    // Pausing holds events: nothing is skipped when it ends.
    StreamTest::with(services())
        .given(vec![created(Delivery::Poll)])
        .when(SsfStreamCommand::SetStatus {
            receiver: "rx".into(),
            status: StreamStatus::Paused,
            reason: None,
            head: pos(50),
        })
        .then_expect_events(vec![SsfStreamEvent::SsfStreamStatusChanged {
            status: StreamStatus::Paused,
            reason: None,
            resume_after: None,
            changed_at: t0(),
        }]);
    let resumed = folded(vec![
        created(Delivery::Poll),
        disabled,
        SsfStreamEvent::SsfStreamStatusChanged {
            status: StreamStatus::Enabled,
            reason: None,
            resume_after: Some(pos(50)),
            changed_at: t0(),
        },
    ]);
    assert_eq!(resumed.acked_floor, pos(50));
    assert_eq!(resumed.delivered_up_to, pos(50));
}

#[test]
fn acknowledgements_out_of_order_are_kept_until_the_floor_passes_them() {
    let stream = folded(vec![
        created(Delivery::Poll),
        SsfStreamEvent::SsfSetsAcknowledged {
            positions: vec![pos(12), pos(14)],
            errors: Vec::new(),
            floor: pos(10),
            acknowledged_at: t0(),
        },
    ]);
    assert_eq!(stream.acked_above.len(), 2);
    let mut later = stream.clone();
    later.apply(SsfStreamEvent::SsfSetsAcknowledged {
        positions: vec![pos(11)],
        errors: Vec::new(),
        floor: pos(12),
        acknowledged_at: t0(),
    });
    assert_eq!(later.acked_floor, pos(12));
    assert_eq!(later.acked_above.iter().collect::<Vec<_>>(), vec![&pos(14)]);
    // Acknowledging again what is already acknowledged records nothing.
    StreamTest::with(services())
        .given(vec![
            created(Delivery::Poll),
            SsfStreamEvent::SsfSetsAcknowledged {
                positions: vec![pos(12)],
                errors: Vec::new(),
                floor: pos(10),
                acknowledged_at: t0(),
            },
        ])
        .when(SsfStreamCommand::Acknowledge {
            receiver: "rx".into(),
            positions: vec![pos(12), pos(9)],
            errors: Vec::new(),
            floor: pos(10),
        })
        .then_expect_events(vec![]);
    StreamTest::with(services())
        .given(vec![created(Delivery::Push {
            endpoint_url: "https://rx.example/ssf".into(),
            authorization_header: None,
        })])
        .when(SsfStreamCommand::Acknowledge {
            receiver: "rx".into(),
            positions: vec![pos(12)],
            errors: Vec::new(),
            floor: pos(10),
        })
        .then_expect_error(SsfStreamError::NotPolled);
}

#[test]
fn deliveries_and_abandonments_only_move_forward() {
    StreamTest::with(services())
        .given(vec![created(Delivery::Poll)])
        .when(SsfStreamCommand::RecordDelivered {
            up_to: pos(10),
            count: 1,
        })
        .then_expect_error(SsfStreamError::AlreadyRecorded);
    let stream = folded(vec![
        created(Delivery::Poll),
        SsfStreamEvent::SsfSetAbandoned {
            position: pos(20),
            jti: "j".into(),
            attempts: 3,
            reason: "HTTP 500".into(),
            abandoned_at: t0(),
        },
    ]);
    assert_eq!(stream.delivered_up_to, pos(20));
}

#[test]
fn a_removed_subject_is_matched_by_any_identifier_naming_the_person() {
    let stream = folded(vec![
        created(Delivery::Poll),
        SsfStreamEvent::SsfSubjectRemoved {
            subject: json!({"format": "iss_sub", "iss": "https://writ", "sub": "s1"}),
            removed_at: t0(),
        },
    ]);
    assert!(!stream.includes_subject(Some("s1")));
    assert!(stream.includes_subject(Some("s2")));
    assert!(stream.includes_subject(None));
    assert!(names_sub(
        &json!({"format": "complex", "user": {"format": "opaque", "id": "s1"}}),
        "s1"
    ));
}
