//! Ports: what the core needs from the outside world. Each method documents its error
//! contract; adapters translate driver errors into `CoreError` and log the detail.

mod accounts;
mod action_repository;
mod authenticator;
mod cache;
mod clock;
mod item_repository;
mod peer_transport;
mod random;
mod schema_source;
mod schema_store;
mod timer;

pub use accounts::{
    ApiKeyRepository, PasswordHasher, SecretGenerator, SessionRepository, UserRepository,
};
pub use action_repository::{
    ActionRepository, Created, IdempotencyKey, NewAction, Outbox, StatusChange,
};
pub use authenticator::{Authenticator, Credentials};
pub use cache::Cache;
pub use clock::{Clock, IdGenerator};
pub use item_repository::ItemRepository;
pub use peer_transport::{
    BatchAnswer, PeerAnswer, PeerError, PeerPage, PeerPageAnswer, PeerTransport,
};
pub use random::Random;
pub use schema_source::{
    FetchOutcome, FetchedDocument, SchemaLocation, SchemaSource, SourceValidators,
};
pub use schema_store::{SchemaStore, StoredDocument, StoredKind};
pub use timer::Timer;

#[cfg(any(test, feature = "mocks"))]
pub use accounts::{
    MockApiKeyRepository, MockPasswordHasher, MockSecretGenerator, MockSessionRepository,
    MockUserRepository,
};
#[cfg(any(test, feature = "mocks"))]
pub use action_repository::{MockActionRepository, MockOutbox};
#[cfg(any(test, feature = "mocks"))]
pub use authenticator::MockAuthenticator;
#[cfg(any(test, feature = "mocks"))]
pub use cache::MockCache;
#[cfg(any(test, feature = "mocks"))]
pub use clock::{MockClock, MockIdGenerator};
#[cfg(any(test, feature = "mocks"))]
pub use item_repository::MockItemRepository;
#[cfg(any(test, feature = "mocks"))]
pub use peer_transport::MockPeerTransport;
#[cfg(any(test, feature = "mocks"))]
pub use random::MockRandom;
#[cfg(any(test, feature = "mocks"))]
pub use schema_source::MockSchemaSource;
#[cfg(any(test, feature = "mocks"))]
pub use schema_store::MockSchemaStore;
#[cfg(any(test, feature = "mocks"))]
pub use timer::MockTimer;
