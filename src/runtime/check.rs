//! `tidings check`: find every syntax error in a module directory at once (compiling each
//! file on its own), before a full load finds the first runtime error.

use std::path::Path;

use super::modules;
use super::sandbox;
use super::vm::clean;

/// One line per module that does not compile: `path:line: message`.
pub fn syntax_errors(root: &Path) -> Vec<String> {
    let modules = match modules::discover(root) {
        Ok(m) => m,
        Err(e) => return vec![e],
    };
    let Ok((lua, _)) = sandbox::new_state(64 << 20) else {
        return vec!["cannot create a Lua VM".into()];
    };
    modules
        .iter()
        .filter_map(|m| {
            lua.load(&m.source[..])
                .set_name(format!("@{}", m.display_path))
                .into_function()
                .err()
                .map(|e| clean(&e))
        })
        .collect()
}
