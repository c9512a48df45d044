//! `--config FILE`: a daemon's settings in a YAML file, one key per flag.
//!
//! Keys are the flags' long names in Kubernetes' camelCase, as kubelet's
//! and kube-proxy's config files spell them: `--node-ip` is `nodeIP`,
//! `--data-dir` is `dataDir` (see [`key_for`]). A flag on the command line
//! (or its environment variable) wins over the file.
//!
//! The file is not a second schema beside the flags: each value is checked
//! by the flag's own parser, then handed to clap as if it were typed after
//! the flag, so a setting means the same in both places and a new flag is a
//! new key at once. What only the file can get wrong (an unknown key, a list
//! for a single value) is refused here, naming the file, the key and the
//! rule, before the daemon starts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use serde_json::Value;

/// The flag that names the file; every daemon using this module has it.
pub const CONFIG_FLAG: &str = "config";

/// Flags that are about the invocation, not settings.
const NOT_SETTINGS: [&str; 3] = [CONFIG_FLAG, "help", "version"];

/// Words Kubernetes writes in capitals inside a camelCase key.
const INITIALISMS: [(&str, &str); 13] = [
    ("api", "API"),
    ("ca", "CA"),
    ("cidr", "CIDR"),
    ("cpu", "CPU"),
    ("dns", "DNS"),
    ("http", "HTTP"),
    ("id", "ID"),
    ("ip", "IP"),
    ("lb", "LB"),
    ("tcp", "TCP"),
    ("tls", "TLS"),
    ("ttl", "TTL"),
    ("udp", "UDP"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    /// One key's value, or the key itself, breaks a rule.
    #[error("{}: {key}: {rule}", path.display())]
    Key {
        path: PathBuf,
        key: String,
        rule: String,
    },
    /// The command line itself (or the settings as a whole) is wrong, or
    /// asks for help: clap prints it and exits as usual.
    #[error(transparent)]
    Cli(#[from] clap::Error),
}

impl ConfigError {
    /// Prints the error as clap does for a bad flag, and exits with its code.
    pub fn exit(self) -> ! {
        match self {
            ConfigError::Cli(e) => e.exit(),
            e => {
                eprintln!("error: {e}");
                std::process::exit(2)
            }
        }
    }
}

/// Parses the process's command line, with the settings of `--config FILE`
/// under it.
pub fn parse<T: clap::Parser>() -> T {
    parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse`] over given arguments (the program name first).
pub fn parse_from<T, I>(args: I) -> Result<T, ConfigError>
where
    T: clap::Parser,
    I: IntoIterator,
    I::Item: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = with_keys(T::command());
    // A lenient first parse: the file may be what supplies a required flag.
    let given = cmd
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(&args)
        .ok();
    let path = given
        .as_ref()
        .and_then(|m| m.get_one::<PathBuf>(CONFIG_FLAG).cloned());
    let merged = match (path, given) {
        (Some(path), Some(given)) => with_file(&cmd, &args, &path, &given)?,
        _ => args,
    };
    let matches = cmd.try_get_matches_from(merged)?;
    Ok(T::from_arg_matches(&matches)?)
}

/// `cmd` with its config file's keys in its long help (`--help`, and the
/// man page's extra section), each with the flag it stands for.
pub fn with_keys(cmd: Command) -> Command {
    let keys: Vec<String> = settings(&cmd)
        .map(|(key, arg)| format!("{key} (--{})", arg.get_long().unwrap_or_default()))
        .collect();
    let text = format!(
        "Config file (--config FILE, YAML): one key per flag, a flag on the command line \
         wins over the file. Keys: {}.",
        keys.join(", ")
    );
    cmd.after_long_help(text)
}

/// `args` with the file's settings inserted as flags after the program
/// name, leaving out those the command line (or environment) sets.
fn with_file(
    cmd: &Command,
    args: &[OsString],
    path: &Path,
    given: &ArgMatches,
) -> Result<Vec<OsString>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let settings = read_settings(&text).map_err(|message| ConfigError::Syntax {
        path: path.to_owned(),
        message,
    })?;
    let mut merged = args[..1].to_vec();
    for (key, value) in settings {
        let key_error = |rule: String| ConfigError::Key {
            path: path.to_owned(),
            key: key.clone(),
            rule,
        };
        let arg = setting(cmd, &key).ok_or_else(|| key_error("unknown key".to_string()))?;
        let values = flag_values(arg, &value).map_err(key_error)?;
        for v in &values {
            check(arg, v).map_err(key_error)?;
        }
        if !set_outside_file(given, arg) {
            merged.extend(as_flags(arg, values));
        }
    }
    merged.extend(args[1..].iter().cloned());
    Ok(merged)
}

/// The file's top-level mapping; an empty file sets nothing.
fn read_settings(text: &str) -> Result<serde_json::Map<String, Value>, String> {
    let options = serde_saphyr::options! { strict_booleans: true };
    let value: Value =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())?;
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(serde_json::Map::new()),
        _ => Err("must be a mapping of settings (key: value)".to_string()),
    }
}

/// The flag a key stands for.
fn setting<'a>(cmd: &'a Command, key: &str) -> Option<&'a Arg> {
    settings(cmd).find(|(k, _)| k == key).map(|(_, arg)| arg)
}

/// Every key a command's config file takes, with its flag.
pub fn settings(cmd: &Command) -> impl Iterator<Item = (String, &Arg)> {
    cmd.get_arguments().filter_map(|arg| {
        let long = arg.get_long()?;
        (!NOT_SETTINGS.contains(&long) && !arg.is_hide_set()).then(|| (key_for(long), arg))
    })
}

/// A flag's key: its words in camelCase, initialisms in capitals after the
/// first word (`--node-ip` → `nodeIP`, `--service-cidr` → `serviceCIDR`).
pub fn key_for(long: &str) -> String {
    long.split('-')
        .enumerate()
        .map(
            |(i, word)| match INITIALISMS.iter().find(|(w, _)| *w == word) {
                Some((_, caps)) if i > 0 => (*caps).to_string(),
                _ if i == 0 => word.to_string(),
                _ => capitalize(word),
            },
        )
        .collect()
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The value(s) the flag would be given, or why the YAML value does not
/// fit it.
fn flag_values(arg: &Arg, value: &Value) -> Result<Vec<String>, String> {
    if is_switch(arg) {
        return match value {
            Value::Bool(true) => Ok(vec![String::new()]),
            Value::Bool(false) | Value::Null => Ok(Vec::new()),
            other => Err(format!("must be true or false, not {}", kind(other))),
        };
    }
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) if takes_many(arg) => items.iter().map(scalar).collect(),
        Value::Object(entries) if takes_many(arg) => entries
            .iter()
            .map(|(k, v)| Ok(format!("{k}={}", scalar(v)?)))
            .collect(),
        Value::Array(_) | Value::Object(_) => Err(format!(
            "must be a single value, not {} (the flag takes one)",
            kind(value)
        )),
        v => Ok(vec![scalar(v)?]),
    }
}

fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!(
            "each value must be a string or a number, not {}",
            kind(other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append) || arg.get_value_delimiter().is_some()
}

/// Runs the flag's own parser on one value (in a command of that flag
/// alone), so the file is held to the flag's rules; the rule is worded for
/// a file, without the flag's name.
fn check(arg: &Arg, value: &str) -> Result<(), String> {
    if is_switch(arg) {
        return Ok(());
    }
    let alone = Command::new("check").arg(arg.clone().required(false));
    let long = arg.get_long().unwrap_or_default();
    match alone.try_get_matches_from(["check".to_string(), format!("--{long}={value}")]) {
        Ok(_) => Ok(()),
        Err(e) => Err(rule(&e)),
    }
}

/// `invalid IP address "10.0.0.300"` for an address that does not parse,
/// else `invalid value "V": <the parser's reason>`.
fn rule(err: &clap::Error) -> String {
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => v.as_str(),
        _ => "",
    };
    let reason = std::error::Error::source(err)
        .map(ToString::to_string)
        .unwrap_or_else(|| possible_values(err));
    match reason.strip_suffix(" syntax") {
        Some(what) => format!(
            "{} {value:?}",
            what.replace("IPv4 ", "IP ").replace("IPv6 ", "IP ")
        ),
        None => format!("invalid value {value:?}: {reason}"),
    }
}

/// The possible-values error's list.
fn possible_values(err: &clap::Error) -> String {
    match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(values)) => format!("must be one of {}", values.join(", ")),
        _ => err.kind().to_string(),
    }
}

/// True when the command line or the environment sets the flag: those win
/// over the file.
fn set_outside_file(matches: &ArgMatches, arg: &Arg) -> bool {
    matches!(
        matches.value_source(arg.get_id().as_str()),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// `--flag=value` per value (`=` keeps a value starting with `-` a value).
fn as_flags(arg: &Arg, values: Vec<String>) -> impl Iterator<Item = OsString> + '_ {
    let long = arg.get_long().unwrap_or_default();
    values.into_iter().map(move |v| {
        if is_switch(arg) {
            OsString::from(format!("--{long}"))
        } else {
            OsString::from(format!("--{long}={v}"))
        }
    })
}

/// Checks a daemon's example config file: it names every key (set, or
/// commented out as `# key: value`), and with every such line in force it
/// parses to exactly what the same values as flags parse to. For the
/// daemons' tests, so the shipped example cannot fall behind the flags.
pub fn check_example<T: clap::Parser + std::fmt::Debug>(example: &str) -> Result<(), String> {
    let cmd = T::command();
    let documented = documented_lines(example);
    let missing: Vec<String> = settings(&cmd)
        .map(|(key, _)| key)
        .filter(|key| !documented.iter().any(|(k, _)| k == key))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "keys missing from the example: {}",
            missing.join(", ")
        ));
    }
    let in_force: String = documented
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    let mut flags = vec![OsString::from(cmd.get_name())];
    for (key, value) in &read_settings(&in_force)? {
        let arg = setting(&cmd, key).ok_or_else(|| format!("{key}: unknown key"))?;
        flags.extend(as_flags(arg, flag_values(arg, value)?));
    }
    let file = std::env::temp_dir().join(format!("example-{}.yaml", std::process::id()));
    std::fs::write(&file, &in_force).map_err(|e| e.to_string())?;
    let path = file.display().to_string();
    let from_file = parse_from::<T, _>([cmd.get_name(), "--config", &path]);
    // The same `--config` (an empty file now) keeps that field alike.
    let emptied = std::fs::write(&file, "");
    let from_flags = emptied.map(|()| {
        flags.extend([OsString::from("--config"), OsString::from(&path)]);
        parse_from::<T, _>(flags)
    });
    let _ = std::fs::remove_file(&file);
    let from_file = format!("{:?}", from_file.map_err(|e| e.to_string())?);
    let from_flags = from_flags.map_err(|e| e.to_string())?;
    let from_flags = format!("{:?}", from_flags.map_err(|e| e.to_string())?);
    match from_file == from_flags {
        true => Ok(()),
        false => Err(format!("file: {from_file}\nflags: {from_flags}")),
    }
}

/// Every `key: value` line of an example, commented out or not.
fn documented_lines(example: &str) -> Vec<(String, String)> {
    example
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix('#').unwrap_or(line).trim_start();
            let (key, value) = line.split_once(':')?;
            let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric());
            (is_key && !value.trim().is_empty())
                .then(|| (key.to_string(), value.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
