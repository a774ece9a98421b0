//! API tokens and what their holders may do.
//!
//! Owns token making, hashing and the role rules; the rows live in the
//! store (`api_tokens`), which only ever sees SHA-256 hashes. A token is
//! shown once, when created, and never logged. The HTTP layer (not here)
//! reads the bearer token, calls [`authenticate`] and asks the returned
//! [`Principal`] what it may do.

use std::fmt;

use rand::RngExt;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// What an agent id may be: 1-64 letters, digits, `-`, `_` or `.` (it
/// appears in routes and logs).
pub fn valid_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The rule of [`valid_agent_id`], for messages.
pub const AGENT_ID_RULE: &str = "agent ids are 1-64 letters, digits, '-', '_' or '.'";

/// Prefix of every token: lets secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "dlr_";

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// What a token's holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// One agent: their own state, calls and dispositions.
    Agent,
    /// Watches and steers campaigns and every agent.
    Supervisor,
    /// Everything a supervisor may, plus administration.
    Admin,
}

impl Role {
    /// The stored name: `agent`, `supervisor` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = AuthError;

    /// Parses `agent`, `supervisor` or `admin` (any case).
    fn from_str(s: &str) -> Result<Role, AuthError> {
        match s.to_ascii_lowercase().as_str() {
            "agent" => Ok(Role::Agent),
            "supervisor" => Ok(Role::Supervisor),
            "admin" => Ok(Role::Admin),
            _ => Err(AuthError::BadRole(s.to_string())),
        }
    }
}

/// Errors from token handling.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A role name that is not agent, supervisor or admin.
    #[error("unknown role {0:?}: use agent, supervisor or admin")]
    BadRole(String),
    /// An agent token without an agent id.
    #[error("an agent token needs an agent id")]
    AgentIdMissing,
    /// A supervisor or admin token with an agent id.
    #[error("a {0} token is not tied to an agent: give no agent id")]
    AgentIdNotAllowed(Role),
    /// An empty or blank agent id.
    #[error("the agent id is empty")]
    AgentIdEmpty,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who presented a valid token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    /// The token's row id (for audit logs: never log the token).
    pub token_id: i64,
    /// Role.
    pub role: Role,
    /// The agent, for an agent token.
    pub agent_id: Option<String>,
}

impl Principal {
    /// May this principal see or act for `agent_id`? An agent only for
    /// themselves; supervisors and admins for everyone.
    pub fn can_access_agent(&self, agent_id: &str) -> bool {
        match self.role {
            Role::Agent => self.agent_id.as_deref() == Some(agent_id),
            Role::Supervisor | Role::Admin => true,
        }
    }

    /// May this principal watch and steer campaigns (supervisor or admin)?
    pub fn can_supervise(&self) -> bool {
        matches!(self.role, Role::Supervisor | Role::Admin)
    }

    /// May this principal administer (tokens, campaigns, erasure)? Admins only.
    pub fn can_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A newly created token: the secret, shown once, and its row id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewToken {
    /// Row id, to revoke it later.
    pub id: i64,
    /// The token itself. Not stored anywhere; hand it to its holder.
    pub token: String,
    /// Role.
    pub role: Role,
    /// The agent, for an agent token.
    pub agent_id: Option<String>,
    /// Label.
    pub label: Option<String>,
}

/// Lowercase hex SHA-256 of a presented token, as stored in `api_tokens`.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh token: [`TOKEN_PREFIX`] and 32 random bytes in hex. `ThreadRng`
/// is a CSPRNG seeded from the operating system.
fn generate() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill(&mut bytes[..]);
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 2 * TOKEN_BYTES);
    token.push_str(TOKEN_PREFIX);
    for b in bytes {
        token.push_str(&format!("{b:02x}"));
    }
    token
}

/// Creates a token for `role` at `now` (ms) and stores its hash. An agent
/// token needs `agent_id`; supervisor and admin tokens refuse one. The
/// returned [`NewToken::token`] is the only copy of the secret.
pub async fn create_token(
    store: &Store,
    role: Role,
    agent_id: Option<&str>,
    label: Option<&str>,
    now: i64,
) -> Result<NewToken, AuthError> {
    let agent_id = agent_id.map(str::trim);
    match (role, agent_id) {
        (Role::Agent, None) => return Err(AuthError::AgentIdMissing),
        (Role::Agent, Some("")) => return Err(AuthError::AgentIdEmpty),
        (Role::Supervisor | Role::Admin, Some(_)) => {
            return Err(AuthError::AgentIdNotAllowed(role));
        }
        _ => {}
    }
    let token = generate();
    let id = store
        .token_insert(&token_hash(&token), role.as_str(), agent_id, label, now)
        .await?;
    tracing::info!(token_id = id, %role, "API token created");
    Ok(NewToken {
        id,
        token,
        role,
        agent_id: agent_id.map(str::to_string),
        label: label.map(str::to_string),
    })
}

/// Who holds `presented`, or `None` when it is unknown or revoked.
///
/// The token is found by its SHA-256, so no constant-time compare is
/// needed: the database compares hashes, and timing that leaks how much of
/// a guess's hash matches a stored hash says nothing useful about a token
/// (finding an input with a chosen hash prefix does not get an attacker
/// any closer to a 256-bit secret).
pub async fn authenticate(store: &Store, presented: &str) -> Result<Option<Principal>, AuthError> {
    if presented.is_empty() {
        return Ok(None);
    }
    let Some(row) = store.token_by_hash(&token_hash(presented)).await? else {
        return Ok(None);
    };
    let role = row.role.parse::<Role>().map_err(|_| {
        AuthError::Store(StoreError::Corrupt {
            what: "token role",
            value: row.role.clone(),
        })
    })?;
    Ok(Some(Principal {
        token_id: row.id,
        role,
        agent_id: row.agent_id,
    }))
}

/// Revokes token `id` at `now` (ms). Returns false when there is no such
/// token or it was already revoked.
pub async fn revoke(store: &Store, id: i64, now: i64) -> Result<bool, AuthError> {
    let revoked = store.token_revoke(id, now).await?;
    if revoked {
        tracing::info!(token_id = id, "API token revoked");
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        for r in [Role::Agent, Role::Supervisor, Role::Admin] {
            assert_eq!(r.to_string().parse::<Role>().ok(), Some(r));
        }
        assert_eq!("Admin".parse::<Role>().ok(), Some(Role::Admin));
        assert!(matches!("root".parse::<Role>(), Err(AuthError::BadRole(_))));
    }

    #[test]
    fn tokens_are_prefixed_hex_and_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        let hex = a.strip_prefix(TOKEN_PREFIX).expect("prefix");
        assert_eq!(hex.len(), 64);
        assert!(
            hex.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn principals_see_what_their_role_allows() {
        let agent = Principal {
            token_id: 1,
            role: Role::Agent,
            agent_id: Some("a1".into()),
        };
        assert!(agent.can_access_agent("a1"));
        assert!(!agent.can_access_agent("a2"));
        assert!(!agent.can_supervise() && !agent.can_admin());
        let sup = Principal {
            token_id: 2,
            role: Role::Supervisor,
            agent_id: None,
        };
        assert!(sup.can_access_agent("a2") && sup.can_supervise() && !sup.can_admin());
        let admin = Principal {
            token_id: 3,
            role: Role::Admin,
            agent_id: None,
        };
        assert!(admin.can_access_agent("x") && admin.can_supervise() && admin.can_admin());
    }
}
