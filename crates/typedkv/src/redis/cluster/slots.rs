//! The one reading of a `CLUSTER SLOTS` reply, for the three things that need the cluster's
//! layout: batch routes (`routes.rs`), scans over masters (`scan.rs`) and the cache's
//! tracking connections (`tracking.rs`).

use ::redis::Value;

/// One range of slots and the master serving it.
pub(crate) struct SlotRange {
    pub(super) start: u16,
    pub(super) end: u16,
    /// `(host, port)`.
    pub(crate) master: (String, u16),
}

/// The ranges of a `CLUSTER SLOTS` reply (`[[start, end, [host, port, ...], replicas...],
/// ...]`); `None` if the reply or any entry has another shape.
pub(crate) fn slot_ranges(reply: &Value) -> Option<Vec<SlotRange>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    ranges
        .iter()
        .map(|range| {
            let Value::Array(parts) = range else {
                return None;
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                return None;
            };
            let host = match master.first() {
                Some(Value::BulkString(host)) => String::from_utf8(host.clone()).ok()?,
                Some(Value::SimpleString(host)) => host.clone(),
                _ => return None,
            };
            let Some(Value::Int(port)) = master.get(1) else {
                return None;
            };
            Some(SlotRange {
                start: u16::try_from(*start).ok()?,
                end: u16::try_from(*end).ok()?,
                master: (host, u16::try_from(*port).ok()?),
            })
        })
        .collect()
}
