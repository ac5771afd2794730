//! Finding the files a source's globs match: walk only below each pattern's literal
//! prefix, match full paths with one `GlobSet`, apply exclusions.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// A source's compiled path patterns.
#[derive(Debug, Clone)]
pub struct PathMatcher {
    include: GlobSet,
    exclude: GlobSet,
    roots: Vec<(PathBuf, bool)>,
}

/// A pattern that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid glob {pattern:?}: {source}")]
pub struct GlobError {
    /// The pattern.
    pub pattern: String,
    /// globset's error.
    pub source: globset::Error,
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

fn glob(pattern: &str) -> Result<Glob, GlobError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|source| GlobError { pattern: pattern.to_string(), source })
}

impl PathMatcher {
    /// Compiles include and exclude patterns.
    pub fn new(paths: &[String], exclude: &[String]) -> Result<PathMatcher, GlobError> {
        // The walk names the files under the working folder without a leading `./`: a
        // pattern written with one (`./logs/*.json`) would match none of them.
        let bare = |p: &String| {
            let mut p = p.as_str();
            while let Some(rest) = p.strip_prefix("./") {
                p = rest.trim_start_matches('/');
            }
            p.to_string()
        };
        let paths: Vec<String> = paths.iter().map(bare).collect();
        let exclude: Vec<String> = exclude.iter().map(bare).collect();
        let mut inc = GlobSetBuilder::new();
        let mut roots = Vec::new();
        for p in &paths {
            inc.add(glob(p)?);
            // The walk starts at the longest prefix without glob characters; it only
            // descends further than one level when the pattern has `**` or more
            // components after the root.
            let path = Path::new(p);
            let mut root = PathBuf::new();
            let mut rest_depth = 0usize;
            let mut in_magic = false;
            for c in path.components() {
                let s = c.as_os_str().to_string_lossy();
                if !in_magic && !has_magic(&s) {
                    root.push(c);
                } else {
                    in_magic = true;
                    rest_depth += 1;
                }
            }
            if !in_magic {
                // A plain file path: watch its folder.
                let parent = root.parent().map(Path::to_path_buf).unwrap_or_default();
                roots.push((if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent }, false));
                continue;
            }
            let recursive = p.contains("**") || rest_depth > 1;
            if root.as_os_str().is_empty() {
                root = PathBuf::from(".");
            }
            roots.push((root, recursive));
        }
        let mut exc = GlobSetBuilder::new();
        for p in &exclude {
            exc.add(glob(p)?);
        }
        let build =
            |b: GlobSetBuilder, what: &str| b.build().map_err(|source| GlobError { pattern: what.to_string(), source });
        Ok(PathMatcher { include: build(inc, "paths")?, exclude: build(exc, "exclude")?, roots })
    }

    /// True when `path` is one of the source's files.
    pub fn matches(&self, path: &Path) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }

    /// The folders to watch and walk (and whether recursively).
    pub fn roots(&self) -> &[(PathBuf, bool)] {
        &self.roots
    }

    /// Every regular file currently matching, sorted for a stable order.
    pub fn scan(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for (root, recursive) in &self.roots {
            walk(root, *recursive, 0, self, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }
}

fn walk(dir: &Path, recursive: bool, depth: usize, m: &PathMatcher, out: &mut Vec<PathBuf>) {
    // A cap on depth guards against symlink loops in `**` walks.
    if depth > 32 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            let candidate = path.strip_prefix("./").map(Path::to_path_buf).unwrap_or(path);
            if m.matches(&candidate) {
                out.push(candidate);
            }
        } else if meta.is_dir() && recursive {
            walk(&path, recursive, depth + 1, m, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_globs_with_double_star_and_exclusions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        for f in ["a/1.json", "a/b/2.json", "a/b/c/3.json", "a/skip.tmp", "a/b/4.log", "a/b/old.json"] {
            let p = base.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, "x").expect("write");
        }
        let pat = format!("{}/a/**/*.json", base.display());
        let exc = format!("{}/a/**/old.json", base.display());
        let m = PathMatcher::new(&[pat], &[exc]).expect("matcher");
        let found: Vec<String> =
            m.scan().iter().map(|p| p.strip_prefix(base).expect("prefix").display().to_string()).collect();
        assert_eq!(found, vec!["a/1.json", "a/b/2.json", "a/b/c/3.json"]);

        let one = PathMatcher::new(&[format!("{}/a/*.json", base.display())], &[]).expect("m");
        assert_eq!(one.scan().len(), 1, "single * does not cross folders");
    }
}
