//! File identity: (device, inode) validated by the file's first bytes, so a file is
//! recognised after a rename and a reused inode is not mistaken for the old file.

use std::fs::File;
use std::path::Path;

use crate::store::Checkpoint;

/// How many leading bytes identify a file generation. Exports of one kind share their
/// first bytes: a Log Analytics portal CSV with every column has a header of over 1 KiB,
/// so two different exports looked like one file, resumed. 4 KiB reaches into the first
/// rows. (Checkpoints stored with a shorter head compare on what they hold.)
pub const FINGERPRINT_BYTES: usize = 4096;

/// What identifies an open file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size when observed.
    pub size: u64,
    /// Up to `FINGERPRINT_BYTES` leading bytes.
    pub head: Vec<u8>,
}

/// Reads the identity of an open file without moving its read position.
pub fn identify(file: &File) -> std::io::Result<FileIdentity> {
    let meta = file.metadata()?;
    let (dev, ino) = dev_ino(&meta);
    let want = FINGERPRINT_BYTES.min(usize::try_from(meta.len()).unwrap_or(FINGERPRINT_BYTES));
    let head = read_head(file, want)?;
    Ok(FileIdentity { dev, ino, size: meta.len(), head })
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::io::{Read, Seek};
    let mut f = file.try_clone()?;
    f.seek(std::io::SeekFrom::Start(offset))?;
    f.read(buf)
}

/// Opens and identifies a path.
pub fn identify_path(path: &Path) -> std::io::Result<(File, FileIdentity)> {
    let file = File::open(path)?;
    let id = identify(&file)?;
    Ok((file, id))
}

#[cfg(unix)]
fn dev_ino(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dev_ino(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Content alone (another inode) identifies a generation only when its stored head is
/// at least this long: a shorter head is too likely to begin an unrelated file too.
pub const MIN_CONTENT_MATCH: usize = 64;

/// True when `head` (a file's current first bytes) continues `known` (a generation's
/// stored first bytes): the same content, possibly grown.
pub fn head_continues(known: &[u8], head: &[u8]) -> bool {
    head.len() >= known.len() && head[..known.len()] == known[..]
}

/// True when `checkpoint` describes this file: the stored head is a prefix of the
/// current head and the file still holds at least the committed bytes.
pub fn same_content(checkpoint: &Checkpoint, id: &FileIdentity) -> bool {
    id.size >= checkpoint.offset && head_continues(&checkpoint.fingerprint, &id.head)
}

/// True when `id` is the generation of `checkpoint` under another inode (a copy, or a
/// file renamed across file systems). `strong` says the original was just seen losing
/// its content (truncated or rewritten), which makes a short head convincing too.
pub fn same_content_elsewhere(checkpoint: &Checkpoint, id: &FileIdentity, strong: bool) -> bool {
    !checkpoint.fingerprint.is_empty()
        && (strong || checkpoint.fingerprint.len() >= MIN_CONTENT_MATCH)
        && same_content(checkpoint, id)
}

/// Finds the checkpoint of this file: same inode and content first, then (renamed
/// while we were away, e.g. rotated) any checkpoint with the same content. A checkpoint
/// of the same inode taken while the file was empty comes last: it says nothing of what
/// filled the file since, which may be a copy of a known generation.
pub fn find_checkpoint<'a>(checkpoints: &'a [Checkpoint], id: &FileIdentity) -> Option<&'a Checkpoint> {
    let same_inode = |c: &&Checkpoint| c.dev == id.dev && c.ino == id.ino && same_content(c, id);
    checkpoints
        .iter()
        .filter(same_inode)
        .find(|c| !c.fingerprint.is_empty())
        .or_else(|| checkpoints.iter().find(|c| same_content_elsewhere(c, id, false)))
        .or_else(|| checkpoints.iter().find(same_inode))
}

/// Reads up to `len` leading bytes of an open file (without moving its position).
pub fn read_head(file: &File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = read_at(file, &mut head[filled..], filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    Ok(head)
}

/// (device, inode) of a file's metadata.
pub fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    dev_ino(meta)
}

/// A new, unique key for a file generation first seen now.
pub fn new_file_key(id: &FileIdentity) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("f{:x}-{:x}-{:x}", id.dev, id.ino, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(key: &str, ino: u64, fingerprint: &[u8], offset: u64) -> Checkpoint {
        Checkpoint {
            file_key: key.into(),
            source: "s".into(),
            path: "app.log".into(),
            dev: 1,
            ino,
            fingerprint: fingerprint.to_vec(),
            offset,
            state: String::new(),
        }
    }

    #[test]
    fn a_copy_in_a_file_remembered_empty_is_found_by_its_content() {
        let head = vec![b'x'; 200];
        let file = FileIdentity { dev: 1, ino: 7, size: 500, head: head.clone() };
        let blank = checkpoint("blank", 7, b"", 0);
        let original = checkpoint("original", 3, &head, 400);
        let key = |cps: &[Checkpoint]| find_checkpoint(cps, &file).map(|c| c.file_key.clone());
        let same = checkpoint("same", 7, &head[..100], 300);
        assert_eq!(
            key(&[blank.clone(), original.clone()]).as_deref(),
            Some("original"),
            "content outranks an empty checkpoint of the same inode"
        );
        assert_eq!(
            key(std::slice::from_ref(&blank)).as_deref(),
            Some("blank"),
            "alone, the empty checkpoint still lends its key"
        );
        assert_eq!(
            key(&[original, blank, same]).as_deref(),
            Some("same"),
            "the same inode with the same content comes first"
        );
    }
}
