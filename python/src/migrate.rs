//! Migration from diskcache: the source reader of `sciqlop-cache-migrate`, exposed to
//! the Python package (which encodes values with its serializer).

use pyo3::prelude::*;

/// Adds the migration classes to the module.
pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
