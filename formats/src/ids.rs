//! Identifier newtypes, so that a run id is never passed where a workflow id belongs.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A tenant's namespace. Every module, run and event belongs to exactly one.
    Namespace
);
string_id!(
    /// The user-chosen id of a workflow; at most one run per id is open at a time.
    WorkflowId
);
string_id!(
    /// The host-chosen id of one run of a workflow.
    RunId
);
string_id!(
    /// The sha256 of a component's bytes, lowercase hex: what a run is pinned to.
    ModuleHash
);
string_id!(
    /// The name under which a workflow or activity component is registered.
    TypeName
);

impl Namespace {
    pub fn default_namespace() -> Self {
        Self("default".into())
    }
}

impl ModuleHash {
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        Self(hex::encode(Sha256::digest(bytes)))
    }
}

/// Position of an event in its run's journal, starting at 0 (the `run_started` event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

/// What a workflow holds to refer to one of its activities or timers. Handles are
/// numbered by the order in which the guest issued its commands (1, 2, …), so replay
/// gives every command the same handle again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Handle(pub u32);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Checks a user-supplied identifier (workflow id, type name, namespace): 1–200
/// characters of letters, digits and `-_.:@`. Keeps ids safe in URLs, logs and paths.
pub fn validate_name(what: &str, value: &str) -> Result<(), String> {
    const MAX: usize = 200;
    if value.is_empty() || value.len() > MAX {
        return Err(format!(
            "{what} must be 1 to {MAX} characters, got {}",
            value.len()
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:@".contains(*c)))
    {
        return Err(format!(
            "{what} {value:?} contains {bad:?}; allowed are letters, digits and - _ . : @"
        ));
    }
    // `.` and `..` pass the character check but are a path's dot segments: names
    // end up in URLs and file names, so none may look like one.
    if value.chars().all(|c| c == '.') {
        return Err(format!(
            "{what} {value:?} is only dots; choose a name with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_path_characters_and_empty() {
        assert!(validate_name("workflow id", "order-42").is_ok());
        assert!(validate_name("workflow id", "../etc/passwd").is_err());
        assert!(validate_name("workflow id", "").is_err());
        assert!(validate_name("workflow id", &"x".repeat(201)).is_err());
        assert!(validate_name("namespace", "..").is_err());
        assert!(validate_name("namespace", ".").is_err());
        assert!(validate_name("workflow id", "v1.2").is_ok());
    }

    #[test]
    fn module_hash_is_sha256_hex() {
        assert_eq!(
            ModuleHash::of(b"").0,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
