use super::*;

fn flood(budget: &mut InboundBudget, at: Instant) -> Verdict {
    let mut verdict = Verdict::Read;
    for _ in 0..=UNSOLICITED_FRAMES_PER_SECOND {
        verdict = budget.charge(10, true, at);
    }
    verdict
}

#[test]
fn answers_to_our_own_calls_do_not_spend_the_unsolicited_budget() {
    let start = Instant::now();
    let mut budget = InboundBudget::new(start);
    for _ in 0..10 * UNSOLICITED_FRAMES_PER_SECOND {
        assert_eq!(budget.charge(100, false, start), Verdict::Read);
    }
}

#[test]
fn a_second_over_budget_pauses_reading_until_the_next_second() {
    let start = Instant::now();
    let mut budget = InboundBudget::new(start);
    assert_eq!(
        flood(&mut budget, start),
        Verdict::PauseUntil(start + WINDOW)
    );
    let mut budget = InboundBudget::new(start);
    assert_eq!(
        budget.charge(MAX_MESSAGE_BYTES, false, start),
        Verdict::Read
    );
    assert_eq!(
        budget.charge(MAX_MESSAGE_BYTES, false, start),
        Verdict::Read
    );
    assert_eq!(
        budget.charge(1, false, start),
        Verdict::PauseUntil(start + WINDOW)
    );
}

#[test]
fn three_seconds_in_a_row_over_budget_close_the_connection_with_a_reason() {
    let start = Instant::now();
    let mut budget = InboundBudget::new(start);
    assert!(matches!(flood(&mut budget, start), Verdict::PauseUntil(_)));
    assert!(matches!(
        flood(&mut budget, start + WINDOW),
        Verdict::PauseUntil(_)
    ));
    match flood(&mut budget, start + 2 * WINDOW) {
        Verdict::Close(CloseReason::LimitExceeded(reason)) => {
            assert!(reason.contains("unsolicited frames"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_calm_second_between_bursts_starts_the_count_again() {
    let start = Instant::now();
    let mut budget = InboundBudget::new(start);
    assert!(matches!(flood(&mut budget, start), Verdict::PauseUntil(_)));
    assert!(matches!(
        flood(&mut budget, start + WINDOW),
        Verdict::PauseUntil(_)
    ));
    assert_eq!(budget.charge(10, true, start + 2 * WINDOW), Verdict::Read);
    assert!(matches!(
        flood(&mut budget, start + 3 * WINDOW),
        Verdict::PauseUntil(_)
    ));
    assert!(matches!(
        flood(&mut budget, start + 4 * WINDOW),
        Verdict::PauseUntil(_)
    ));
}
