//! Addresses and register values in JSON as `"0x…"` strings (schema version 2).
//!
//! A JSON number is a double to jq and JavaScript: a kernel address such as
//! `0xffffffff81004455` would read back as 18446744071578864000. Every JSON lockvmm writes
//! (`result.json`, `--json`, the vmcore's `LOCKVMM` note) therefore spells addresses and
//! registers as lower-case hex strings, as crash prints them. Reading accepts both the string
//! and a plain number, so files of schema version 1 (and older vmcores) still load.
//!
//! Use it on a field with `#[serde(with = "crate::state::hex")]` (a `u64`), or one of the
//! submodules for `Option<u64>`, `Vec<u64>`, `[u64; N]` and the `(u64, String)` /
//! `(String, u64, String)` pairs the reports carry.
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// A `u64` that serializes as `"0x…"` and deserializes from that or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hex(pub u64);

thread_local! {
    static AS_NUMBERS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with addresses serialized as plain numbers, as schema version 1 did: `--repeat`'s
/// fingerprint digests the outcome's JSON, and a digest must not change with the schema.
pub fn as_numbers<T>(f: impl FnOnce() -> T) -> T {
    let was = AS_NUMBERS.replace(true);
    let r = f();
    AS_NUMBERS.set(was);
    r
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if AS_NUMBERS.get() {
            s.serialize_u64(self.0)
        } else {
            s.collect_str(&format_args!("{:#x}", self.0))
        }
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HexVisitor).map(Hex)
    }
}

struct HexVisitor;

impl Visitor<'_> for HexVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an address as a \"0x…\" string or a number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("negative address {v}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse(v).ok_or_else(|| E::custom(format!("not a hex address: {v:?}")))
    }
}

/// `0x1f`, `0X1F` or `31`.
pub fn parse(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) if !h.is_empty() => u64::from_str_radix(h, 16).ok(),
        Some(_) => None,
        None => s.parse().ok(),
    }
}

pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    Hex(*v).serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Hex::deserialize(d).map(|h| h.0)
}

/// `Option<u64>`: `null` or `"0x…"`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        v.map(Hex).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(Option::<Hex>::deserialize(d)?.map(|h| h.0))
    }
}

/// `Vec<u64>` and `[u64; N]`: a list of `"0x…"`.
pub mod seq {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().copied().map(Hex))
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<Vec<u64>>,
    {
        let v: Vec<u64> = Vec::<Hex>::deserialize(d)?
            .into_iter()
            .map(|h| h.0)
            .collect();
        let n = v.len();
        T::try_from(v).map_err(|_| de::Error::invalid_length(n, &"the number of registers"))
    }
}

/// `Vec<(u64, String)>`: `[["0x…", "name"], …]`.
pub mod named {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[(u64, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(a, n)| (Hex(*a), n)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u64, String)>, D::Error> {
        let v = Vec::<(Hex, String)>::deserialize(d)?;
        Ok(v.into_iter().map(|(a, n)| (a.0, n)).collect())
    }
}

/// `Vec<(String, u64, String)>`: `[["rdi", "0x…", "runqueues+4480"], …]`.
pub mod labelled {
    use super::*;

    type Row = (String, u64, String);

    pub fn serialize<S: Serializer>(v: &[Row], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(r, a, n)| (r, Hex(*a), n)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Row>, D::Error> {
        let v = Vec::<(String, Hex, String)>::deserialize(d)?;
        Ok(v.into_iter().map(|(r, a, n)| (r, a.0, n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(with = "super")]
        a: u64,
        #[serde(with = "option")]
        b: Option<u64>,
        #[serde(with = "seq")]
        c: [u64; 2],
        #[serde(with = "labelled")]
        d: Vec<(String, u64, String)>,
    }

    #[test]
    fn round_trips_and_reads_version_1() {
        let t = T {
            a: 0xffff_ffff_8100_4455,
            b: Some(16),
            c: [0, u64::MAX],
            d: vec![("rdi".into(), 0xffff_ffff_820b_fe78, "runqueues".into())],
        };
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(
            j,
            r#"{"a":"0xffffffff81004455","b":"0x10","c":["0x0","0xffffffffffffffff"],"d":[["rdi","0xffffffff820bfe78","runqueues"]]}"#
        );
        assert_eq!(serde_json::from_str::<T>(&j).unwrap(), t);
        let v1 = as_numbers(|| serde_json::to_string(&t).unwrap());
        assert!(v1.starts_with(r#"{"a":18446744071578862677,"b":16,"c":[0,18446744073709551615]"#));
        assert!(
            serde_json::to_string(&t).unwrap() == j,
            "the mode ends with the closure"
        );
        let v1 = r#"{"a":18446744071578862677,"b":null,"c":[0,1],"d":[["rdi",5,"x"]]}"#;
        let old: T = serde_json::from_str(v1).unwrap();
        assert_eq!((old.a, old.b, old.c), (0xffff_ffff_8100_4455, None, [0, 1]));
        assert!(serde_json::from_str::<T>(r#"{"a":"0x","b":null,"c":[],"d":[]}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a":-1,"b":null,"c":[0,0],"d":[]}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a":1,"b":null,"c":[0],"d":[]}"#).is_err());
    }
}
