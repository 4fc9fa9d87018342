//! Building bencoded output: a small owned tree whose dictionaries are sorted by construction, written
//! out by bendy's encoder (which checks the order again).

use std::collections::BTreeMap;

use bendy::encoding::{Encoder, SingleItemEncoder};

pub(crate) enum Out {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Out>),
    Dict(BTreeMap<Vec<u8>, Out>),
}

impl Out {
    /// Bencode integers are read back as 64-bit signed; larger counts are clamped, which no byte count
    /// of a real node reaches.
    pub(crate) fn uint(v: u64) -> Out {
        Out::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
    pub(crate) fn str(s: &str) -> Out {
        Out::Bytes(s.as_bytes().to_vec())
    }
    pub(crate) fn bytes(b: &[u8]) -> Out {
        Out::Bytes(b.to_vec())
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new().with_max_depth(32);
        e.emit_with(|e| emit(self, e))
            .expect("dictionaries are sorted and nesting is shallow");
        e.get_output().expect("one complete value")
    }
}

/// A dictionary under construction.
#[derive(Default)]
pub(crate) struct DictOut(BTreeMap<Vec<u8>, Out>);

impl DictOut {
    pub(crate) fn put(mut self, key: &str, value: Out) -> Self {
        self.0.insert(key.as_bytes().to_vec(), value);
        self
    }
    pub(crate) fn put_opt(self, key: &str, value: Option<Out>) -> Self {
        match value {
            Some(v) => self.put(key, v),
            None => self,
        }
    }
    pub(crate) fn done(self) -> Out {
        Out::Dict(self.0)
    }
}

fn emit(v: &Out, e: SingleItemEncoder<'_>) -> Result<(), bendy::encoding::Error> {
    match v {
        Out::Int(i) => e.emit_int(*i),
        Out::Bytes(b) => e.emit_bytes(b),
        Out::List(items) => e.emit_list(|e| {
            for item in items {
                e.emit_with(|e| emit(item, e))?;
            }
            Ok(())
        }),
        Out::Dict(entries) => e.emit_dict(|mut d| {
            for (k, item) in entries {
                d.emit_pair_with(k, |e| emit(item, e))?;
            }
            Ok(())
        }),
    }
}
