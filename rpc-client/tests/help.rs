//! `dotdo-rpc --help`: exit 0 and its commands in the text; code generation is
//! `dotdo codegen`'s alone.

use std::process::Command;

fn dotdo_rpc(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dotdo-rpc")).args(args).output().expect("dotdo-rpc runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn help_lists_the_commands() {
    let (code, text, _) = dotdo_rpc(&["--help"]);
    assert_eq!(code, Some(0), "{text}");
    for word in ["[URL]", "chain", "ws://", "tcp://"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    assert!(!text.contains("codegen"), "code generation is dotdo codegen's:\n{text}");
    let (code, text, _) = dotdo_rpc(&["chain", "--help"]);
    assert_eq!(code, Some(0));
    assert!(text.contains("<URL> <FILE> <CHILD>"), "{text}");
}

#[test]
fn no_arguments_print_usage_and_fail() {
    let (code, _, err) = dotdo_rpc(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("Usage: dotdo-rpc"), "{err}");
}
