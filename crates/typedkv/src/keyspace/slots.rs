//! Redis Cluster's key slots, which partitioned stores place their partitions by and the
//! cluster backend routes batches by.

/// How many slots a Redis Cluster has.
pub(crate) const SLOTS: u16 = 16_384;

/// The slot of `key`: CRC16 (XMODEM) of its hash tag (the text between the first `{` and the
/// next `}`, if not empty) or of the whole key, modulo 16,384.
pub(crate) fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(tagged) % SLOTS
}

/// Refuses `keys` unless they share one slot, naming the first two slots they span: what a
/// cluster needs of the keys of one atomic step (a transaction's commit).
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn one_slot<'k>(keys: impl IntoIterator<Item = &'k str>) -> crate::Result<()> {
    let mut first: Option<(&str, u16)> = None;
    for key in keys {
        let slot = slot_of(key.as_bytes());
        match first {
            None => first = Some((key, slot)),
            Some((other, other_slot)) if other_slot != slot => {
                return Err(crate::Error::Transaction {
                    reason: format!(
                        "its keys lie in several cluster slots ({other} in slot {other_slot}, \
                         {key} in slot {slot}); keys of one transaction must share a slot \
                         (a hash-tagged store, StoreBuilder::hash_tag)"
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// CRC16 (XMODEM), the checksum Redis Cluster hashes keys with.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_refuses_keys_of_two_slots_and_names_them() {
        assert!(one_slot(["{a}:1", "{a}:2", "a"]).is_ok());
        assert!(one_slot(std::iter::empty()).is_ok());
        match one_slot(["{a}:1", "b:1"]) {
            Err(crate::Error::Transaction { reason }) => {
                assert!(
                    reason.contains("b:1") && reason.contains("slot"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
