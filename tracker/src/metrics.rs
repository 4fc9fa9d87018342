//! The gateway's Prometheus metrics (`GET /metrics`): counters and histograms that the code
//! paths bump as traffic flows, and gauges the operator view sets from a fresh snapshot each time
//! it is scraped.
//!
//! One set per process, like the process's log subscriber: a process runs one gateway, and the
//! counters a scrape shows are since the process started. Recording is a few atomic operations
//! (a family's label lookup takes a read lock), so it stays off the hot paths' costs.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Announces and scrapes: which transport, and what the tracker answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Exchange {
    pub protocol: &'static str,
    pub result: &'static str,
}

/// One API request's route and answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Request {
    pub api: &'static str,
    pub route: &'static str,
    pub status: u16,
}

/// One API route, for latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub api: &'static str,
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Direction {
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub result: &'static str,
}

/// A node's place in the cloud when scraped.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeClass {
    pub tier: &'static str,
    pub zone: String,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LiveCopies {
    pub copies: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectState {
    pub state: &'static str,
}

/// Latency buckets from 1 ms to about 65 s.
#[derive(Clone)]
pub struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        latency()
    }
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Announces or scrapes, by transport and answer: every series made up front, so the hot path
/// bumps an atomic without a label lookup (and a scrape shows zeros rather than nothing).
#[derive(Clone)]
pub struct Exchanges {
    family: Family<Exchange, Counter>,
    cells: [[Counter; 3]; 2],
}

const PROTOCOLS: [&str; 2] = ["http", "udp"];
const RESULTS: [&str; 3] = ["ok", "refused", "error"];

impl Exchanges {
    fn new() -> Self {
        let family = Family::<Exchange, Counter>::default();
        let cells = PROTOCOLS.map(|protocol| {
            RESULTS.map(|result| family.get_or_create(&Exchange { protocol, result }).clone())
        });
        Exchanges { family, cells }
    }

    /// Counts one: `protocol` is `"http"` or `"udp"`; `result` is `"ok"`, `"refused"` (the
    /// tracker said no) or anything else for a request that did not parse.
    pub fn count(&self, protocol: &str, result: &str) {
        let p = usize::from(protocol == "udp");
        let r = match result {
            "ok" => 0,
            "refused" => 1,
            _ => 2,
        };
        self.cells[p][r].inc();
    }

    /// Everything counted so far, over both protocols and every result.
    pub fn total(&self) -> u64 {
        self.cells.iter().flatten().map(|c| c.get()).sum()
    }
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    started: Instant,
    pub announces: Exchanges,
    pub scrapes: Exchanges,
    pub api_requests: Family<Request, Counter>,
    pub api_latency: Family<Route, Histogram, LatencyBuckets>,
    pub object_bytes: Family<Direction, Counter>,
    pub repairs: Family<Outcome, Counter>,
    pub repair_bytes: Counter,
    pub audits: Family<Outcome, Counter>,
    pub placement_failures: Counter,
    pub db_write: Histogram,
    pub nodes: Family<NodeClass, Gauge>,
    pub shards_by_live_copies: Family<LiveCopies, Gauge>,
    pub objects: Family<ObjectState, Gauge>,
    pub repair_queue: Gauge,
    up_seconds: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("raidtorrent"),
            started: Instant::now(),
            announces: Exchanges::new(),
            scrapes: Exchanges::new(),
            api_requests: Family::default(),
            api_latency: Family::new_with_constructor(LatencyBuckets),
            object_bytes: Family::default(),
            repairs: Family::default(),
            repair_bytes: Counter::default(),
            audits: Family::default(),
            placement_failures: Counter::default(),
            db_write: latency(),
            nodes: Family::default(),
            shards_by_live_copies: Family::default(),
            objects: Family::default(),
            repair_queue: Gauge::default(),
            up_seconds: Gauge::default(),
        };
        m.register();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "announces",
            "Announces by transport and answer",
            self.announces.family.clone(),
        );
        r.register(
            "scrapes",
            "Scrapes by transport and answer",
            self.scrapes.family.clone(),
        );
        r.register(
            "api_requests",
            "Object and S3 API requests by route and status",
            self.api_requests.clone(),
        );
        r.register(
            "api_request_duration_seconds",
            "Time from request to response head",
            self.api_latency.clone(),
        );
        r.register(
            "object_bytes",
            "Object bytes received from and sent to clients",
            self.object_bytes.clone(),
        );
        r.register("repairs", "Repair tasks carried out", self.repairs.clone());
        r.register(
            "repair_bytes",
            "Bytes of new copies confirmed by repairs",
            self.repair_bytes.clone(),
        );
        r.register("audits", "Audits by outcome", self.audits.clone());
        r.register(
            "placement_failures",
            "Writes that found too few nodes to place their copies",
            self.placement_failures.clone(),
        );
        r.register(
            "db_write_duration_seconds",
            "Time of the metadata store's durable commits",
            self.db_write.clone(),
        );
        r.register(
            "nodes",
            "Registered nodes by tier, zone and state",
            self.nodes.clone(),
        );
        r.register(
            "shards_by_live_copies",
            "Stored shards by how many live copies they have",
            self.shards_by_live_copies.clone(),
        );
        r.register(
            "objects",
            "Swarm objects (own shards, packs, parts of large objects) by redundancy state",
            self.objects.clone(),
        );
        r.register(
            "repair_queue",
            "Tasks in the latest repair plan",
            self.repair_queue.clone(),
        );
        r.register(
            "up_seconds",
            "Seconds since the gateway started",
            self.up_seconds.clone(),
        );
    }

    /// `"ok"` or `"refused"`, for [`Exchanges::count`].
    pub fn verdict<T, E>(r: &Result<T, E>) -> &'static str {
        if r.is_ok() {
            "ok"
        } else {
            "refused"
        }
    }

    /// Counts one API request and its time to the response head.
    pub fn request(&self, api: &'static str, route: &'static str, status: u16, since: Instant) {
        self.api_requests
            .get_or_create(&Request { api, route, status })
            .inc();
        self.api_latency
            .get_or_create(&Route { api, route })
            .observe(since.elapsed().as_secs_f64());
    }

    /// Times one durable commit of the metadata store, begun at `since`.
    pub fn db_write(&self, since: Instant) {
        self.db_write.observe(since.elapsed().as_secs_f64());
    }

    /// Counts object bytes in (`"in"`) or out (`"out"`).
    pub fn bytes(&self, direction: &'static str, n: u64) {
        self.object_bytes
            .get_or_create(&Direction { direction })
            .inc_by(n);
    }

    /// Repairs carried out since start, done or failed.
    pub fn repairs_total(&self) -> u64 {
        Self::sum(&self.repairs, &["done", "failed"])
    }

    /// Audits since start, whatever their outcome.
    pub fn audits_total(&self) -> u64 {
        Self::sum(&self.audits, &["pass", "fail", "timeout"])
    }

    fn sum(family: &Family<Outcome, Counter>, results: &[&'static str]) -> u64 {
        results
            .iter()
            .map(|&result| family.get_or_create(&Outcome { result }).get())
            .sum()
    }

    /// Object bytes moved one way since start.
    pub fn bytes_total(&self, direction: &'static str) -> u64 {
        self.object_bytes
            .get_or_create(&Direction { direction })
            .get()
    }

    /// The text exposition (OpenMetrics), gauges as the caller last set them.
    pub fn render(&self) -> String {
        self.up_seconds
            .set(i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_and_counts_what_was_recorded() {
        let m = Metrics::new();
        m.announces.count("udp", "ok");
        m.announces.count("udp", "refused");
        m.request("native", "get_object", 200, Instant::now());
        m.bytes("out", 1234);
        let text = m.render();
        for line in [
            "raidtorrent_announces_total{protocol=\"udp\",result=\"ok\"} 1",
            "raidtorrent_announces_total{protocol=\"udp\",result=\"refused\"} 1",
            "raidtorrent_api_requests_total{api=\"native\",route=\"get_object\",status=\"200\"} 1",
            "raidtorrent_object_bytes_total{direction=\"out\"} 1234",
            "# TYPE raidtorrent_db_write_duration_seconds histogram",
            "# TYPE raidtorrent_repair_queue gauge",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
