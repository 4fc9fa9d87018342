use super::*;
use proptest::prelude::*;

fn ih() -> impl Strategy<Value = InfoHash> {
    any::<[u8; 20]>().prop_map(InfoHash)
}

fn uint() -> impl Strategy<Value = u64> {
    0u64..=i64::MAX as u64
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(Ipv4Addr::from(ip).into(), p)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(Ipv6Addr::from(ip).into(), p)),
    ]
}

fn refuse_code() -> impl Strategy<Value = RefuseCode> {
    "[a-z]{1,10}".prop_map(|s| RefuseCode::parse(&s))
}

fn transfer() -> impl Strategy<Value = Transfer> {
    (
        ih(),
        "[0-9.:]{1,21}",
        uint(),
        uint(),
        uint(),
        "[a-z ]{1,10}",
    )
        .prop_map(|(ih, addr, down, up, errors, state)| Transfer {
            ih,
            addr,
            down,
            up,
            errors,
            state,
        })
}

fn report() -> impl Strategy<Value = Report> {
    (
        any::<bool>(),
        proptest::collection::vec(ih(), 0..20),
        proptest::collection::vec(ih(), 0..5),
        (uint(), uint(), uint()),
        proptest::collection::vec(transfer(), 0..5),
    )
        .prop_map(
            |(full, held, gone, (capacity, used, free), transfers)| Report {
                full,
                held,
                // A full report lists no removals.
                gone: if full { Vec::new() } else { gone },
                capacity,
                used,
                free,
                transfers,
            },
        )
}

pub(crate) fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<[u8; 32]>(), uint(), uint(), uint()).prop_map(
            |(proof, ver, r, k)| Message::Welcome(Welcome {
                proof,
                ver,
                report_interval: r,
                keepalive_interval: k
            })
        ),
        (
            ih(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200).prop_map(MetainfoSource::Torrent),
                "https?://[a-z.:0-9/]{1,30}".prop_map(MetainfoSource::Url),
            ],
            proptest::collection::vec(addr(), 0..6)
        )
            .prop_map(|(ih, source, mut peers)| {
                // On the wire IPv4 peers come first.
                peers.sort_by_key(|a| a.is_ipv6());
                Message::Hold(Hold { ih, source, peers })
            }),
        ih().prop_map(|ih| Message::Drop { ih }),
        (uint(), ih()).prop_map(|(re, ih)| Message::Ack { re, ih }),
        (uint(), proptest::option::of(ih()), refuse_code(), ".{0,40}")
            .prop_map(|(re, ih, code, text)| Message::Refuse { re, ih, code, text }),
        report().prop_map(Message::Report),
        Just(Message::Ping),
        uint().prop_map(|re| Message::Pong { re }),
        ("[a-z]{1,10}", ".{0,40}").prop_map(|(c, text)| Message::Bye {
            code: ByeCode::parse(&c),
            text
        }),
        "[a-z_]{1,12}"
            .prop_filter("not a known type", |t| !KNOWN.contains(&t.as_str()))
            .prop_map(|t| Message::Unknown { t }),
    ]
}

const KNOWN: &[&str] = &[
    "welcome", "hold", "drop", "ack", "refuse", "report", "ping", "pong", "bye",
];

proptest! {
    #[test]
    fn every_message_round_trips(seq in 1u64..=i64::MAX as u64, body in any_message()) {
        let env = Envelope { seq, body };
        prop_assert_eq!(Envelope::parse(&env.to_payload()), Ok(env));
    }

    #[test]
    fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Envelope::parse(&bytes);
    }
}

#[test]
fn codes_keep_what_they_do_not_know() {
    assert_eq!(RefuseCode::parse("quota"), RefuseCode::Quota);
    assert_eq!(RefuseCode::parse("bandwidth").as_str(), "bandwidth");
    assert_eq!(ByeCode::parse("auth"), ByeCode::Auth);
}

#[test]
fn unknown_types_and_keys_are_not_errors() {
    assert_eq!(
        Envelope::parse(b"d5:extrai1e3:seqi4e1:t6:rotatee"),
        Ok(Envelope::new(4, Message::Unknown { t: "rotate".into() }))
    );
    assert_eq!(
        Envelope::parse(b"d2:ih20:aaaaaaaaaaaaaaaaaaaa8:priorityi9e3:seqi2e1:t4:drope"),
        Ok(Envelope::new(
            2,
            Message::Drop {
                ih: InfoHash([b'a'; 20])
            }
        ))
    );
}

#[test]
fn malformed_directives_say_what_to_refuse() {
    let bad_hold = Envelope::parse(b"d2:ih20:aaaaaaaaaaaaaaaaaaaa3:seqi9e1:t4:holde").unwrap_err();
    assert_eq!(bad_hold.refusal(), Some((9, Some(InfoHash([b'a'; 20])))));
    assert_eq!(
        bad_hold.to_string(),
        "malformed hold (seq 9): exactly one of \"torrent, url\" must be present"
    );
    let bad_ack = Envelope::parse(b"d3:seqi9e1:t3:acke").unwrap_err();
    assert_eq!(bad_ack.refusal(), None);
    assert_eq!(Envelope::parse(b"d1:t4:pinge").unwrap_err().refusal(), None);
}

#[test]
fn the_bep_example_answers_parse() {
    let ih = InfoHash([7; 20]);
    let ack = Envelope::new(2, Message::Ack { re: 2, ih });
    let mut expected = b"d2:ih20:".to_vec();
    expected.extend([7; 20]);
    expected.extend(b"2:rei2e3:seqi2e1:t3:acke");
    assert_eq!(ack.to_payload(), expected);
}
