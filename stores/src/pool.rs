//! A small bounded connection pool shared by the adapters (the sync clients hand out
//! `&mut` connections while the store traits take `&self`).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::StoresError;

/// Connection pool bounds, shared by every adapter of this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most connections open at once (1 to 1024; default 16).
    pub max_size: usize,
    /// How long a caller waits for a free connection before failing closed (default 5 s).
    pub wait: Duration,
    /// Connect timeout and per-command timeout (default 5 s).
    pub timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 16,
            wait: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
        }
    }
}

impl PoolConfig {
    pub(crate) fn check(&self) -> Result<(), StoresError> {
        if !(1..=1024).contains(&self.max_size) {
            return Err(StoresError::Config(
                "pool max_size must lie between 1 and 1024",
            ));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(300) {
            return Err(StoresError::Config(
                "pool timeout must lie between 1 ms and 300 s",
            ));
        }
        if self.wait > Duration::from_secs(300) {
            return Err(StoresError::Config("pool wait must be at most 300 s"));
        }
        Ok(())
    }
}

type Connect<C> = Box<dyn Fn() -> Result<C, StoresError> + Send + Sync>;

struct State<C> {
    idle: Vec<C>,
    /// Connections handed out or idle.
    open: usize,
}

pub(crate) struct Pool<C> {
    state: Mutex<State<C>>,
    freed: Condvar,
    config: PoolConfig,
    connect: Connect<C>,
}

impl<C> Pool<C> {
    pub(crate) fn new(config: PoolConfig, connect: Connect<C>) -> Result<Self, StoresError> {
        config.check()?;
        Ok(Self {
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            config,
            connect,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // The state is two plain fields updated without a panic point in between.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection, opened if none is idle and the bound allows; waits at most
    /// `config.wait` for one to be returned.
    pub(crate) fn get(&self) -> Result<Pooled<'_, C>, StoresError> {
        let deadline = Instant::now() + self.config.wait;
        let mut st = self.lock();
        loop {
            if let Some(conn) = st.idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if st.open < self.config.max_size {
                st.open += 1;
                drop(st);
                return match (self.connect)() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.release_slot();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoresError::PoolExhausted {
                    max: self.config.max_size,
                    waited_ms: u64::try_from(self.config.wait.as_millis()).unwrap_or(u64::MAX),
                });
            }
            st = self
                .freed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn release_slot(&self) {
        let mut st = self.lock();
        st.open = st.open.saturating_sub(1);
        drop(st);
        self.freed.notify_one();
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.lock().open
    }
}

/// A connection on loan. Returned to the pool on drop unless [`Pooled::discard`]ed
/// (after an I/O error, a connection is never reused).
pub(crate) struct Pooled<'a, C> {
    pool: &'a Pool<C>,
    conn: Option<C>,
}

impl<C> Pooled<'_, C> {
    pub(crate) fn conn(&mut self) -> Result<&mut C, StoresError> {
        self.conn
            .as_mut()
            .ok_or(StoresError::Backend("connection already discarded".into()))
    }

    /// Closes the connection instead of returning it to the pool.
    pub(crate) fn discard(mut self) {
        if self.conn.take().is_some() {
            self.pool.release_slot();
        }
    }
}

impl<C> Drop for Pooled<'_, C> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut st = self.pool.lock();
            st.idle.push(conn);
            drop(st);
            self.pool.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn pool(max: usize, wait_ms: u64) -> Pool<usize> {
        let n = AtomicUsize::new(0);
        Pool::new(
            PoolConfig {
                max_size: max,
                wait: Duration::from_millis(wait_ms),
                timeout: Duration::from_secs(1),
            },
            Box::new(move || Ok(n.fetch_add(1, Ordering::Relaxed))),
        )
        .unwrap()
    }

    #[test]
    fn reuses_idle_connections() {
        let p = pool(2, 10);
        let a = p.get().unwrap();
        drop(a);
        let mut b = p.get().unwrap();
        assert_eq!(*b.conn().unwrap(), 0, "the idle connection is reused");
        assert_eq!(p.open_connections(), 1);
    }

    #[test]
    fn bounded_and_fails_closed_when_exhausted() {
        let p = pool(2, 10);
        let _a = p.get().unwrap();
        let _b = p.get().unwrap();
        assert!(matches!(
            p.get(),
            Err(StoresError::PoolExhausted { max: 2, .. })
        ));
        assert_eq!(p.open_connections(), 2);
    }

    #[test]
    fn discarded_connections_free_their_slot() {
        let p = pool(1, 10);
        let a = p.get().unwrap();
        a.discard();
        assert_eq!(p.open_connections(), 0);
        let mut b = p.get().unwrap();
        assert_eq!(
            *b.conn().unwrap(),
            1,
            "a new connection replaces the discarded one"
        );
    }

    #[test]
    fn failed_connect_frees_its_slot() {
        let p: Pool<usize> = Pool::new(
            PoolConfig::default(),
            Box::new(|| Err(StoresError::Connect("refused".into()))),
        )
        .unwrap();
        assert!(matches!(p.get(), Err(StoresError::Connect(_))));
        assert_eq!(p.open_connections(), 0);
    }

    #[test]
    fn config_bounds_are_checked() {
        let c = PoolConfig {
            max_size: 0,
            ..PoolConfig::default()
        };
        assert!(matches!(c.check(), Err(StoresError::Config(_))));
        let c = PoolConfig {
            timeout: Duration::ZERO,
            ..PoolConfig::default()
        };
        assert!(matches!(c.check(), Err(StoresError::Config(_))));
    }
}
