//! A DNS resolver for reqwest that drops addresses the policy refuses.
//!
//! The check sits in the resolver, not before the request, so the address checked is the
//! address connected to: a name that resolves to a public address for a pre-check and to a
//! private one for the connection (DNS rebinding) is still refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address_policy::{AddressClass, AddressPolicy};

/// Why a host was refused; found again in reqwest's error chain to answer `Forbidden`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves to {address}, a {class} address")]
pub(crate) struct ForbiddenAddress {
    pub host: String,
    pub address: IpAddr,
    pub class: AddressClass,
}

pub(crate) struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    pub(crate) fn new(policy: Arc<AddressPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = allowed_addresses(&policy, &host, resolved)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Keeps the permitted addresses; refuses the host when none is left.
fn allowed_addresses(
    policy: &AddressPolicy,
    host: &str,
    resolved: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let mut refused = None;
    let mut allowed = Vec::with_capacity(resolved.len());
    for address in resolved {
        match policy.check(address.ip()) {
            Ok(()) => allowed.push(address),
            Err(class) => {
                refused.get_or_insert(ForbiddenAddress {
                    host: host.to_string(),
                    address: address.ip(),
                    class,
                });
            }
        }
    }
    match (allowed.is_empty(), refused) {
        (false, _) => Ok(allowed),
        (true, Some(forbidden)) => Err(Box::new(forbidden)),
        (true, None) => Err(format!("{host} resolves to no address").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(text: &str) -> SocketAddr {
        SocketAddr::new(text.parse().expect("address"), 0)
    }

    #[test]
    fn refused_addresses_are_dropped_and_public_ones_kept() {
        let policy = AddressPolicy::default();
        let kept = allowed_addresses(
            &policy,
            "mixed.test",
            vec![socket("10.0.0.1"), socket("8.8.8.8")],
        )
        .expect("one public address");
        assert_eq!(kept, vec![socket("8.8.8.8")]);
    }

    #[test]
    fn a_host_with_only_refused_addresses_is_forbidden() {
        let policy = AddressPolicy::default();
        let err = allowed_addresses(
            &policy,
            "internal.test",
            vec![socket("::1"), socket("127.0.0.1")],
        )
        .expect_err("refused");
        let forbidden = err
            .downcast_ref::<ForbiddenAddress>()
            .expect("ForbiddenAddress");
        assert_eq!(forbidden.class, AddressClass::Loopback);
        assert_eq!(forbidden.host, "internal.test");
    }

    #[tokio::test]
    async fn localhost_is_refused_by_default_and_resolved_when_allowed() {
        let name: Name = "localhost".parse().expect("name");
        let refused = GuardedResolver::new(Arc::new(AddressPolicy::default()))
            .resolve(name)
            .await;
        let err = refused.err().expect("localhost refused");
        assert!(err.downcast_ref::<ForbiddenAddress>().is_some(), "{err}");

        let name: Name = "localhost".parse().expect("name");
        let allowing = GuardedResolver::new(Arc::new(AddressPolicy {
            allow_private: true,
            allowed_cidrs: Vec::new(),
        }));
        let addresses: Vec<SocketAddr> = allowing.resolve(name).await.expect("resolved").collect();
        assert!(addresses.iter().all(|a| a.ip().is_loopback()) && !addresses.is_empty());
    }
}
