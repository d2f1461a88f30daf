//! Reading what the platform exports: scraping `/metrics`, finding samples, running
//! `promtool check metrics` / `check rules`, and the metric names a PromQL expression uses.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use ::http::Method;

use crate::{http, tools};

/// One sample line of the text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("not a sample: {line}")))
            .collect();
        Scrape {
            text: text.to_owned(),
            samples,
        }
    }

    /// Every sample name (`x_total`, `x_bucket`, ...).
    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    /// The sum of the samples named `name` whose labels include every pair of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|sample| sample.name == name)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
            })
            .map(|sample| sample.value)
            .sum()
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series.to_owned(), BTreeMap::new()),
        Some((name, rest)) => (name.to_owned(), parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// `a="x",b="y"`; values may hold escaped quotes and commas.
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (index, character) = chars.next()?;
            match character {
                '\\' => value.push(chars.next()?.1),
                '"' => break index,
                other => value.push(other),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    Some(labels)
}

/// GETs `url` (a `/metrics` endpoint) the way curl does (no OpenMetrics in `Accept`).
pub async fn scrape(url: &str) -> Scrape {
    let client = http::client();
    let reply = http::send(&client, Method::GET, url, None, None, "")
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    assert_eq!(reply.status, 200, "GET {url}");
    let content_type = reply
        .headers
        .get(::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{url}: {content_type}"
    );
    Scrape::parse(std::str::from_utf8(&reply.body).expect("UTF-8"))
}

/// `promtool check metrics` on a scrape's text: any problem fails the test.
pub fn check_metrics(what: &str, text: &str) {
    let Some(promtool) = tools::promtool_bin() else {
        return;
    };
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", promtool.display()));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("promtool reads the scrape");
    let output = child.wait_with_output().expect("promtool's output");
    assert!(
        output.status.success(),
        "promtool check metrics of {what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `promtool check rules` on a rule file (`groups:` at the top).
pub fn check_rules(path: &Path) {
    let Some(promtool) = tools::promtool_bin() else {
        return;
    };
    let output = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(path)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", promtool.display()));
    assert!(
        output.status.success(),
        "promtool check rules {} failed: {}{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Metric names a PromQL expression reads: identifiers starting `clawfleet_` or
/// `process_` (every name the platform exports has one of these prefixes).
pub fn metric_names_in(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut current = String::new();
    let mut in_string = false;
    for character in expression.chars().chain([' ']) {
        if character == '"' {
            in_string = !in_string;
            current.clear();
            continue;
        }
        if !in_string && (character.is_ascii_alphanumeric() || character == '_' || character == ':')
        {
            current.push(character);
            continue;
        }
        if current.starts_with("clawfleet_") || current.starts_with("process_") {
            names.insert(std::mem::take(&mut current));
        }
        current.clear();
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_with_their_labels() {
        let scrape = Scrape::parse(
            "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"uote,d\"} 3\na_total{x=\"2\"} 4\nb 1.5\n",
        );
        assert_eq!(scrape.sum("a_total", &[]), 7.0);
        assert_eq!(scrape.sum("a_total", &[("y", "q\"uote,d")]), 3.0);
        assert_eq!(scrape.sum("b", &[]), 1.5);
    }

    #[test]
    fn names_in_promql_skip_label_values_and_functions() {
        let names = metric_names_in(
            r#"sum(rate(clawfleet_x_total{a="clawfleet_not_a_name"}[5m])) / max(process_open_fds)"#,
        );
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["clawfleet_x_total", "process_open_fds"]
        );
    }
}
