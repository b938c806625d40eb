use super::Role;
use crate::error::{CoreError, ErrorCode};

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// Authentication is switched off (development only).
    #[default]
    Development,
    Session {
        session_id: String,
    },
    ApiKey {
        key_id: String,
    },
}

/// Who is calling: a user of this instance. User ids are local to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub role: Role,
    pub method: AuthMethod,
}

impl Caller {
    /// A plain user authenticated in development mode.
    pub fn new(user_id: impl Into<String>) -> Self {
        Caller {
            user_id: user_id.into(),
            role: Role::User,
            method: AuthMethod::Development,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// `Err(Forbidden)` unless the caller owns what `owner` owns. The one owner check of
    /// every resource (items now, actions later).
    pub fn require_owner(&self, owner: &str, what: &str) -> Result<(), CoreError> {
        if self.user_id == owner {
            return Ok(());
        }
        Err(CoreError::Forbidden {
            code: ErrorCode::NotOwner,
            message: format!("Only the owner of the {what} may do this"),
        })
    }

    /// `Err(Forbidden)` unless the caller is an administrator.
    pub fn require_admin(&self) -> Result<(), CoreError> {
        if self.is_admin() {
            return Ok(());
        }
        Err(CoreError::Forbidden {
            code: ErrorCode::AdminRequired,
            message: "This operation is reserved to administrators".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_admin_checks() {
        let user = Caller::new("u1");
        assert!(user.require_owner("u1", "item").is_ok());
        assert_eq!(
            user.require_owner("u2", "item").expect_err("other").code(),
            ErrorCode::NotOwner
        );
        assert_eq!(
            user.require_admin().expect_err("not admin").code(),
            ErrorCode::AdminRequired
        );
        let admin = Caller {
            role: Role::Admin,
            ..Caller::new("a")
        };
        assert!(admin.require_admin().is_ok());
    }
}
