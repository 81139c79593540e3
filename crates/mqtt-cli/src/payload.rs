//! Where a message to publish comes from: `-m`, `-f`, `-s` or `-n`, as mosquitto_pub and
//! mosquitto_rr read them.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context;
use bytes::Bytes;

/// The message given by `-m`, `-f FILE` or `-s` (all of stdin); `None` when none of them
/// was given, so the caller decides what `-n` or `-l` mean.
pub fn read(
    message: Option<&str>,
    file: Option<&Path>,
    stdin_file: bool,
) -> anyhow::Result<Option<Bytes>> {
    if let Some(m) = message {
        return Ok(Some(Bytes::copy_from_slice(m.as_bytes())));
    }
    if let Some(path) = file {
        let data =
            std::fs::read(path).with_context(|| format!("-f: cannot read {}", path.display()))?;
        return Ok(Some(data.into()));
    }
    if stdin_file {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("-s: cannot read stdin")?;
        return Ok(Some(data.into()));
    }
    Ok(None)
}
