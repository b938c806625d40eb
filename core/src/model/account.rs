//! Accounts of this instance: users, their sessions and API keys. User ids are local to an
//! instance.

use chrono::{DateTime, Utc};

/// What a user may do beyond their own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    User,
    /// Reloads network documents, opens accounts when sign-up is closed, redrives deliveries.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// Unknown stored values read as `User` (least privilege).
    pub fn parse(raw: &str) -> Role {
        match raw {
            "admin" => Role::Admin,
            _ => Role::User,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub name: String,
    /// Lower-cased; unique per instance.
    pub email: String,
    pub email_verified: bool,
    pub image: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A signed-in browser or client. Only the SHA-256 of the token is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// A machine credential of a user. The key is shown once; only its SHA-256 is stored, and
/// `lookup` (a non-secret slice of the key) finds the row before the hash is compared in
/// constant time.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The configured prefix the key starts with (e.g. `dpg_`).
    pub prefix: String,
    /// The first characters of the key, for people to recognise it.
    pub start: String,
    pub lookup: String,
    pub key_hash: String,
    pub enabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a request came from, for sessions and rate limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}
