//! Whether an issued token still stands, from the facts the read model
//! keeps about it. Pure, so the rule is written and tested once; the token
//! lookup gathers the facts and the APIs ask here.

use chrono::{DateTime, Utc};

/// Whoever a token speaks for: its client, and the person if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub client_enabled: bool,
    /// When the grant began: later credential changes and consent
    /// withdrawals end it.
    pub grant_created_at: DateTime<Utc>,
    pub person: Person,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    /// A client acting for itself (client credentials).
    None,
    /// The grant's subject has no account row: it was never readable, so
    /// the token stands for no one.
    Missing,
    Account {
        enabled: bool,
        credentials_changed_at: DateTime<Utc>,
        /// The latest withdrawal of consent to this client, if any.
        consent_withdrawn_at: Option<DateTime<Utc>>,
    },
}

/// The token's own facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// An authorization code is redeemed, never presented as a token.
    pub is_code: bool,
    /// Not revoked, rotated or spent.
    pub token_active: bool,
    /// The grant was redeemed and not revoked.
    pub grant_active: bool,
    pub expires_at: DateTime<Utc>,
}

/// The client is enabled, and the person (if any) is enabled, has not
/// changed their password since the grant began (R31), and has not
/// withdrawn their consent to this client since then.
pub fn holder_is_live(holder: &Holder) -> bool {
    let person_ok = match &holder.person {
        Person::None => true,
        Person::Missing => false,
        Person::Account {
            enabled,
            credentials_changed_at,
            consent_withdrawn_at,
        } => {
            let since_grant = |at: &DateTime<Utc>| holder.grant_created_at >= *at;
            *enabled
                && since_grant(credentials_changed_at)
                && consent_withdrawn_at.as_ref().is_none_or(since_grant)
        }
    };
    holder.client_enabled && person_ok
}

/// Active (RFC 7662): a token, not a code, live itself and in its grant,
/// its holder live, and not expired at `now`.
pub fn token_is_live(token: &Token, holder: &Holder, now: DateTime<Utc>) -> bool {
    !token.is_code
        && token.token_active
        && token.grant_active
        && holder_is_live(holder)
        && token.expires_at > now
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 10, minute, 0)
            .single()
            .unwrap_or_else(|| panic!("a valid time"))
    }

    fn token() -> Token {
        Token {
            is_code: false,
            token_active: true,
            grant_active: true,
            expires_at: at(30),
        }
    }

    fn person(changed: u32, withdrawn: Option<u32>) -> Holder {
        Holder {
            client_enabled: true,
            grant_created_at: at(10),
            person: Person::Account {
                enabled: true,
                credentials_changed_at: at(changed),
                consent_withdrawn_at: withdrawn.map(at),
            },
        }
    }

    #[test]
    fn a_token_lives_until_it_expires_and_only_while_everything_behind_it_does() {
        let holder = person(5, None);
        assert!(token_is_live(&token(), &holder, at(29)));
        assert!(
            !token_is_live(&token(), &holder, at(30)),
            "expiry is exclusive"
        );
        for dead in [
            Token {
                is_code: true,
                ..token()
            },
            Token {
                token_active: false,
                ..token()
            },
            Token {
                grant_active: false,
                ..token()
            },
        ] {
            assert!(!token_is_live(&dead, &holder, at(11)), "{dead:?}");
        }
        let disabled_client = Holder {
            client_enabled: false,
            ..holder.clone()
        };
        assert!(!token_is_live(&token(), &disabled_client, at(11)));
    }

    #[test]
    fn a_person_ends_their_grants_by_changing_password_or_withdrawing_consent() {
        assert!(
            holder_is_live(&person(10, Some(10))),
            "changes at the grant's own instant keep it"
        );
        assert!(
            !holder_is_live(&person(11, None)),
            "password changed after the grant"
        );
        assert!(
            !holder_is_live(&person(5, Some(11))),
            "consent withdrawn after the grant"
        );
        assert!(
            holder_is_live(&person(5, Some(9))),
            "withdrawn before, granted again"
        );
        let disabled = Holder {
            person: Person::Account {
                enabled: false,
                credentials_changed_at: at(5),
                consent_withdrawn_at: None,
            },
            ..person(5, None)
        };
        assert!(!holder_is_live(&disabled));
        let missing = Holder {
            person: Person::Missing,
            ..person(5, None)
        };
        assert!(!holder_is_live(&missing), "a subject without an account");
        let client_alone = Holder {
            person: Person::None,
            ..person(5, None)
        };
        assert!(holder_is_live(&client_alone));
    }
}
