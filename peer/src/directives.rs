//! Carrying out hold and drop (RT-0002 section 5) as the ledger decides (see `STATE.md`).
//!
//! A directive's admission (metainfo fetch and checks, quota) runs in the connection's task, in the
//! order directives arrive; the download runs in a named `fetch <ih>` task whose answer is routed to
//! every connection waiting for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raidtorrent_codec::{metainfo::MAX_METAINFO_LEN, Metainfo};
use raidtorrent_proto::{Hold, InfoHash, Message, MetainfoSource, RefuseCode};
use tokio::sync::watch;

use crate::engine::{Source, Stalled};
use crate::ledger::{HoldDecision, Shard, Waiter};
use crate::node::{lock, Fetch, Node};
use crate::status::{unix_now, DirectiveRecord};

fn refuse(re: u64, ih: Option<InfoHash>, code: RefuseCode, text: impl Into<String>) -> Message {
    Message::Refuse {
        re,
        ih,
        code,
        text: text.into(),
    }
}

impl Node {
    fn record(&self, gateway: &str, directive: &str, ih: Option<InfoHash>, outcome: &Message) {
        let outcome = match outcome {
            Message::Ack { .. } => "ack".to_owned(),
            Message::Refuse { code, text, .. } => format!("refuse {code}: {text}"),
            _ => "pending".to_owned(),
        };
        lock(&self.status).record(DirectiveRecord {
            at: unix_now(),
            gateway: gateway.to_owned(),
            directive: directive.to_owned(),
            info_hash: ih.map(|i| i.to_hex()),
            outcome,
        });
    }

    /// Admits a hold. Returns the answer when it is known now; `None` when it comes with the fetch.
    pub(crate) async fn hold(
        self: &Arc<Self>,
        gateway: &str,
        conn: u64,
        seq: u64,
        hold: Hold,
    ) -> Option<Message> {
        let answer = self.admit_hold(gateway, conn, seq, hold.clone()).await;
        self.record(
            gateway,
            "hold",
            Some(hold.ih),
            answer.as_ref().unwrap_or(&Message::Ping),
        );
        answer
    }

    async fn admit_hold(
        self: &Arc<Self>,
        gateway: &str,
        conn: u64,
        seq: u64,
        hold: Hold,
    ) -> Option<Message> {
        let ih = hold.ih;
        let torrent = match hold.source {
            MetainfoSource::Torrent(t) => t,
            MetainfoSource::Url(url) => match self.fetch_metainfo(&url).await {
                Ok(t) => t,
                Err(e) => {
                    return Some(refuse(
                        seq,
                        Some(ih),
                        RefuseCode::Fetch,
                        format!("{url}: {e:#}"),
                    ))
                }
            },
        };
        let shard = match Metainfo::parse(&torrent).and_then(|m| Ok((m.shard()?, m.info_hash))) {
            Ok(s) => s,
            Err(e) => return Some(refuse(seq, Some(ih), RefuseCode::Metainfo, e.to_string())),
        };
        let (info, actual) = shard;
        if actual != ih {
            return Some(refuse(
                seq,
                Some(ih),
                RefuseCode::Mismatch,
                format!("the info dict hashes to {actual}"),
            ));
        }
        let waiter = Waiter {
            gateway: gateway.to_owned(),
            conn,
            seq,
        };
        let decision = lock(&self.ledger).hold(waiter, ih, &info.name, info.length);
        match decision {
            HoldDecision::Ack { saved: true } => Some(Message::Ack { re: seq, ih }),
            HoldDecision::Ack { saved: false } => match self.persist(&[ih]).await {
                Ok(()) => Some(Message::Ack { re: seq, ih }),
                Err(e) => Some(refuse(seq, Some(ih), RefuseCode::Io, format!("{e:#}"))),
            },
            HoldDecision::Wait => None,
            HoldDecision::Refuse { code, text } => Some(refuse(seq, Some(ih), code, text)),
            HoldDecision::Start => {
                if let Err(e) = self.store.write_torrent(&ih, &torrent) {
                    lock(&self.ledger).failed(&ih);
                    return Some(refuse(seq, Some(ih), RefuseCode::Io, e.to_string()));
                }
                let stall = Duration::from_secs(self.config.limits.fetch_stall_secs);
                spawn_fetch(self, ih, torrent, hold.peers, Some(stall));
                None
            }
        }
    }

    async fn fetch_metainfo(&self, url: &str) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "only http and https URLs are followed"
        );
        let timeout = Duration::from_secs(self.config.limits.metainfo_fetch_timeout_secs);
        let mut response = reqwest::Client::builder()
            .timeout(timeout)
            .build()?
            .get(url)
            .send()
            .await?
            .error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            anyhow::ensure!(
                body.len() <= MAX_METAINFO_LEN,
                "metainfo above {MAX_METAINFO_LEN} bytes"
            );
        }
        Ok(body)
    }

    /// Carries out a drop; returns its answer (always an ack unless the disk fails).
    pub(crate) async fn drop_shard(
        self: &Arc<Self>,
        gateway: &str,
        seq: u64,
        ih: InfoHash,
    ) -> Message {
        let (name, decision) = {
            let mut ledger = lock(&self.ledger);
            let name = ledger.get(&ih).map(|s| s.name.clone());
            (name, ledger.drop_shard(gateway, &ih))
        };
        let known = name.is_some();
        for w in decision.superseded {
            let text = "a later drop cancelled this hold";
            self.send(
                w.conn,
                refuse(w.seq, Some(ih), RefuseCode::Superseded, text),
            );
        }
        let mut answer = Message::Ack { re: seq, ih };
        if decision.remove {
            let fetch = lock(&self.fetches).remove(&ih);
            if let Some(mut f) = fetch {
                f.cancel.cancel();
                let _ = f.done.wait_for(|done| *done).await;
            }
            let removed = self.engine.remove(&ih).await.map_err(|e| format!("{e:#}"));
            let deleted = self
                .store
                .remove(&ih, name.as_deref().unwrap_or_default())
                .map_err(|e| e.to_string());
            if let Err(text) = removed.and(deleted) {
                answer = refuse(seq, Some(ih), RefuseCode::Io, text);
            }
        }
        if known {
            // Gone, or one owner fewer.
            if let Err(e) = self.persist(&[ih]).await {
                tracing::error!("{e:#}");
            }
        }
        self.record(gateway, "drop", Some(ih), &answer);
        answer
    }

    /// The fetch finished: the shard is held (or, if dropped meanwhile, nothing is owed).
    async fn fetch_done(self: &Arc<Self>, ih: InfoHash, result: anyhow::Result<()>) {
        let answers: Vec<(Waiter, Message)> = match result {
            Ok(()) => {
                let Some(waiters) = lock(&self.ledger).fetched(&ih) else {
                    return;
                };
                // Acked only once the held set on disk names it.
                let unsaved = self.persist(&[ih]).await.err().map(|e| {
                    tracing::error!("{e:#}");
                    format!("{e:#}")
                });
                waiters
                    .into_iter()
                    .map(|w| {
                        let answer = match &unsaved {
                            None => Message::Ack { re: w.seq, ih },
                            Some(text) => refuse(w.seq, Some(ih), RefuseCode::Io, text),
                        };
                        (w, answer)
                    })
                    .collect()
            }
            Err(e) => {
                tracing::warn!(%ih, "fetch failed: {e:#}");
                let (recorded, waiters) = {
                    let mut ledger = lock(&self.ledger);
                    let recorded = ledger.get(&ih).is_some_and(Shard::kept);
                    (recorded, ledger.failed(&ih))
                };
                // Only a shard fetched again has a record to take back; either way the gateways
                // hear at once that the quota is free.
                let changed: &[InfoHash] = if recorded { &[ih] } else { &[] };
                if let Err(e) = self.persist(changed).await {
                    tracing::error!("{e:#}");
                }
                let code = match e.downcast_ref::<Stalled>() {
                    Some(_) => RefuseCode::Stalled,
                    None => RefuseCode::Io,
                };
                waiters
                    .into_iter()
                    .map(|w| {
                        let no = refuse(w.seq, Some(ih), code.clone(), format!("{e:#}"));
                        (w, no)
                    })
                    .collect()
            }
        };
        for (w, answer) in answers {
            self.record(&w.gateway, "hold", Some(ih), &answer);
            self.send(w.conn, answer);
        }
    }
}

/// How often a downloading shard's written pages are pushed toward the disk.
const WRITEBACK_EVERY: Duration = Duration::from_millis(200);

/// Starts writeback of shard `name`'s pages every [`WRITEBACK_EVERY`] while it downloads (never
/// returns; dropped when the download ends).
async fn write_back(node: &Arc<Node>, name: Option<String>) {
    let Some(name) = name else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(WRITEBACK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (store, name) = (node.store.clone(), name.clone());
        let _ = tokio::task::spawn_blocking(move || store.start_writeback(&name)).await;
    }
}

/// Starts the task that fetches (or finishes fetching) a shard, puts its data on disk for good,
/// and answers its waiters; with a `stall`, the fetch fails once that passes without data. A
/// shard restored with pieces missing is already in the session; adding it again finds it there.
pub(crate) fn spawn_fetch(
    node: &Arc<Node>,
    ih: InfoHash,
    torrent: Vec<u8>,
    peers: Vec<SocketAddr>,
    stall: Option<Duration>,
) {
    let cancel = node.tasks.token().child_token();
    let (done_tx, done) = watch::channel(false);
    lock(&node.fetches).insert(
        ih,
        Fetch {
            cancel: cancel.clone(),
            done: done.clone(),
        },
    );
    let mine = done.clone();
    let node = node.clone();
    node.clone().tasks.spawn(format!("fetch {ih}"), async move {
        let work = async {
            let handle = node.engine.add(torrent, Source::fetch_from(peers)).await?;
            let name = lock(&node.ledger).get(&ih).map(|s| s.name.clone());
            tokio::select! {
                r = node.engine.wait_complete(&handle, stall) => r?,
                () = write_back(&node, name.clone()) => {}
            }
            // librqbit wrote the data; the ack promises it survives a power loss.
            let store = node.store.clone();
            let synced = tokio::task::spawn_blocking(move || {
                name.map_or(Ok(()), |name| store.sync_shard(&name))
            });
            synced.await??;
            anyhow::Ok(())
        };
        tracing::debug!(%ih, "fetching");
        let result = tokio::select! {
            _ = cancel.cancelled() => None,
            r = work => Some(r),
        };
        {
            // A drop may have replaced this fetch with a newer one for the same shard: leave that be.
            let mut fetches = lock(&node.fetches);
            if fetches.get(&ih).is_some_and(|f| f.done.same_channel(&mine)) {
                fetches.remove(&ih);
            }
        }
        tracing::debug!(%ih, ?result, "fetch ended");
        if let Some(result) = result {
            if result.is_err() {
                // Leave nothing half-fetched behind.
                let _ = node.engine.remove(&ih).await;
                let name = lock(&node.ledger).get(&ih).map(|s| s.name.clone());
                let _ = node.store.remove(&ih, name.as_deref().unwrap_or_default());
            }
            node.fetch_done(ih, result).await;
        }
        let _ = done_tx.send(true);
    });
}
