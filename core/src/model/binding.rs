use serde::Serialize;

/// A `network/domain` pair, the unit an instance serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Binding {
    pub network: String,
    pub domain: String,
}

impl Binding {
    pub fn new(network: impl Into<String>, domain: impl Into<String>) -> Self {
        Binding {
            network: network.into(),
            domain: domain.into(),
        }
    }

    /// `network/domain`, the spelling of `SERVED_DOMAINS` and of the wire.
    pub fn key(&self) -> String {
        format!("{}/{}", self.network, self.domain)
    }

    /// Parses one `SERVED_DOMAINS` entry (`^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*$`).
    pub fn parse_served(entry: &str) -> Result<Binding, String> {
        let invalid =
            || format!("Invalid SERVED_DOMAINS entry \"{entry}\". Expected \"network/domain\".");
        let (network, domain) = entry.split_once('/').ok_or_else(invalid)?;
        if is_identifier(network) && is_identifier(domain) {
            Ok(Binding::new(network, domain))
        } else {
            Err(invalid())
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// The bindings this instance serves, in configuration order, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedBindings(Vec<Binding>);

impl ServedBindings {
    pub fn new(bindings: impl IntoIterator<Item = Binding>) -> Self {
        let mut unique: Vec<Binding> = Vec::new();
        for binding in bindings {
            if !unique.contains(&binding) {
                unique.push(binding);
            }
        }
        ServedBindings(unique)
    }

    /// Parses the comma list of `SERVED_DOMAINS`; empty entries are skipped.
    pub fn parse(list: &str) -> Result<Self, String> {
        let bindings = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(Binding::parse_served)
            .collect::<Result<Vec<_>, _>>()?;
        if bindings.is_empty() {
            return Err("SERVED_DOMAINS must list at least one \"network/domain\"".to_string());
        }
        Ok(ServedBindings::new(bindings))
    }

    pub fn contains(&self, network: &str, domain: &str) -> bool {
        self.0
            .iter()
            .any(|b| b.network == network && b.domain == domain)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.0.iter()
    }

    /// Distinct networks, in order of first appearance.
    pub fn networks(&self) -> Vec<String> {
        distinct(self.0.iter().map(|b| b.network.clone()))
    }

    /// Distinct domains, in order of first appearance.
    pub fn domains(&self) -> Vec<String> {
        distinct(self.0.iter().map(|b| b.domain.clone()))
    }
}

fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_served_domains_and_drops_duplicates() {
        let served =
            ServedBindings::parse(" yellow_dot/student, yellow_dot/tutor,,yellow_dot/student ")
                .expect("valid list");
        let keys: Vec<String> = served.iter().map(Binding::key).collect();
        assert_eq!(keys, vec!["yellow_dot/student", "yellow_dot/tutor"]);
        assert_eq!(served.networks(), vec!["yellow_dot"]);
        assert_eq!(served.domains(), vec!["student", "tutor"]);
    }

    #[test]
    fn rejects_malformed_entries_with_the_reference_message() {
        for bad in [
            "Yellow/student",
            "yellow_dot",
            "yellow_dot/",
            "/student",
            "a/b/c",
            "1a/b",
        ] {
            let err = ServedBindings::parse(bad).expect_err(bad);
            assert!(err.contains("Expected \"network/domain\""), "{bad}: {err}");
        }
        assert!(ServedBindings::parse(" , ").is_err());
    }
}
