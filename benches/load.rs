//! Load benchmarks for the performance budget (docs/BENCHMARKS.md#performance-budget): a harness that
//! prints numbers, never a pass/fail test.
//!
//! It deploys the scaled roles — one gateway, one worker, the mock LLM
//! (`mock-llm`, built first: `cargo build --release -p chatbox-mock-llm`)
//! answering 20 chunks of 16 bytes with no latency — against the real
//! Redis and NATS (as the system tests find them), then measures from a
//! client in this process, on the same machine:
//!
//! * `idle`  — gateway memory per idle authenticated connection;
//! * `turns` — saturated turns/s with closed-loop clients, and latency;
//! * `rate`  — latency and server CPU per 1000 turns at a fixed rate.
//!
//! ```text
//! cargo build --release -p chatbox-mock-llm     # the mock the benchmark starts
//! cargo bench --bench load                      # all three, default sizes
//! cargo bench --bench load -- idle --connections 15000
//! cargo bench --bench load -- rate --rate 650 --clients 200 --seconds 20
//! cargo bench --bench load -- turns --no-merge  # chunk window 0: a frame per model event
//! ```

// A harness: a failed unwrap stops the run, with its place.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

#[path = "../tests/system/support.rs"]
mod support;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use support::*;

#[derive(Debug, Clone)]
struct Options {
    scenarios: Vec<String>,
    connections: usize,
    clients: usize,
    seconds: u64,
    rate: u64,
    /// One frame per model event (the worker's `chunk_window` at 0).
    no_merge: bool,
}

fn options() -> Options {
    let mut o = Options {
        scenarios: Vec::new(),
        connections: 10_000,
        clients: 200,
        seconds: 15,
        rate: 650,
        no_merge: false,
    };
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--connections" => o.connections = value("--connections") as usize,
            "--clients" => o.clients = value("--clients") as usize,
            "--seconds" => o.seconds = value("--seconds"),
            "--rate" => o.rate = value("--rate"),
            "--no-merge" => o.no_merge = true,
            "idle" | "turns" | "rate" => o.scenarios.push(arg),
            other => panic!("unknown argument {other:?} (scenarios: idle, turns, rate)"),
        }
    }
    if o.scenarios.is_empty() {
        o.scenarios = vec!["idle".into(), "turns".into(), "rate".into()];
    }
    o
}

#[allow(
    unsafe_code,
    reason = "getrlimit/setrlimit have no safe wrapper in std; the struct is ours"
)]
fn raise_fd_limit() -> u64 {
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used, in seconds.
#[allow(
    unsafe_code,
    reason = "sysconf has no safe wrapper in std; it only reads a constant"
)]
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Processes whose command name is `name`.
fn pids_named(name: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
        .collect()
}

struct Deployment {
    _ns: TestNamespace,
    gateway: Proc,
    worker: Proc,
    mock: Proc,
}

async fn deploy(o: &Options) -> Deployment {
    let ns = TestNamespace::new();
    let dir = log_dir(&ns.name);
    // One worker on SQLite: the benchmark measures chatbox, not a database
    // server (the MongoDB stand-in is a Python process).
    let mut env = backplane_env(&ns);
    env.extend(
        [
            ("CHATBOX_STORE_KIND", "sqlite"),
            ("CHATBOX_BLOB_KIND", "local"),
            ("CHATBOX_DATA_DIR", &dir.join("data").display().to_string()),
            ("ENCRYPTION_KEY", ENCRYPTION_KEY),
            ("RUST_LOG", "warn"),
            ("RATE_LIMIT", "1000000"),
            ("MAX_CONNECTIONS", "1000000"),
            ("CHATBOX_GATEWAY_OWNER_TTL", "30s"),
            ("CHATBOX_GATEWAY_OWNER_RENEW_INTERVAL", "10s"),
            ("CHATBOX_WORKER_ACK_WAIT", "30s"),
            ("CHATBOX_WORKER_MAX_CONCURRENT_TURNS", "1024"),
            (
                "CHATBOX_WORKER_CHUNK_WINDOW",
                if o.no_merge { "0ms" } else { "10ms" },
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let mock = start_mock(&dir, "mock", &["--chunks", "20", "--chunk-bytes", "16"]).await;
    let config = provider_config(&dir, "worker", &mock.addr);
    let worker = start_worker(&dir, &env, "worker", Some(&config)).await;
    let gateway = start_gateway(&dir, &env, "gateway").await;
    Deployment {
        _ns: ns,
        gateway,
        worker,
        mock,
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: &str, user: &str) -> Socket {
    let url = format!("ws://{addr}/chat/ws?token={}", token(user, &[]));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    // The first frame is the connection status.
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("connection_status") => return ws,
            Some(Ok(_)) => {}
            other => panic!("no connection status: {other:?}"),
        }
    }
}

async fn connect_many(addr: &str, prefix: &str, n: usize) -> Vec<Socket> {
    let addr = Arc::new(addr.to_owned());
    futures_util::stream::iter(0..n)
        .map(|i| {
            let addr = Arc::clone(&addr);
            let user = format!("{prefix}-{i}");
            async move { connect(&addr, &user).await }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

fn is_final(frame: &str) -> bool {
    frame.contains("\"done\":true")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn idle(dep: &Deployment, o: &Options) {
    let pid = dep.gateway.pid();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    let sockets = connect_many(&dep.gateway.addr, "idle", o.connections).await;
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before) as f64 * 1024.0) / o.connections as f64;
    println!(
        "idle: {} authenticated connections opened in {:.1}s",
        sockets.len(),
        connect_time.as_secs_f64()
    );
    println!(
        "idle: gateway RSS {} KiB -> {} KiB: {:.0} bytes ({:.2} KiB) per idle connection",
        before,
        after,
        per,
        per / 1024.0
    );
    drop(sockets);
    tokio::time::sleep(Duration::from_secs(2)).await;
}

struct CpuSnapshot(Vec<(String, i32, f64)>);

impl CpuSnapshot {
    fn take(dep: &Deployment) -> Self {
        let mut procs = vec![
            ("gateway".to_owned(), dep.gateway.pid()),
            ("worker".to_owned(), dep.worker.pid()),
            ("mock-llm".to_owned(), dep.mock.pid()),
        ];
        procs.extend(
            pids_named("nats-server")
                .into_iter()
                .map(|p| ("nats-server".to_owned(), p)),
        );
        procs.extend(
            pids_named("redis-server")
                .into_iter()
                .map(|p| ("redis-server".to_owned(), p)),
        );
        CpuSnapshot(procs.into_iter().map(|(n, p)| (n, p, cpu_seconds(p))).collect())
    }

    fn report(&self, later: &CpuSnapshot, turns: u64) {
        let per_1000 = |name: &str| -> f64 {
            let used: f64 = self
                .0
                .iter()
                .zip(&later.0)
                .filter(|((n, ..), _)| n == name)
                .map(|((_, _, a), (_, _, b))| b - a)
                .sum();
            used * 1000.0 / turns.max(1) as f64
        };
        let chatbox = per_1000("gateway") + per_1000("worker");
        println!(
            "      CPU-s per 1000 turns: chatbox {:.3} (gateway {:.3}, worker {:.3}); backplane: nats {:.3}, redis {:.3}; mock-llm {:.3}",
            chatbox,
            per_1000("gateway"),
            per_1000("worker"),
            per_1000("nats-server"),
            per_1000("redis-server"),
            per_1000("mock-llm"),
        );
    }
}

async fn closed_loop(dep: &Deployment, o: &Options) {
    let sockets = connect_many(&dep.gateway.addr, "loop", o.clients).await;
    let running = Arc::new(AtomicBool::new(true));
    let measuring = Arc::new(AtomicBool::new(false));
    let turns = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (c, mut ws) in sockets.into_iter().enumerate() {
        let (running, measuring, turns) = (running.clone(), measuring.clone(), turns.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while running.load(Ordering::Relaxed) {
                n += 1;
                let frame = format!(r#"{{"type":"user_message","id":"c{c}-{n}","content":"hello"}}"#);
                let sent = Instant::now();
                ws.send(Message::text(frame)).await.expect("send");
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if is_final(&t) => break,
                        Some(Ok(_)) => {}
                        other => panic!("socket ended: {other:?}"),
                    }
                }
                if measuring.load(Ordering::Relaxed) {
                    latencies.push(sent.elapsed());
                    turns.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = CpuSnapshot::take(dep);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu_after = CpuSnapshot::take(dep);
    running.store(false, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("client"));
    }
    latencies.sort_unstable();
    let done = turns.load(Ordering::Relaxed);
    println!(
        "turns: {} closed-loop clients, {:.0}s: {} turns, {:.0} turns/s; latency p50 {}, p99 {}, max {}",
        o.clients,
        elapsed.as_secs_f64(),
        done,
        done as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );
    cpu.report(&cpu_after, done);
}

async fn open_loop(dep: &Deployment, o: &Options) {
    let sockets = connect_many(&dep.gateway.addr, "rate", o.clients).await;
    let interval = Duration::from_secs_f64(o.clients as f64 / o.rate as f64);
    let deadline = Instant::now() + Duration::from_secs(2 + o.seconds);
    let measure_from = Instant::now() + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for (c, ws) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let sent_at: Arc<std::sync::Mutex<VecDeque<Instant>>> = Arc::default();
        let writer_times = Arc::clone(&sent_at);
        let offset = interval.mul_f64(c as f64 / o.clients as f64);
        let writer = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                n += 1;
                locked(&writer_times).push_back(Instant::now());
                let frame = format!(r#"{{"type":"user_message","id":"r{c}-{n}","content":"hello"}}"#);
                sink.send(Message::text(frame)).await.expect("send");
            }
            (sink, n)
        });
        let reader = tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut received = 0u64;
            loop {
                let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
                match next {
                    Ok(Some(Ok(Message::Text(t)))) if is_final(&t) => {
                        received += 1;
                        let sent = locked(&sent_at).pop_front().expect("a send for every answer");
                        if sent >= measure_from && sent < deadline {
                            latencies.push(sent.elapsed());
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
                if Instant::now() > deadline && locked(&sent_at).is_empty() {
                    break;
                }
            }
            (latencies, received)
        });
        tasks.push((writer, reader));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = CpuSnapshot::take(dep);
    let started = Instant::now();
    let mut latencies = Vec::new();
    let (mut sent, mut received) = (0, 0);
    let mut cpu_after = None;
    for (writer, reader) in tasks {
        let (_sink, n) = writer.await.expect("writer");
        if cpu_after.is_none() {
            cpu_after = Some((CpuSnapshot::take(dep), started.elapsed()));
        }
        sent += n;
        let (l, r) = reader.await.expect("reader");
        latencies.extend(l);
        received += r;
    }
    let (cpu_after, elapsed) = cpu_after.expect("at least one client");
    latencies.sort_unstable();
    println!(
        "rate: {} turns/s offered by {} clients for {}s: {} sent, {} answered; latency p50 {}, p99 {}, max {}",
        o.rate,
        o.clients,
        o.seconds,
        sent,
        received,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );
    cpu.report(&cpu_after, (o.rate as f64 * elapsed.as_secs_f64()) as u64);
}

fn main() {
    let o = options();
    let fds = raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let _ = http();
        println!(
            "chatbox load benchmark: {} cores, open-file limit {fds}; Redis {}, NATS {}; {}",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            redis_url(),
            nats_url(),
            if o.no_merge {
                "chunk window 0: one frame per model event"
            } else {
                "chunk window 10ms"
            },
        );
        for scenario in &o.scenarios {
            let dep = deploy(&o).await;
            match scenario.as_str() {
                "idle" => idle(&dep, &o).await,
                "turns" => closed_loop(&dep, &o).await,
                "rate" => open_loop(&dep, &o).await,
                _ => unreachable!(),
            }
        }
    });
}

/// A lock that outlives a panicked holder (the numbers it guards are still
/// good to print).
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
