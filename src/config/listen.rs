//! `IP:port` listen addresses in config.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The schema pattern for listen addresses: an IPv4 or bracketed IPv6 address and a port.
pub const LISTEN_PATTERN: &str = r"^([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$";

/// A socket address to listen on, written `IP:port` (for example `0.0.0.0:8080` or `[::]:8080`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

impl From<([u8; 4], u16)> for ListenAddr {
    fn from(value: ([u8; 4], u16)) -> Self {
        Self(SocketAddr::from(value))
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<SocketAddr>()
            .map(ListenAddr)
            .map_err(|_| format!("invalid listen address {s:?}; use IP:port, e.g. \"0.0.0.0:8080\""))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ListenAddr {
    fn schema_name() -> Cow<'static, str> {
        "ListenAddr".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": LISTEN_PATTERN,
            "description": "IP:port, for example \"0.0.0.0:8080\" or \"[::]:8080\".",
        })
    }
}
