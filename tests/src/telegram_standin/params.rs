//! Parameters as Telegram reads them: query string and body merged, the body JSON, a
//! form or multipart; values read leniently (numbers as strings, lists as JSON text).

use serde_json::{Map, Value};

use super::multipart::parse_multipart;

pub(super) fn value_as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn int_param(params: &Map<String, Value>, name: &str) -> Option<i64> {
    params.get(name).and_then(value_as_i64)
}

pub(super) fn string_param(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

pub(super) fn bool_param(params: &Map<String, Value>, name: &str) -> bool {
    match params.get(name) {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text == "true" || text == "1",
        Some(Value::Number(number)) => number.as_i64().is_some_and(|number| number != 0),
        _ => false,
    }
}

/// A JSON array parameter, sent as an array (JSON body) or as its JSON text (forms).
pub(super) fn list_value_param(params: &Map<String, Value>, name: &str) -> Option<Vec<Value>> {
    match params.get(name)? {
        Value::Array(items) => Some(items.clone()),
        Value::String(text) => match serde_json::from_str(text) {
            Ok(Value::Array(items)) => Some(items),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn list_param(params: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    list_value_param(params, name).map(|items| {
        items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect()
    })
}

/// Query string and body, merged (the body wins).
pub(super) fn parse_params(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    if let Some(query) = query {
        params.extend(parse_form(query.as_bytes()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media_type.as_str() {
        "application/json" => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => params.extend(fields),
            Ok(_) => return Err("JSON body must be an object".to_owned()),
            Err(error) => return Err(format!("can't parse JSON body: {error}")),
        },
        "multipart/form-data" => {
            let boundary = content_type
                .and_then(|value| {
                    value
                        .split(';')
                        .filter_map(|part| part.trim().strip_prefix("boundary="))
                        .next()
                })
                .map(|boundary| boundary.trim_matches('"').to_owned())
                .ok_or_else(|| "multipart body without boundary".to_owned())?;
            params.extend(parse_multipart(body, &boundary)?);
        }
        // Telegram reads a body of any other type as a form.
        _ => params.extend(parse_form(body)),
    }
    Ok(params)
}

fn parse_form(text: &[u8]) -> Map<String, Value> {
    form_urlencoded::parse(text)
        .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn forms_and_multipart_parse() {
        let form = parse_params(
            Some("chat_id=42"),
            Some("application/x-www-form-urlencoded"),
            b"text=hello+w%C3%B6rld&parse_mode=HTML",
        )
        .unwrap();
        assert_eq!(form["chat_id"], "42");
        assert_eq!(form["text"], "hello wörld");
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n42\r\n--XX\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nabc\r\n--XX--\r\n";
        let multipart = parse_params(None, Some("multipart/form-data; boundary=XX"), body).unwrap();
        assert_eq!(multipart["chat_id"], "42");
        assert_eq!(multipart["photo"], json!({"filename": "a.png", "size": 3}));
        let malformed = parse_form(b"a=100%&b=%4");
        assert_eq!(
            (&malformed["a"], &malformed["b"]),
            (&json!("100%"), &json!("%4"))
        );
    }
}
