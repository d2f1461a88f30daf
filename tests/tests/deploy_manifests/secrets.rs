//! Secrets are referenced by name and key only, and deploy/README.md shows the
//! `kubectl create secret` line for each: every key a pod reads is created by the recipe,
//! and the recipe creates nothing no pod reads.

use std::collections::BTreeSet;

use clawfleet_tests::tools::repo_root;

use crate::{
    overlays,
    render::{name_of, namespace_of, pod_spec},
};

/// `(namespace, secret, key)`.
type SecretKey = (String, String, String);

/// Shell commands of the README's code blocks, continued lines joined.
fn commands(markdown: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_code = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let line = line.trim();
        match line.strip_suffix('\\') {
            Some(start) => {
                pending.push_str(start);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

/// The keys the README's `kubectl create secret generic` lines create.
fn recipe(markdown: &str) -> BTreeSet<SecretKey> {
    let mut created = BTreeSet::new();
    for command in commands(markdown) {
        let words: Vec<&str> = command.split_whitespace().collect();
        let Some(position) = words
            .windows(3)
            .position(|w| w == ["create", "secret", "generic"])
        else {
            continue;
        };
        let name = words[position + 3].to_owned();
        let namespace = words
            .windows(2)
            .find(|pair| pair[0] == "-n" || pair[0] == "--namespace")
            .map(|pair| pair[1].to_owned())
            .unwrap_or_else(|| panic!("`{command}` names its namespace"));
        for word in &words {
            let key = if let Some(rest) = word.strip_prefix("--from-literal=") {
                rest.split_once('=').map(|(key, _)| key.to_owned())
            } else {
                // `--from-file=KEY=path`, or `--from-file=path` keyed by the file's name.
                word.strip_prefix("--from-file=")
                    .map(|rest| match rest.split_once('=') {
                        Some((key, _)) => key.to_owned(),
                        None => rest.rsplit('/').next().unwrap_or(rest).to_owned(),
                    })
            };
            if let Some(key) = key {
                created.insert((namespace.clone(), name.clone(), key));
            }
        }
    }
    created
}

/// Every Secret key the rendered pods read, per overlay.
fn references() -> Vec<(&'static str, BTreeSet<SecretKey>)> {
    overlays()
        .iter()
        .map(|rendered| {
            let mut read = BTreeSet::new();
            for deployment in &rendered.deployments {
                let namespace = namespace_of(&deployment.metadata).to_owned();
                let spec = pod_spec(deployment);
                for container in &spec.containers {
                    for source in container.env_from.iter().flatten() {
                        assert!(
                            source.secret_ref.is_none(),
                            "{}: name each Secret key instead of importing a whole Secret",
                            name_of(&deployment.metadata)
                        );
                    }
                    for variable in container.env.iter().flatten() {
                        let reference = variable
                            .value_from
                            .as_ref()
                            .and_then(|source| source.secret_key_ref.as_ref());
                        if let Some(reference) = reference {
                            read.insert((
                                namespace.clone(),
                                reference.name.clone(),
                                reference.key.clone(),
                            ));
                        }
                    }
                }
                for volume in spec.volumes.iter().flatten() {
                    let Some(secret) = &volume.secret else {
                        continue;
                    };
                    let name = secret.secret_name.clone().expect("a secret name");
                    let items = secret.items.as_ref().unwrap_or_else(|| {
                        panic!("volume {} names the Secret keys it mounts", volume.name)
                    });
                    for item in items {
                        read.insert((namespace.clone(), name.clone(), item.key.clone()));
                    }
                }
            }
            (rendered.overlay, read)
        })
        .collect()
}

fn documented() -> BTreeSet<SecretKey> {
    let path = repo_root().join("deploy/README.md");
    let markdown = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    recipe(&markdown)
}

#[test]
fn every_secret_key_a_pod_reads_is_created_by_the_documented_recipe() {
    let documented = documented();
    for (overlay, read) in references() {
        let missing: Vec<_> = read.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "{overlay}: not in deploy/README.md's recipe: {missing:?}"
        );
    }
}

#[test]
fn the_recipe_creates_nothing_that_no_pod_reads() {
    let read: BTreeSet<SecretKey> = references()
        .into_iter()
        .flat_map(|(_, read)| read)
        .collect();
    let unused: Vec<_> = documented().difference(&read).cloned().collect();
    assert!(unused.is_empty(), "created but never read: {unused:?}");
}

#[test]
fn the_recipe_reader_understands_literals_files_and_continued_lines() {
    let markdown = "text\n```sh\nkubectl -n ns create secret generic one \\\n  --from-literal=A=\"$(openssl rand -hex 32)\" \\\n  --from-file=b.json --from-file=C=dir/c.txt\n```\n";
    let keys: Vec<String> = recipe(markdown)
        .into_iter()
        .map(|(namespace, name, key)| format!("{namespace}/{name}/{key}"))
        .collect();
    assert_eq!(keys, ["ns/one/A", "ns/one/C", "ns/one/b.json"]);
}
