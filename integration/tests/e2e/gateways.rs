//! Two gateway processes on one PostgreSQL database (a server the test starts), with node
//! processes joined to both as one cloud. An object written through either reads back through
//! the other; exactly one gateway does the cloud-wide work (health, audits, collection,
//! packing) while the other stands by. The working gateway is killed (SIGKILL) in the middle
//! of a PUT: the other takes the work over, the cut object never becomes visible, its copies
//! leave the nodes, and a node lost afterwards is repaired by the survivor.
use std::os::unix::fs::DirBuilderExt;
use std::time::Duration;

use raidtorrent_integration::process::{untracked, Api, GatewayProcess, ProcessNode};
use raidtorrent_testkit::{random_bytes, wait_until, Postgres};
use raidtorrent_tracker::gateway::MASTER_KEY_FILE;

const BUCKET: &str = "shared";
const CLOUD: &str = "shared-cloud";
/// Seconds the work lease lasts unrenewed, and a silent gateway's uploads stay its own.
const LEASE: u64 = 3;

struct Cloud {
    gws: Vec<GatewayProcess>,
    nodes: Vec<ProcessNode>,
    _dir: tempfile::TempDir,
}

impl Cloud {
    /// Gateways "a" and "b" on a fresh database, the same master key in both data folders, and
    /// three nodes (one per zone) joined to both; `None` without PostgreSQL (when not required).
    async fn start() -> Option<Cloud> {
        let url = Postgres::fresh_database()?;
        let dir = tempfile::tempdir().unwrap();
        let mut gws: Vec<GatewayProcess> = ["a", "b"]
            .iter()
            .map(|name| {
                let dir = dir.path().join(name);
                std::fs::create_dir(&dir).unwrap();
                GatewayProcess::new(&dir, |c| {
                    c.db = url.clone().into();
                    c.objects.lease_secs = LEASE;
                })
            })
            .collect();
        gws[0].start().await;
        share_master_key(&gws[0], &gws[1]);
        gws[1].start().await;
        let mut c = Cloud {
            gws,
            nodes: Vec::new(),
            _dir: dir,
        };
        for i in 0..3 {
            c.add_node(i);
        }
        c.all_connected().await;
        let policy = serde_json::json!({
            "k": 2, "m": 1, "copies": 1, "high_share": 0.0, "inline_max": 0
        });
        assert_eq!(c.api(0).create_bucket(BUCKET, policy).await, 200);
        Some(c)
    }

    /// Starts node `i` in a zone of its own, joined to both gateways.
    fn add_node(&mut self, i: usize) {
        let gws: Vec<&GatewayProcess> = self.gws.iter().collect();
        let name = format!("node-{i}");
        let node = ProcessNode::start_in_cloud(&gws, CLOUD, &name, &format!("zone-{i}"));
        self.nodes.push(node);
    }

    fn api(&self, gw: usize) -> Api {
        self.gws[gw].api()
    }

    /// Waits until every running node is connected to both gateways.
    async fn all_connected(&self) {
        let nodes = &self.nodes;
        wait_until(
            Duration::from_secs(90),
            "every node connected to both gateways",
            || async move {
                nodes
                    .iter()
                    .filter(|n| n.process.pid().is_some())
                    .all(|n| n.connected_to_all(2))
            },
        )
        .await;
    }

    /// Waits until gateway `gw` alone holds the work lease (the other, if running, stands by);
    /// returns how long that took.
    async fn only_worker(&self, gw: usize) -> Duration {
        let started = std::time::Instant::now();
        let gws = &self.gws;
        wait_until(
            Duration::from_secs(60),
            "one gateway holds the work lease, the other stands by",
            || async move {
                let mut leases = Vec::new();
                for (i, g) in gws.iter().enumerate() {
                    if g.pid().is_none() {
                        continue;
                    }
                    let Ok(h) = g.api().health().await else {
                        return false;
                    };
                    let standby = h["workers"]
                        .as_array()
                        .is_some_and(|ws| ws.iter().all(|w| w["state"] == "standby"));
                    leases.push((i, h["work_lease"] == true, standby));
                }
                leases
                    .iter()
                    .all(|&(i, held, standby)| (i == gw) == held && (i == gw) != standby)
            },
        )
        .await;
        started.elapsed()
    }

    /// The gateway that holds the work lease, once one does.
    async fn worker(&self) -> usize {
        let gws = &self.gws;
        let holds = |g: &GatewayProcess| {
            let api = g.api();
            async move { api.health().await.is_ok_and(|h| h["work_lease"] == true) }
        };
        wait_until(
            Duration::from_secs(30),
            "a gateway takes the work lease",
            || async move { holds(&gws[0]).await || holds(&gws[1]).await },
        )
        .await;
        let w = if holds(&gws[0]).await { 0 } else { 1 };
        self.only_worker(w).await;
        w
    }

    /// Every running node ends up holding only copies the database records.
    async fn settled(&self) {
        let c = self;
        wait_until(
            Duration::from_secs(90),
            "every node holds only copies the database records",
            || async move {
                let running = c.nodes.iter().filter(|n| n.process.pid().is_some());
                untracked(running, &c.gws[0].recorded().await).is_empty()
            },
        )
        .await;
    }
}

/// Copies the master key of `from`'s data folder into `to`'s, as an operator adding a gateway
/// to a cloud does.
fn share_master_key(from: &GatewayProcess, to: &GatewayProcess) {
    let (src, dst) = (&from.config.objects.data_dir, &to.config.objects.data_dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dst)
        .unwrap();
    std::fs::copy(src.join(MASTER_KEY_FILE), dst.join(MASTER_KEY_FILE)).unwrap();
}

async fn get(api: &Api, key: &str) -> Result<Vec<u8>, u16> {
    api.get(BUCKET, key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_share_objects_and_work_and_one_takes_over_when_the_other_dies() {
    let Some(mut c) = Cloud::start().await else {
        return;
    };
    // Objects through either gateway, read through the other.
    let one = random_bytes(2 << 20, 1);
    let two = random_bytes(2 << 20, 2);
    assert_eq!(c.api(0).put(BUCKET, "one", one.clone()).await.unwrap(), 200);
    assert_eq!(c.api(1).put(BUCKET, "two", two.clone()).await.unwrap(), 200);
    assert_eq!(get(&c.api(1), "one").await.unwrap(), one);
    assert_eq!(get(&c.api(0), "two").await.unwrap(), two);

    // One gateway does the cloud-wide work; it is killed in the middle of a PUT, which waits
    // on node 2 (stopped, its connection open) with nodes 0 and 1 holding their copies.
    let w = c.worker().await;
    let other = 1 - w;
    let before: usize = c.nodes[..2].iter().map(|n| n.copies().len()).sum();
    c.nodes[2].process.pause();
    let api = c.api(w);
    let put = tokio::spawn(async move { api.put(BUCKET, "cut", random_bytes(2 << 20, 3)).await });
    let nodes = &c.nodes;
    wait_until(
        Duration::from_secs(60),
        "nodes 0 and 1 hold copies of the upload in flight",
        || async move { nodes[..2].iter().map(|n| n.copies().len()).sum::<usize>() >= before + 2 },
    )
    .await;
    assert!(!put.is_finished(), "the upload finished before the kill");
    c.gws[w].kill();
    c.nodes[2].process.resume();
    assert!(
        !matches!(put.await.unwrap(), Ok(200)),
        "the cut upload was acknowledged"
    );
    let took = c.only_worker(other).await;
    eprintln!("the work was taken over {took:?} after the kill (lease {LEASE} s)");
    assert!(
        took < Duration::from_secs(4 * LEASE + 10),
        "the work was taken over after {took:?}"
    );
    assert_eq!(get(&c.api(other), "cut").await, Err(404));
    assert_eq!(get(&c.api(other), "one").await.unwrap(), one);
    c.settled().await;

    // A node lost for good: the survivor repairs onto a new node in a new zone.
    c.add_node(3);
    c.nodes[0].process.kill();
    let (gws, nodes) = (&c.gws, &c.nodes);
    wait_until(
        Duration::from_secs(120),
        "every shard of both objects has a copy on a running node",
        || async move {
            let recorded = gws[other].recorded().await;
            let running: Vec<_> = nodes[1..].iter().map(|n| n.id).collect();
            let mut shards = gws[other].shards_of(BUCKET, "one").await;
            shards.extend(gws[other].shards_of(BUCKET, "two").await);
            shards.iter().all(|ih| {
                running
                    .iter()
                    .any(|n| recorded.get(n).is_some_and(|held| held.contains(ih)))
            })
        },
    )
    .await;
    assert_eq!(get(&c.api(other), "two").await.unwrap(), two);

    // The killed gateway comes back as the same gateway and stands by.
    c.gws[w].start().await;
    c.only_worker(other).await;
    assert_eq!(get(&c.api(w), "one").await.unwrap(), one);
    assert_eq!(get(&c.api(w), "cut").await, Err(404));
}
