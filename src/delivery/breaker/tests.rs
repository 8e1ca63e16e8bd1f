//! Sequence tests of the circuit breaker state machine.

use super::*;

/// One result fed to [`Breaker::record`].
#[derive(Debug, Clone, Copy)]
enum Event {
    Success,
    Retryable,
    Permanent,
}

const OPENED: Transition = Transition {
    from: BreakerState::Closed,
    to: BreakerState::Open,
};
const CLOSED: Transition = Transition {
    from: BreakerState::HalfOpen,
    to: BreakerState::Closed,
};
const REOPENED: Transition = Transition {
    from: BreakerState::HalfOpen,
    to: BreakerState::Open,
};

fn config() -> BreakerConfig {
    BreakerConfig {
        initial_cooldown: Duration::from_secs(1),
        max_cooldown: Duration::from_secs(8),
        probe_timeout: Duration::from_secs(30),
        ..BreakerConfig::default()
    }
}

fn record(breaker: &mut Breaker, now: Instant, event: Event) -> Option<Transition> {
    match event {
        Event::Success => breaker.record(now, true, false),
        Event::Retryable => breaker.record(now, false, true),
        Event::Permanent => breaker.record(now, false, false),
    }
}

/// Feeds `events` to a new breaker and returns the transitions with their positions.
fn run(events: &[Event]) -> Vec<(usize, Transition)> {
    let mut breaker = Breaker::new(config());
    let now = Instant::now();
    let mut transitions = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if let Some(transition) = record(&mut breaker, now, *event) {
            transitions.push((index, transition));
        }
    }
    transitions
}

fn repeat(event: Event, count: usize) -> Vec<Event> {
    vec![event; count]
}

/// Opens a breaker with the test config at `now`.
fn opened(now: Instant) -> Breaker {
    let mut breaker = Breaker::new(config());
    for _ in 0..10 {
        breaker.record(now, false, true);
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    breaker
}

/// One table row: name, results fed in, and expected transitions with their positions.
type Case = (&'static str, Vec<Event>, Vec<(usize, Transition)>);

#[test]
fn closed_sequences_open_by_table() {
    use Event::*;
    let five_five = [repeat(Success, 5), repeat(Retryable, 5)].concat();
    let six_four = [repeat(Success, 6), repeat(Retryable, 4)].concat();
    let nine_in_twenty = [repeat(Success, 20), repeat(Retryable, 9)].concat();
    let sliding = [repeat(Success, 20), repeat(Retryable, 10)].concat();
    let cases: Vec<Case> = vec![
        ("nine failures are too few", repeat(Retryable, 9), vec![]),
        (
            "ten failures open",
            repeat(Retryable, 10),
            vec![(9, OPENED)],
        ),
        ("half failures open", five_five, vec![(9, OPENED)]),
        ("four in ten stay closed", six_four, vec![]),
        ("nine in twenty stay closed", nine_in_twenty, vec![]),
        // Counted over all 30 results, 10 failures would be below half.
        ("ten in twenty open", sliding, vec![(29, OPENED)]),
        (
            "permanent failures do not count",
            repeat(Permanent, 30),
            vec![],
        ),
    ];
    for (name, events, expected) in cases {
        assert_eq!(run(&events), expected, "{name}");
    }
}

#[test]
fn closed_breaker_permits_send() {
    let mut breaker = Breaker::new(config());
    let now = Instant::now();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.permit(now), Permit::Send);
}

#[test]
fn open_breaker_waits_then_probes_once() {
    let start = Instant::now();
    let mut breaker = opened(start);

    let later = start + Duration::from_millis(400);
    assert_eq!(
        breaker.permit(later),
        Permit::Wait(Duration::from_millis(600))
    );

    let after_cooldown = start + Duration::from_secs(1);
    assert_eq!(breaker.permit(after_cooldown), Permit::Probe);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(
        breaker.permit(after_cooldown),
        Permit::Wait(Duration::from_secs(1))
    );
}

#[test]
fn probe_success_closes() {
    let start = Instant::now();
    let mut breaker = opened(start);
    let probe_time = start + Duration::from_secs(1);
    assert_eq!(breaker.permit(probe_time), Permit::Probe);

    assert_eq!(breaker.record(probe_time, true, false), Some(CLOSED));
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.permit(probe_time), Permit::Send);

    // The window starts empty, so one failure does not reopen it.
    assert_eq!(breaker.record(probe_time, false, true), None);
}

#[test]
fn permanent_failure_probe_closes() {
    let start = Instant::now();
    let mut breaker = opened(start);
    let probe_time = start + Duration::from_secs(1);
    assert_eq!(breaker.permit(probe_time), Permit::Probe);

    assert_eq!(breaker.record(probe_time, false, false), Some(CLOSED));
}

#[test]
fn failed_probes_double_cooldown_to_max() {
    let mut now = Instant::now();
    let mut breaker = opened(now);
    let expected_seconds = [2, 4, 8, 8];

    now += Duration::from_secs(1);
    for seconds in expected_seconds {
        assert_eq!(breaker.permit(now), Permit::Probe);
        assert_eq!(breaker.record(now, false, true), Some(REOPENED));

        let cooldown = Duration::from_secs(seconds);
        assert_eq!(breaker.permit(now), Permit::Wait(cooldown));
        now += cooldown;
    }
}

#[test]
fn cooldown_resets_after_close() {
    let mut now = Instant::now();
    let mut breaker = opened(now);
    now += Duration::from_secs(1);
    breaker.permit(now);
    breaker.record(now, false, true);
    now += Duration::from_secs(2);
    breaker.permit(now);
    breaker.record(now, true, false);

    for _ in 0..10 {
        breaker.record(now, false, true);
    }
    assert_eq!(breaker.permit(now), Permit::Wait(Duration::from_secs(1)));
}

#[test]
fn late_results_while_open_are_ignored() {
    let start = Instant::now();
    let mut breaker = opened(start);
    assert_eq!(breaker.record(start, true, false), None);
    assert_eq!(breaker.record(start, false, true), None);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn lost_probe_is_replaced_after_timeout() {
    let start = Instant::now();
    let mut breaker = opened(start);
    let probe_time = start + Duration::from_secs(1);
    assert_eq!(breaker.permit(probe_time), Permit::Probe);

    let before_timeout = probe_time + Duration::from_millis(29_500);
    let wait = Duration::from_millis(500);
    assert_eq!(breaker.permit(before_timeout), Permit::Wait(wait));
    assert_eq!(
        breaker.permit(probe_time + Duration::from_secs(30)),
        Permit::Probe
    );
}

#[test]
fn released_probe_goes_to_next_caller() {
    let start = Instant::now();
    let mut breaker = opened(start);
    let probe_time = start + Duration::from_secs(1);
    assert_eq!(breaker.permit(probe_time), Permit::Probe);

    breaker.release_probe(probe_time);
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.permit(probe_time), Permit::Probe);
}

#[test]
fn unusable_config_is_corrected() {
    let config = BreakerConfig {
        window: 0,
        min_requests: 50,
        initial_cooldown: Duration::ZERO,
        max_cooldown: Duration::ZERO,
        ..config()
    };
    let mut breaker = Breaker::new(config);
    let now = Instant::now();

    assert_eq!(breaker.record(now, false, true), Some(OPENED));
    assert_eq!(breaker.permit(now), Permit::Wait(Duration::from_millis(1)));
}
