//! The model-based case: random operation sequences (a fixed-seed generator, so every
//! engine sees the same ones) checked step by step against an ordered map.

use std::collections::BTreeMap;

use sciqlop_cache::{AnyStore, Error};

use crate::Check;

/// Keys the operations pick from (few, so that they collide).
const KEYS: &[&str] = &["a", "b", "c", "d/1", "d/2", "e", "", "\u{e9}"];
const SEEDS: &[u64] = &[1, 7, 42];
const STEPS: usize = 250;

/// xorshift64*: deterministic and portable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A value: small, or big enough for the file tier of the SQLite engine.
fn value(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => 0,
        1 | 2 => 1 + rng.below(40),
        _ => 8 * 1024 + rng.below(5000),
    };
    let fill = rng.next() as u8;
    vec![fill; len]
}

pub(crate) fn run(s: &AnyStore) -> Check {
    let transactions = s.capabilities().transactions;
    for &seed in SEEDS {
        s.clear().map_err(|e| e.to_string())?;
        let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        for step in 0..STEPS {
            let at = |what: &str| format!("seed {seed} step {step}: {what}");
            let k = KEYS[rng.below(KEYS.len())];
            match rng.below(11) {
                0 | 1 => {
                    let v = value(&mut rng);
                    s.set(k, &v).map_err(|e| at(&format!("set: {e}")))?;
                    model.insert(k.to_owned(), v);
                }
                2 => {
                    let got = s.get(k).map_err(|e| at(&format!("get: {e}")))?;
                    if got.as_ref() != model.get(k) {
                        return Err(at(&format!("get {k:?}: store and model differ")));
                    }
                }
                3 => {
                    let got = s.delete(k).map_err(|e| at(&format!("delete: {e}")))?;
                    if got != model.remove(k).is_some() {
                        return Err(at(&format!("delete {k:?} said {got}")));
                    }
                }
                4 => {
                    let v = value(&mut rng);
                    let got = s.add(k, &v).map_err(|e| at(&format!("add: {e}")))?;
                    let want = !model.contains_key(k);
                    if want {
                        model.insert(k.to_owned(), v);
                    }
                    if got != want {
                        return Err(at(&format!("add {k:?} said {got}")));
                    }
                }
                5 => {
                    let delta = rng.below(7) as i64 - 3;
                    let current = model.get(k).map(|v| sciqlop_cache::counter::decode(v));
                    let got = s.incr(k, delta, 0);
                    match (current, got) {
                        (Some(None), Err(Error::NotACounter { .. })) => {}
                        (Some(Some(c)), Ok(n)) if n == c + delta => {
                            model.insert(k.to_owned(), n.to_string().into_bytes());
                        }
                        (None, Ok(n)) if n == delta => {
                            model.insert(k.to_owned(), n.to_string().into_bytes());
                        }
                        (c, g) => return Err(at(&format!("incr {k:?}: model {c:?}, store {g:?}"))),
                    }
                }
                6 => {
                    let got = s.pop(k).map_err(|e| at(&format!("pop: {e}")))?;
                    if got != model.remove(k) {
                        return Err(at(&format!("pop {k:?}: store and model differ")));
                    }
                }
                7 => {
                    let len = s.len().map_err(|e| at(&format!("len: {e}")))?;
                    let keys: Vec<String> = s
                        .keys()
                        .collect::<Result<_, _>>()
                        .map_err(|e| at(&format!("keys: {e}")))?;
                    let want: Vec<String> = model.keys().cloned().collect();
                    if len != model.len() as u64 || keys != want {
                        return Err(at(&format!("len {len} keys {keys:?}, model {want:?}")));
                    }
                }
                8 => {
                    let got = s.contains(k).map_err(|e| at(&format!("contains: {e}")))?;
                    if got != model.contains_key(k) {
                        return Err(at(&format!("contains {k:?} said {got}")));
                    }
                }
                9 if transactions => {
                    // A few writes to the key, committed or rolled back as a whole.
                    let commit = rng.below(2) == 0;
                    let v1 = value(&mut rng);
                    let v2 = value(&mut rng);
                    let r: Result<(), Error> = s.transact_on(k, |tx| {
                        tx.set(k, &v1)?;
                        tx.set(k, &v2)?;
                        if commit {
                            Ok(())
                        } else {
                            Err(Error::InvalidArgument("roll back".into()))
                        }
                    });
                    match (commit, r) {
                        (true, Ok(())) => {
                            model.insert(k.to_owned(), v2);
                        }
                        (false, Err(Error::InvalidArgument(_))) => {}
                        (c, r) => return Err(at(&format!("transaction (commit {c}): {r:?}"))),
                    }
                }
                _ => {
                    let n = s.clear().map_err(|e| at(&format!("clear: {e}")))?;
                    if n != model.len() as u64 {
                        return Err(at(&format!("clear removed {n}, model had {}", model.len())));
                    }
                    model.clear();
                }
            }
        }
    }
    Ok(())
}
