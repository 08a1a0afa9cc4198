//! The writers' turnstile: a queue across processes for the write lock (issue #19).
//!
//! SQLite's write lock has no queue: a writer that finds it taken sleeps in its busy
//! handler and tries again, so with several processes a writer can lose the race many
//! times in a row (measured before this existed: 8 processes, p99 2.5 ms and max 66 ms
//! on tmpfs, where a set takes 10 µs). The turnstile puts the waiting in the kernel: a
//! process-shared, robust, priority-inheriting mutex in a small file of the store
//! (`.sciqlop-cache.writers`, mapped by every process that writes). A writer takes it
//! before SQLite's write lock and gives it back after its commit; an unlock with waiters
//! hands the mutex straight to the longest waiter (the kernel's priority-inheritance
//! futexes queue waiters of one priority in arrival order), so nobody sleeps while the
//! lock is free and nobody is overtaken.
//!
//! It only orders writers that use it; correctness stays SQLite's. A writer that does
//! not take it (another program, the `sqlite3` shell, a store opened without it) still
//! meets SQLite's lock and its busy handler. A holder that dies (SIGKILL) leaves the
//! mutex to the next waiter (robust mutex: `EOWNERDEAD`, then made consistent: it
//! protects no data of its own). Anything unexpected (a file that cannot be made or
//! mapped, a foreign layout, a lock error) turns the turnstile off for that store and
//! writers go back to the busy handler alone, so it never costs a write.
//!
//! Linux with glibc only (the mutex layout is glibc's, checked by a tag in the file);
//! elsewhere [`Turnstile::open`] gives `None`.

use std::path::Path;
use std::time::Duration;

/// The file that holds the mutex, in the store's directory (hidden: the foreign-store
/// check and listings leave it alone).
pub(crate) const FILE: &str = ".sciqlop-cache.writers";

/// What an attempt to enter gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// Held: [`Turnstile::leave`] must follow, on the same thread.
    Held,
    /// Not held, and the write goes on without it (this thread holds it already through
    /// another handle, or the turnstile failed and is now off).
    Skipped,
    /// Another writer kept it for the whole timeout.
    TimedOut,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) use imp::Turnstile;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) use none::Turnstile;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod none {
    use super::*;

    /// No turnstile on this platform.
    #[derive(Debug)]
    pub(crate) enum Turnstile {}

    impl Turnstile {
        pub(crate) fn open(_dir: &Path) -> Option<Turnstile> {
            None
        }
        pub(crate) fn enter(&self, _timeout: Duration) -> Entry {
            match *self {}
        }
        pub(crate) fn leave(&self) {
            match *self {}
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod imp {
    use super::*;
    use std::fs::{File, OpenOptions};
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Bytes of the file: one page.
    const LEN: usize = 4096;
    /// Where the mutex lies (aligned far beyond what `pthread_mutex_t` needs).
    const MUTEX_AT: usize = 64;
    /// The file's first bytes: a format tag naming the mutex's layout. A file with
    /// another tag (another libc or architecture) is not used.
    const TAG: [u8; 32] = {
        let mut t = *b"sciqlop-cache writers 1 ........";
        let arch = std::env::consts::ARCH.as_bytes();
        let mut i = 0;
        while i < arch.len() && 24 + i < 32 {
            t[24 + i] = arch[i];
            i += 1;
        }
        t
    };

    /// The turnstile of one store, mapped in this process.
    pub(crate) struct Turnstile {
        map: *mut u8,
        /// Set when a lock call failed in an unexpected way: writers then go without.
        off: AtomicBool,
    }

    impl std::fmt::Debug for Turnstile {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Turnstile")
                .field("off", &self.off.load(Ordering::Relaxed))
                .finish()
        }
    }

    // SAFETY: the mapping is shared memory made for use from any thread and process;
    // the only thing touched in it is the pthread mutex, through libc's thread-safe
    // calls.
    unsafe impl Send for Turnstile {}
    // SAFETY: as above.
    unsafe impl Sync for Turnstile {}

    impl Turnstile {
        /// Maps the turnstile of the store in `dir`, making its file if it is missing;
        /// `None` (writers go without) if that fails.
        pub(crate) fn open(dir: &Path) -> Option<Turnstile> {
            match open(dir) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "no writers' turnstile");
                    None
                }
            }
        }

        fn mutex(&self) -> *mut libc::pthread_mutex_t {
            // SAFETY: MUTEX_AT + size_of::<pthread_mutex_t>() < LEN, inside the mapping.
            unsafe { self.map.add(MUTEX_AT).cast() }
        }

        /// Waits at most `timeout` for the turnstile.
        pub(crate) fn enter(&self, timeout: Duration) -> Entry {
            if self.off.load(Ordering::Relaxed) {
                return Entry::Skipped;
            }
            let m = self.mutex();
            // SAFETY: `m` is an initialised process-shared mutex in a live mapping.
            let mut rc = unsafe { libc::pthread_mutex_trylock(m) };
            if rc == libc::EBUSY {
                let deadline = deadline(timeout);
                // SAFETY: as above; `deadline` is a valid timespec.
                rc = unsafe { libc::pthread_mutex_timedlock(m, &deadline) };
            }
            match rc {
                0 => Entry::Held,
                libc::EOWNERDEAD => {
                    // Its holder died: the mutex guards no data, so it is simply ours.
                    // SAFETY: this thread holds `m`, as EOWNERDEAD says.
                    if unsafe { libc::pthread_mutex_consistent(m) } == 0 {
                        Entry::Held
                    } else {
                        self.fail(libc::EOWNERDEAD)
                    }
                }
                libc::ETIMEDOUT => Entry::TimedOut,
                // This thread holds it through another handle on the same store (an
                // error-checking mutex says so instead of deadlocking).
                libc::EDEADLK => Entry::Skipped,
                rc => self.fail(rc),
            }
        }

        /// Gives the turnstile back (to the longest waiter, if any).
        pub(crate) fn leave(&self) {
            // SAFETY: called only after `enter` gave `Held` on this thread.
            let rc = unsafe { libc::pthread_mutex_unlock(self.mutex()) };
            if rc != 0 {
                self.fail(rc);
            }
        }

        fn fail(&self, rc: i32) -> Entry {
            if !self.off.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    error = %std::io::Error::from_raw_os_error(rc),
                    "writers' turnstile failed: writers wait in SQLite's busy handler instead"
                );
            }
            Entry::Skipped
        }
    }

    impl Drop for Turnstile {
        fn drop(&mut self) {
            // SAFETY: the mapping made by `open`, unmapped once. A thread of this
            // process cannot hold the mutex now: holders hold the engine too.
            unsafe { libc::munmap(self.map.cast(), LEN) };
        }
    }

    /// Now + `timeout` on the realtime clock (pthread_mutex_timedlock's clock).
    fn deadline(timeout: Duration) -> libc::timespec {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
        let t = Duration::new(
            now.tv_sec.max(0) as u64,
            now.tv_nsec.clamp(0, 999_999_999) as u32,
        )
        .saturating_add(timeout);
        libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: t.subsec_nanos().into(),
        }
    }

    fn open(dir: &Path) -> std::io::Result<Turnstile> {
        let path = dir.join(FILE);
        let file = match open_existing(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(dir, &path)?,
            Err(e) => return Err(e),
        };
        if file.metadata()?.len() < LEN as u64 {
            return Err(std::io::Error::other("the turnstile file is too short"));
        }
        let map = map(&file)?;
        // SAFETY: the mapping is LEN bytes long.
        let tag = unsafe { std::slice::from_raw_parts(map, TAG.len()) };
        if tag != TAG.as_slice() {
            // SAFETY: unmapping what `map` made.
            unsafe { libc::munmap(map.cast(), LEN) };
            return Err(std::io::Error::other(
                "the turnstile file has another layout",
            ));
        }
        Ok(Turnstile {
            map,
            off: AtomicBool::new(false),
        })
    }

    fn open_existing(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    }

    fn map(file: &File) -> std::io::Result<*mut u8> {
        // SAFETY: a fresh shared mapping of LEN bytes of an open file; the file is at
        // least LEN long (checked by the callers).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(p.cast())
    }

    /// Makes the file: a temporary one holding an initialised mutex, then linked into
    /// place (so nobody ever maps a half-made one; a racing process's link wins and
    /// this one's is dropped).
    fn create(dir: &Path, path: &Path) -> std::io::Result<File> {
        let tmp = dir.join(format!(".sciqlop-cache.writers.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let made = (|| {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            f.write_all(&[0; LEN])?;
            let map = map(&f)?;
            let rc = init_mutex(map);
            // SAFETY: the tag is written after the mutex, inside the mapping.
            unsafe { std::ptr::copy_nonoverlapping(TAG.as_ptr(), map, TAG.len()) };
            // SAFETY: unmapping what `map` made (the pages stay in the file).
            unsafe { libc::munmap(map.cast(), LEN) };
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            f.flush()?;
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        made?;
        open_existing(path)
    }

    /// Initialises a process-shared, robust, priority-inheriting, error-checking mutex at
    /// MUTEX_AT of the mapping.
    fn init_mutex(map: *mut u8) -> i32 {
        // SAFETY: `attr` is initialised by pthread_mutexattr_init before any use and
        // destroyed after; the mutex lies inside the mapping, aligned, not in use.
        unsafe {
            let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
            let a = attr.as_mut_ptr();
            let mut rc = libc::pthread_mutexattr_init(a);
            if rc != 0 {
                return rc;
            }
            for set in [
                libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED),
                libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST),
                libc::pthread_mutexattr_setprotocol(a, libc::PTHREAD_PRIO_INHERIT),
                libc::pthread_mutexattr_settype(a, libc::PTHREAD_MUTEX_ERRORCHECK),
            ] {
                if rc == 0 {
                    rc = set;
                }
            }
            if rc == 0 {
                rc = libc::pthread_mutex_init(map.add(MUTEX_AT).cast(), a);
            }
            libc::pthread_mutexattr_destroy(a);
            rc
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::sync::Arc;

        #[test]
        fn one_holder_at_a_time_and_a_timeout() {
            let dir = tempfile::tempdir().expect("test setup");
            let a = Arc::new(Turnstile::open(dir.path()).expect("made"));
            // A second mapping of the same file is the same mutex.
            let b = Turnstile::open(dir.path()).expect("mapped");
            assert_eq!(a.enter(Duration::from_secs(1)), Entry::Held);
            // The same thread again: skipped, not a deadlock.
            assert_eq!(b.enter(Duration::from_millis(10)), Entry::Skipped);
            let a2 = a.clone();
            let other = std::thread::spawn(move || a2.enter(Duration::from_millis(50)));
            assert_eq!(other.join().expect("test setup"), Entry::TimedOut);
            a.leave();
            let a2 = a.clone();
            let other = std::thread::spawn(move || {
                let e = a2.enter(Duration::from_secs(1));
                a2.leave();
                e
            });
            assert_eq!(other.join().expect("test setup"), Entry::Held);
        }

        #[test]
        fn a_holder_that_exits_leaves_it_to_the_next() {
            let dir = tempfile::tempdir().expect("test setup");
            let t = Arc::new(Turnstile::open(dir.path()).expect("made"));
            let t2 = t.clone();
            // A thread that ends holding it: the robust list hands it on.
            std::thread::spawn(move || assert_eq!(t2.enter(Duration::from_secs(1)), Entry::Held))
                .join()
                .expect("test setup");
            assert_eq!(t.enter(Duration::from_secs(1)), Entry::Held);
            t.leave();
        }

        #[test]
        fn a_file_of_another_layout_is_not_used() {
            let dir = tempfile::tempdir().expect("test setup");
            std::fs::write(dir.path().join(FILE), vec![7u8; LEN]).expect("test setup");
            assert!(Turnstile::open(dir.path()).is_none());
            std::fs::write(dir.path().join(FILE), b"short").expect("test setup");
            assert!(Turnstile::open(dir.path()).is_none());
        }
    }
}
