//! Key iteration through cursor handles, a page at a time.

use std::collections::VecDeque;
use std::ffi::c_char;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::args::{self, Out, OutBytes};
use crate::error::{Res, fail, guard, sqc_status};
use crate::handles::Registry;
use crate::store::{StoreObj, store};
use crate::types::{sqc_cursor, sqc_store};

/// Keys fetched per page.
const PAGE: usize = 256;

struct Cursor {
    store: Arc<StoreObj>,
    prefix: String,
    /// The last key fetched (the next page starts after it).
    after: Option<String>,
    page: VecDeque<String>,
    done: bool,
}

impl Cursor {
    fn peek(&mut self) -> Res<Option<&String>> {
        if self.page.is_empty() && !self.done {
            let page = self
                .store
                .keys_page(&self.prefix, self.after.as_deref(), PAGE)?;
            self.done = page.len() < PAGE;
            self.after = page.last().cloned();
            self.page.extend(page);
        }
        Ok(self.page.front())
    }
}

static CURSORS: Registry<Arc<Mutex<Cursor>>> = Registry::new("cursor");

/// Opens an iteration over the live keys starting with `prefix` (null or empty: all),
/// in byte order (over all shards of a fanout). Pages are fetched as needed without
/// holding a lock in between: keys written meanwhile may or may not appear. Close it
/// with `sqc_cursor_close`.
///
/// # Safety
/// `prefix` null or valid for its length; `out` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_cursor_open(
    store: sqc_store,
    prefix: *const c_char,
    prefix_len: usize,
    out: *mut sqc_cursor,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (prefix, out) = unsafe {
            (
                args::opt_text(prefix, prefix_len, "prefix")?.unwrap_or(""),
                Out::new(out, "out")?,
            )
        };
        let cursor = Cursor {
            store: self::store(store)?,
            prefix: prefix.to_owned(),
            after: None,
            page: VecDeque::new(),
            done: false,
        };
        out.set(sqc_cursor {
            id: CURSORS.insert(Arc::new(Mutex::new(cursor))),
        });
        Ok(())
    })
}

/// The next key, copied into `buf` (`cap` bytes; UTF-8, not NUL-terminated) with its
/// length in `len`; `has` is false at the end. When the key is longer than `cap`,
/// `len` receives the size needed, the status is `SQC_STATUS_BUFFER_TOO_SMALL` and the
/// key is not consumed (call again with a larger buffer). Keys are at most the store's
/// key limit long (4096 bytes by default).
///
/// # Safety
/// `buf` valid for writes of `cap` bytes; `len` and `has` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sqc_cursor_next(
    cursor: sqc_cursor,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    has: *mut bool,
) -> sqc_status {
    guard(|| {
        // SAFETY: the function's contract.
        let (buf, len, has) = unsafe {
            (
                OutBytes::new(buf, cap, "buf")?,
                Out::new(len, "len")?,
                Out::new(has, "has")?,
            )
        };
        let c = CURSORS.get(cursor.id)?;
        let mut c = c.lock();
        let Some(key) = c.peek()? else {
            has.set(false);
            len.set(0);
            return Ok(());
        };
        let n = key.len();
        has.set(true);
        len.set(n);
        if n > buf.cap() {
            return Err(fail(
                sqc_status::BufferTooSmall,
                format!("next key has {n} bytes, the buffer holds {}", buf.cap()),
            ));
        }
        buf.fill(key.as_bytes());
        c.page.pop_front();
        Ok(())
    })
}

/// Closes a cursor; the handle is invalid afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn sqc_cursor_close(cursor: sqc_cursor) -> sqc_status {
    guard(|| {
        drop(CURSORS.remove(cursor.id)?);
        Ok(())
    })
}
