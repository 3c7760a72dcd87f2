//! The claims chatbox reads from and writes into a JWT.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// JWT claims. Every field is optional when reading, so a missing claim is
/// reported as "missing `sub`" rather than as a parse error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Roles: a list, or one space-separated string.
    #[serde(default, deserialize_with = "roles", skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Every other claim (a plan, a tier, a locale…), by name: some may go
    /// to a model as inputs (`inputs_from_claims`).
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Claims {
    /// The value of claim `name`, whichever it is: `sub`, `name`, `roles`
    /// (a list), `iss`, … or any other.
    pub fn get(&self, name: &str) -> Option<serde_json::Value> {
        match name {
            "sub" => self.sub.clone().map(Into::into),
            "name" => self.name.clone().map(Into::into),
            "roles" => Some(self.roles.clone().into()),
            "exp" => self.exp.map(Into::into),
            "nbf" => self.nbf.map(Into::into),
            "iat" => self.iat.map(Into::into),
            "iss" => self.iss.clone().map(Into::into),
            "aud" => self.aud.clone(),
            other => self.other.get(other).cloned(),
        }
    }
}

fn roles<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Roles {
        List(Vec<String>),
        Spaced(String),
    }
    Ok(match Option::<Roles>::deserialize(d)? {
        None => Vec::new(),
        Some(Roles::List(list)) => list,
        Some(Roles::Spaced(s)) => s.split_whitespace().map(str::to_owned).collect(),
    })
}
