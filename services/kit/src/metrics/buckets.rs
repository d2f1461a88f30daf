//! Histogram bucket bounds, in seconds (base units).

/// Request handling: from 5 ms (a cached read) to 30 s (a slow upstream).
pub const REQUEST_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Gateway start-up: a local gateway is ready in 9–25 s, a pod with an image pull in
/// minutes; the last bound is the "stuck in starting" alert's five minutes.
pub const STARTUP_SECONDS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];
