//! What the command lines of our binaries share: exit codes, and the
//! environment-variable table that `--help` prints.
//!
//! Each binary keeps one `ENV_VARS` table next to its `Config` (the single
//! source for `--help`; a unit test there checks it against the variables
//! `config.rs` reads) and renders it with [`env_help`].

use crate::config::ConfigError;

/// Exit status for a runtime failure (start-up, serving, a subcommand).
pub const EXIT_RUNTIME: u8 = 1;
/// Exit status for a configuration error (a bad or unreadable variable) and,
/// as clap does, for a usage error.
pub const EXIT_CONFIG: u8 = 2;

/// The short `-h` epilogue of both servers.
pub const SERVER_SHORT_HELP: &str = "Configuration comes from the environment and ./.env; \
    `--help` lists every variable.\n\
    Exit status: 0 ok, 1 runtime failure, 2 configuration or usage error.";

/// The `--help` epilogue of a server: its variables, then the exit codes.
pub fn server_long_help(vars: &[EnvVar]) -> String {
    format!(
        "{}\nExit status: 0 ok, 1 runtime failure, 2 configuration error (one line on\n\
         stderr naming the variable) or usage error.",
        env_help(
            "Environment (also read from ./.env; an empty value counts as unset):",
            vars,
        )
    )
}

/// One environment variable a binary reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// Its default, as a person would write it; `""` when unset means "off".
    pub default: &'static str,
    /// What it does, one sentence.
    pub meaning: &'static str,
}

impl EnvVar {
    /// A table row.
    pub const fn new(name: &'static str, default: &'static str, meaning: &'static str) -> Self {
        Self {
            name,
            default,
            meaning,
        }
    }
}

/// Width the meanings are wrapped to (after an indent of 6).
const WRAP: usize = 74;

/// `--help` text for `vars`: a heading, then per variable a line
/// `  NAME [default: …]` and its meaning indented below (clap's long-help
/// layout for options).
pub fn env_help(heading: &str, vars: &[EnvVar]) -> String {
    let mut out = format!("{heading}\n");
    for v in vars {
        let default = if v.default.is_empty() {
            "unset"
        } else {
            v.default
        };
        out.push_str(&format!("  {} [default: {default}]\n", v.name));
        for line in wrap(v.meaning, WRAP) {
            out.push_str("      ");
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Greedy word wrap; a word longer than `width` gets a line of its own.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The one stderr line for a configuration error, `{bin}: {VAR}: {message}`
/// (a multi-line cause is folded so scripts and logs see one line).
pub fn config_error_line(bin: &str, e: &ConfigError) -> String {
    let line = format!("{bin}: {e}");
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The variable names in `source` (a `config.rs`) passed as a string literal
/// to the env helpers (`var`, `var_or`, `var_parsed`, `var_list`,
/// `required_var`), for the tests that keep each `ENV_VARS` table complete.
pub fn vars_read_in(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for call in [
        "var(\"",
        "var_or(\"",
        "var_parsed(\"",
        "var_list(\"",
        "var_addr_or_off(\"",
    ] {
        for (at, _) in source.match_indices(call) {
            let rest = &source[at + call.len()..];
            if let Some(end) = rest.find('"') {
                let name = &rest[..end];
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
    }
    names.sort();
    names
}

/// Variables read by the shared start-up code rather than a server's
/// `config.rs` (`telemetry`: `RUST_LOG`, `NO_COLOR`, the OpenTelemetry pair).
pub const READ_BY_TELEMETRY: &[&str] = &[
    "RUST_LOG",
    "NO_COLOR",
    crate::telemetry::OTEL_ENDPOINT_VAR,
    crate::telemetry::OTEL_SERVICE_NAME_VAR,
];

/// Everything wrong with a server's `ENV_VARS` table: [`table_drift`]
/// against its `config.rs` (plus [`READ_BY_TELEMETRY`]) and
/// [`missing_from_reference`] against the `## {section}` of the written
/// reference. Each server's one test asserts this is empty.
pub fn env_table_problems(
    config_source: &str,
    table: &[EnvVar],
    reference: &str,
    section: &str,
) -> Vec<String> {
    let mut problems = table_drift(config_source, table, READ_BY_TELEMETRY);
    problems.extend(
        missing_from_reference(reference, section, table)
            .into_iter()
            .map(|name| format!("{name} is missing from docs/configuration.md, section {section}")),
    );
    problems
}

/// How a server's `ENV_VARS` table and what it reads disagree: the
/// variables read in `config_source` (plus the shared `RATE_LIMIT_*` and
/// Redis variables and `read_elsewhere`) that the table lacks, those the
/// table lists but nothing reads, and names listed twice. Empty when they agree.
pub fn table_drift(config_source: &str, table: &[EnvVar], read_elsewhere: &[&str]) -> Vec<String> {
    let listed: Vec<&str> = table.iter().map(|v| v.name).collect();
    let mut read = vars_read_in(config_source);
    read.extend(crate::limits::ENV_VARS.iter().map(|v| (*v).to_owned()));
    read.extend(crate::redis::ENV_VARS.iter().map(|v| (*v).to_owned()));
    read.extend(crate::serve::ENV_VARS.iter().map(|v| (*v).to_owned()));
    read.extend(read_elsewhere.iter().map(|v| (*v).to_owned()));
    let mut problems: Vec<String> = read
        .iter()
        .filter(|name| !listed.contains(&name.as_str()))
        .map(|name| format!("{name} is read but missing from ENV_VARS"))
        .collect();
    problems.extend(
        listed
            .iter()
            .filter(|name| !read.iter().any(|r| r == *name))
            .map(|name| format!("{name} is in ENV_VARS but never read")),
    );
    for (i, name) in listed.iter().enumerate() {
        if listed[..i].contains(name) {
            problems.push(format!("{name} is listed twice"));
        }
    }
    problems
}

/// The variables of `vars` that the `## {section}` section of a Markdown
/// reference (e.g. `docs/configuration.md`) does not name in backticks:
/// lets each server test that its `--help` table and the written reference
/// never drift apart.
pub fn missing_from_reference<'a>(
    reference: &str,
    section: &str,
    vars: &'a [EnvVar],
) -> Vec<&'a str> {
    let heading = format!("## {section}\n");
    let body = reference
        .split_once(&heading)
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(rest))
        .unwrap_or("");
    vars.iter()
        .map(|v| v.name)
        .filter(|name| !body.contains(&format!("`{name}`")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_name_default_and_wrapped_meaning() {
        const LONG: &str = "word word word word word word word word word word word word word \
            word word word word word word word word word word word word word word word word \
            word word";
        let vars = [
            EnvVar::new("A_VAR", "900", "short"),
            EnvVar::new("B_VAR", "", LONG),
        ];
        let text = env_help("Environment:", &vars);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Environment:");
        assert_eq!(lines[1], "  A_VAR [default: 900]");
        assert_eq!(lines[2], "      short");
        assert_eq!(lines[3], "  B_VAR [default: unset]");
        assert!(lines[4..].iter().all(|l| l.len() <= 6 + WRAP), "{text}");
        assert_eq!(lines.len(), 4 + 3);
    }

    #[test]
    fn config_errors_are_one_line() {
        let e = ConfigError::new(".env", "cannot be read:\n  line 3: bad");
        assert_eq!(
            config_error_line("x", &e),
            "x: .env: cannot be read: line 3: bad"
        );
    }

    #[test]
    fn finds_the_variables_a_config_reads() {
        let src = r#"let a = var_parsed("A", 1)?; var_or("B", "x"); var("C").map(f);
            required_var("D")?; var_list("A", &[]); other("E");"#;
        assert_eq!(vars_read_in(src), ["A", "B", "C", "D"]);
    }

    #[test]
    fn table_drift_names_each_disagreement() {
        let table = [
            EnvVar::new("A_VAR", "1", "read"),
            EnvVar::new("STALE_VAR", "", "never read"),
            EnvVar::new("A_VAR", "1", "again"),
        ];
        let mut all = table.to_vec();
        all.extend(
            crate::limits::ENV_VARS
                .iter()
                .chain(crate::redis::ENV_VARS)
                .chain(crate::serve::ENV_VARS)
                .map(|n| EnvVar::new(n, "", "")),
        );
        let problems = table_drift(r#"var_or("A_VAR", "1"); var("NEW_VAR")"#, &all, &[]);
        assert_eq!(
            problems,
            [
                "NEW_VAR is read but missing from ENV_VARS",
                "STALE_VAR is in ENV_VARS but never read",
                "A_VAR is listed twice"
            ]
        );
    }
}
