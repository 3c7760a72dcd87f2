//! The command line of `mock-llm`: where it listens and how every answer
//! behaves unless a request says otherwise (`script.rs` applies the
//! per-request overrides on top of these defaults).

use clap::Parser;

/// mock-llm — a language-model server for chatbox's tests, benchmarks and
/// local development: the OpenAI, Anthropic and Dify formats plus
/// transcription, scriptable per request (see docs/MOCK-LLM.md).
#[derive(Debug, Parser, Clone)]
#[command(name = "mock-llm", version)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
    pub listen: String,
    /// Milliseconds before the first chunk (per request: `x-mock-latency-ms`).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency: u64,
    /// Chunks per answer (per request: `x-mock-chunks`).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub chunks: usize,
    /// Characters per chunk; 0 splits the answer at words (per request: `x-mock-chunk-bytes`).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub chunk_bytes: usize,
    /// Milliseconds between chunks (per request: `x-mock-chunk-delay-ms`).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub chunk_delay: u64,
    /// Share of requests that fail, 0.0 to 1.0 (per request: `x-mock-fail-status`, `x-mock-fail-first`).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub fail_rate: f64,
    /// HTTP status of a failed request (a 429 also sends `Retry-After`; per request: `x-mock-retry-after`).
    #[arg(long, default_value_t = 500, value_name = "STATUS")]
    pub fail_status: u16,
    /// Require this API key: `Authorization: Bearer` (OpenAI, Dify, transcription) or `x-api-key` (Anthropic).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
}
