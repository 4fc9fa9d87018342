//! Checked-in malformed inputs (`tests/malformed/*.bin`) and, in `expected.txt`, what RT-0002 says a
//! receiver does with each (`ignore`, `refuse malformed`, `close`) and the exact error this crate names.
//! Implementations in other languages can run the same files.

use std::path::Path;

use raidtorrent_proto::{frame, Envelope, Handshake, Message, NodeHello, Parsed};

/// What a receiver does with `bytes` of `kind`, and the error it reports.
fn judge(kind: &str, bytes: &[u8]) -> (String, String) {
    match kind {
        "message" => match Envelope::parse(bytes) {
            Ok(Envelope {
                body: Message::Unknown { t },
                ..
            }) => ("ignore unknown".into(), t),
            Ok(env) => ("accept".into(), env.body.type_name().to_owned()),
            Err(e) => match e.refusal() {
                Some((seq, _)) => (format!("refuse malformed re={seq}"), e.to_string()),
                None => ("ignore".into(), e.to_string()),
            },
        },
        "node-hello" => match NodeHello::parse(bytes) {
            Ok(_) => ("accept".into(), String::new()),
            Err(e) => ("bye auth".into(), e.to_string()),
        },
        "frame" => match frame::decode(bytes) {
            Err(e) => ("close".into(), e.to_string()),
            Ok(p) => ("accept".into(), format!("{p:?}")),
        },
        "handshake" => match Handshake::parse(bytes).and_then(|p| match p {
            Parsed::Done(h, _) => h.check_control(),
            Parsed::Incomplete(_) => Ok(()),
        }) {
            Err(e) => ("close".into(), e.to_string()),
            Ok(()) => ("accept".into(), String::new()),
        },
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn every_malformed_input_gets_its_documented_answer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
    let mut seen = 0;
    let mut wrong = Vec::new();
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut cols = line.splitn(4, '\t');
        let (name, kind, action, error) = (
            cols.next().unwrap(),
            cols.next().unwrap(),
            cols.next().unwrap(),
            cols.next().unwrap_or(""),
        );
        let bytes = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
        let got = judge(kind, &bytes);
        if (got.0.as_str(), got.1.as_str()) != (action, error) {
            wrong.push(format!("{name}\t{kind}\t{}\t{}", got.0, got.1));
        }
        seen += 1;
    }
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "bin")
        })
        .count();
    assert_eq!(seen, files, "every .bin file has a line in expected.txt");
    assert!(wrong.is_empty(), "answers differ:\n{}", wrong.join("\n"));
}
