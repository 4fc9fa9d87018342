//! A cloud whose gateway is a process too: `raidtorrent-tracker serve` started from a
//! configuration file in a temporary folder, and `raidtorrent-peer` node processes dialling it.
//! The gateway can be killed (SIGKILL, as a crash or a pulled plug) and started again on the same
//! database, data folder and addresses, so the nodes reconnect to it as they would in the field.
//!
//! Tests speak to it only from outside: the object API over HTTP ([`Api`]), the nodes' data
//! folders and status files, and the gateway's database read-only ([`GatewayProcess::recorded`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use raidtorrent_testkit::{self as testkit, free_port, peer_binary, wait_until, workspace_binary};
use raidtorrent_tracker::config::{Config, ObjectConfig};
use raidtorrent_tracker::registry::{Db, NodeId};

/// The API key every [`GatewayProcess`] accepts.
pub const API_KEY: &str = "crash-test-api-key-0123456789";

/// A `raidtorrent-tracker serve` process and what it needs to start again; killed when dropped.
pub struct GatewayProcess {
    pub dir: PathBuf,
    pub config: Config,
    pub api_addr: SocketAddr,
    pub control_addr: SocketAddr,
    /// Flags added to `serve --config` at every start, as an operator's command line would.
    pub serve_args: Vec<String>,
    binary: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl GatewayProcess {
    /// A gateway configured in `dir` (database, data folder, log files), with every listener on
    /// 127.0.0.1 at a port of its own that stays across restarts, short worker intervals, and
    /// `tweak` applied last (its TLS certificate created when `tweak` turned TLS on). Not started
    /// yet: register nodes first.
    pub fn new(dir: &Path, tweak: impl FnOnce(&mut Config)) -> GatewayProcess {
        let port = || format!("127.0.0.1:{}", free_port("127.0.0.1"));
        let mut config = Config {
            http_listen: port(),
            udp_listen: "off".into(),
            db: dir.join("gateway.db"),
            objects: ObjectConfig {
                api_listen: port(),
                api_keys: vec![API_KEY.into()],
                control_listen: port(),
                data_dir: dir.join("gateway"),
                max_object_size: 1 << 30,
                hold_timeout_secs: 120,
                segment_target: 1 << 20,
                collect_interval_secs: 1,
                reconcile_settle_secs: 2,
                ..ObjectConfig::default()
            },
            ..Config::default()
        };
        config.objects.health.interval_ms = 500;
        config.objects.health.grace_secs = 2;
        config.objects.health.backoff_base_secs = 1;
        config.objects.health.backoff_max_secs = 2;
        // Objects of every size take the swarm path here; packing has tests of its own.
        config.objects.packing.max_object_size = 0;
        tweak(&mut config);
        // As an operator would before handing the certificate to nodes: the gateway's first start
        // creates it, here done ahead of that so nodes can pin it from their start.
        config.tls_identity().expect("the gateway's certificate");
        let text = toml::to_string(&config).expect("the configuration serialises");
        std::fs::write(dir.join("gateway.toml"), text).expect("writing gateway.toml");
        GatewayProcess {
            dir: dir.to_owned(),
            api_addr: config.objects.api_listen.parse().expect("api address"),
            control_addr: config
                .objects
                .control_listen
                .parse()
                .expect("control address"),
            config,
            serve_args: Vec::new(),
            binary: workspace_binary("raidtorrent-tracker", "raidtorrent-tracker"),
            child: None,
            starts: 0,
        }
    }

    /// Registers a node in the gateway's database (the gateway should be stopped); returns its
    /// id and passkey.
    pub fn add_node(&self, name: &str) -> (NodeId, String) {
        let out = Command::new(&self.binary)
            .args(["node", "add", name, "--db"])
            .arg(&self.config.db)
            .output()
            .expect("raidtorrent-tracker node add runs");
        assert!(
            out.status.success(),
            "node add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("node add prints JSON");
        let id = v["id"].as_i64().expect("an id");
        (id, v["passkey"].as_str().expect("a passkey").to_owned())
    }

    /// Runs `raidtorrent-tracker s3-key ARGS` on this gateway's database and data folder (a
    /// running gateway sees the change at once): what it printed, as JSON.
    pub fn s3_key(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new(&self.binary)
            .arg("s3-key")
            .args(args)
            .arg("--db")
            .arg(&self.config.db)
            .arg("--data-dir")
            .arg(&self.config.objects.data_dir)
            .output()
            .expect("raidtorrent-tracker s3-key runs");
        assert!(
            out.status.success(),
            "s3-key {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("s3-key prints JSON")
    }

    /// Starts the process (killing a running one first) and waits until its API answers. Each
    /// start logs to its own file, `gateway-<n>.log`.
    pub async fn start(&mut self) {
        self.kill();
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("gateway-{}.log", self.starts)))
            .expect("creating the gateway log");
        let child = Command::new(&self.binary)
            .args(["serve", "--config"])
            .arg(self.dir.join("gateway.toml"))
            .args(&self.serve_args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("raidtorrent-tracker serve starts");
        self.child = Some(child);
        wait_until(Duration::from_secs(60), "the gateway's API answers", || {
            let api = self.api();
            async move { api.health().await.is_ok() }
        })
        .await;
    }

    /// The certificate file clients and nodes trust when the gateway serves TLS.
    pub fn tls_cert(&self) -> Option<PathBuf> {
        self.config.tls.enabled.then(|| self.config.tls_files().0)
    }

    /// The object API as a client sees it: over HTTPS trusting only the gateway's certificate
    /// when it serves TLS (a client made before the gateway created its certificate fails).
    pub fn api(&self) -> Api {
        match self.tls_cert() {
            None => Api::new(self.api_addr),
            Some(cert) => Api::tls(self.api_addr, &cert),
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: nothing is flushed, no node is told. Waits for the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The copies the gateway's database records, per node, as hex info-hashes.
    pub async fn recorded(&self) -> BTreeMap<NodeId, BTreeSet<String>> {
        let db = self.db().await;
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT node_id, info_hash FROM holdings")
            .fetch_all(db.reader())
            .await
            .expect("reading holdings");
        db.close().await;
        let mut out: BTreeMap<NodeId, BTreeSet<String>> = BTreeMap::new();
        for (node, ih) in rows {
            out.entry(node).or_default().insert(ih);
        }
        out
    }

    /// The info-hashes of a stored object's shards (its parts' shards, if grouped), empty when
    /// no object has that key.
    pub async fn shards_of(&self, bucket: &str, key: &str) -> BTreeSet<String> {
        let db = self.db().await;
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT s.info_hash FROM shards s JOIN objects o ON o.id = s.object_id
             WHERE o.bucket = $1 AND o.key = $2
             UNION
             SELECT s.info_hash FROM shards s JOIN object_groups g ON g.part_id = s.object_id
                 JOIN objects o ON o.id = g.object_id
             WHERE o.bucket = $1 AND o.key = $2",
        )
        .bind(bucket)
        .bind(key)
        .fetch_all(db.reader())
        .await
        .expect("reading shards");
        db.close().await;
        rows.into_iter().map(|(ih,)| ih).collect()
    }

    /// The gateway's database (a SQLite file or a PostgreSQL server), as the gateway opens it.
    async fn db(&self) -> Db {
        Db::open(&self.config.db)
            .await
            .expect("opening the gateway's database")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A node process of a [`GatewayProcess`] cloud.
pub struct ProcessNode {
    pub id: NodeId,
    pub process: testkit::Node,
}

impl ProcessNode {
    /// Registers node `name` with the (stopped) gateway and starts it in `zone`, dialling the
    /// gateway's control address (pinning its certificate when it serves TLS).
    pub fn start(gateway: &GatewayProcess, name: &str, zone: &str) -> ProcessNode {
        Self::start_pinned(gateway, name, zone, gateway.tls_cert().as_deref(), &[])
    }

    /// As [`ProcessNode::start`], pinning the certificate `cert` (any, right or wrong), with
    /// `extra` arguments on the node's command line.
    pub fn start_pinned(
        gateway: &GatewayProcess,
        name: &str,
        zone: &str,
        cert: Option<&Path>,
        extra: &[&str],
    ) -> ProcessNode {
        let (id, passkey) = gateway.add_node(name);
        let mut args: Vec<OsString> = vec![
            "--gateway".into(),
            format!("{id}:{passkey}@{}", gateway.control_addr).into(),
        ];
        if let Some(cert) = cert {
            args.extend(["--gateway-cert".into(), cert.into()]);
        }
        args.extend(extra.iter().map(OsString::from));
        Self::spawn(gateway, id, name, zone, args)
    }

    /// Registers node `name` in the database `gateways` share and starts it in `zone`, joined to
    /// every one of them as the one cloud `cloud` (plain TCP). Its data folder is in the first
    /// gateway's folder.
    pub fn start_in_cloud(
        gateways: &[&GatewayProcess],
        cloud: &str,
        name: &str,
        zone: &str,
    ) -> ProcessNode {
        let first = gateways[0];
        let (id, passkey) = first.add_node(name);
        let mut args: Vec<OsString> = vec!["--cloud".into(), cloud.into()];
        for g in gateways {
            let flag = format!("{id}:{passkey}@{}", g.control_addr);
            args.extend(["--gateway".into(), flag.into()]);
        }
        Self::spawn(first, id, name, zone, args)
    }

    /// Starts node `id` in `zone` with its data folder in `gateway`'s folder and `gateways`
    /// (its --gateway flags and what goes with them) on its command line.
    fn spawn(
        gateway: &GatewayProcess,
        id: NodeId,
        name: &str,
        zone: &str,
        gateways: Vec<OsString>,
    ) -> ProcessNode {
        let dir = gateway.dir.join(name);
        let mut args: Vec<OsString> = vec![
            "run".into(),
            "--quota".into(),
            "1GiB".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            dir.clone().into(),
            "--zone".into(),
            zone.into(),
        ];
        args.extend(gateways);
        let env = vec![("RUST_LOG".into(), "warn".into())];
        let process = testkit::Node::spawn(dir, peer_binary(), args, env);
        ProcessNode { id, process }
    }

    /// The node's status file, if it has written one yet.
    pub fn status(&self) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.process.dir.join("status.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// How many times the node connected to its gateway, if its status says it is connected
    /// now. The status file is rewritten every few seconds, so after a gateway restart wait for
    /// the count to go up rather than for "connected".
    pub fn connected(&self) -> Option<u64> {
        let status = self.status()?;
        let gateway = status["gateways"].as_array()?.first()?.clone();
        (gateway["state"] == "connected").then(|| gateway["connects"].as_u64().unwrap_or(0))
    }

    /// Whether the node's status says it is connected to `n` gateways, every one of them.
    pub fn connected_to_all(&self, n: usize) -> bool {
        let Some(status) = self.status() else {
            return false;
        };
        let gateways = status["gateways"].as_array().cloned().unwrap_or_default();
        gateways.len() == n && gateways.iter().all(|g| g["state"] == "connected")
    }

    /// Every shard the node has on disk or is fetching, as hex info-hashes (see [`copies_in`]).
    pub fn copies(&self) -> BTreeSet<String> {
        copies_in(&self.process.dir)
    }
}

/// Every shard a node with data folder `dir` has on disk or is fetching, as hex info-hashes: its
/// held set on disk and the shards its status file lists (held or fetching).
pub fn copies_in(dir: &Path) -> BTreeSet<String> {
    let mut out = held_in(dir);
    out.extend(listed_in(dir, "status.json"));
    out
}

/// The shards a node with data folder `dir` holds complete (its held set on disk).
pub fn held_in(dir: &Path) -> BTreeSet<String> {
    testkit::held_set(dir).into_keys().collect()
}

/// The info-hashes of the `shards` list of a node's JSON file.
fn listed_in(dir: &Path, file: &str) -> BTreeSet<String> {
    let read = || -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(dir.join(file)).ok()?).ok()
    };
    read().map_or_else(BTreeSet::new, |v| info_hashes(&v["shards"]))
}

fn info_hashes(list: &serde_json::Value) -> BTreeSet<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["info_hash"].as_str().map(str::to_owned))
        .collect()
}

/// The copies on `nodes` that `recorded` does not list, described for a failure message.
pub fn untracked<'a>(
    nodes: impl IntoIterator<Item = &'a ProcessNode>,
    recorded: &BTreeMap<NodeId, BTreeSet<String>>,
) -> Vec<String> {
    let none = BTreeSet::new();
    nodes
        .into_iter()
        .flat_map(|n| {
            let known = recorded.get(&n.id).unwrap_or(&none);
            n.copies()
                .into_iter()
                .filter(|ih| !known.contains(ih))
                .map(move |ih| format!("node {} holds {ih}", n.id))
        })
        .collect()
}

/// The object API of a gateway process, as a client sees it.
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("an HTTP client"),
        }
    }

    /// The API over HTTPS, trusting the certificate in PEM file `cert` and nothing else.
    pub fn tls(addr: SocketAddr, cert: &Path) -> Api {
        let trusted = std::fs::read(cert)
            .map(|pem| reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .tls_certs_only(trusted);
        Api {
            base: format!("https://{addr}"),
            client: client.build().expect("an HTTPS client"),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth(API_KEY)
    }

    /// `GET /_health`: the gateway's workers, as JSON.
    pub async fn health(&self) -> reqwest::Result<serde_json::Value> {
        let r = self.request(reqwest::Method::GET, "_health").send().await?;
        let body = r.error_for_status()?.bytes().await?;
        Ok(serde_json::from_slice(&body).unwrap_or_default())
    }

    /// Creates a bucket with `policy` (JSON); returns the status.
    pub async fn create_bucket(&self, bucket: &str, policy: serde_json::Value) -> u16 {
        let r = self
            .request(reqwest::Method::PUT, bucket)
            .body(policy.to_string());
        r.send().await.expect("PUT bucket").status().as_u16()
    }

    /// Stores an object; the status, or the transport error when the gateway went away.
    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> reqwest::Result<u16> {
        let r = self.request(reqwest::Method::PUT, &format!("{bucket}/{key}"));
        Ok(r.body(body).send().await?.status().as_u16())
    }

    /// The object's bytes, or the status when it is not 200.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, u16> {
        let r = self.request(reqwest::Method::GET, &format!("{bucket}/{key}"));
        let r = r.send().await.expect("GET object");
        if r.status() != 200 {
            return Err(r.status().as_u16());
        }
        r.bytes().await.map(|b| b.to_vec()).map_err(|_| 599)
    }

    /// The first 1,000 objects of a bucket, as the listing's JSON objects.
    pub async fn list(&self, bucket: &str) -> Vec<serde_json::Value> {
        let r = self.request(reqwest::Method::GET, &format!("{bucket}?limit=1000"));
        let v: serde_json::Value = r.send().await.expect("GET bucket").json().await.unwrap();
        v["objects"].as_array().cloned().unwrap_or_default()
    }

    /// `GET /_place/<placement>` (RT-0004 section 2): the placement's status, or the HTTP status
    /// when it is not 200.
    pub async fn placement(&self, placement: &str) -> Result<serde_json::Value, u16> {
        let r = self.request(reqwest::Method::GET, &format!("_place/{placement}"));
        let r = r.send().await.expect("GET placement");
        if r.status() != 200 {
            return Err(r.status().as_u16());
        }
        Ok(r.json().await.expect("a placement status"))
    }

    /// Deletes an object; the status, or the transport error when the gateway went away.
    pub async fn delete(&self, bucket: &str, key: &str) -> reqwest::Result<u16> {
        let r = self.request(reqwest::Method::DELETE, &format!("{bucket}/{key}"));
        Ok(r.send().await?.status().as_u16())
    }
}
