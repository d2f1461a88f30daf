//! The instances waiting to be applied, fair between owners (docs/capacity.md#accept-then-apply):
//! each owner has a FIFO of their instances and the owners take turns, so one account's
//! burst of a thousand creates delays another account's single create by at most one
//! apply per busy owner, not by the whole burst. An instance is queued once however
//! often it changes meanwhile: the applier applies what it should be when its turn comes.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::instance_id::InstanceId;

#[derive(Default)]
pub struct FairQueue {
    /// Owners with waiting instances, in turn order.
    turns: VecDeque<String>,
    waiting: HashMap<String, VecDeque<InstanceId>>,
    queued: HashSet<InstanceId>,
}

impl FairQueue {
    /// Queues `id` for `owner`; false when it already waits.
    pub fn push(&mut self, owner: &str, id: InstanceId) -> bool {
        if !self.queued.insert(id.clone()) {
            return false;
        }
        let lane = self.waiting.entry(owner.to_owned()).or_default();
        if lane.is_empty() {
            self.turns.push_back(owner.to_owned());
        }
        lane.push_back(id);
        true
    }

    /// The next instance and its owner: the first of the owner whose turn it is.
    pub fn pop(&mut self) -> Option<(InstanceId, String)> {
        let owner = self.turns.pop_front()?;
        let lane = self.waiting.get_mut(&owner)?;
        let id = lane.pop_front()?;
        if lane.is_empty() {
            self.waiting.remove(&owner);
        } else {
            self.turns.push_back(owner.clone());
        }
        self.queued.remove(&id);
        Some((id, owner))
    }

    pub fn contains(&self, id: &InstanceId) -> bool {
        self.queued.contains(id)
    }

    pub fn len(&self) -> usize {
        self.queued.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// How many instances are applied before `id` (None when it does not wait): the
    /// owners take turns, so every owner contributes at most as many as `id` has ahead
    /// in its own lane, plus one for owners whose turn comes first.
    pub fn ahead_of(&self, id: &InstanceId) -> Option<usize> {
        if !self.queued.contains(id) {
            return None;
        }
        let (owner, rank) = self.waiting.iter().find_map(|(owner, lane)| {
            lane.iter()
                .position(|queued| queued == id)
                .map(|rank| (owner, rank))
        })?;
        let my_turn = self.turns.iter().position(|turn| turn == owner)?;
        let ahead = self
            .turns
            .iter()
            .enumerate()
            .map(|(turn, other)| {
                let lane = self.waiting.get(other).map_or(0, VecDeque::len);
                let rounds = if turn < my_turn { rank + 1 } else { rank };
                lane.min(rounds)
            })
            .sum();
        Some(ahead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> InstanceId {
        InstanceId::parse(text).unwrap()
    }

    #[test]
    fn owners_take_turns_and_an_instance_waits_once() {
        let mut queue = FairQueue::default();
        for index in 0..100 {
            assert!(queue.push("burst", id(&format!("burst-{index}"))));
        }
        assert!(!queue.push("burst", id("burst-5")));
        assert!(queue.push("single", id("single-0")));
        assert_eq!(queue.len(), 101);
        // The single create waits for one of the burst, not for all of it.
        assert_eq!(queue.ahead_of(&id("single-0")), Some(1));
        assert_eq!(queue.ahead_of(&id("burst-0")), Some(0));
        assert_eq!(queue.ahead_of(&id("burst-2")), Some(3));
        let next = |queue: &mut FairQueue| queue.pop().map(|(id, _)| id);
        assert_eq!(next(&mut queue), Some(id("burst-0")));
        assert_eq!(queue.pop(), Some((id("single-0"), "single".to_owned())));
        assert_eq!(next(&mut queue), Some(id("burst-1")));
        assert_eq!(queue.ahead_of(&id("single-0")), None);
        let mut rest = 0;
        while queue.pop().is_some() {
            rest += 1;
        }
        assert_eq!(rest, 98);
        assert!(queue.is_empty());
    }
}
