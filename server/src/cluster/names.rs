//! NATS subject and stream names, all under one deployment prefix.

/// Names of one deployment (its prefix keeps deployments and test runs apart on one NATS).
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix` (checked by `ClusterArgs::check`).
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    /// The JetStream stream that keeps recent events of every alert.
    pub fn stream(&self) -> String {
        format!("{}_events", self.prefix)
    }

    /// Events of one alert, published by its owner.
    pub fn events(&self, alert_id: &str) -> String {
        format!("{}.ev.{}", self.prefix, token(alert_id))
    }

    /// Events of every alert (the stream's subjects).
    pub fn all_events(&self) -> String {
        format!("{}.ev.>", self.prefix)
    }

    /// Requests to an alert's owner: `snap` (its snapshot), `cmd` (reload from the database),
    /// `watching` (a node's count of watchers) and `moved` (another node took it over).
    pub fn own(&self, alert_id: &str, what: &str) -> String {
        format!("{}.own.{}.{what}", self.prefix, token(alert_id))
    }

    /// Console updates, to every node.
    pub fn console(&self) -> String {
        format!("{}.console", self.prefix)
    }

    /// Withdrawn credentials, to every node.
    pub fn revoked(&self) -> String {
        format!("{}.revoked", self.prefix)
    }

    /// Messages for people's phones, to every node.
    pub fn user(&self) -> String {
        format!("{}.user", self.prefix)
    }
}

/// An id as one subject token: ids are UUIDs; anything that could split or widen a subject
/// (`.`, `*`, `>`, whitespace) is replaced.
fn token(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_one_token() {
        let n = Names::new("t1");
        assert_eq!(n.events("0190-ab"), "t1.ev.0190-ab");
        assert_eq!(n.own("a.b>*c d", "snap"), "t1.own.a_b__c_d.snap");
    }
}
