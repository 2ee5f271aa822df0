//! The configuration parser: a YAML file and command-line flags. Bad input is a
//! `ConfigError` naming the key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut config = Config::default();
    if config.apply_yaml(text).is_ok() {
        let _ = config.validate();
    }
    // The same text as flags and environment variables.
    let args: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let _ = Config::load(&args, &env);
});
