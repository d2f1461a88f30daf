//! `getUpdates`, which is real long polling: `offset` confirms, `limit` caps, `timeout`
//! waits, a newer poll ends an older one with 409, and `allowed_updates` filters.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{
    params::{int_param, list_param},
    routes::ApiResult,
    state::Shared,
};

/// `getUpdates` `limit` bounds and default.
const MAX_UPDATES_LIMIT: usize = 100;
/// Update kinds Telegram leaves out when `allowed_updates` is empty or never set.
const OPT_IN_UPDATE_KINDS: &[&str] = &["chat_member", "message_reaction", "message_reaction_count"];

/// `getUpdates`: confirm by `offset`, then answer what is queued, waiting up to `timeout`
/// seconds for something to arrive.
pub(super) async fn get_updates(shared: &Shared, params: &Map<String, Value>) -> ApiResult {
    let offset = int_param(params, "offset").unwrap_or(0);
    let limit = int_param(params, "limit").map_or(MAX_UPDATES_LIMIT, |limit| {
        limit.clamp(1, MAX_UPDATES_LIMIT as i64) as usize
    });
    let timeout = Duration::from_secs(int_param(params, "timeout").unwrap_or(0).max(0) as u64);
    let allowed = list_param(params, "allowed_updates");
    let mut changed = shared.updates_changed.subscribe();
    let poll = {
        let mut state = shared.lock();
        if !state.webhook_url.is_empty() {
            return Err((
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first".to_owned(),
            ));
        }
        if let Some(allowed) = allowed {
            state.allowed_updates = allowed;
        }
        if offset > 0 {
            state
                .updates
                .retain(|update| update["update_id"].as_i64().unwrap_or(0) >= offset);
        } else if offset < 0 {
            let keep = offset.unsigned_abs() as usize;
            let drop = state.updates.len().saturating_sub(keep);
            state.updates.drain(..drop);
        }
        state.newest_poll += 1;
        state.newest_poll
    };
    // A newer poll ends any older one still waiting (it sees `newest_poll` move on).
    shared.updates_changed.send_modify(|version| *version += 1);
    changed.borrow_and_update();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        {
            let mut state = shared.lock();
            if state.newest_poll != poll {
                return Err((
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running".to_owned(),
                ));
            }
            let allowed = state.allowed_updates.clone();
            // Updates of kinds not allowed are never delivered: Telegram drops them.
            state
                .updates
                .retain(|update| update_is_allowed(update, &allowed));
            if !state.updates.is_empty() || timeout.is_zero() || *shared.stopped.borrow() {
                return Ok(Value::Array(
                    state.updates.iter().take(limit).cloned().collect(),
                ));
            }
        }
        if tokio::time::timeout_at(deadline, changed.changed())
            .await
            .is_err()
        {
            return Ok(json!([]));
        }
    }
}

fn update_is_allowed(update: &Value, allowed: &[String]) -> bool {
    let Some(kind) = update
        .as_object()
        .and_then(|fields| fields.keys().find(|key| *key != "update_id"))
    else {
        return false;
    };
    if allowed.is_empty() {
        !OPT_IN_UPDATE_KINDS.contains(&kind.as_str())
    } else {
        allowed.iter().any(|allowed| allowed == kind)
    }
}
