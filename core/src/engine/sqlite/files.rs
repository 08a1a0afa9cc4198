//! The file tier: large values live in their own files under `data/`.
//!
//! # Writing
//!
//! A value is written to a temporary file `data/tmp/<owner>-<random>.tmp` outside any
//! database lock; inside the write transaction it is renamed to its final name and the
//! row is written; the rename is undone if the transaction rolls back. So a reader never
//! sees a partial file (it only learns a name from a committed row), and a crash leaves
//! at worst an orphan file, never a row whose file is missing.
//!
//! Temporary files belong to an *owner*: each process (each file tier, once per
//! process) holds an exclusive lock on `data/tmp/<owner>.lock` for as long as it
//! lives. The lock file is created under a hidden name, locked, and only then renamed
//! to its visible name, so a visible lock file of a live process is always locked.
//! `check(true)` removes a temporary file only when its owner's lock file is missing
//! or can be locked (the owner is gone): never one that a live writer is filling, even
//! in the instant after it was created.
//!
//! # Final names
//!
//! `data/<2 hex>/<30 hex>-<16 hex>.val`: 128 random bits (the first byte picks the
//! bucket directory), then the xxh3-64 of the contents, which reads verify (a file
//! whose bytes were changed behind the store's back is an error, never returned). The
//! checksum travels with the name, so it can never disagree with the file a row
//! references. Names of older stores (`data/<2 hex>/<30 hex>.val`) carry no checksum
//! and stay readable.
//!
//! # Paths from the database are not trusted
//!
//! A row names its file relative to `data/`; only names of exactly the layout above are
//! accepted (anything else, such as `../../x` or `/etc/passwd`, is refused: never read,
//! never deleted). Bucket directories must be real directories (not symbolic links), and
//! value files are opened without following a symbolic link and must be regular files
//! (a FIFO would block a reader forever), so a store directory from an untrusted source
//! cannot make the store read or delete anything outside it.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::hash::{Xxh3, xxh3_64};

use crate::platform::PLATFORM;
use crate::{Error, Result};

pub(crate) const TMP_DIR: &str = "tmp";
const TMP_EXT: &str = "tmp";
const LOCK_EXT: &str = "lock";
const VAL_EXT: &str = "val";
/// The reserve: disk space a store keeps so that it can always free space. On a full
/// disk, SQLite needs room in the WAL to record even a delete; the store then removes
/// this file and retries (see `Shared::write_freeing`), and makes it again later.
const RESERVE: &str = ".reserve";
/// Size of the reserve: room for a few hundred small delete transactions.
pub(crate) const RESERVE_BYTES: usize = 1 << 20;

/// Where the value files of one store live, and which bucket directories are known to
/// be real directories.
#[derive(Debug)]
pub(crate) struct FileTier {
    pub(crate) data: PathBuf,
    tmp: PathBuf,
    /// Bit i set: `data/<i as 2 hex>` exists and is a directory (not a link).
    made: [AtomicU64; 4],
    sync: bool,
    verify: bool,
    /// This process's owner of temporary files, made on the first write.
    owner: Mutex<Option<Arc<Owner>>>,
}

/// The holder of a lock file in `data/tmp`: temporary files named after it are being
/// written by a live process.
#[derive(Debug)]
struct Owner {
    name: String,
    /// The lock file.
    path: PathBuf,
    pid: u32,
    // Locked for the owner's life; closing it releases the lock.
    _lock: File,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Every temporary file of this owner is gone (each holds the owner).
        if self.pid == crate::platform::pid() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A fully written value file not yet given its final name; removed when dropped
/// without being installed (a refused `add`, a failed write).
#[derive(Debug)]
pub(crate) struct TempValue {
    path: PathBuf,
    checksum: u64,
    // Keeps the owner's lock alive while this file waits to be installed.
    _owner: Arc<Owner>,
    installed: bool,
}

impl Drop for TempValue {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A stored name that is not one of this store's value files.
#[derive(Debug)]
pub(crate) struct ForeignPath;

/// Parses a stored relative name: `Some(checksum)` for the current layout, `Some(None)`
/// for the layout of older stores (no checksum), `None` for anything else.
fn parse_rel(rel: &str) -> Option<Option<u64>> {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let (bucket, file) = rel.split_once('/')?;
    let stem = file.strip_suffix(".val")?;
    if bucket.len() != 2 || !hex(bucket) {
        return None;
    }
    match stem.split_once('-') {
        None if stem.len() == 30 && hex(stem) => Some(None),
        Some((id, sum)) if id.len() == 30 && hex(id) && sum.len() == 16 && hex(sum) => {
            u64::from_str_radix(sum, 16).ok().map(Some)
        }
        _ => None,
    }
}

/// The bucket number of a valid relative name.
fn bucket_of(rel: &str) -> u8 {
    u8::from_str_radix(&rel[..2], 16).unwrap_or(0)
}

#[cfg(unix)]
fn open_value_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // No symbolic link at the last component; never block on a FIFO or device.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_value_file(path: &Path) -> std::io::Result<File> {
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(std::io::Error::other("is a symbolic link"));
    }
    File::open(path)
}

/// Whether an open error means the path is a symbolic link (`O_NOFOLLOW`).
fn is_link_error(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

impl FileTier {
    /// The file tier of the store in `dir`; its directories are made unless
    /// `read_only`.
    pub(crate) fn new(dir: &Path, sync: bool, verify: bool, read_only: bool) -> Result<Self> {
        let data = dir.join("data");
        let tmp = data.join(TMP_DIR);
        if PLATFORM.files && !read_only {
            for d in [&data, &tmp] {
                match fs::symlink_metadata(d) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(Error::NotACache {
                            path: d.clone(),
                            reason: "it is not a directory (value files must live inside the store, not behind a link)".into(),
                        });
                    }
                    Err(_) => fs::create_dir_all(d).map_err(|e| {
                        Error::io(format!("creating value directory {}", d.display()), e)
                    })?,
                }
            }
        }
        Ok(FileTier {
            data,
            tmp,
            made: Default::default(),
            sync,
            verify,
            owner: Mutex::new(None),
        })
    }

    /// Absolute path of a stored relative name, if it is one of ours.
    pub(crate) fn path_of(&self, rel: &str) -> std::result::Result<PathBuf, ForeignPath> {
        match parse_rel(rel) {
            Some(_) => Ok(self.data.join(rel)),
            None => Err(ForeignPath),
        }
    }

    /// What to show for a stored name in messages: its path if it is one of ours, else
    /// the name as stored.
    pub(crate) fn shown(&self, rel: &str) -> PathBuf {
        self.path_of(rel).unwrap_or_else(|_| PathBuf::from(rel))
    }

    /// Whether `data/<bucket>` is a real directory; `create` makes it if missing.
    fn bucket_ok(&self, bucket: u8, create: bool) -> std::io::Result<bool> {
        let (word, bit) = (usize::from(bucket / 64), 1u64 << (bucket % 64));
        if self.made[word].load(Ordering::Relaxed) & bit != 0 {
            return Ok(true);
        }
        let dir = self.data.join(format!("{bucket:02x}"));
        let ok = match fs::symlink_metadata(&dir) {
            Ok(m) => m.is_dir(),
            Err(e) if e.kind() == ErrorKind::NotFound && create => {
                fs::create_dir_all(&dir)?;
                fs::symlink_metadata(&dir)?.is_dir()
            }
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if ok {
            self.made[word].fetch_or(bit, Ordering::Relaxed);
        }
        Ok(ok)
    }

    fn forget_bucket(&self, bucket: u8) {
        let (word, bit) = (usize::from(bucket / 64), 1u64 << (bucket % 64));
        self.made[word].fetch_and(!bit, Ordering::Relaxed);
    }

    /// This process's owner of temporary files (made, with its locked lock file, on
    /// first use, and again in a child process after `fork`).
    fn owner(&self) -> Result<Arc<Owner>> {
        let mut slot = self.owner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(o) = slot.as_ref()
            && o.pid == crate::platform::pid()
        {
            return Ok(o.clone());
        }
        // A `check` of another process may remove the hidden lock file before it is
        // locked: then its rename fails, and a new one is made.
        let mut attempt = 0;
        let owner = loop {
            match self.new_owner() {
                Err(Error::Io { source, .. })
                    if source.kind() == ErrorKind::NotFound && attempt < 3 =>
                {
                    attempt += 1;
                }
                r => break Arc::new(r?),
            }
        };
        *slot = Some(owner.clone());
        Ok(owner)
    }

    fn new_owner(&self) -> Result<Owner> {
        let name = format!("{:032x}", fastrand::u128(..));
        let hidden = self.tmp.join(format!(".{name}.{LOCK_EXT}"));
        let visible = self.tmp.join(format!("{name}.{LOCK_EXT}"));
        let ctx = || format!("creating lock file {}", visible.display());
        let file = match File::create_new(&hidden) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // `data/tmp` was removed behind our back: recreate it once.
                fs::create_dir_all(&self.tmp)
                    .and_then(|()| File::create_new(&hidden))
                    .map_err(|e| Error::io(ctx(), e))?
            }
            r => r.map_err(|e| Error::io(ctx(), e))?,
        };
        // Locked before it gets its visible name (a `check` may remove the hidden file
        // in between: then the rename fails and the owner is not made).
        let made = file.lock().and_then(|()| fs::rename(&hidden, &visible));
        if let Err(e) = made {
            let _ = fs::remove_file(&hidden);
            return Err(Error::io(ctx(), e));
        }
        Ok(Owner {
            name,
            path: visible,
            pid: crate::platform::pid(),
            _lock: file,
        })
    }

    /// Writes `value` to a new temporary file.
    pub(crate) fn write_temp(&self, value: &[u8]) -> Result<TempValue> {
        let owner = self.owner()?;
        let path = self.tmp.join(format!(
            "{}-{:016x}.{TMP_EXT}",
            owner.name,
            fastrand::u64(..)
        ));
        let ctx = |what: &str| format!("{what} temporary value file {}", path.display());
        let mut file = File::create_new(&path).map_err(|e| Error::io(ctx("creating"), e))?;
        let written = file
            .write_all(value)
            .and_then(|()| if self.sync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(Error::io(ctx("writing"), e));
        }
        Ok(TempValue {
            path,
            checksum: xxh3_64(value),
            _owner: owner,
            installed: false,
        })
    }

    /// Gives a temporary file its final name; returns the name relative to `data/`.
    pub(crate) fn install(&self, mut temp: TempValue) -> Result<String> {
        let id = fastrand::u128(..);
        let bucket = (id >> 120) as u8;
        let rel = format!(
            "{bucket:02x}/{:030x}-{:016x}.{VAL_EXT}",
            id & ((1u128 << 120) - 1),
            temp.checksum
        );
        let dest = self.data.join(&rel);
        let ctx = || format!("installing value file {}", dest.display());
        if !self
            .bucket_ok(bucket, true)
            .map_err(|e| Error::io(ctx(), e))?
        {
            return Err(Error::io(
                ctx(),
                std::io::Error::other(format!(
                    "{} is not a directory",
                    dest.parent().unwrap_or(&self.data).display()
                )),
            ));
        }
        let renamed = match fs::rename(&temp.path, &dest) {
            Err(e) if e.kind() == ErrorKind::NotFound && temp.path.exists() => {
                // The bucket directory was removed behind our back (e.g. by clear of the
                // directory); recreate it once.
                self.forget_bucket(bucket);
                self.bucket_ok(bucket, true)
                    .and_then(|_| fs::rename(&temp.path, &dest))
            }
            r => r,
        };
        renamed.map_err(|e| Error::io(ctx(), e))?;
        temp.installed = true;
        Ok(rel)
    }

    /// Opens a stored value file for reading, refusing foreign names, buckets that are
    /// not real directories and anything but a regular file. `Ok(None)`: it does not
    /// exist.
    fn open(&self, key: &str, rel: &str) -> Result<Option<(File, PathBuf, Option<u64>)>> {
        let invalid = |reason: &str| Error::ValueFileInvalid {
            key: key.to_owned(),
            path: self.shown(rel),
            reason: reason.to_owned(),
        };
        let Some(checksum) = parse_rel(rel) else {
            return Err(invalid(
                "is not one of this store's value files (refusing to read outside the store)",
            ));
        };
        let path = self.data.join(rel);
        let ctx = || format!("opening value file {}", path.display());
        match self.bucket_ok(bucket_of(rel), false) {
            Ok(true) => {}
            Ok(false) if fs::symlink_metadata(path.parent().unwrap_or(&path)).is_err() => {
                return Ok(None);
            }
            Ok(false) => return Err(invalid("is in a bucket that is not a directory")),
            Err(e) => return Err(Error::io(ctx(), e)),
        }
        let file = match open_value_file(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) if is_link_error(&e) => return Err(invalid("is a symbolic link")),
            Err(e) => return Err(Error::io(ctx(), e)),
        };
        let meta = file.metadata().map_err(|e| Error::io(ctx(), e))?;
        if !meta.is_file() {
            return Err(invalid("is not a regular file"));
        }
        Ok(Some((file, path, checksum)))
    }

    /// Reads a value file, checking its length against the recorded size and its bytes
    /// against the checksum in its name. `Ok(None)`: the file does not exist.
    pub(crate) fn read(&self, key: &str, rel: &str, size: u64) -> Result<Option<Vec<u8>>> {
        let Some((mut file, path, checksum)) = self.open(key, rel)? else {
            return Ok(None);
        };
        let cap = usize::try_from(size).map_err(|_| Error::ValueTooLarge {
            len: size,
            max: usize::MAX as u64,
        })?;
        let mut buf = Vec::with_capacity(cap);
        // Read one byte past the expected end to detect a file that grew.
        (&mut file)
            .take(size + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(format!("reading value file {}", path.display()), e))?;
        if buf.len() as u64 != size {
            let actual = file.metadata().map_or(buf.len() as u64, |m| m.len());
            return Err(Error::ValueFileTruncated {
                key: key.to_owned(),
                path,
                expected: size,
                actual,
            });
        }
        if self.verify
            && let Some(sum) = checksum
            && xxh3_64(&buf) != sum
        {
            return Err(Error::ValueFileCorrupt {
                key: key.to_owned(),
                path,
            });
        }
        Ok(Some(buf))
    }

    /// What `check` finds of a row's file: `Ok(())` when it is there, whole and intact.
    pub(crate) fn verify_file(&self, rel: &str, size: u64) -> std::result::Result<(), String> {
        match self.open("", rel) {
            Ok(None) => Err("missing".into()),
            Err(e) => Err(e.to_string()),
            Ok(Some((mut file, _, checksum))) => {
                let mut h = Xxh3::new();
                let mut buf = vec![0u8; 1 << 16];
                let mut len = 0u64;
                loop {
                    match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            len += n as u64;
                            h.update(&buf[..n]);
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(format!("unreadable: {e}")),
                    }
                }
                if len != size {
                    return Err(format!("{len} bytes, {size} expected"));
                }
                match checksum {
                    Some(sum) if h.digest() != sum => Err("contents changed (checksum)".into()),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Removes a value file; a file already gone is not an error, and a name that is not
    /// one of ours (or lies behind a link) is never touched.
    pub(crate) fn remove(&self, rel: &str) {
        let Ok(path) = self.path_of(rel) else {
            tracing::warn!(
                name = rel,
                "not removing a value path that is not one of this store's"
            );
            return;
        };
        match self.bucket_ok(bucket_of(rel), false) {
            Ok(true) => {}
            _ => return,
        }
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove value file");
        }
    }

    /// Lists every final value file (relative names) and every entry of `data/` that
    /// must go: temporary files no live process owns, lock files of owners that are
    /// gone, and anything in a value file's place that is not a regular file (absolute
    /// paths).
    pub(crate) fn scan(&self) -> Result<(Vec<String>, Vec<PathBuf>)> {
        let mut values = Vec::new();
        let mut stale = Vec::new();
        if !PLATFORM.files {
            return Ok((values, stale));
        }
        let rd = |p: &Path| {
            fs::read_dir(p).map_err(|e| Error::io(format!("listing {}", p.display()), e))
        };
        if fs::symlink_metadata(&self.data).is_err() {
            // Removed behind our back: no files, nothing orphaned; recreate the layout.
            fs::create_dir_all(&self.tmp)
                .map_err(|e| Error::io(format!("creating {}", self.tmp.display()), e))?;
            return Ok((values, stale));
        }
        for bucket in rd(&self.data)? {
            let bucket = bucket?;
            let name = bucket.file_name();
            let Some(name) = name.to_str() else { continue };
            let kind = bucket.file_type()?;
            if name == TMP_DIR && kind.is_dir() {
                self.scan_tmp(&bucket.path(), &mut stale)?;
                continue;
            }
            let is_bucket_name = name.len() == 2 && u8::from_str_radix(name, 16).is_ok();
            if !is_bucket_name {
                continue;
            }
            if !kind.is_dir() {
                // A link or file where a bucket directory belongs.
                stale.push(bucket.path());
                continue;
            }
            for f in rd(&bucket.path())? {
                let f = f?;
                let Some(file) = f.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if !file.ends_with(VAL_EXT) {
                    continue;
                }
                let rel = format!("{name}/{file}");
                if f.file_type()?.is_file() && parse_rel(&rel).is_some() {
                    values.push(rel);
                } else {
                    stale.push(f.path());
                }
            }
        }
        Ok((values, stale))
    }

    /// Temporary and lock files in `data/tmp` whose owner is gone.
    fn scan_tmp(&self, tmp: &Path, stale: &mut Vec<PathBuf>) -> Result<()> {
        let mut owners: Vec<(String, PathBuf)> = Vec::new();
        let mut temps: Vec<(String, PathBuf)> = Vec::new();
        for f in
            fs::read_dir(tmp).map_err(|e| Error::io(format!("listing {}", tmp.display()), e))?
        {
            let f = f?;
            let path = f.path();
            let Some(name) = f.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(owner) = name.strip_suffix(&format!(".{LOCK_EXT}")) {
                if owner.starts_with('.') {
                    // Being created (or left by a crash in between): its creator
                    // retries if this goes.
                    if unlocked(&path) {
                        stale.push(path);
                    }
                } else {
                    owners.push((owner.to_owned(), path));
                }
            } else if let Some(stem) = name.strip_suffix(&format!(".{TMP_EXT}")) {
                match stem.split_once('-') {
                    Some((owner, _)) => temps.push((owner.to_owned(), path)),
                    // Older naming: each temporary file was locked while written.
                    None if unlocked(&path) => stale.push(path),
                    None => {}
                }
            }
        }
        let (dead, live): (Vec<_>, Vec<_>) = owners.into_iter().partition(|(_, p)| unlocked(p));
        // Temporary files first, then their owners' lock files: a temporary file left
        // without its lock file is always stale.
        for (owner, path) in temps {
            if !live.iter().any(|(n, _)| *n == owner) {
                stale.push(path);
            }
        }
        stale.extend(dead.into_iter().map(|(_, p)| p));
        Ok(())
    }

    /// Makes the reserve file if it is missing (a no-op when it exists). On a full disk
    /// it fails and leaves nothing behind; it is tried again later.
    pub(crate) fn ensure_reserve(&self) -> Result<()> {
        if !PLATFORM.files {
            return Ok(());
        }
        let path = self.data.join(RESERVE);
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(());
        }
        let tmp = self
            .data
            .join(format!("{RESERVE}.{:016x}", fastrand::u64(..)));
        let made = File::create_new(&tmp)
            .and_then(|mut f| f.write_all(&vec![0u8; RESERVE_BYTES]))
            .and_then(|()| fs::rename(&tmp, &path));
        made.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(format!("making the reserve {}", path.display()), e)
        })
    }

    /// Removes the reserve file to free its space; whether there was one.
    pub(crate) fn release_reserve(&self) -> bool {
        PLATFORM.files && fs::remove_file(self.data.join(RESERVE)).is_ok()
    }

    /// Bytes the reserve file takes (0 when released).
    pub(crate) fn reserve_len(&self) -> u64 {
        fs::symlink_metadata(self.data.join(RESERVE)).map_or(0, |m| m.len())
    }
}

/// Whether nobody holds a lock on the file at `path` (it can be locked now).
fn unlocked(path: &Path) -> bool {
    File::open(path).is_ok_and(|f| f.try_lock().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_layout_is_accepted() {
        let id = "0123456789abcdef0123456789abcd";
        assert_eq!(parse_rel(&format!("ab/{id}.val")), Some(None));
        assert_eq!(
            parse_rel(&format!("ab/{id}-00000000000000ff.val")),
            Some(Some(255))
        );
        for bad in [
            "/etc/passwd",
            "../../victim.txt",
            "ab/../../x.val",
            &format!("ab/{id}.tmp"),
            &format!("AB/{id}.val"),
            &format!("ab/{id}0.val"),
            &format!("a/{id}.val"),
            &format!("ab/{id}-xyz.val"),
            &format!("ab//{id}.val"),
            &format!("ab/{id}-00000000000000ff.val/"),
            "",
        ] {
            assert_eq!(parse_rel(bad), None, "{bad:?}");
        }
    }
}
