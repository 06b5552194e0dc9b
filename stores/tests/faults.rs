//! Fault tests: servers and processes killed in the middle of work. Nothing acknowledged
//! may be lost and nothing may be let in.
//!
//! Each test starts its OWN server (redis-server, or an initdb + pg_ctl PostgreSQL
//! cluster run as user `postgres`) on an ephemeral loopback port and removes it after;
//! the shared servers of `.ci/services.sh` are never touched. Without the binaries the
//! tests skip loudly (and fail when `CI` is set).
#![cfg(all(
    feature = "redis-async",
    feature = "postgres-async",
    feature = "sqlite"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use handoff_core::replay::{ReplayKey, ReplayLog, ReplayVerdict};
use handoff_core::replay_async::AsyncReplayLog;
use handoff_core::{HmacSecret, UnixTime};
use handoff_refresh::{FamilyStore, Outcome, Policy, RefreshFamilies, rotate, start};
use handoff_stores::PoolConfig;
use handoff_stores::pg::PgStore;
use handoff_stores::redis::RedisReplayLog;
use handoff_stores::sqlite::{SqliteConfig, SqliteStore};

/// A missing binary: skip loudly, or fail in CI.
fn missing(what: &str, test: &str) {
    // Loud skip (one line on the real stderr, counted by `.ci/test`), a failure under CI.
    handoff_test_support::skip(
        &format!("handoff-stores faults ({test})"),
        &format!("{what} is missing"),
        "source .ci/services.sh",
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn on_path(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < end,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// Redis

/// A redis-server of this test: append-only file fsynced on every write (so an
/// acknowledged SET survives a SIGKILL), in a directory under /dev/shm when available.
struct OwnRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(test: &str) -> Option<Self> {
        if !on_path("redis-server") {
            missing("redis-server", test);
            return None;
        }
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(common::unique("stores_fault_redis"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self {
            port: free_port(),
            dir,
            child: None,
        };
        r.spawn();
        Some(r)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = self.url();
        wait_for("redis-server start", Duration::from_secs(20), || {
            redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const CHECKS: usize = 100_000;

/// Key `i` of the run: 10% of the checks repeat an earlier key.
fn key_index(i: usize) -> usize {
    let j = if i % 10 == 9 { i - 5 } else { i };
    j - j / 10
}

/// What one run of 100 000 checks saw.
#[derive(Default)]
struct Tally {
    fresh: HashMap<usize, usize>,
    ok: usize,
    errors: usize,
    errors_while_down: usize,
    ok_while_down: usize,
    ok_after_restart: usize,
}

/// One replay check through the log under test.
type Check = dyn Fn(&ReplayKey) -> Result<ReplayVerdict, String> + Send + Sync;

/// Runs the checks on `workers` threads through `check`, killing the server after a
/// third of them and restarting it a second later.
fn redis_outage(redis: &mut OwnRedis, workers: usize, check: Arc<Check>) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (next, down, restarted, tally, check) = (
                Arc::clone(&next),
                Arc::clone(&down),
                Arc::clone(&restarted),
                Arc::clone(&tally),
                Arc::clone(&check),
            );
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= CHECKS {
                        return;
                    }
                    let k = key_index(i);
                    let key = ReplayKey::derive("stores/fault", &[&k.to_be_bytes()]);
                    let was_down = down.load(Ordering::SeqCst);
                    let res = check(&key);
                    let still_down = down.load(Ordering::SeqCst);
                    let mut t = tally.lock().unwrap();
                    match res {
                        Ok(v) => {
                            t.ok += 1;
                            if was_down && still_down {
                                t.ok_while_down += 1;
                            }
                            if restarted.load(Ordering::SeqCst) {
                                t.ok_after_restart += 1;
                            }
                            if v == ReplayVerdict::Fresh {
                                *t.fresh.entry(k).or_default() += 1;
                            }
                        }
                        Err(_) => {
                            t.errors += 1;
                            if was_down && still_down {
                                t.errors_while_down += 1;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    wait_for("a third of the checks", Duration::from_secs(300), || {
        next.load(Ordering::Relaxed) >= CHECKS / 3
    });
    redis.kill();
    down.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    down.store(false, Ordering::SeqCst);
    redis.spawn();
    restarted.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }
    Arc::try_unwrap(tally)
        .ok()
        .expect("workers are done")
        .into_inner()
        .unwrap()
}

fn assert_outage(t: &Tally, label: &str) {
    eprintln!(
        "{label}: ok {} errors {} (while down: {} errors, {} ok), ok after restart {}",
        t.ok, t.errors, t.errors_while_down, t.ok_while_down, t.ok_after_restart
    );
    let dup = t.fresh.iter().find(|(_, n)| **n > 1);
    assert!(dup.is_none(), "{label}: a key was accepted twice: {dup:?}");
    assert_eq!(t.ok_while_down, 0, "{label}: a check succeeded while down");
    assert!(
        t.errors_while_down > 0,
        "{label}: no check ran during the outage"
    );
    assert!(
        t.ok_after_restart > 1_000,
        "{label}: checks did not recover after the restart"
    );
    assert_eq!(t.ok + t.errors, CHECKS);
}

fn short_pool() -> PoolConfig {
    PoolConfig::with_max_size(8)
        .wait(Duration::from_millis(500))
        .timeout(Duration::from_millis(500))
}

#[test]
fn redis_killed_mid_hundred_thousand_checks_sync() {
    let test = "redis_killed_mid_hundred_thousand_checks_sync";
    let Some(mut redis) = OwnRedis::start(test) else {
        return;
    };
    let log = RedisReplayLog::builder(redis.url(), "fault:sync:")
        .pool(short_pool())
        .build()
        .unwrap();
    log.check_server().unwrap();
    let now = UnixTime::from_secs(common::wall_secs());
    let log = Arc::new(log);
    let t = redis_outage(
        &mut redis,
        8,
        Arc::new(move |k| {
            log.check_and_insert(k, now.saturating_add(600), now)
                .map_err(|e| e.to_string())
        }),
    );
    assert_outage(&t, "sync");
}

#[test]
fn redis_killed_mid_hundred_thousand_checks_async() {
    let test = "redis_killed_mid_hundred_thousand_checks_async";
    let Some(mut redis) = OwnRedis::start(test) else {
        return;
    };
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let log = {
        let _g = rt.enter();
        RedisReplayLog::builder(redis.url(), "fault:async:")
            .pool(short_pool())
            .build_async()
            .unwrap()
    };
    let now = UnixTime::from_secs(common::wall_secs());
    let rt2 = Arc::clone(&rt);
    let t = redis_outage(
        &mut redis,
        8,
        Arc::new(move |k| {
            rt2.block_on(log.check_and_insert(k, now.saturating_add(600), now))
                .map_err(|e| e.to_string())
        }),
    );
    assert_outage(&t, "async");
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

/// A PostgreSQL cluster of this test (initdb + pg_ctl as user `postgres`).
struct OwnPg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl OwnPg {
    fn start(test: &str) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
            let mut v: Vec<PathBuf> = d
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|p| p.join("initdb").exists())
                .collect();
            v.sort();
            v.pop()
        });
        let Some(bin) = bin.filter(|_| on_path("runuser")) else {
            missing(
                "postgresql server binaries (initdb, pg_ctl) and runuser",
                test,
            );
            return None;
        };
        let dir = std::env::temp_dir().join(common::unique("stores_fault_pg"));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown postgres {dir:?} failed (run as root)");
        let pg = Self {
            bin,
            dir,
            port: free_port(),
        };
        let out = pg
            .as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(pg.dir.join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.ctl(&["start"]);
        Some(pg)
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
        c.stdout(Stdio::null());
        c
    }

    fn ctl(&self, args: &[&str]) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=on",
            self.port,
            self.dir.display()
        );
        let out = self
            .as_postgres("pg_ctl")
            .args(args)
            .args(["-w", "-t", "60", "-D"])
            .arg(self.dir.join("data"))
            .args(["-l"])
            .arg(self.dir.join("log"))
            .args(["-o", &opts])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.dir.join("data"))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Rounds of 8 threads racing on one fresh family each, while the server is restarted
/// (crash-like, `-m immediate`) in the middle: never two rotations of one family, every
/// acknowledged family and rotation present afterwards, and the pool recovers by itself.
#[test]
fn postgres_restarted_mid_rotation_race() {
    let test = "postgres_restarted_mid_rotation_race";
    let Some(pg) = OwnPg::start(test) else {
        return;
    };
    let store = Arc::new({
        let s = PgStore::connect(
            &pg.url(),
            "stores_fault",
            PoolConfig::with_max_size(8)
                .wait(Duration::from_secs(2))
                .timeout(Duration::from_secs(2)),
        )
        .unwrap();
        s.migrate().unwrap();
        s
    });
    let families = Arc::new(store.family_store());
    let master = HmacSecret::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
    let engine = Arc::new(RefreshFamilies::new(
        &master,
        Policy::builder()
            .grace_window(30)
            .grace_max_uses(100)
            .attempts(10)
            .build()
            .unwrap(),
    ));
    const ROUNDS: usize = 60;
    const THREADS: usize = 8;
    let t0 = UnixTime::from_secs(1_700_000_000);
    let restarter = {
        let bin = pg.bin.clone();
        let (dir, port) = (pg.dir.clone(), pg.port);
        let go = Arc::new(AtomicBool::new(false));
        let go2 = Arc::clone(&go);
        let h = std::thread::spawn(move || {
            while !go2.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let tmp = OwnPg { bin, dir, port };
            tmp.ctl(&["restart", "-m", "immediate"]);
            std::mem::forget(tmp); // the test's OwnPg owns the cluster
        });
        (go, h)
    };
    let mut acked = Vec::new(); // (family, Some(successor id) when a rotation was issued)
    let mut rotations_per_round = Vec::new();
    let mut start_errors = 0;
    for round in 0..ROUNDS {
        if round == 15 {
            restarter.0.store(true, Ordering::SeqCst);
        }
        // Start a family; during the outage this fails closed and is retried.
        let login = loop {
            match start(
                &*families,
                &engine,
                &format!("r{round}"),
                "c",
                t0,
                &mut rand_core::UnwrapErr(getrandom::SysRng),
            ) {
                Ok(l) => break l,
                Err(e) => {
                    start_errors += 1;
                    assert!(start_errors < 600, "start never recovered: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let token = Arc::new(login.token.expose_secret().to_owned());
        let barrier = Arc::new(Barrier::new(THREADS));
        let outs: Vec<String> = (0..THREADS)
            .map(|_| {
                let (families, engine, token, barrier) = (
                    Arc::clone(&families),
                    Arc::clone(&engine),
                    Arc::clone(&token),
                    Arc::clone(&barrier),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    match rotate(
                        &*families,
                        &engine,
                        &token,
                        t0.saturating_add(60),
                        &mut rand_core::UnwrapErr(getrandom::SysRng),
                    ) {
                        Ok(Outcome::Issued(i)) => format!(
                            "{} {}",
                            if i.grace { "grace" } else { "rotation" },
                            i.token.id().to_base64url()
                        ),
                        Ok(Outcome::Refused(r)) => format!("refused {}", r.error.reason()),
                        Ok(_) => "other".into(),
                        Err(e) => format!("error {}", e.reason()),
                    }
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let rotations: Vec<&String> = outs.iter().filter(|o| o.starts_with("rotation")).collect();
        assert!(
            rotations.len() <= 1,
            "round {round}: two rotations of one family: {outs:?}"
        );
        let issued: Vec<&str> = outs
            .iter()
            .filter(|o| o.starts_with("rotation") || o.starts_with("grace"))
            .filter_map(|o| o.split(' ').nth(1))
            .collect();
        assert!(
            issued.windows(2).all(|w| w[0] == w[1]),
            "round {round}: two successors: {outs:?}"
        );
        assert!(
            outs.iter().all(|o| o.starts_with("rotation")
                || o.starts_with("grace")
                || o.starts_with("error")),
            "round {round}: unexpected outcome {outs:?}"
        );
        rotations_per_round.push(rotations.len());
        acked.push((login.family, issued.first().map(|s| (*s).to_owned())));
    }
    restarter.1.join().unwrap();
    eprintln!("rotations per round: {rotations_per_round:?}");
    // The pool recovered by itself: the last rounds rotate normally.
    assert!(
        rotations_per_round[ROUNDS - 10..].iter().all(|n| *n == 1),
        "the pool did not recover: {rotations_per_round:?}"
    );
    // Nothing acknowledged was lost.
    for (family, successor) in &acked {
        let fam = families
            .load_family(*family)
            .unwrap()
            .expect("an acknowledged family is never lost");
        if let Some(s) = successor {
            assert_eq!(
                &fam.head.to_base64url(),
                s,
                "an acknowledged rotation was lost"
            );
            assert_eq!(fam.head_generation, 1);
        } else {
            assert!(fam.head_generation <= 1);
        }
    }
}

// ---------------------------------------------------------------------------------------
// SQLite

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A process rotating families in one SQLite file is killed with SIGKILL in the middle
/// of its rotations while a second process writes to the same file: every rotation that
/// returned success is there after reopening, `PRAGMA integrity_check` passes, and the
/// second process never waited longer than the busy timeout.
#[test]
fn sqlite_holder_sigkilled_mid_rotations() {
    let dir = std::env::temp_dir().join(common::unique("stores_fault_sqlite"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fault.db");
    drop(SqliteStore::open(&path, SqliteConfig::default()).unwrap());
    const BUSY_MS: u64 = 2_000;
    let master = HmacSecret::generate(&mut rand_core::UnwrapErr(getrandom::SysRng));
    let worker = |mode: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stores-race-worker"));
        c.env("STORES_RACE_MODE", mode)
            .env("STORES_SQLITE_PATH", &path)
            .env("STORES_SQLITE_BUSY_MS", BUSY_MS.to_string())
            .env("STORES_RACE_MASTER", hex(master.expose_secret()))
            .env("STORES_RACE_THREADS", "4")
            .env("STORES_PROBE_MS", "4000")
            .stdout(Stdio::piped());
        c
    };
    let mut holder = worker("chain").spawn().unwrap();
    let probe = worker("probe").spawn().unwrap();
    let acks: Arc<Mutex<HashMap<String, (u64, String)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let reader = {
        let out = holder.stdout.take().unwrap();
        let (acks, count) = (Arc::clone(&acks), Arc::clone(&count));
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let p: Vec<&str> = line.split(' ').collect();
                if p.len() == 4 && p[0] == "ack" {
                    let generation: u64 = p[2].parse().unwrap();
                    acks.lock()
                        .unwrap()
                        .insert(p[1].to_owned(), (generation, p[3].to_owned()));
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    // At least 200 acknowledged rotations, and every one of the four chains among them (on
    // a loaded machine one thread may start late: kill only once each has acknowledged).
    wait_for(
        "200 acknowledged rotations from all four chains",
        Duration::from_secs(120),
        || count.load(Ordering::SeqCst) >= 200 && acks.lock().unwrap().len() == 4,
    );
    std::thread::sleep(Duration::from_millis(300));
    holder.kill().unwrap(); // SIGKILL, mid-rotation
    holder.wait().unwrap();
    reader.join().unwrap();
    let probe_out = probe.wait_with_output().unwrap();
    assert!(probe_out.status.success());
    let probe_line = String::from_utf8(probe_out.stdout).unwrap();
    let p: Vec<&str> = probe_line.split_whitespace().collect();
    assert_eq!(p.first(), Some(&"probe"), "{probe_line}");
    let (ops, errors, max_ms): (u64, u64, u64) = (
        p[1].parse().unwrap(),
        p[2].parse().unwrap(),
        p[3].parse().unwrap(),
    );
    eprintln!(
        "holder: {} acknowledged rotations; probe: {ops} writes, {errors} busy errors, longest wait {max_ms} ms",
        count.load(Ordering::SeqCst)
    );
    assert!(ops > 0);
    // One busy wait plus one statement: never blocked past the busy timeout (with slack
    // for a loaded machine, far below "blocked forever").
    assert!(
        max_ms <= BUSY_MS + 1_500,
        "the second process waited {max_ms} ms (busy timeout {BUSY_MS} ms)"
    );

    // Reopen: every acknowledged rotation is there.
    let db = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    db.integrity_check().unwrap();
    let store = db.family_store();
    let acks = acks.lock().unwrap();
    assert_eq!(acks.len(), 4, "four chains ran");
    for (fam_hex, (generation, head_hex)) in acks.iter() {
        let id: [u8; 16] = (0..16)
            .map(|i| u8::from_str_radix(&fam_hex[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        let fam = store
            .load_family(handoff_refresh::FamilyId::from_bytes(id))
            .unwrap()
            .expect("an acknowledged family is there");
        // At most one rotation committed but not yet acknowledged when the kill came.
        if fam.head_generation == *generation {
            assert_eq!(&hex(fam.head.as_bytes()), head_hex);
        } else {
            assert_eq!(fam.head_generation, generation + 1, "a rotation was lost");
            assert_eq!(
                fam.head_parent.map(|p| hex(p.as_bytes())).as_deref(),
                Some(head_hex.as_str())
            );
        }
    }
    drop(store);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
