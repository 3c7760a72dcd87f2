//! The `mock-llm` binary: reads the flags, serves the mock (the library of
//! this crate) until SIGTERM or SIGINT, then lets the answers in flight
//! finish; a second signal ends the process at once.

use std::process::ExitCode;

use chatbox_mock_llm::Args;
use clap::Parser;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mock-llm: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(chatbox_mock_llm::run(args, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-llm: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on the first SIGTERM or SIGINT; the second one exits at once
/// (a stream scripted with a long latency need not be waited for).
async fn shutdown_signal() {
    let first = wait_for_signal().await;
    eprintln!("mock-llm: {first}, shutting down (signal again to stop at once)");
    tokio::spawn(async {
        let second = wait_for_signal().await;
        eprintln!("mock-llm: {second}, stopping at once");
        std::process::exit(130);
    });
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("mock-llm: cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
