//! JSON ↔ `google.protobuf.Struct`/`Value`, so gateway params and results cross gRPC as
//! structured data (grpcurl users write plain JSON).

use prost_types::{ListValue, Struct, Value, value::Kind};

/// A protobuf Struct as a JSON object.
pub fn struct_to_json(structure: Struct) -> serde_json::Value {
    serde_json::Value::Object(
        structure
            .fields
            .into_iter()
            .map(|(key, value)| (key, value_to_json(value)))
            .collect(),
    )
}

/// A protobuf Value as JSON. Whole numbers come back as integers: the gateway's
/// schemas reject `1.0` where they expect an integer.
pub fn value_to_json(value: Value) -> serde_json::Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(flag)) => serde_json::Value::Bool(flag),
        Some(Kind::NumberValue(number)) => number_to_json(number),
        Some(Kind::StringValue(text)) => serde_json::Value::String(text),
        Some(Kind::StructValue(structure)) => struct_to_json(structure),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.into_iter().map(value_to_json).collect())
        }
    }
}

fn number_to_json(number: f64) -> serde_json::Value {
    const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;
    if number.fract() == 0.0 && number.abs() <= MAX_EXACT_INTEGER {
        serde_json::Value::from(number as i64)
    } else {
        serde_json::Number::from_f64(number)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// JSON as a protobuf Value. Integers beyond 2^53 lose precision, as in JavaScript.
pub fn json_to_value(json: serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(flag) => Kind::BoolValue(flag),
        serde_json::Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(text) => Kind::StringValue(text),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_object_to_struct(map)),
    };
    Value { kind: Some(kind) }
}

/// A JSON object as a protobuf Struct.
pub fn json_object_to_struct(map: serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map
            .into_iter()
            .map(|(key, value)| (key, json_to_value(value)))
            .collect(),
    }
}

/// Any JSON as a Struct: objects as they are, anything else (or null) as an empty Struct.
pub fn json_to_struct(json: serde_json::Value) -> Struct {
    match json {
        serde_json::Value::Object(map) => json_object_to_struct(map),
        _ => Struct::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_survives_the_round_trip() {
        let original = json!({"a": 1, "b": [true, null, "x", 2.5], "c": {"d": -3}});
        let back = value_to_json(json_to_value(original.clone()));
        assert_eq!(back, original);
    }

    #[test]
    fn non_objects_make_an_empty_struct() {
        assert!(json_to_struct(json!([1])).fields.is_empty());
        assert!(json_to_struct(serde_json::Value::Null).fields.is_empty());
    }
}
