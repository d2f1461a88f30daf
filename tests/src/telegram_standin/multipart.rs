//! `multipart/form-data` bodies, as bots upload files: text fields become strings and
//! files `{"filename":..,"size":..}`.

use serde_json::{Map, Value, json};

pub(super) fn parse_multipart(body: &[u8], boundary: &str) -> Result<Map<String, Value>, String> {
    let delimiter = format!("--{boundary}");
    let mut params = Map::new();
    for part in split_bytes(body, delimiter.as_bytes()).into_iter().skip(1) {
        if part.starts_with(b"--") {
            break;
        }
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = find_bytes(part, b"\r\n\r\n") else {
            return Err("malformed multipart part".to_owned());
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let content = &part[split + 4..];
        let disposition = head
            .lines()
            .find(|line| {
                line.to_ascii_lowercase()
                    .starts_with("content-disposition:")
            })
            .unwrap_or_default();
        let name = disposition_field(disposition, "name")
            .ok_or_else(|| "multipart part without a name".to_owned())?;
        let value = match disposition_field(disposition, "filename") {
            Some(filename) => json!({"filename": filename, "size": content.len()}),
            None => Value::String(String::from_utf8_lossy(content).into_owned()),
        };
        params.insert(name, value);
    }
    Ok(params)
}

fn disposition_field(disposition: &str, field: &str) -> Option<String> {
    disposition.split(';').find_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        (key.eq_ignore_ascii_case(field)).then(|| value.trim_matches('"').to_owned())
    })
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn split_bytes<'a>(mut haystack: &'a [u8], needle: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = find_bytes(haystack, needle) {
        parts.push(&haystack[..at]);
        haystack = &haystack[at + needle.len()..];
    }
    parts.push(haystack);
    parts
}
