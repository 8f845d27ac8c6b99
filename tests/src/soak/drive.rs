//! Offers the flows: closed-loop to find the deployment's capacity, then
//! open-loop at a fixed rate, so that a slow or failing server does not
//! slow the offer down (a closed loop would hide a stall as a lull).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::flows::{Flow, Traffic};

async fn one(traffic: &Traffic, n: usize) {
    let flow = Flow::nth(n);
    let started = traffic.http.recorder.elapsed();
    match traffic.run(flow, n).await {
        Ok(()) => traffic.http.recorder.flow_ok(),
        Err(message) => traffic
            .http
            .recorder
            .flow_failed(started, flow.name(), message),
    }
}

/// `concurrency` flows at a time for `duration`; the flows completed per
/// second, and how many failed.
pub async fn closed_loop(
    traffic: &Arc<Traffic>,
    concurrency: usize,
    duration: Duration,
) -> (f64, u64) {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (traffic, next) = (traffic.clone(), next.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    one(&traffic, next.fetch_add(1, Ordering::Relaxed)).await;
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let seconds = traffic.http.recorder.seconds();
    let ok: u64 = seconds.iter().map(|s| s.flows_ok).sum();
    let failed: u64 = seconds.iter().map(|s| s.flows_failed).sum();
    (ok as f64 / started.elapsed().as_secs_f64(), failed)
}

/// `rate` flows a second for `duration`, whatever the answers; a flow is
/// not started (and is counted) when `max_in_flight` are still running.
/// Waits up to a minute for the last ones.
pub async fn open_loop(
    traffic: &Arc<Traffic>,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
) {
    let places = Arc::new(Semaphore::new(max_in_flight));
    let started = Instant::now();
    let mut offered = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while started.elapsed() < duration {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate) as usize;
        while offered < due {
            let n = offered;
            offered += 1;
            let Ok(place) = places.clone().try_acquire_owned() else {
                traffic.http.recorder.not_started();
                continue;
            };
            let traffic = traffic.clone();
            tokio::spawn(async move {
                one(&traffic, n).await;
                drop(place);
            });
        }
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(60),
        places.acquire_many(max_in_flight as u32),
    )
    .await;
}
