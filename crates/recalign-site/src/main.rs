//! `recalign-site fetch [--root DIR]` and `recalign-site serve [--dir DIR] [--port N]`: the
//! two steps of `./x serve` before and after the wasm build. Arguments are read by hand: two
//! commands with one option each do not need a parser crate in the first-start build.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: recalign-site fetch [--root DIR] | serve [--dir DIR] [--port N]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> recalign_site::Result {
    let (command, options) = args.split_first().ok_or_else(|| USAGE.to_string())?;
    let mut root = PathBuf::from(".");
    let mut dir = PathBuf::from("dist");
    let mut port: u16 = 8080;
    let mut rest = options.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?;
        match (command.as_str(), flag.as_str()) {
            ("fetch", "--root") => root = PathBuf::from(value),
            ("serve", "--dir") => dir = PathBuf::from(value),
            ("serve", "--port") => {
                port = value
                    .parse()
                    .map_err(|_| format!("--port {value:?} is not a port number"))?;
            }
            _ => return Err(format!("unknown option {flag} for {command}; {USAGE}")),
        }
    }
    match command.as_str() {
        "fetch" => recalign_site::fetch(&root),
        "serve" => recalign_site::serve(&dir, port),
        other => Err(format!("unknown command {other:?}; {USAGE}")),
    }
}

#[cfg(test)]
mod tests {
    use super::run;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bad_arguments_get_a_message_naming_them() {
        let err = |a: &[&str]| run(args(a)).unwrap_err();
        assert!(err(&[]).starts_with("usage:"));
        assert!(err(&["serve", "--port", "80x"]).contains("\"80x\" is not a port"));
        assert!(err(&["fetch", "--port", "1"]).contains("unknown option --port for fetch"));
        assert!(err(&["serve", "--dir"]).contains("--dir needs a value"));
        assert!(err(&["build"]).contains("unknown command \"build\""));
        let missing = err(&["serve", "--dir", "/nonexistent-recalign-dist"]);
        assert!(missing.contains("has no index.html"), "{missing}");
    }
}
