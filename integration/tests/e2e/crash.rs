//! The gateway killed (SIGKILL) in the middle of a PUT, a DELETE, an overwrite and a repair,
//! then started again on the same database (SQLite; PostgreSQL for the PUT and the overwrite)
//! and data folder. Afterwards: no partial object is
//! visible, every object whose PUT was acknowledged reads back byte for byte, and once the nodes
//! have settled no node keeps a copy the gateway does not record.
//!
//! A node frozen with SIGSTOP (its connection open, answering nothing) holds the operation in
//! the middle for as long as the test needs, so each kill lands while the operation is under
//! way, never before or after it.

use std::collections::BTreeSet;
use std::time::Duration;

use raidtorrent_integration::process::{held_in, untracked, Api, GatewayProcess, ProcessNode};
use raidtorrent_testkit::{random_bytes, wait_until, Postgres};
use raidtorrent_tracker::config::Config;

const BUCKET: &str = "crash";

/// A gateway process and its node processes, every node in a zone of its own.
struct Crash {
    gw: GatewayProcess,
    nodes: Vec<ProcessNode>,
    api: Api,
    /// When the gateway was started again, and the untracked copies the crash left then.
    restarted: Option<(std::time::Instant, usize)>,
    dir: tempfile::TempDir,
}

impl Crash {
    /// `n` nodes and a bucket whose objects are 2 + 1 shards, `copies` copies each.
    async fn start(n: usize, copies: u16) -> Crash {
        Self::start_with(n, copies, |_| {}).await
    }

    /// As [`Crash::start`], with `tweak` applied to the gateway's configuration.
    async fn start_with(n: usize, copies: u16, tweak: impl FnOnce(&mut Config)) -> Crash {
        let dir = tempfile::tempdir().unwrap();
        let mut gw = GatewayProcess::new(dir.path(), tweak);
        let nodes: Vec<ProcessNode> = (0..n)
            .map(|i| ProcessNode::start(&gw, &format!("node-{i}"), &format!("zone-{i}")))
            .collect();
        gw.start().await;
        let api = gw.api();
        let policy = serde_json::json!({
            "k": 2, "m": 1, "copies": copies, "high_share": 0.0, "inline_max": 0
        });
        let c = Crash {
            gw,
            nodes,
            api,
            restarted: None,
            dir,
        };
        c.all_connected(&[]).await;
        assert_eq!(c.api.create_bucket(BUCKET, policy).await, 200);
        c
    }

    /// As [`Crash::start`], with the gateway's metadata on a fresh PostgreSQL database; `None`
    /// when PostgreSQL is not installed (and not required).
    async fn on_postgresql(n: usize, copies: u16) -> Option<Crash> {
        let url = Postgres::fresh_database()?;
        let c = Self::start_with(n, copies, |config| config.db = url.into()).await;
        let file = c.dir.path().join("gateway.db");
        assert!(!file.exists(), "the gateway made a SQLite file");
        Some(c)
    }

    /// Waits until every running node is connected, more times than `before` says (per node,
    /// as [`connects`](Self::connects) gave them; empty: at least once).
    async fn all_connected(&self, before: &[u64]) {
        let nodes = &self.nodes;
        wait_until(
            Duration::from_secs(90),
            "every node connected",
            || async move {
                nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.process.pid().is_some())
                    .all(|(i, n)| n.connected() > before.get(i).copied())
            },
        )
        .await;
    }

    /// How many times each node has connected so far.
    fn connects(&self) -> Vec<u64> {
        let count = |n: &ProcessNode| n.connected().unwrap_or(0);
        self.nodes.iter().map(count).collect()
    }

    /// Stores an object and checks the PUT was acknowledged.
    async fn put(&self, key: &str, seed: u64) -> Vec<u8> {
        let body = random_bytes(2 << 20, seed);
        let status = self.api.put(BUCKET, key, body.clone()).await.unwrap();
        assert_eq!(status, 200, "PUT {key}");
        body
    }

    /// Every copy on the nodes, as hex info-hashes.
    fn copies_on(&self, nodes: &[usize]) -> BTreeSet<String> {
        nodes.iter().flat_map(|&i| self.nodes[i].copies()).collect()
    }

    /// The complete copies on a node, as hex info-hashes.
    fn held_on(&self, node: usize) -> BTreeSet<String> {
        held_in(&self.nodes[node].process.dir)
    }

    /// Kills the gateway, lets the frozen nodes go on, starts the stopped nodes again, and
    /// starts the gateway again.
    async fn crash_and_restart(&mut self, frozen: &[usize]) {
        let mut before = self.connects();
        self.gw.kill();
        for &i in frozen {
            self.nodes[i].process.resume();
        }
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if n.process.pid().is_none() {
                // A new process counts its connections from zero; its old status must not pass
                // for a new one.
                let _ = std::fs::remove_file(n.process.dir.join("status.json"));
                before[i] = 0;
                n.process.restart();
            }
        }
        let left = untracked(&self.nodes, &self.gw.recorded().await).len();
        self.gw.start().await;
        self.restarted = Some((std::time::Instant::now(), left));
        self.all_connected(&before).await;
    }

    /// After a restart: each acknowledged object reads back byte for byte, each key in `absent`
    /// answers 404, and every running node ends up holding only copies the gateway records.
    async fn check(&self, acked: &[(&str, &[u8])], absent: &[&str]) {
        for (key, body) in acked {
            let got = self.api.get(BUCKET, key).await;
            assert!(
                got.as_deref() == Ok(*body),
                "{key} does not read back: {:?}",
                got.map(|b| b.len())
            );
        }
        for key in absent {
            assert_eq!(
                self.api.get(BUCKET, key).await,
                Err(404),
                "{key} is visible"
            );
        }
        let live: Vec<&ProcessNode> = self
            .nodes
            .iter()
            .filter(|n| n.process.pid().is_some())
            .collect();
        let (gw, live) = (&self.gw, &live);
        wait_until(
            Duration::from_secs(90),
            "no node keeps a copy the gateway does not record",
            || async move { untracked(live.iter().copied(), &gw.recorded().await).is_empty() },
        )
        .await;
        if let Some((at, left)) = self.restarted {
            let secs = at.elapsed().as_secs_f64();
            eprintln!(
                "{left} untracked copies after the crash; none {secs:.1} s after the restart"
            );
        }
    }
}

/// The operation must still be waiting on its frozen node when the gateway is killed.
fn still_running<T>(task: &tokio::task::JoinHandle<T>, what: &str) {
    assert!(
        !task.is_finished(),
        "{what} finished before the gateway was killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_while_placing_an_upload() {
    killed_while_placing_an_upload(Crash::start(2, 2).await).await;
}

/// The same on PostgreSQL: an acknowledged PUT is durable in the server, a cut one invisible,
/// and the restarted gateway finds its copies there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_on_postgresql_killed_while_placing_an_upload() {
    let Some(c) = Crash::on_postgresql(2, 2).await else {
        return;
    };
    killed_while_placing_an_upload(c).await;
}

async fn killed_while_placing_an_upload(mut c: Crash) {
    let acked = c.put("acked", 1).await;
    let before = c.held_on(0);
    // Node 1 takes a copy of every shard but answers nothing: the upload waits on it with node
    // 0's copies already placed.
    c.nodes[1].process.pause();
    let api = c.gw.api();
    let put = tokio::spawn(async move { api.put(BUCKET, "cut", random_bytes(2 << 20, 2)).await });
    let c0 = &c;
    let before = &before;
    wait_until(
        Duration::from_secs(60),
        "node 0 holds complete copies of the upload in flight",
        || async move { c0.held_on(0).len() > before.len() },
    )
    .await;
    still_running(&put, "the upload");
    c.crash_and_restart(&[1]).await;
    assert!(
        !matches!(put.await.unwrap(), Ok(200)),
        "the cut upload was acknowledged"
    );
    c.check(&[("acked", &acked)], &["cut"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_while_collecting_a_deleted_object() {
    let mut c = Crash::start(2, 2).await;
    let kept = c.put("kept", 3).await;
    c.put("gone", 4).await;
    let gone = c.gw.shards_of(BUCKET, "gone").await;
    assert_eq!(gone.len(), 3);
    // Node 1 answers no drop: the collector is stuck on it with node 0's copies dropped.
    c.nodes[1].process.pause();
    assert_eq!(c.api.delete(BUCKET, "gone").await.unwrap(), 204);
    let (c0, gone) = (&c, &gone);
    wait_until(
        Duration::from_secs(60),
        "node 0 dropped a copy of the deleted object",
        || async move { c0.copies_on(&[0]).intersection(gone).count() < gone.len() },
    )
    .await;
    c.crash_and_restart(&[1]).await;
    c.check(&[("kept", &kept)], &["gone"]).await;
    let c0 = &c;
    wait_until(
        Duration::from_secs(60),
        "no node holds a copy of the deleted object",
        || async move { c0.copies_on(&[0, 1]).is_disjoint(gone) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_while_overwriting_an_object() {
    killed_while_overwriting_an_object(Crash::start(2, 2).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_on_postgresql_killed_while_overwriting_an_object() {
    let Some(c) = Crash::on_postgresql(2, 2).await else {
        return;
    };
    killed_while_overwriting_an_object(c).await;
}

async fn killed_while_overwriting_an_object(mut c: Crash) {
    let first = c.put("key", 5).await;
    let before = c.held_on(0);
    c.nodes[1].process.pause();
    let api = c.gw.api();
    let put = tokio::spawn(async move { api.put(BUCKET, "key", random_bytes(2 << 20, 6)).await });
    let (c0, before) = (&c, &before);
    wait_until(
        Duration::from_secs(60),
        "node 0 holds complete copies of the overwrite in flight",
        || async move { c0.held_on(0).len() > before.len() },
    )
    .await;
    still_running(&put, "the overwrite");
    c.crash_and_restart(&[1]).await;
    assert!(
        !matches!(put.await.unwrap(), Ok(200)),
        "the cut overwrite was acknowledged"
    );
    c.check(&[("key", &first)], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_while_repairing() {
    let mut c = Crash::start(3, 2).await;
    let acked = c.put("acked", 7).await;
    // Node 0 dies; the two others freeze, so the repair that re-creates node 0's copies on them
    // hangs on its holds. Node 0 is back after the crash: the copies the repair made are surplus
    // that nothing records.
    c.nodes[0].process.kill();
    c.nodes[1].process.pause();
    c.nodes[2].process.pause();
    let api = &c.api;
    wait_until(
        Duration::from_secs(60),
        "the health worker is repairing",
        || async move {
            let h = api.health().await.unwrap_or_default();
            let planned: u64 = h["planned"]
                .as_object()
                .map_or(0, |p| p.values().filter_map(|v| v.as_u64()).sum());
            h["state"] == "busy" && planned > 0
        },
    )
    .await;
    c.crash_and_restart(&[1, 2]).await;
    c.check(&[("acked", &acked)], &[]).await;
}

/// A large object's upload killed after its first parts were placed: after the restart nothing
/// of it is visible, and its parts (committed or not) leave the nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_between_the_parts_of_a_large_upload() {
    // Groups of 1 MiB: every object here is grouped, the acknowledged one too.
    let mut c = Crash::start_with(2, 2, |c| c.objects.group_size = 1 << 20).await;
    let acked = c.put("acked", 5).await;
    let (before0, before1) = (c.held_on(0).len(), c.held_on(1).len());
    let api = c.gw.api();
    let put = tokio::spawn(async move { api.put(BUCKET, "cut", random_bytes(8 << 20, 6)).await });
    // The first part (2 + 1 shards) reaches node 1; then node 1 stops answering, and the
    // upload waits on it with later parts on node 0.
    let c0 = &c;
    wait_until(
        Duration::from_secs(60),
        "node 1 holds the first part",
        || async move { c0.held_on(1).len() >= before1 + 3 },
    )
    .await;
    c.nodes[1].process.pause();
    let c0 = &c;
    wait_until(
        Duration::from_secs(60),
        "node 0 holds a later part",
        || async move { c0.held_on(0).len() >= before0 + 6 },
    )
    .await;
    still_running(&put, "the upload");
    c.crash_and_restart(&[1]).await;
    assert!(
        !matches!(put.await.unwrap(), Ok(200)),
        "the cut upload was acknowledged"
    );
    c.check(&[("acked", &acked)], &["cut"]).await;
    let kept = c.gw.shards_of(BUCKET, "acked").await;
    assert!(
        kept.len() >= 2 * 3 && kept.len() % 3 == 0,
        "parts of 2 + 1 shards each: {kept:?}"
    );
    let c0 = &c;
    let kept = &kept;
    wait_until(
        Duration::from_secs(90),
        "the nodes hold only the acknowledged object's shards",
        || async move { c0.copies_on(&[0, 1]) == *kept },
    )
    .await;
}

/// Small objects acknowledged while they wait for their pack, the gateway killed while they wait
/// or while their pack is being placed: after the restart every one reads back and is packed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_objects_waiting_for_their_pack_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = GatewayProcess::new(dir.path(), |c| {
        c.objects.packing.max_object_size = 64 << 10;
        c.objects.packing.target_size = 1 << 20;
        c.objects.packing.max_waiting_bytes = 1 << 20;
        c.objects.packing.linger_secs = 1;
    });
    let nodes: Vec<ProcessNode> = (0..4)
        .map(|i| ProcessNode::start(&gw, &format!("node-{i}"), &format!("zone-{i}")))
        .collect();
    gw.start().await;
    let api = gw.api();
    wait_until(Duration::from_secs(90), "every node connected", || async {
        nodes.iter().all(|n| n.connected().is_some())
    })
    .await;
    let policy = serde_json::json!({
        "k": 2, "m": 1, "copies": 2, "high_share": 0.0, "inline_max": 4096
    });
    assert_eq!(api.create_bucket(BUCKET, policy).await, 200);
    let objects: Vec<Vec<u8>> = (0..40)
        .map(|i| random_bytes(20_000 + i * 7, i as u64))
        .collect();
    for (i, data) in objects.iter().enumerate() {
        let status = api
            .put(BUCKET, &format!("s{i}"), data.clone())
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    // 800 KB waits; the packer is about to write it (or writing it) when the gateway dies.
    gw.kill();
    gw.start().await;
    let api = gw.api();
    wait_until(
        Duration::from_secs(120),
        "every small object is packed",
        || async {
            let listed = api.list(BUCKET).await;
            listed.len() == objects.len() && listed.iter().all(|o| o["storage"] == "packed")
        },
    )
    .await;
    for (i, data) in objects.iter().enumerate() {
        assert!(
            api.get(BUCKET, &format!("s{i}")).await.as_ref() == Ok(data),
            "s{i} differs"
        );
    }
}
