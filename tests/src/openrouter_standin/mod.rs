//! A stand-in of OpenRouter's key-provisioning API on loopback, for a lifecycle whose
//! `OPENROUTER_BASE_URL` points at it (docs/product/provider-keys.md).
//!
//! It speaks the real wire format under `/api/v1`: `POST /keys` (`name`, `limit`) answers
//! 201 `{"data":{hash,name,label,limit,disabled,usage,...},"key":"sk-or-v1-..."}`;
//! `GET /keys` lists (`offset`, 100 a page), `GET`/`PATCH`/`DELETE /keys/{hash}` read,
//! change (`limit`, `disabled`, `name`) and remove one key; every one of those needs the
//! management key as `Authorization: Bearer`. `GET /key` answers the calling (provisioned)
//! key's own usage and limit. Errors are `{"error":{"code":...,"message":...}}` with the
//! matching status.
//!
//! Tests inject faults (401, 429 with `Retry-After`, any 5xx, a slow answer) for the next
//! management calls, set a key's usage, and read the keys and the calls made.

mod control; // the handle tests hold: start, faults, usage, reading keys and calls
mod routes; // the HTTP routes and the JSON shapes
mod state; // the keys, the injected faults and the recorded calls

pub use control::OpenRouterStandIn;
pub use state::{Fault, StoredKey};
