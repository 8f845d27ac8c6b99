//! A token status list (draft-ietf-oauth-status-list): a range of indices
//! that one issuing process hands to its JWT access tokens, one each.
//! Opening it is an event so that its size and its opening are in the log
//! and a list's URI can only name a list that was opened; each index is
//! then recorded in its token's `AccessTokenIssued`, and the bits are
//! derived from the revocations that follow.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Services, EVENT_VERSION_1};

#[derive(Debug, Clone)]
pub struct OpenList {
    /// How many indices the list holds; one bit each.
    pub size: u32,
    /// Where it is served: its tokens' `status_list.uri` and its `sub`.
    pub uri: String,
}

/// The variant's name is the event type, in the log and in its JSON.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
pub enum StatusListEvent {
    StatusListOpened {
        size: u32,
        uri: String,
        opened_at: DateTime<Utc>,
    },
}

impl StatusListEvent {
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl DomainEvent for StatusListEvent {
    fn event_type(&self) -> String {
        <&'static str>::from(self).to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StatusListError {
    #[error("this status list is open already")]
    AlreadyOpen,
    #[error("a status list holds at least one index")]
    Empty,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StatusList {
    pub size: u32,
}

impl Aggregate for StatusList {
    const TYPE: &'static str = "StatusList";
    type Command = OpenList;
    type Event = StatusListEvent;
    type Error = StatusListError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.size > 0 {
            return Err(StatusListError::AlreadyOpen);
        }
        if command.size == 0 {
            return Err(StatusListError::Empty);
        }
        let event = StatusListEvent::StatusListOpened {
            size: command.size,
            uri: command.uri,
            opened_at: services.now(),
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let StatusListEvent::StatusListOpened { size, .. } = event;
        self.size = size;
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::services::fixtures::{services, t0};

    type ListTest = TestFramework<StatusList>;

    #[test]
    fn a_list_opens_once_with_its_size() {
        ListTest::with(services())
            .given_no_previous_events()
            .when(OpenList {
                size: 8,
                uri: "https://q/statuslists/l".into(),
            })
            .then_expect_events(vec![StatusListEvent::StatusListOpened {
                size: 8,
                uri: "https://q/statuslists/l".into(),
                opened_at: t0(),
            }]);
        ListTest::with(services())
            .given(vec![StatusListEvent::StatusListOpened {
                size: 8,
                uri: "https://q/statuslists/l".into(),
                opened_at: t0(),
            }])
            .when(OpenList {
                size: 8,
                uri: "https://q/statuslists/l".into(),
            })
            .then_expect_error(StatusListError::AlreadyOpen);
        ListTest::with(services())
            .given_no_previous_events()
            .when(OpenList {
                size: 0,
                uri: "https://q/statuslists/l".into(),
            })
            .then_expect_error(StatusListError::Empty);
    }
}
