//! Everything that brings bytes in: decoders (`formats`), file identity, discovery,
//! the reader (one file generation → chunks) and the tailer.

pub mod discover;
pub mod formats;
pub mod identity;
pub mod reader;
pub mod tail;
