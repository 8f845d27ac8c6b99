//! The read model, one module per view. Every statement that names a read
//! table — what the APIs, the CLI, the projector and the key store read,
//! and the side writes of the committer — is written here, beside the
//! table's description, its row struct and its status enum. A renamed
//! column is changed in one file; a caller that used it no longer compiles.
//! The rows' writes from events are [`super::inline`]'s, in terms of the
//! tables described here.

pub mod accounts;
pub mod clients;
pub mod consents;
pub mod grants;
pub mod keys;
pub mod sessions;
pub mod tokens;

pub use accounts::{ACCOUNTS, USERNAMES};
pub use clients::CLIENTS;
pub use consents::CONSENTS;
pub use grants::GRANTS;
pub use keys::SIGNING_KEYS;
pub use sessions::SESSIONS;
pub use tokens::TOKENS;

/// A read table as the changes see it: its columns in table order and the
/// columns that make its primary key. Changes filter either on the whole
/// key or on one of `lookups` (then the other filter columns narrow it).
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub key: &'static [&'static str],
    pub lookups: &'static [&'static str],
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| *column == name)
    }
}

/// Every table an event changes inline, in [`super::schema::REBUILDABLE_TABLES`] order.
pub const INLINE_TABLES: &[&Table] = &[
    &CLIENTS,
    &ACCOUNTS,
    &USERNAMES,
    &CONSENTS,
    &GRANTS,
    &TOKENS,
    &SIGNING_KEYS,
    &SESSIONS,
];

/// A status column as an enum, stored as the given text. A text the enum
/// does not know (a row written by a newer Writ, or by hand) reads as
/// `Unrecognised`, which is never any live status: the row counts as not
/// active, as a text comparison would have it, instead of failing the
/// query and every row beside it.
macro_rules! status {
    ($(#[$doc:meta])* $name:ident { $($(#[$variant_doc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_doc])* $variant,)+
            /// A text this Writ does not write.
            Unrecognised,
        }

        impl $name {
            /// The stored text; `Unrecognised` is never stored by Writ.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Unrecognised => "unrecognised",
                }
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                match text.as_str() {
                    $($text => Self::$variant,)+
                    _ => Self::Unrecognised,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use status;

#[cfg(test)]
mod tests {
    use super::grants::GrantStatus;
    use super::tokens::TokenStatus;

    #[test]
    fn statuses_read_back_what_they_write_and_nothing_else_reads_as_a_status() {
        for status in [
            GrantStatus::Pending,
            GrantStatus::Active,
            GrantStatus::Revoked,
        ] {
            assert_eq!(GrantStatus::from(status.as_str().to_owned()), status);
        }
        assert_eq!(TokenStatus::Spent.as_str(), "spent");
        assert_eq!(
            TokenStatus::from("paused".to_owned()),
            TokenStatus::Unrecognised
        );
    }
}
