//! `NodeName` (a node as Slurm and DNS name it) and `Generation` (the version of a desired
//! configuration).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::SpecError;

/// A node's name as Slurm and DNS know it: dot-separated labels of ASCII letters, digits and
/// `-`, no label starting or ending with `-`, at most 63 bytes a label and 253 in all.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeName(String);

impl NodeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeName {
    type Err = SpecError;

    fn from_str(name: &str) -> Result<Self, SpecError> {
        let refuse = |reason: &str| Err(SpecError::new("node_name", name, reason));
        if name.is_empty() {
            return refuse("is empty");
        }
        if name.len() > 253 {
            return refuse("is longer than 253 bytes");
        }
        for label in name.split('.') {
            if label.is_empty() {
                return refuse("has an empty label (two dots, or a dot at an end)");
            }
            if label.len() > 63 {
                return refuse("has a label longer than 63 bytes");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return refuse("may hold only ASCII letters, digits, '-' and '.'");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return refuse("has a label that starts or ends with '-'");
            }
        }
        Ok(NodeName(name.to_owned()))
    }
}

impl TryFrom<String> for NodeName {
    type Error = SpecError;
    fn try_from(name: String) -> Result<Self, SpecError> {
        name.parse()
    }
}

impl From<NodeName> for String {
    fn from(name: NodeName) -> String {
        name.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version of a desired configuration. Every accepted change gets a larger one; agents
/// refuse older ones. [`Generation::ZERO`] means "no configuration yet", which is also what
/// an unset proto3 `uint64` decodes to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Generation(pub u64);

impl Generation {
    /// No configuration yet.
    pub const ZERO: Generation = Generation(0);

    /// The generation after this one.
    ///
    /// # Panics
    /// At `u64::MAX`, which one change a nanosecond would take 584 years to reach.
    pub fn next(self) -> Generation {
        Generation(
            self.0
                .checked_add(1)
                .expect("a generation counter never reaches u64::MAX"),
        )
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// True for [`Generation::ZERO`].
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl From<u64> for Generation {
    fn from(value: u64) -> Generation {
        Generation(value)
    }
}

impl From<Generation> for u64 {
    fn from(generation: Generation) -> u64 {
        generation.0
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for good in ["hpc-pg0-1", "n3", "ccw-htc-12.internal.cloudapp.net", "A1"] {
            assert_eq!(good.parse::<NodeName>().unwrap().as_str(), good);
        }
        for (bad, fragment) in [
            ("", "is empty"),
            ("-n1", "starts or ends with '-'"),
            ("n1..x", "empty label"),
            ("n 1", "only ASCII letters"),
            ("n1\n", "only ASCII letters"),
            ("nöde", "only ASCII letters"),
            ("n_1", "only ASCII letters"),
            ("n1\0", "only ASCII letters"),
            ("n1\t", "only ASCII letters"),
            ("n1.", "empty label"),
            (".n1", "empty label"),
            ("n1-", "starts or ends with '-'"),
        ] {
            let err = bad.parse::<NodeName>().unwrap_err();
            assert_eq!(err.field, "node_name");
            assert!(err.reason.contains(fragment), "{bad:?}: {err}");
        }
        let long_label = "a".repeat(64).parse::<NodeName>().unwrap_err();
        assert!(long_label.reason.contains("longer than 63"), "{long_label}");
        let long_name = vec!["a".repeat(63); 4]
            .join(".")
            .parse::<NodeName>()
            .unwrap_err();
        assert!(long_name.reason.contains("longer than 253"), "{long_name}");
        assert!(serde_json::from_str::<NodeName>("\"n 1\"").is_err());
        let name: NodeName = serde_json::from_str("\"hpc-1\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"hpc-1\"");
    }

    #[test]
    fn generations_order_and_advance() {
        assert!(Generation(3) > Generation(2));
        assert_eq!(Generation::ZERO.next(), Generation(1));
        assert!(Generation::ZERO.is_zero() && Generation::default().is_zero());
        assert_eq!(u64::from(Generation::from(9)), 9);
        assert_eq!(serde_json::to_string(&Generation(7)).unwrap(), "7");
    }
}
