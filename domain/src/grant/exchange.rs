//! Token exchange (RFC 8693): a grant started from a token of another
//! grant, its parent. The lineage (every ancestor, root first) and the
//! actors (`act`, §4.1) are fixed at the start, so the grant's own stream
//! says for whom and through whom it acts; a revoked ancestor ends it.

use serde::{Deserialize, Serialize};

use super::aggregate::{Grant, GrantStatus};
use super::{GrantError, GrantEvent, GrantKind, TokenRequest};
use crate::values::ScopeSet;
use crate::Services;

/// How long a chain of exchanges may grow: each link is a service calling
/// another on the same person's behalf, and a deeper chain is a loop or
/// an attack more often than a design.
pub const MAX_DEPTH: usize = 8;

/// RFC 8693 §4.1: the party acting for the subject, and before it the
/// earlier actors, outermost first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// The actors from the outermost (the current one) inwards.
    pub fn chain(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(Some(self), |actor| actor.act.as_deref())
    }
}

/// Where an exchanged grant comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The subject token's grant.
    pub parent_gid: String,
    /// Every ancestor, the root first and the parent last.
    pub ancestors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// RFC 8693 §3: what the subject token was (an access or refresh
    /// token's URN).
    pub subject_token_type: String,
}

impl Grant {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn exchange(
        &self,
        gid: String,
        client_id: String,
        sub: Option<String>,
        scopes: ScopeSet,
        audience: Vec<String>,
        lineage: Lineage,
        tokens: TokenRequest,
        services: &Services,
    ) -> Result<Vec<GrantEvent>, GrantError> {
        if self.status != GrantStatus::Absent {
            return Err(GrantError::AlreadyExists);
        }
        if lineage.ancestors.len() > MAX_DEPTH
            || lineage.ancestors.last() != Some(&lineage.parent_gid)
        {
            return Err(GrantError::DelegationTooDeep);
        }
        let mut events = vec![GrantEvent::GrantExchanged {
            gid,
            client_id,
            sub,
            scopes: scopes.clone(),
            audience,
            lineage,
            started_at: services.now(),
        }];
        events.extend(self.mint(&scopes, tokens, true, services)?);
        Ok(events)
    }

    pub(super) fn apply_exchange(&mut self, event: GrantEvent) {
        let GrantEvent::GrantExchanged {
            gid,
            client_id,
            sub,
            scopes,
            audience,
            lineage,
            ..
        } = event
        else {
            return;
        };
        self.gid = gid;
        self.status = GrantStatus::Active;
        self.kind = Some(GrantKind::TokenExchange);
        self.client_id = client_id;
        self.sub = sub;
        self.scopes = scopes;
        self.audience = audience;
        self.lineage = Some(lineage);
    }
}
