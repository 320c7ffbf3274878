//! The commands page: every visible command of clap's tree (as `subsync man` walks it), each
//! flag with its variable, default and what it accepts, and the variables no flag takes.
//!
//! What a flag accepts is asked of the code, never restated: enum values from clap, whole
//! numbers' ranges from the flag's own value parser, durations' floors and ceilings from
//! `settings::durations`, regions from `tencent::endpoint`.

use std::any::TypeId;
use std::fmt::Write as _;

use clap::{Arg, ArgAction, Command};

use super::{cell, code};
use crate::settings::durations;

pub(crate) fn page(cli: &Command) -> String {
    let mut out = String::from(
        "Flags win over environment variables, which win over defaults; subsync reads nothing \
         else from the environment. A setting it refuses stops the command with exit 1, naming \
         the flag, before anything is sent or created (see \
         [Configuration](../configuration.md)).\n\n",
    );
    out.push_str("Commands:\n\n");
    for (path, command) in visible(cli, "subsync") {
        let about = command
            .get_about()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "- [`{path}`](#{}): {}", slug(&path), cell(&about));
    }
    out.push_str("\n## Global options\n\nEvery command takes these.\n\n");
    table(&mut out, cli.get_arguments().filter(|a| a.is_global_set()));
    out.push_str(&environment_only(cli));
    for (path, command) in visible(cli, "subsync") {
        section(&mut out, &path, command);
    }
    out
}

/// The commands a user can run, depth first, with their full names.
fn visible<'a>(command: &'a Command, path: &str) -> Vec<(String, &'a Command)> {
    let mut all = Vec::new();
    // clap's own `help` command is not one of subsync's.
    let own = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help");
    for sub in own {
        let name = format!("{path} {}", sub.get_name());
        all.push((name.clone(), sub));
        all.extend(visible(sub, &name));
    }
    all
}

fn section(out: &mut String, path: &str, command: &Command) {
    let _ = writeln!(out, "\n## {path}\n");
    let about = command
        .get_long_about()
        .or(command.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = writeln!(out, "{about}\n");
    let usage = command
        .clone()
        .bin_name(path)
        .render_usage()
        .to_string()
        .replace("Usage: ", "");
    let _ = writeln!(out, "```text\n{usage}\n```\n");
    let own: Vec<&Arg> = command
        .get_arguments()
        .filter(|a| !a.is_global_set() && !a.is_hide_set() && !is_builtin(a))
        .collect();
    if own.is_empty() {
        out.push_str("No options but the global ones.\n");
    } else {
        table(out, own.into_iter());
    }
    if let Some(after) = command.get_after_help() {
        let _ = writeln!(out, "\n```text\n{}\n```", after.to_string().trim_end());
    }
    let subs: Vec<&str> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| c.get_name())
        .collect();
    if !subs.is_empty() {
        let list: Vec<String> = subs
            .iter()
            .map(|s| format!("[`{s}`](#{})", slug(&format!("{path} {s}"))))
            .collect();
        let _ = writeln!(out, "\nCommands: {}.", list.join(", "));
    }
}

fn is_builtin(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
}

fn table<'a>(out: &mut String, args: impl Iterator<Item = &'a Arg>) {
    out.push_str("| option | environment | default | accepts | meaning |\n|---|---|---|---|---|\n");
    for arg in args.filter(|a| !a.is_hide_set() && !is_builtin(a)) {
        let env = arg
            .get_env()
            .map(|e| code(&e.to_string_lossy()))
            .unwrap_or_default();
        let default: Vec<String> = match arg.get_action() {
            ArgAction::SetTrue => vec!["off".into()],
            _ => arg
                .get_default_values()
                .iter()
                .map(|d| code(&d.to_string_lossy()))
                .chain(resolved_default(arg))
                .collect(),
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {env} | {} | {} | {} |",
            name(arg),
            default.join(", "),
            accepts(arg),
            cell(&help)
        );
    }
}

/// The default of a flag that clap leaves unset because the settings decide it.
fn resolved_default(arg: &Arg) -> Option<String> {
    match arg.get_long()? {
        "api-timeout" => Some(code(&durations::show(
            crate::tencent::Timeouts::default().first_byte,
        ))),
        _ => None,
    }
}

/// `--flag VALUE`, or a positional's `PATH...` (required ones say so).
fn name(arg: &Arg) -> String {
    let value = arg
        .get_value_names()
        .map(|v| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    let many = matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
    let dots = if many { "..." } else { "" };
    let takes_value = arg.get_action().takes_values();
    let shown = match arg.get_long() {
        Some(long) if takes_value => format!("--{long} {value}{dots}"),
        Some(long) => format!("--{long}"),
        None => format!("{value}{dots}"),
    };
    let required = if arg.is_required_set() {
        " (required)"
    } else {
        ""
    };
    format!("{}{required}", code(&shown))
}

/// What the flag accepts, as far as the code knows it.
fn accepts(arg: &Arg) -> String {
    let long = arg.get_long().map(|l| format!("--{l}"));
    if let Some(rule) = durations::ALL
        .iter()
        .find(|r| Some(r.flag) == long.as_deref())
    {
        let off = if rule.off { ", or `0`: off" } else { "" };
        return format!(
            "a duration (`500ms`, `30s`, `10m`, `1h`) from `{}` to `{}`{off}; below `{}` {}",
            durations::show(rule.floor),
            durations::show(rule.ceiling),
            durations::show(rule.floor),
            cell(rule.why)
        );
    }
    if long.as_deref() == Some("--region") {
        let regions: Vec<String> = crate::tencent::endpoint::Region::ALL
            .iter()
            .map(|r| code(r.name()))
            .collect();
        return regions.join(", ");
    }
    if !arg.get_action().takes_values() {
        return String::new();
    }
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| match v.get_help() {
            Some(help) => format!("{}: {}", code(v.get_name()), cell(&help.to_string())),
            None => code(v.get_name()),
        })
        .collect();
    if !values.is_empty() {
        return values.join("<br>");
    }
    whole_numbers(arg).unwrap_or_default()
}

/// The range a whole-number flag's own parser accepts, found by asking it.
fn whole_numbers(arg: &Arg) -> Option<String> {
    let parser = arg.get_value_parser();
    let id = parser.type_id();
    let integer = [
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i64>(),
    ]
    .iter()
    .any(|t| id == *t);
    if !integer {
        return None;
    }
    let probe = Command::new("probe").arg(
        Arg::new("v")
            .long("v")
            .allow_hyphen_values(true)
            .value_parser(parser.clone()),
    );
    let takes = |n: i128| {
        probe
            .clone()
            .try_get_matches_from(["probe", "--v", &n.to_string()])
            .is_ok()
    };
    let known = arg
        .get_default_values()
        .first()
        .and_then(|d| d.to_str()?.parse::<i128>().ok())
        .filter(|&n| takes(n))
        .or_else(|| [1, 0, 100].into_iter().find(|&n| takes(n)))?;
    // The parser takes one interval: bisect for each end.
    let (mut lo, mut hi) = (i128::from(i64::MIN), known);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if takes(mid) { hi = mid } else { lo = mid + 1 }
    }
    let low = lo;
    let (mut lo, mut hi) = (known, i128::from(u64::MAX));
    while lo < hi {
        let mid = lo + (hi - lo + 1) / 2;
        if takes(mid) { lo = mid } else { hi = mid - 1 }
    }
    Some(format!("a whole number from {low} to {lo}"))
}

/// The variables that no flag takes, with what reads them.
fn environment_only(cli: &Command) -> String {
    let mut out =
        String::from("\n### Variables without a flag\n\n| environment | meaning |\n|---|---|\n");
    let _ = writeln!(
        out,
        "| {} | the secret key itself, when no key file is given: no flag takes the key, so that it never shows in a process list |",
        code(crate::settings::SECRET_KEY_VAR)
    );
    for source in crate::ledger::PASSWORD_SOURCES {
        if let crate::ledger::PasswordSource::Env(name) = source {
            let _ = writeln!(
                out,
                "| {} | the PostgreSQL password, when neither the `--state` URL nor a password file gives one |",
                code(name)
            );
        }
    }
    // Hidden flags that exist only to read a variable (NO_COLOR).
    for arg in cli.get_arguments().filter(|a| a.is_hide_set()) {
        if let (Some(env), Some(help)) = (arg.get_env(), arg.get_help()) {
            let _ = writeln!(
                out,
                "| {} | {} |",
                code(&env.to_string_lossy()),
                cell(&help.to_string())
            );
        }
    }
    out
}

/// GitHub's anchor of a heading made of `text` (lowercase; spaces to `-`; other punctuation
/// dropped).
fn slug(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_s_range_is_read_from_its_own_parser() {
        let arg = Arg::new("qps")
            .long("qps")
            .default_value("190")
            .value_parser(clap::value_parser!(u32).range(1..=10_000));
        assert_eq!(
            whole_numbers(&arg).unwrap(),
            "a whole number from 1 to 10000"
        );
        let text = Arg::new("name").long("name");
        assert_eq!(whole_numbers(&text), None);
    }

    #[test]
    fn headings_become_github_anchors() {
        assert_eq!(slug("subsync ledger copy"), "subsync-ledger-copy");
    }
}
