//! Finding and reading the manifest files behind the `--manifests` paths.
//!
//! A path naming a file is read whatever its extension; a directory is walked recursively for `*.yaml`,
//! `*.yml` and `*.json`. Files are returned in sorted order per path so that the same tree always compiles
//! the same way. Entries whose name starts with `.` are skipped: a Kubernetes ConfigMap volume holds every
//! file twice (`name.yaml` -> `..data/name.yaml` and `..2024_01_01_00_00_00.1/name.yaml`), and reading
//! both would make every object a duplicate; editors' swap files are hidden too.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A file or directory that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct ReadError {
    /// The path as it was found (relative paths stay relative).
    pub path: PathBuf,
    /// The underlying IO error.
    #[source]
    pub source: io::Error,
}

/// One manifest file's content.
#[derive(Debug)]
pub struct SourceFile {
    /// Where it was read from; names the file in every error about its documents.
    pub path: PathBuf,
    /// The whole content.
    pub text: String,
}

/// Everything read from the `--manifests` paths.
#[derive(Debug, Default)]
pub struct ReadSources {
    /// Files read, in load order.
    pub files: Vec<SourceFile>,
    /// Files or directories that could not be read (including a `--manifests` path that does not exist).
    pub errors: Vec<ReadError>,
}

/// Read every manifest file under `paths`. Never stops at the first problem: the caller decides what an
/// unreadable file means (refuse to start, keep the old configuration, or report it).
pub fn read_all(paths: &[PathBuf]) -> ReadSources {
    let mut out = ReadSources::default();
    for path in paths {
        let mut found = Vec::new();
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let mut visited = HashSet::new();
                walk_dir(path, &mut visited, &mut found, &mut out.errors);
                found.sort();
            }
            Ok(_) => found.push(path.clone()),
            Err(source) => out.errors.push(ReadError {
                path: path.clone(),
                source,
            }),
        }
        for file in found {
            match fs::read(&file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => out.files.push(SourceFile { path: file, text }),
                    Err(_) => out.errors.push(ReadError {
                        path: file,
                        source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
                    }),
                },
                Err(source) => out.errors.push(ReadError { path: file, source }),
            }
        }
    }
    out
}

/// Collect manifest files below `dir`. `visited` holds canonical directories so that a symlink loop ends.
fn walk_dir(
    dir: &Path,
    visited: &mut HashSet<PathBuf>,
    found: &mut Vec<PathBuf>,
    errors: &mut Vec<ReadError>,
) {
    match fs::canonicalize(dir) {
        Ok(canonical) => {
            if !visited.insert(canonical) {
                return;
            }
        }
        Err(source) => {
            errors.push(ReadError {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            errors.push(ReadError {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(source) => {
                errors.push(ReadError {
                    path: dir.to_path_buf(),
                    source,
                });
                continue;
            }
        };
        let path = entry.path();
        if is_hidden(&path) {
            continue;
        }
        // `metadata` follows symlinks: a link to a file counts as that file.
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk_dir(&path, visited, found, errors),
            Ok(_) if has_manifest_extension(&path) => found.push(path),
            Ok(_) => {}
            // A dangling symlink is not a manifest we were asked to read.
            Err(_) if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) => {}
            Err(source) => errors.push(ReadError { path, source }),
        }
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Whether a file found while walking a directory is a manifest.
pub fn has_manifest_extension(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("yaml" | "yml" | "json")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(read: &ReadSources, root: &Path) -> Vec<String> {
        read.files
            .iter()
            .map(|f| f.path.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn directories_are_walked_recursively_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/nested")).unwrap();
        fs::write(root.join("z.yaml"), "z").unwrap();
        fs::write(root.join("a.yml"), "a").unwrap();
        fs::write(root.join("b/nested/c.json"), "c").unwrap();
        fs::write(root.join("notes.txt"), "ignored").unwrap();
        fs::write(root.join(".swap.yaml"), "ignored").unwrap();
        fs::create_dir_all(root.join("..data")).unwrap();
        fs::write(root.join("..data/dup.yaml"), "ignored").unwrap();

        let read = read_all(&[root.to_path_buf()]);
        assert!(read.errors.is_empty(), "{:?}", read.errors);
        assert_eq!(names(&read, root), ["a.yml", "b/nested/c.json", "z.yaml"]);
        assert_eq!(read.files[0].text, "a");
    }

    #[test]
    fn an_explicit_file_is_read_whatever_its_extension() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routes.conf");
        fs::write(&file, "x").unwrap();
        let read = read_all(std::slice::from_ref(&file));
        assert_eq!(read.files.len(), 1);
        assert!(read.errors.is_empty());
    }

    #[test]
    fn a_missing_path_is_an_error_and_other_paths_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        fs::write(&good, "x").unwrap();
        let missing = dir.path().join("missing.yaml");
        let read = read_all(&[missing.clone(), good]);
        assert_eq!(read.files.len(), 1);
        assert_eq!(read.errors.len(), 1);
        assert_eq!(read.errors[0].path, missing);
        assert!(read.errors[0].to_string().contains("missing.yaml"));
    }

    #[test]
    fn symlink_loops_end() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.yaml"), "a").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        let read = read_all(&[dir.path().to_path_buf()]);
        assert_eq!(read.files.len(), 1, "{:?}", read.files);
    }
}
