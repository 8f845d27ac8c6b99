//! The claims of a Writ access token (RFC 9068 §2.2, RFC 7519 §4.1): Writ
//! writes them and APIs read them through this one type, so a renamed or
//! retyped claim fails to compile on both sides at once.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// The person, or the client itself for client credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    pub aud: Audience,
    #[serde(with = "numeric_date")]
    pub exp: i64,
    /// Required by RFC 9068 and always set by Writ; optional here so that a
    /// token without it is refused with a reason, not as malformed.
    #[serde(default, with = "numeric_date::optional")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, with = "numeric_date::optional")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Space-separated (RFC 8693 §4.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The grant the token belongs to: what a revoked grant's deny-list
    /// entry matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// The key the token is bound to (RFC 9449 §6.1): only a request with
    /// a DPoP proof signed by it may present the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// RFC 8693 §4.1: who acts for the subject (a token exchanged with an
    /// actor token), with earlier actors nested inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// Where the token's status is published (Token Status List §6.1):
    /// a resource server may check it there instead of asking Writ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::status_list::StatusClaim>,
}

/// RFC 7800's confirmation claim, with RFC 9449's `jkt` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

impl AccessTokenClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or_default().split_whitespace()
    }
}

/// RFC 7519 §4.1.3: one audience as a string, several as an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_slice(audience: &[String]) -> Self {
        match audience {
            [one] => Self::One(one.clone()),
            many => Self::Many(many.to_vec()),
        }
    }

    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|aud| aud == audience),
        }
    }
}

/// RFC 7519 §2 NumericDate: seconds since the epoch, which may carry a
/// fraction; Writ writes whole seconds and reads either, rounding down.
mod numeric_date {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(seconds: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(*seconds)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        whole_seconds(&number).ok_or_else(|| serde::de::Error::custom("not a NumericDate"))
    }

    fn whole_seconds(number: &serde_json::Number) -> Option<i64> {
        number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|t| t.is_finite() && t.abs() < 1e15)
                .map(|t| t.floor() as i64)
        })
    }

    pub mod optional {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            seconds: &Option<i64>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match seconds {
                Some(seconds) => serializer.serialize_i64(*seconds),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<i64>, D::Error> {
            match Option::<serde_json::Number>::deserialize(deserializer)? {
                None => Ok(None),
                Some(number) => super::whole_seconds(&number)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("not a NumericDate")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_audience_is_a_string_and_several_an_array() {
        let one = Audience::from_slice(&["https://api.example/".to_owned()]);
        assert_eq!(
            serde_json::to_value(&one).ok(),
            Some(json!("https://api.example/"))
        );
        let many = Audience::from_slice(&["a".to_owned(), "b".to_owned()]);
        assert_eq!(serde_json::to_value(&many).ok(), Some(json!(["a", "b"])));
        assert!(many.contains("b") && !many.contains("c") && one.contains("https://api.example/"));
    }

    #[test]
    fn claims_read_back_what_writ_writes_and_times_may_carry_fractions() {
        let claims: AccessTokenClaims = serde_json::from_value(json!({
            "iss": "https://writ.example", "aud": ["api"], "exp": 1_700_000_300.9,
            "iat": 1_700_000_000, "sub": "alice", "scope": "read write",
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.exp, 1_700_000_300);
        assert_eq!(claims.iat, Some(1_700_000_000));
        assert_eq!(claims.nbf, None);
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["read", "write"]);
        let written = serde_json::to_value(&claims).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written["exp"], 1_700_000_300);
        assert!(
            written.get("nbf").is_none(),
            "absent claims are not written"
        );
    }

    #[test]
    fn a_time_that_is_not_a_number_or_a_missing_expiry_is_malformed() {
        for bad in [
            json!({"iss": "i", "aud": "a", "exp": "soon"}),
            json!({"iss": "i", "aud": "a", "exp": 1, "nbf": "later"}),
            json!({"iss": "i", "aud": "a"}),
            json!({"iss": "i", "aud": 7, "exp": 1}),
        ] {
            assert!(
                serde_json::from_value::<AccessTokenClaims>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
