//! Finds the Lua modules under `runtime.path` (NAKAMA-SPEC §9.1): every `.lua` file,
//! recursively, named by its relative path with separators turned into dots and sorted.

use std::path::{Path, PathBuf};

/// Most module files we load; a directory with more is almost certainly a mistake.
const MAX_FILES: usize = 10_000;
/// Deepest directory nesting we walk.
const MAX_DEPTH: usize = 32;
/// Largest module file.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One module's source.
#[derive(Debug, Clone)]
pub struct Module {
    /// `lib/util.lua` -> `lib.util`.
    pub name: String,
    /// The path shown in error messages (`modules/lib/util.lua`).
    pub display_path: String,
    pub source: Vec<u8>,
}

/// Reads every module below `root`. A missing directory means no modules.
pub fn discover(root: &Path) -> Result<Vec<Module>, String> {
    let mut files = Vec::new();
    if root.exists() {
        walk(root, 0, &mut files)?;
    }
    let mut modules = Vec::with_capacity(files.len());
    for path in files {
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let stem = rel.with_extension("");
        let name = stem
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(".");
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(format!(
                "{}: module is larger than {MAX_FILE_BYTES} bytes",
                path.display()
            ));
        }
        let source = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        modules.push(Module {
            name,
            display_path: path.display().to_string(),
            source,
        });
    }
    modules.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(modules)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{}: directories nested too deep", dir.display()));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if kind.is_dir() {
            walk(&path, depth + 1, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("lua"))
        {
            if out.len() >= MAX_FILES {
                return Err(format!(
                    "more than {MAX_FILES} Lua files under the module path"
                ));
            }
            out.push(path);
        }
    }
    Ok(())
}
