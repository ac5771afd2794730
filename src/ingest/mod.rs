//! Everything that brings bytes in: decoders (`formats`), and the sources that feed them.

pub mod formats;
