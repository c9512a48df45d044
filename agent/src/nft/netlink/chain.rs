//! Base chain declarations: `add chain ip T NAME { type KIND hook HOOK
//! priority P; policy accept; }` as one `NEWCHAIN` with the attributes nft
//! sends (type, policy, then the hook nest).

use super::consts::*;
use super::message::Writer;
use crate::nft::state::BaseHook;

/// The `NF_INET_*` number of a hook nft names `name` in an ip table.
fn hook_number(name: &str) -> Option<u32> {
    match name {
        "prerouting" => Some(NF_INET_PRE_ROUTING),
        "input" => Some(NF_INET_LOCAL_IN),
        "forward" => Some(NF_INET_FORWARD),
        "output" => Some(NF_INET_LOCAL_OUT),
        "postrouting" => Some(NF_INET_POST_ROUTING),
        _ => None,
    }
}

/// Writes the attributes of a base chain with policy accept; `None` for
/// a chain type or hook the agent does not use (nft may name them
/// differently or refuse them).
pub fn write_base(w: &mut Writer, table: &str, name: &str, base: &BaseHook) -> Option<()> {
    if !matches!(base.kind, "filter" | "nat") {
        return None;
    }
    let hook = hook_number(base.hook)?;
    w.string(NFTA_CHAIN_TABLE, table)?;
    w.string(NFTA_CHAIN_NAME, name)?;
    w.string(NFTA_CHAIN_TYPE, base.kind)?;
    w.be32(NFTA_CHAIN_POLICY, NF_ACCEPT)?;
    let nest = w.begin_nest(NFTA_CHAIN_HOOK);
    w.be32(NFTA_HOOK_HOOKNUM, hook)?;
    // The kernel reads the priority as a signed 32-bit number.
    w.bytes(NFTA_HOOK_PRIORITY, &base.priority.to_be_bytes())?;
    w.end_nest(nest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_input_matches_nft_bytes() {
        let mut w = Writer::default();
        let base = BaseHook {
            kind: "filter",
            hook: "input",
            priority: -110,
        };
        write_base(&mut w, "sy", "filter-input", &base).unwrap();
        // The hook nest as `nft --debug=mnl` shows it: hooknum 1, priority -110.
        let bytes = w.into_bytes();
        assert_eq!(
            bytes[bytes.len() - 20..],
            [20, 0, 4, 0x80, 8, 0, 1, 0, 0, 0, 0, 1, 8, 0, 2, 0, 0xff, 0xff, 0xff, 0x92]
        );
        let route = BaseHook {
            kind: "route",
            ..base
        };
        assert_eq!(write_base(&mut Writer::default(), "sy", "x", &route), None);
        let ingress = BaseHook {
            hook: "ingress",
            ..base
        };
        assert_eq!(
            write_base(&mut Writer::default(), "sy", "x", &ingress),
            None
        );
    }
}
