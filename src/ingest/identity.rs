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

/// Where the line that ends a file of `size` bytes starts: just after its last newline
/// (`size` when it ends with one). A file read "from its end" starts there, so that a
/// line being written when the tailer starts is read whole once it is finished, not from
/// its middle. A line longer than `limit` would be skipped as too long anyway: `size`.
pub fn start_of_last_line(file: &File, size: u64, limit: usize) -> std::io::Result<u64> {
    const BLOCK: u64 = 64 * 1024;
    let floor = size.saturating_sub(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1));
    let mut end = size;
    let mut buf = vec![0u8; BLOCK as usize];
    while end > floor {
        let start = end.saturating_sub(BLOCK).max(floor);
        let want = usize::try_from(end - start).unwrap_or(0);
        let mut got = 0;
        while got < want {
            let n = read_at(file, &mut buf[got..want], start + got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if let Some(i) = memchr::memrchr(b'\n', &buf[..got]) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(if floor == 0 { 0 } else { size })
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

/// What a checkpoint keeps of a file's first bytes: their length and SHA-256 digests of
/// them and of their prefixes of 16, 32, 64 … bytes, never the bytes themselves. A head
/// holds whatever the file's first lines hold (user names, addresses, messages), and a
/// checkpoint outlives the privacy settings that decide what is stored of those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadPrint {
    len: usize,
    /// Digest of the whole head, then of each power-of-two prefix from 16 bytes up
    /// (shorter than the head), shortest first.
    digests: Vec<[u8; DIGEST_BYTES]>,
}

const DIGEST_BYTES: usize = 16;
/// Shortest prefix with a digest of its own.
const FIRST_PREFIX: usize = 16;
/// Stored form: this tag, the length (4 bytes, little-endian), the digests. A head stored
/// before heads were digested is its bytes (text never starts with 0xFF).
const TAG: &[u8; 4] = b"\xffHP1";

fn digest(bytes: &[u8]) -> [u8; DIGEST_BYTES] {
    use sha2::{Digest, Sha256};
    let full = Sha256::digest(bytes);
    let mut out = [0u8; DIGEST_BYTES];
    out.copy_from_slice(&full[..DIGEST_BYTES]);
    out
}

/// The power-of-two prefix lengths below `len` that carry a digest.
fn prefix_lengths(len: usize) -> impl Iterator<Item = usize> {
    std::iter::successors(Some(FIRST_PREFIX), |n| n.checked_mul(2)).take_while(move |n| *n < len)
}

impl HeadPrint {
    /// The print of a file's first bytes.
    pub fn of(head: &[u8]) -> HeadPrint {
        let mut digests = vec![digest(head)];
        digests.extend(prefix_lengths(head.len()).map(|n| digest(&head[..n])));
        HeadPrint { len: head.len(), digests }
    }

    /// How many leading bytes it describes (0: the file was empty).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it describes an empty head.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `head` (a file's current first bytes) continues the head this print was
    /// made of: the same content, possibly grown.
    pub fn continued_by(&self, head: &[u8]) -> bool {
        head.len() >= self.len && self.digests.first() == Some(&digest(&head[..self.len]))
    }

    /// True when `short` may be the beginning of the head this print was made of: it is no
    /// longer, and its longest prefix with a digest here matches (a head under 16 bytes
    /// cannot be told apart, and may be).
    pub fn may_begin_with(&self, short: &[u8]) -> bool {
        if short.len() > self.len {
            return false;
        }
        if short.len() == self.len {
            return self.continued_by(short);
        }
        match prefix_lengths(self.len).zip(self.digests.iter().skip(1)).filter(|(n, _)| *n <= short.len()).last() {
            Some((n, d)) => digest(&short[..n]) == *d,
            None => true,
        }
    }

    /// The stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.digests.len() * DIGEST_BYTES);
        out.extend_from_slice(TAG);
        out.extend_from_slice(&u32::try_from(self.len).unwrap_or(u32::MAX).to_le_bytes());
        for d in &self.digests {
            out.extend_from_slice(d);
        }
        out
    }

    /// True when `bytes` is a stored print (not a head stored as its bytes by a version
    /// before heads were digested).
    pub fn is_stored_print(bytes: &[u8]) -> bool {
        bytes.starts_with(TAG.as_slice())
    }

    /// Reads the stored form, or a head stored as its bytes (before heads were digested).
    pub fn from_bytes(bytes: &[u8]) -> HeadPrint {
        let Some(rest) = bytes.strip_prefix(TAG.as_slice()) else {
            return HeadPrint::of(bytes);
        };
        let Some((len, rest)) = rest.split_first_chunk::<4>() else {
            return HeadPrint::of(bytes);
        };
        let len = u32::from_le_bytes(*len) as usize;
        let digests: Vec<[u8; DIGEST_BYTES]> =
            rest.chunks_exact(DIGEST_BYTES).filter_map(|c| <[u8; DIGEST_BYTES]>::try_from(c).ok()).collect();
        if digests.len() != 1 + prefix_lengths(len).count() {
            return HeadPrint::of(bytes);
        }
        HeadPrint { len, digests }
    }
}

/// True when `checkpoint` describes this file: the stored head is a prefix of the
/// current head and the file still holds at least the committed bytes.
pub fn same_content(checkpoint: &Checkpoint, id: &FileIdentity) -> bool {
    id.size >= checkpoint.offset && checkpoint.fingerprint.continued_by(&id.head)
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

    #[test]
    fn the_last_line_starts_after_the_last_newline_within_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let at = |text: &[u8], limit: usize| {
            std::fs::write(&path, text).expect("write");
            let file = File::open(&path).expect("open");
            start_of_last_line(&file, text.len() as u64, limit).expect("read")
        };
        assert_eq!(at(b"", 100), 0);
        assert_eq!(at(b"a\nb\n", 100), 4, "ends with a newline: nothing is cut");
        assert_eq!(at(b"a\nbc", 100), 2);
        assert_eq!(at(b"half a line", 100), 0, "one unfinished line: read it whole");
        assert_eq!(at(b"half a line", 4), 11, "longer than the limit: skipped anyway");
        // A newline several blocks back.
        let mut long = b"x\n".to_vec();
        long.extend(std::iter::repeat_n(b'y', 200_000));
        assert_eq!(at(&long, 1 << 20), 2);
        assert_eq!(at(&long, 100_000), long.len() as u64);
    }

    fn checkpoint(key: &str, ino: u64, fingerprint: &[u8], offset: u64) -> Checkpoint {
        Checkpoint {
            file_key: key.into(),
            source: "s".into(),
            path: "app.log".into(),
            dev: 1,
            ino,
            fingerprint: HeadPrint::of(fingerprint),
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

    /// A print answers what the raw head answered, stores none of its bytes, and a head
    /// stored raw by an earlier version reads as its print.
    #[test]
    fn a_head_print_compares_like_the_head_and_keeps_none_of_it() {
        let head: Vec<u8> =
            (0..3000u32).map(|i| b"user alice@contoso.example from 203.0.113.5 "[i as usize % 44]).collect();
        for len in [0, 1, 15, 16, 17, 64, 100, 1024, 3000] {
            let print = HeadPrint::of(&head[..len]);
            assert!(print.continued_by(&head), "{len}");
            assert_eq!(print.continued_by(&head[..len.saturating_sub(1)]), len == 0, "{len}");
            let mut other = head.clone();
            if len > 0 {
                other[len - 1] ^= 1;
                assert!(!print.continued_by(&other), "{len}");
            }
            assert_eq!(HeadPrint::from_bytes(&print.to_bytes()), print, "{len}");
            assert_eq!(HeadPrint::from_bytes(&head[..len]), print, "raw, {len}");
            let stored = print.to_bytes();
            assert!(!stored.windows(5).any(|w| w == b"alice"), "{len}");
            for short in [0, 10, 16, 40, 64, 99] {
                if short <= len {
                    assert!(print.may_begin_with(&head[..short]), "{len} {short}");
                }
            }
        }
        let print = HeadPrint::of(&head[..1024]);
        let mut other = head[..100].to_vec();
        other[20] ^= 1;
        assert!(!print.may_begin_with(&other), "differs within its 64-byte prefix");
        assert!(!print.may_begin_with(&head[..1025]), "longer than the head");
    }
}
