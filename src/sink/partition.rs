//! Which partition a keyed record lands in, computed the way the producer's `partitioner`
//! (librdkafka's property, `consistent_random` by default) computes it, so a reader that
//! knows a payment's key reads one partition instead of the whole topic.

use std::collections::BTreeMap;

/// librdkafka's partitioners for keyed records (paybridge's keys are never empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partitioner {
    /// `consistent` and `consistent_random` (the default): CRC-32 of the key.
    Crc32,
    /// `murmur2` and `murmur2_random`: the Java client's murmur2 of the key, positive.
    Murmur2,
    /// `fnv1a` and `fnv1a_random`: 32-bit FNV-1a of the key, as a positive signed number.
    Fnv1a,
}

/// A `partitioner` that does not place a key in a partition of its own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("kafka.properties.partitioner = {0:?} does not place a key in one partition: every partition is read")]
pub struct NotKeyed(pub String);

impl Partitioner {
    /// The partitioner `properties` (`kafka.properties`) configure for the producer.
    pub fn configured(properties: &BTreeMap<String, String>) -> Result<Self, NotKeyed> {
        match properties.get("partitioner").map(|p| p.trim()) {
            None | Some("consistent" | "consistent_random") => Ok(Self::Crc32),
            Some("murmur2" | "murmur2_random") => Ok(Self::Murmur2),
            Some("fnv1a" | "fnv1a_random") => Ok(Self::Fnv1a),
            Some(other) => Err(NotKeyed(other.to_owned())),
        }
    }

    /// The partition of `key` among `partitions` (None without partitions).
    pub fn partition(self, key: &[u8], partitions: i32) -> Option<i32> {
        let count = u32::try_from(partitions).ok().filter(|n| *n > 0)?;
        let at = match self {
            Self::Crc32 => crc32fast::hash(key) % count,
            Self::Murmur2 => (murmur2(key) & 0x7fff_ffff) % count,
            // librdkafka takes the absolute value of the hash as a signed number (Sarama's
            // NewHashPartitioner does the same).
            Self::Fnv1a => fnv1a(key).cast_signed().unsigned_abs() % count,
        };
        i32::try_from(at).ok()
    }
}

/// The Java client's `Utils.murmur2` (seed 0x9747b28c), as librdkafka's `rd_murmur2`.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    const SEED: u32 = 0x9747_b28c;
    // A record key is far below 4 GiB; a longer slice would not be a Kafka key at all.
    let mut h = SEED ^ u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut words = data.chunks_exact(4);
    for word in words.by_ref() {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(first) = tail.first() {
        h ^= u32::from(*first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// 32-bit FNV-1a, as librdkafka's `rd_fnv1a`.
pub fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_gives_the_java_clients_values() {
        // Kafka's own UtilsTest.testMurmur2 vectors (Java ints).
        for (key, java) in [
            ("21", -973_932_308_i32),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()).cast_signed(), java, "{key}");
        }
    }

    #[test]
    fn crc32_and_fnv1a_are_the_standard_ones() {
        // The CRC-32 check value and FNV-1a's published test vectors.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn the_configured_partitioner_is_read_from_the_properties() {
        let props = |p: &str| BTreeMap::from([("partitioner".to_owned(), p.to_owned())]);
        assert_eq!(Partitioner::configured(&BTreeMap::new()), Ok(Partitioner::Crc32));
        assert_eq!(Partitioner::configured(&props("murmur2_random")), Ok(Partitioner::Murmur2));
        assert_eq!(Partitioner::configured(&props("fnv1a")), Ok(Partitioner::Fnv1a));
        assert!(Partitioner::configured(&props("random")).is_err());
        assert_eq!(Partitioner::Crc32.partition(b"k", 0), None);
        let spread: std::collections::BTreeSet<_> =
            (0..200).filter_map(|i| Partitioner::Murmur2.partition(format!("key-{i}").as_bytes(), 6)).collect();
        assert_eq!(spread, (0..6).collect(), "keys spread over every partition, none outside");
    }
}
