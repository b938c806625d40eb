//! Which IP addresses a schema URL may reach.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// What kind of network an address belongs to; everything but `Public` is refused by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// RFC 1918, IPv6 unique-local (fc00::/7) and the deprecated site-local (fec0::/10).
    Private,
    /// 169.254/16 (cloud metadata services live here), fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8 and `::`; connecting to them reaches the local host.
    Unspecified,
    /// Carrier-grade NAT, 100.64/10.
    SharedAddressSpace,
    Multicast,
    /// Broadcast, 240/4, protocol assignments, benchmarking, documentation ranges.
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Unspecified => "unspecified",
            AddressClass::SharedAddressSpace => "shared (CGNAT)",
            AddressClass::Multicast => "multicast",
            AddressClass::Reserved => "reserved",
        })
    }
}

/// Classifies an address. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64,
/// 6to4) are classified by that IPv4 address, since that is what they end up reaching.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if a == 0 {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if a == 100 && (b & 0xc0) == 64 {
        AddressClass::SharedAddressSpace
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if a >= 240
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (b & 0xfe) == 18)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some(v4) = embedded_ipv4(ip) {
        return classify_v4(v4);
    }
    let segments = ip.segments();
    let first = segments[0];
    if first & 0xfe00 == 0xfc00
        || first & 0xffc0 == 0xfec0
        || (first == 0x64 && segments[1] == 0xff9b && segments[2] == 1)
    {
        // Unique-local, site-local, and the local-use NAT64 prefix 64:ff9b:1::/48.
        AddressClass::Private
    } else if first & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if (first == 0x2001 && segments[1] == 0x0db8)
        || (first == 0x0100 && segments[1..4] == [0, 0, 0])
    {
        // Documentation 2001:db8::/32 and discard-only 100::/64.
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The IPv4 address an IPv6 address stands for, if it is one of the embedding forms.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
        [0, 0, 0, 0, 0, 0xffff | 0, hi, lo] => Some(low(hi, lo)),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix).
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        // 2002:aabb:ccdd::/48 (6to4).
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

/// What the schema fetcher may connect to: public addresses, plus everything when
/// `allow_private` is set (development), plus the networks of `allowed_cidrs` (private
/// deployments that host their registry internally).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow_private: bool,
    pub allowed_cidrs: Vec<IpNet>,
}

impl AddressPolicy {
    /// `Err` carries the class of a refused address.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressClass> {
        let class = classify(ip);
        if class == AddressClass::Public || self.allow_private || self.is_allow_listed(ip) {
            Ok(())
        } else {
            Err(class)
        }
    }

    /// An IPv4-mapped address matches IPv4 networks of the list as well.
    fn is_allow_listed(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.allowed_cidrs
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn classifies_addresses() {
        use AddressClass::*;
        let table = [
            // IPv4
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("169.254.169.254", LinkLocal),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("100.128.0.1", Public),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Reserved),
            ("240.0.0.1", Reserved),
            ("192.0.0.8", Reserved),
            ("198.18.0.1", Reserved),
            ("203.0.113.7", Reserved),
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("93.184.216.34", Public),
            // IPv6
            ("::", Unspecified),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b:1::1", Private),
            ("2002:7f00:1::1", Loopback),
            ("2002:808:808::1", Public),
            ("fc00::1", Private),
            ("fd12:3456:789a::1", Private),
            ("fec0::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Reserved),
            ("100::1", Reserved),
            ("2606:4700:4700::1111", Public),
            ("2001:4860:4860::8888", Public),
        ];
        for (address, expected) in table {
            assert_eq!(classify(ip(address)), expected, "{address}");
        }
    }

    #[test]
    fn default_policy_allows_only_public_addresses() {
        let policy = AddressPolicy::default();
        assert_eq!(policy.check(ip("8.8.8.8")), Ok(()));
        assert_eq!(policy.check(ip("2606:4700:4700::1111")), Ok(()));
        assert_eq!(policy.check(ip("127.0.0.1")), Err(AddressClass::Loopback));
        assert_eq!(
            policy.check(ip("::ffff:127.0.0.1")),
            Err(AddressClass::Loopback)
        );
        assert_eq!(
            policy.check(ip("169.254.169.254")),
            Err(AddressClass::LinkLocal)
        );
    }

    #[test]
    fn allow_private_allows_everything() {
        let policy = AddressPolicy {
            allow_private: true,
            allowed_cidrs: Vec::new(),
        };
        for address in ["127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "fc00::1"] {
            assert_eq!(policy.check(ip(address)), Ok(()), "{address}");
        }
    }

    #[test]
    fn allow_list_opens_only_its_networks() {
        let policy = AddressPolicy {
            allow_private: false,
            allowed_cidrs: vec![
                "10.20.0.0/16".parse().expect("net"),
                "fd00:1::/32".parse().expect("net"),
            ],
        };
        assert_eq!(policy.check(ip("10.20.3.4")), Ok(()));
        assert_eq!(policy.check(ip("::ffff:10.20.3.4")), Ok(()));
        assert_eq!(policy.check(ip("fd00:1::5")), Ok(()));
        assert_eq!(policy.check(ip("10.21.0.1")), Err(AddressClass::Private));
        assert_eq!(policy.check(ip("127.0.0.1")), Err(AddressClass::Loopback));
        assert_eq!(policy.check(ip("fd00:2::5")), Err(AddressClass::Private));
    }
}
