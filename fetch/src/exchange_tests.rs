//! The audit conversation driven by hand: honest, dishonest and refusing nodes, message by message.

use super::*;

/// A shard of 3 pieces of 32 KiB (two blocks each), the last one 20,000 bytes (two blocks:
/// 16,384 and 3,616).
fn shard() -> (ShardInfo, Vec<u8>) {
    let data: Vec<u8> = (0..2 * 32768 + 20_000u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let pieces = data.chunks(32768).map(|c| Sha1::digest(c).into()).collect();
    let s = ShardInfo {
        name: "ab".repeat(16),
        length: data.len() as u64,
        piece_length: 32768,
        pieces,
    };
    (s, data)
}

fn handshake(info_hash: [u8; 20]) -> Handshake {
    Handshake {
        reserved: [0; 8],
        info_hash,
        peer_id: [7; 20],
    }
}

/// An exchange past the handshake, with the node holding every piece and unchoked.
fn started(pieces: &[u32]) -> (Exchange, Vec<u8>) {
    let (s, data) = shard();
    let mut ex = Exchange::new(&s, pieces);
    let h = handshake(s.info_hash().0);
    ex.on_handshake(&h).unwrap();
    assert_eq!(ex.take_outgoing(), vec![Message::Interested]);
    assert_eq!(ex.on_message(Message::Bitfield(vec![0b1110_0000])), None);
    assert_eq!(ex.on_message(Message::Unchoke), None);
    assert_eq!(ex.stage(), "block");
    (ex, data)
}

fn answer(b: &BlockRef, data: &[u8]) -> Message {
    let at = b.index as usize * 32768 + b.begin as usize;
    Message::Piece {
        index: b.index,
        begin: b.begin,
        data: data[at..at + b.length as usize].to_vec(),
    }
}

fn requests(ex: &mut Exchange) -> Vec<BlockRef> {
    ex.take_outgoing()
        .into_iter()
        .map(|m| match m {
            Message::Request(b) => b,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn an_honest_node_passes_with_pipelined_requests_answered_out_of_order() {
    let (mut ex, data) = started(&[2, 0, 2]);
    let mut sent = requests(&mut ex);
    assert_eq!(sent.len(), PIPELINE);
    assert_eq!(
        sent[1],
        BlockRef {
            index: 2,
            begin: 16384,
            length: 20_000 - 16384
        }
    );
    let mut verdict = None;
    while let Some(b) = sent.pop() {
        // Newest first: out of order within and across pieces.
        verdict = ex.on_message(answer(&b, &data));
        if verdict.is_some() {
            break;
        }
        sent.extend(requests(&mut ex));
    }
    assert_eq!(
        verdict,
        Some(Verdict::Pass {
            bytes: 20_000 + 32768
        })
    );
}

#[test]
fn wrong_data_or_unrequested_blocks_fail_naming_the_piece() {
    let (mut ex, data) = started(&[1]);
    let sent = requests(&mut ex);
    let mut bad = answer(&sent[0], &data);
    if let Message::Piece { data, .. } = &mut bad {
        data[5] ^= 1;
    }
    assert_eq!(ex.on_message(bad), None);
    let v = ex.on_message(answer(&sent[1], &data));
    assert!(matches!(v, Some(Verdict::Fail { piece: 1, .. })), "{v:?}");

    for wrong in [
        Message::Piece {
            index: 1,
            begin: 1,
            data: vec![0; 16384],
        },
        Message::Piece {
            index: 1,
            begin: 0,
            data: vec![0; 100],
        },
        Message::Piece {
            index: 0,
            begin: 0,
            data: vec![0; 16384],
        },
    ] {
        let (mut ex, _) = started(&[1]);
        let v = ex.on_message(wrong.clone());
        assert!(
            matches!(&v, Some(Verdict::Fail { piece: 1, reason }) if reason.contains("not requested")),
            "{wrong:?}: {v:?}"
        );
    }
}

#[test]
fn a_choke_requeues_outstanding_requests() {
    let (mut ex, data) = started(&[0]);
    let first = requests(&mut ex);
    assert_eq!(first.len(), 2);
    assert_eq!(ex.on_message(answer(&first[0], &data)), None);
    assert_eq!(ex.on_message(Message::Choke), None);
    assert_eq!(ex.stage(), "unchoke");
    assert_eq!(ex.on_message(Message::Unchoke), None);
    assert_eq!(requests(&mut ex), vec![first[1]]);
    assert_eq!(
        ex.on_message(answer(&first[1], &data)),
        Some(Verdict::Pass { bytes: 32768 })
    );
}

#[test]
fn refusals_are_missing() {
    let (s, _) = shard();
    let mut ex = Exchange::new(&s, &[0, 2]);
    let v = ex.on_handshake(&handshake([1; 20]));
    assert!(matches!(v, Err(Verdict::Missing { .. })), "{v:?}");
    assert!(matches!(ex.on_closed(), Verdict::Missing { reason } if reason.contains("handshake")));

    let mut ex = Exchange::new(&s, &[0, 2]);
    ex.on_handshake(&handshake(s.info_hash().0)).unwrap();
    assert_eq!(ex.on_message(Message::Bitfield(vec![0b1000_0000])), None);
    assert_eq!(ex.on_message(Message::Have(1)), None);
    assert_eq!(
        ex.on_message(Message::Unchoke),
        Some(Verdict::Missing {
            reason: "does not have piece 2".into()
        })
    );
    // No bitfield at all (librqbit sends none when it holds nothing): nothing is held.
    let mut ex = Exchange::new(&s, &[1]);
    ex.on_handshake(&handshake(s.info_hash().0)).unwrap();
    assert!(matches!(
        ex.on_message(Message::Unchoke),
        Some(Verdict::Missing { .. })
    ));
}

#[test]
fn malformed_possession_fails() {
    let (s, _) = shard();
    for (m, why) in [
        (Message::Bitfield(vec![0xe0, 0]), "bitfield of 2 bytes"),
        (Message::Bitfield(vec![0xf0]), "past the last piece"),
        (Message::Have(3), "have for piece 3"),
    ] {
        let mut ex = Exchange::new(&s, &[2]);
        ex.on_handshake(&handshake(s.info_hash().0)).unwrap();
        let v = ex.on_message(m);
        assert!(
            matches!(&v, Some(Verdict::Fail { piece: 2, reason }) if reason.contains(why)),
            "{v:?}"
        );
    }
}

#[test]
fn bounds_and_degenerate_choices() {
    let (s, _) = shard();
    let ex = Exchange::new(&s, &[]);
    assert_eq!(ex.max_frame(), 64 << 10);
    // Out-of-range and repeated indices are dropped; nothing chosen passes at once.
    let mut ex = Exchange::new(&s, &[9, 9]);
    ex.on_handshake(&handshake(s.info_hash().0)).unwrap();
    assert_eq!(
        ex.on_message(Message::Unchoke),
        Some(Verdict::Pass { bytes: 0 })
    );
    // Hashes past the shard's length name empty pieces: nothing to fetch, so they are left out.
    let padded = ShardInfo {
        pieces: vec![[0; 20]; 5],
        ..s.clone()
    };
    let mut ex = Exchange::new(&padded, &[4]);
    ex.on_handshake(&handshake(padded.info_hash().0)).unwrap();
    assert_eq!(ex.on_message(Message::Bitfield(vec![0xf8])), None);
    assert_eq!(
        ex.on_message(Message::Unchoke),
        Some(Verdict::Pass { bytes: 0 })
    );
    let big = ShardInfo {
        pieces: vec![[0; 20]; 8_000_000],
        ..s
    };
    assert_eq!(Exchange::new(&big, &[]).max_frame(), 1_000_001);
}

/// A node answering from `data`, in an order drawn from `order`, until the exchange ends.
fn serve(ex: &mut Exchange, data: &[u8], piece_length: u64, order: &[usize]) -> Verdict {
    let mut pending: Vec<BlockRef> = Vec::new();
    let mut step = 0;
    loop {
        for m in ex.take_outgoing() {
            if let Message::Request(b) = m {
                pending.push(b);
            }
        }
        assert!(pending.len() <= PIPELINE);
        let b = pending.remove(order[step % order.len()] % pending.len());
        step += 1;
        let at = (b.index as u64 * piece_length + b.begin as u64) as usize;
        let m = Message::Piece {
            index: b.index,
            begin: b.begin,
            data: data[at..at + b.length as usize].to_vec(),
        };
        if let Some(v) = ex.on_message(m) {
            return v;
        }
    }
}

proptest::proptest! {
    /// Whatever the shard's shape, the chosen pieces and the order of the answers: an honest
    /// node passes with exactly the chosen pieces' bytes, and one flipped byte fails its piece.
    #[test]
    fn honest_nodes_pass_and_one_flipped_byte_fails_its_piece(
        piece_length in proptest::sample::select(vec![16384u64, 32768, 65536]),
        length in 1u64..300_000,
        picks in proptest::collection::vec(proptest::num::u32::ANY, 1..6),
        order in proptest::collection::vec(proptest::num::usize::ANY, 1..8),
        flip in proptest::num::u64::ANY,
    ) {
        let data: Vec<u8> = (0..length).map(|i| (i * 31 % 253) as u8).collect();
        let s = ShardInfo {
            name: "cd".repeat(16),
            length,
            piece_length,
            pieces: data
                .chunks(piece_length as usize)
                .map(|c| Sha1::digest(c).into())
                .collect(),
        };
        let n = s.pieces.len() as u32;
        let chosen: Vec<u32> = picks.iter().map(|p| p % n).collect();
        let begin = |ex: &mut Exchange| {
            ex.on_handshake(&handshake(s.info_hash().0)).unwrap();
            let mut bits = vec![0xffu8; n.div_ceil(8) as usize];
            let spare = bits.len() * 8 - n as usize;
            *bits.last_mut().unwrap() &= !((1u16 << spare) - 1) as u8;
            proptest::prop_assert_eq!(ex.on_message(Message::Bitfield(bits)), None);
            proptest::prop_assert_eq!(ex.on_message(Message::Unchoke), None);
            Ok(())
        };

        let mut ex = Exchange::new(&s, &chosen);
        begin(&mut ex)?;
        let mut distinct = chosen.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let want: u64 = distinct
            .iter()
            .map(|&p| piece_length.min(length - p as u64 * piece_length))
            .sum();
        proptest::prop_assert_eq!(
            serve(&mut ex, &data, piece_length, &order),
            Verdict::Pass { bytes: want }
        );

        let target = distinct[(flip % distinct.len() as u64) as usize];
        let in_piece = piece_length.min(length - target as u64 * piece_length);
        let at = target as u64 * piece_length + (flip >> 8) % in_piece;
        let mut bad = data.clone();
        bad[at as usize] ^= 0x5a;
        let mut ex = Exchange::new(&s, &chosen);
        begin(&mut ex)?;
        match serve(&mut ex, &bad, piece_length, &order) {
            Verdict::Fail { piece, .. } => proptest::prop_assert_eq!(piece, target),
            other => proptest::prop_assert!(false, "{:?}", other),
        }
    }
}

#[test]
fn read_mode_takes_pieces_as_they_are_wanted_and_hands_each_over_verified() {
    let (s, data) = shard();
    let mut ex = Exchange::reader(&s);
    assert_eq!(ex.want(&[2, 9]), None, "out of range is left out");
    ex.on_handshake(&handshake(s.info_hash().0)).unwrap();
    ex.take_outgoing();
    assert_eq!(ex.on_message(Message::Bitfield(vec![0b1010_0000])), None);
    assert_eq!(
        ex.on_message(Message::Unchoke),
        None,
        "no pass with no piece left"
    );
    for b in requests(&mut ex) {
        assert_eq!(ex.on_message(answer(&b, &data)), None);
    }
    let done = ex.take_completed();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].0, &done[0].1[..]), (2, &data[65536..]));
    assert_eq!(ex.pending(), 0);
    assert_eq!(ex.want(&[0]), None);
    assert_eq!(ex.pending(), 1);
    let blocks = requests(&mut ex);
    assert_eq!(blocks.len(), 2, "both blocks of piece 0 go out at once");
    match ex.want(&[1]) {
        Some(Verdict::Missing { reason }) => assert!(reason.contains("piece 1"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
