//! The metrics recorder must not keep every observation until someone scrapes: most small
//! deployments never do. Its own binary, because it counts every byte the process holds.
#![allow(clippy::unwrap_used)]

use std::alloc::System;
use std::time::Duration;

use cap::Cap;
use metrics_exporter_prometheus::PrometheusBuilder;

/// The system allocator, counting the bytes currently held.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_samples_are_drained_without_a_scrape() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let upkeep = tokio::spawn(tollgate::app::metrics_upkeep(
        recorder.handle(),
        Duration::from_millis(20),
    ));
    let latency = metrics::with_local_recorder(
        &recorder,
        || metrics::histogram!("http_request_duration_seconds", "route" => "/api/job-list"),
    );
    // Ten rounds of 100,000 requests' observations, nobody scraping.
    let mut held_after_round = Vec::new();
    for _ in 0..10 {
        for _ in 0..100_000 {
            latency.record(0.000_42);
        }
        // The least held over the next 200 ms: on a loaded machine one drain may come late,
        // and samples still waiting for it are not what this test is about.
        let mut least = i64::MAX;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            least = least.min(ALLOCATOR.allocated() as i64);
        }
        held_after_round.push(least);
    }
    upkeep.abort();
    let growth = held_after_round[9] - held_after_round[1];
    // Kept, 800,000 samples would hold at least 6 MiB.
    assert!(
        growth < 1 << 20,
        "{growth} bytes more after 800,000 observations: {held_after_round:?}"
    );
}
