//! A table of common accelerator models and their power, used when a cluster file names
//! a model without giving its power. Busy figures are the vendors' board power (TDP);
//! idle figures are typical readings of an idle, powered, unloaded board.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GpuModelSpec {
    /// Canonical name, as written in cluster files and job constraints.
    pub name: &'static str,
    /// Other names accepted for it (case-insensitive), e.g. Slurm GRES types.
    pub aliases: &'static [&'static str],
    pub memory_gib: u32,
    pub busy_w: u32,
    pub idle_w: u32,
}

/// Power assumed for a model the table does not know and the cluster file does not describe.
pub const UNKNOWN_MODEL_BUSY_W: u32 = 300;
pub const UNKNOWN_MODEL_IDLE_W: u32 = 40;

macro_rules! gpu {
    ($name:literal, [$($alias:literal),*], $mem:literal GiB, $busy:literal W, $idle:literal W) => {
        GpuModelSpec { name: $name, aliases: &[$($alias),*], memory_gib: $mem, busy_w: $busy, idle_w: $idle }
    };
}

pub const GPU_MODELS: &[GpuModelSpec] = &[
    gpu!("H200-SXM", ["h200", "h200-141gb"], 141 GiB, 700 W, 75 W),
    gpu!("H100-SXM", ["h100", "h100-80gb", "h100-sxm5"], 80 GiB, 700 W, 70 W),
    gpu!("H100-PCIe", ["h100-pcie-80gb"], 80 GiB, 350 W, 50 W),
    gpu!("GH200", ["gh200-96gb"], 96 GiB, 900 W, 90 W),
    gpu!("B200", ["b200-180gb"], 180 GiB, 1000 W, 120 W),
    gpu!("A100-SXM4-80GB", ["a100", "a100-80gb", "a100-sxm4"], 80 GiB, 400 W, 55 W),
    gpu!("A100-SXM4-40GB", ["a100-40gb"], 40 GiB, 400 W, 50 W),
    gpu!("A100-PCIe-80GB", ["a100-pcie"], 80 GiB, 300 W, 45 W),
    gpu!("L40S", ["l40s-48gb"], 48 GiB, 350 W, 35 W),
    gpu!("L4", ["l4-24gb"], 24 GiB, 72 W, 16 W),
    gpu!("MI300X", ["mi300x-192gb"], 192 GiB, 750 W, 100 W),
    gpu!("MI250X", ["mi250x-128gb"], 128 GiB, 560 W, 90 W),
    gpu!("V100-SXM2-32GB", ["v100", "v100m32", "v100-32gb"], 32 GiB, 300 W, 40 W),
    gpu!("V100-SXM2-16GB", ["v100m16", "v100-16gb"], 16 GiB, 300 W, 40 W),
    gpu!("A10", ["a10-24gb"], 24 GiB, 150 W, 20 W),
    gpu!("T4", ["t4-16gb"], 16 GiB, 70 W, 10 W),
    gpu!("P100", ["p100-16gb"], 16 GiB, 250 W, 30 W),
];

/// Looks a model up by its name or an alias, ignoring case and `_`/`-` differences.
pub fn lookup(name: &str) -> Option<&'static GpuModelSpec> {
    let norm = |s: &str| s.trim().to_ascii_lowercase().replace('_', "-");
    let wanted = norm(name);
    GPU_MODELS
        .iter()
        .find(|m| norm(m.name) == wanted || m.aliases.iter().any(|a| norm(a) == wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_names_and_aliases() {
        assert_eq!(lookup("h100").unwrap().busy_w, 700);
        assert_eq!(lookup("H200_SXM").unwrap().memory_gib, 141);
        assert_eq!(lookup("V100M16").unwrap().name, "V100-SXM2-16GB");
        assert!(lookup("G2").is_none());
    }

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for m in GPU_MODELS {
            assert!(m.idle_w < m.busy_w, "{}", m.name);
            for n in std::iter::once(m.name).chain(m.aliases.iter().copied()) {
                assert!(seen.insert(n.to_ascii_lowercase()), "duplicate {n}");
            }
        }
    }
}
