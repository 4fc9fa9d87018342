//! What a `put` does, before encoding anything, with the journals of `put`s that were stopped
//! outright (`super::journal`): the one of this same `put` whose placement is still under way is
//! resumed (its shards seeded again from the folder they were encoded into, the same placement
//! followed to its end); one whose placement was stored meanwhile just ends; every other is
//! cleaned up: its placement cancelled at the gateway, its shard folder and journal removed.

use super::api::{Api, PlaceState, PlaceStatus, Placement};
use super::journal::{
    decide, Decision, Journal, Observed, PlacementSeen, Prepared, Slot, Stale, Target,
};
use super::put::{seed_to_end, DamagedShard, PutOptions, PutOutcome};
use super::session::ClientSession;
use super::{ClientError, ObjectName};

/// The dead `put` this one takes over.
enum Taken {
    Resume(Slot, Journal, PlaceStatus),
    Finished(Slot, Journal),
}

/// Cleans up after every dead `put` and finishes the one this `put` repeats, when it can go on.
/// `None`: this `put` starts from the beginning.
pub(super) async fn take_over(
    api: &Api,
    target: &Target,
    name: &ObjectName,
    opts: &PutOptions,
) -> Result<Option<PutOutcome>, ClientError> {
    let mut taken = None;
    for (slot, journal) in opts.journals.dead()? {
        let Some(journal) = journal else {
            slot.discard();
            continue;
        };
        let (decision, status) = match taken {
            Some(_) => (Decision::CleanUp(Stale::OtherPut), None),
            None => examine(api, &journal, target).await?,
        };
        match (decision, status) {
            (Decision::Resume, Some(status)) => taken = Some(Taken::Resume(slot, journal, status)),
            (Decision::Finished, _) => taken = Some(Taken::Finished(slot, journal)),
            (Decision::CleanUp(why), _) => clean_up(api, slot, &journal, why, opts).await,
            (Decision::AskGateway | Decision::Resume, _) => {
                unreachable!("decided after asking the gateway")
            }
        }
    }
    match taken {
        None => Ok(None),
        Some(Taken::Finished(slot, journal)) => {
            let prepared = prepared(&journal)?;
            opts.progress.note(format_args!(
                "an earlier run of this put was stored meanwhile (placement {})",
                journal.placement.as_deref().unwrap_or_default()
            ));
            slot.discard();
            let id = journal.placement.unwrap_or_default();
            Ok(Some(PutOutcome::of(prepared, id, true)))
        }
        Some(Taken::Resume(slot, journal, status)) => {
            resume(api, slot, journal, status, name, opts).await
        }
    }
}

/// Decides what a dead put's journal needs, asking the gateway only when it may be resumed. Only
/// an unreachable gateway is an error: the journal is then left for a later run.
async fn examine(
    api: &Api,
    journal: &Journal,
    target: &Target,
) -> Result<(Decision, Option<PlaceStatus>), ClientError> {
    let mut observed = Observed {
        shards_present: shards_present(journal),
        placement: None,
    };
    let decision = decide(journal, target, &observed);
    let (Decision::AskGateway, Some(id)) = (decision, &journal.placement) else {
        return Ok((decision, None));
    };
    let status = match api.follow(id, 0).await {
        Ok(status) => Some(status),
        Err(e @ ClientError::Unreachable { .. }) => return Err(e),
        // 404: forgotten (ended long ago, or the gateway restarted); 403: not these
        // credentials' placement.
        Err(_) => None,
    };
    observed.placement = Some(seen(status.as_ref()));
    Ok((decide(journal, target, &observed), status))
}

/// A placement's state, for [`decide`]; no status at all is a placement that ended.
fn seen(status: Option<&PlaceStatus>) -> PlacementSeen {
    match status.map(|s| s.state) {
        Some(PlaceState::Placing | PlaceState::Unknown) => PlacementSeen::Placing,
        Some(PlaceState::Stored) => PlacementSeen::Stored,
        Some(PlaceState::Failed) | None => PlacementSeen::Ended,
    }
}

/// Whether every shard file the journal names is in its folder at its length (their pieces are
/// checked when the session adds them).
fn shards_present(journal: &Journal) -> bool {
    let files = journal.shard_files();
    !files.is_empty()
        && files
            .iter()
            .all(|(path, len)| std::fs::metadata(path).is_ok_and(|m| m.len() == *len))
}

fn prepared(journal: &Journal) -> Result<Prepared, ClientError> {
    let record = journal
        .encoded
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the journal holds no encoded object"))?;
    Prepared::from_record(record).map_err(|e| ClientError::Other(e.into()))
}

/// Seeds the journal's shards again and follows its placement to its end. Shards that fail
/// their hash check send the `put` back to the beginning (`None`).
async fn resume(
    api: &Api,
    slot: Slot,
    journal: Journal,
    status: PlaceStatus,
    name: &ObjectName,
    opts: &PutOptions,
) -> Result<Option<PutOutcome>, ClientError> {
    let prepared = prepared(&journal)?;
    let id = journal.placement.clone().unwrap_or_default();
    opts.progress.note(format_args!(
        "resuming an earlier run of this put: placement {id}, its shards already encoded"
    ));
    let placement = Placement {
        placement: id,
        copies: status.copies,
        shards: status.shards,
    };
    let session = listen_again(&journal, opts).await?;
    let done = seed_to_end(api, &session, &prepared.infos, name, placement, opts).await;
    session.stop().await;
    match done {
        Err(e) if DamagedShard::is(&e) => {
            opts.progress.note(format_args!("{e:#}: starting over"));
            clean_up(api, slot, &journal, Stale::ShardsDamaged, opts).await;
            Ok(None)
        }
        done => {
            slot.discard();
            done.map(|id| Some(PutOutcome::of(prepared, id, true)))
        }
    }
}

/// A session over the journal's folder, listening where the earlier run did when that address
/// is free: the nodes were told it, and keep dialing it (the client's own dials to them are not
/// retried once it seeds), else where this run was asked to.
async fn listen_again(journal: &Journal, opts: &PutOptions) -> Result<ClientSession, ClientError> {
    if let Some(listen) = journal.listen.filter(|l| l.port() != 0) {
        match ClientSession::start(&journal.folder, listen).await {
            Ok(session) => return Ok(session),
            Err(e) => tracing::info!(%listen, error = %e, "the earlier listener is taken"),
        }
    }
    Ok(ClientSession::start(&journal.folder, opts.listen).await?)
}

/// Cancels a dead put's placement (at its own gateway, with this put's credentials) and removes
/// its folder and journal. A gateway that cannot be told fails the placement itself once its
/// holds time out.
async fn clean_up(api: &Api, slot: Slot, journal: &Journal, why: Stale, opts: &PutOptions) {
    if let Some(id) = &journal.placement {
        match cancel_at_its_gateway(api, journal, id, opts).await {
            Ok(s) if s.state == PlaceState::Stored => opts.progress.note(format_args!(
                "an earlier put of {}/{} had been stored (placement {id})",
                journal.bucket, journal.key
            )),
            Ok(_) => {}
            Err(e) => tracing::info!(placement = %id, error = %e, "could not cancel"),
        }
    }
    opts.progress.note(format_args!(
        "cleaned up an earlier put of {}/{} ({why})",
        journal.bucket, journal.key
    ));
    slot.discard();
}

async fn cancel_at_its_gateway(
    api: &Api,
    journal: &Journal,
    id: &str,
    opts: &PutOptions,
) -> Result<PlaceStatus, ClientError> {
    if journal.gateway == api.base() {
        return api.cancel(id).await;
    }
    Api::new(&journal.gateway, opts.credentials.clone())?
        .cancel(id)
        .await
}
