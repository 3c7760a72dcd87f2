//! `[chatbox.log]` and `[chatbox.telemetry]`: what the process logs and
//! in which format, and where its traces go.
//!
//! `RUST_LOG` overrides `chatbox.log.level`; `OTEL_EXPORTER_OTLP_ENDPOINT`
//! and `OTEL_SERVICE_NAME` set the telemetry keys.

use serde::{Deserialize, Serialize};

use super::problems::Problems;

/// `[chatbox.log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a full filter like
    /// `info,chatbox_gateway=debug` (`RUST_LOG` overrides it).
    pub level: String,
    /// `json`, `text`, or `auto` (text on a terminal, JSON otherwise).
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "auto".into(),
        }
    }
}

/// `[chatbox.telemetry]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/HTTP endpoint for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`); empty
    /// disables tracing export.
    pub otlp_endpoint: String,
    /// `service.name` of exported traces.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: String::new(),
            service_name: "chatbox".into(),
        }
    }
}

impl LogConfig {
    /// The format is one the subscriber knows.
    pub(super) fn check(&self, p: &mut Problems) {
        p.check(
            matches!(self.format.as_str(), "auto" | "json" | "text"),
            "chatbox.log.format",
            || format!("{:?} must be auto, json or text", self.format),
        );
    }
}
