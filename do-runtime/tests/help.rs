//! `--help` on every `dotdo` command and subcommand: exit 0, the flags in the text.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dotdo")).args(args).output().expect("dotdo runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "dotdo {args:?} exited with {:?}: {text}", out.status);
    text
}

#[test]
fn help_works_on_every_command() {
    let cases: [(&[&str], &[&str]); 6] = [
        (&["--help"], &["serve", "codegen", "token", "--version"]),
        (
            &["serve", "--help"],
            &[
                "--host",
                "--port",
                "--tcp-port",
                "--no-tcp",
                "--max-calls-in-flight",
                "--call-timeout-ms",
                "--data",
                "--max-objects",
                "--require-tokens",
                "--log-format",
                "[default: 8787]",
            ],
        ),
        (&["codegen", "--help"], &["--out", "--import-path", "-I"]),
        (&["token", "--help"], &["new-key", "mint", "verify", "attenuate"]),
        (&["token", "mint", "--help"], &["--target", "--methods", "--scope", "--ttl-ms", "--sub", "--namespace"]),
        (&["token", "attenuate", "--help"], &["--methods", "--scope", "--ttl-ms"]),
    ];
    for (args, flags) in cases {
        let text = help(args);
        for flag in flags {
            assert!(text.contains(flag), "dotdo {args:?} --help lacks {flag}:\n{text}");
        }
    }
}

#[test]
fn unknown_flags_fail_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_dotdo")).args(["serve", "--bogus"]).output().expect("dotdo runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--bogus") && err.contains("Usage: dotdo serve"), "{err}");
}
