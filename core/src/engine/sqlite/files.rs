//! The file tier: large values live in their own files under `data/`.
//!
//! A value is written to `data/tmp/<random>.tmp` while an exclusive file lock is held,
//! outside any database lock; inside the write transaction it is renamed to its final
//! name `data/<2 hex>/<30 hex>.val` and the row is written; the rename is undone if the
//! transaction rolls back. So a reader never sees a partial file (it only learns a name
//! from a committed row), and a crash leaves at worst an orphan file, never a row whose
//! file is missing. `check(true)` deletes final files without a row (holding the write
//! lock, so no rename is in flight) and temporary files no process holds locked.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::platform::PLATFORM;
use crate::{Error, Result};

pub(crate) const TMP_DIR: &str = "tmp";
const TMP_EXT: &str = "tmp";
const VAL_EXT: &str = "val";

/// Where the value files of one store live, and which fan-out directories exist.
#[derive(Debug)]
pub(crate) struct FileTier {
    pub(crate) data: PathBuf,
    tmp: PathBuf,
    /// Bit i set: `data/<i as 2 hex>` is known to exist.
    made: [AtomicU64; 4],
    sync: bool,
}

/// A fully written value file not yet given its final name; removed when dropped
/// without being installed (a refused `add`, a failed write).
#[derive(Debug)]
pub(crate) struct TempValue {
    path: PathBuf,
    // Held open (and locked) until installed so `check` does not take it for an orphan.
    _file: File,
    installed: bool,
}

impl Drop for TempValue {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl FileTier {
    pub(crate) fn new(dir: &Path, sync: bool) -> Result<Self> {
        let data = dir.join("data");
        let tmp = data.join(TMP_DIR);
        if PLATFORM.files {
            fs::create_dir_all(&tmp)
                .map_err(|e| Error::io(format!("creating value directory {}", tmp.display()), e))?;
        }
        Ok(FileTier {
            data,
            tmp,
            made: Default::default(),
            sync,
        })
    }

    /// Absolute path of a stored relative name.
    pub(crate) fn path_of(&self, rel: &str) -> PathBuf {
        self.data.join(rel)
    }

    /// Writes `value` to a new locked temporary file.
    pub(crate) fn write_temp(&self, value: &[u8]) -> Result<TempValue> {
        let path = self
            .tmp
            .join(format!("{:032x}.{TMP_EXT}", fastrand::u128(..)));
        let ctx = |what: &str| format!("{what} temporary value file {}", path.display());
        let mut file = match File::create_new(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // `data/tmp` was removed behind our back: recreate it once.
                fs::create_dir_all(&self.tmp)
                    .and_then(|()| File::create_new(&path))
                    .map_err(|e| Error::io(ctx("creating"), e))?
            }
            r => r.map_err(|e| Error::io(ctx("creating"), e))?,
        };
        let written = file
            .lock()
            .and_then(|()| file.write_all(value))
            .and_then(|()| if self.sync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(Error::io(ctx("writing"), e));
        }
        Ok(TempValue {
            path,
            _file: file,
            installed: false,
        })
    }

    /// Gives a temporary file its final name; returns the name relative to `data/`.
    pub(crate) fn install(&self, mut temp: TempValue) -> Result<String> {
        let id = fastrand::u128(..);
        let bucket = (id >> 120) as u8;
        let rel = format!("{bucket:02x}/{:030x}.{VAL_EXT}", id & ((1u128 << 120) - 1));
        let dest = self.data.join(&rel);
        let (word, bit) = (usize::from(bucket / 64), 1u64 << (bucket % 64));
        if self.made[word].load(Ordering::Relaxed) & bit == 0 {
            let dir = self.data.join(format!("{bucket:02x}"));
            fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating value directory {}", dir.display()), e))?;
            self.made[word].fetch_or(bit, Ordering::Relaxed);
        }
        let renamed = fs::rename(&temp.path, &dest);
        if renamed.is_ok() {
            temp.installed = true;
        }
        match renamed {
            Ok(()) => Ok(rel),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // The bucket directory was removed behind our back (e.g. by clear of the
                // directory); recreate it once.
                self.made[word].fetch_and(!bit, Ordering::Relaxed);
                fs::create_dir_all(dest.parent().unwrap_or(&self.data))
                    .and_then(|()| fs::rename(&temp.path, &dest))
                    .map_err(|e| {
                        Error::io(format!("installing value file {}", dest.display()), e)
                    })?;
                Ok(rel)
            }
            Err(e) => {
                let _ = fs::remove_file(&temp.path);
                Err(Error::io(
                    format!("installing value file {}", dest.display()),
                    e,
                ))
            }
        }
    }

    /// Reads a value file, checking its length against the recorded size.
    /// `Ok(None)`: the file does not exist.
    pub(crate) fn read(&self, key: &str, rel: &str, size: u64) -> Result<Option<Vec<u8>>> {
        let path = self.path_of(rel);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::io(
                    format!("opening value file {}", path.display()),
                    e,
                ));
            }
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
        Ok(Some(buf))
    }

    /// Removes a value file; a file already gone is not an error.
    pub(crate) fn remove(&self, rel: &str) {
        let path = self.path_of(rel);
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove value file");
        }
    }

    /// Lists every final value file (relative names) and every temporary file no process
    /// is writing (absolute paths).
    pub(crate) fn scan(&self) -> Result<(Vec<String>, Vec<PathBuf>)> {
        let mut values = Vec::new();
        let mut stale_temps = Vec::new();
        if !PLATFORM.files {
            return Ok((values, stale_temps));
        }
        let rd = |p: &Path| {
            fs::read_dir(p).map_err(|e| Error::io(format!("listing {}", p.display()), e))
        };
        if !self.data.exists() {
            // Removed behind our back: no files, nothing orphaned; recreate the layout.
            fs::create_dir_all(&self.tmp)
                .map_err(|e| Error::io(format!("creating {}", self.tmp.display()), e))?;
            return Ok((values, stale_temps));
        }
        for bucket in rd(&self.data)? {
            let bucket = bucket?;
            let name = bucket.file_name();
            let Some(name) = name.to_str() else { continue };
            if name == TMP_DIR {
                for f in rd(&bucket.path())? {
                    let path = f?.path();
                    // A temp file whose lock we can take is not being written by anyone.
                    if let Ok(file) = File::open(&path)
                        && file.try_lock().is_ok()
                    {
                        stale_temps.push(path);
                    }
                }
                continue;
            }
            if !bucket.file_type()?.is_dir() {
                continue;
            }
            for f in rd(&bucket.path())? {
                let f = f?;
                if let Some(file) = f.file_name().to_str()
                    && file.ends_with(VAL_EXT)
                {
                    values.push(format!("{name}/{file}"));
                }
            }
        }
        Ok((values, stale_temps))
    }

    /// Size in bytes of a value file, if it exists.
    pub(crate) fn len_of(&self, rel: &str) -> Option<u64> {
        fs::metadata(self.path_of(rel)).ok().map(|m| m.len())
    }
}
