//! The resource model: sites, partitions and nodes, and the TOML cluster description.

use crate::Seconds;
use crate::gpu;
use serde::{Deserialize, Serialize};

pub type SiteIdx = u16;
pub type PartitionIdx = u16;
pub type NodeIdx = u32;

/// Most GPUs one node may declare; real boards top out at 8 or 16.
pub const MAX_GPUS_PER_NODE: u16 = 64;

/// A data centre of the factory, with what its energy costs in money and carbon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    pub name: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Power usage effectiveness in thousandths (1.10 is 1100): facility energy per IT energy.
    pub pue_milli: u32,
    /// Grid carbon intensity used when no hourly profile is given, gCO2e per kWh.
    pub carbon_g_per_kwh: u32,
    /// Optional 24 values, one per UTC hour of the day, gCO2e per kWh.
    pub carbon_hourly_g_per_kwh: Option<Vec<u32>>,
    pub energy_price_eur_per_mwh: u32,
    /// What users are charged per GPU-hour here, in cents; the factory's default if unset.
    pub gpu_hour_price_cents: Option<u32>,
}

impl Site {
    /// Grid intensity in force at time `t` (seconds; hour 0 of the clock is midnight UTC).
    pub fn carbon_at(&self, t: Seconds) -> u32 {
        match &self.carbon_hourly_g_per_kwh {
            Some(hourly) => hourly[((t / 3600) % 24) as usize],
            None => self.carbon_g_per_kwh,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Partition {
    pub name: String,
    pub site: SiteIdx,
    pub max_walltime_s: Option<Seconds>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub name: String,
    pub site: SiteIdx,
    pub partition: PartitionIdx,
    pub gpu_model: String,
    pub gpus: u16,
    pub gpu_memory_gib: u32,
    pub cpu_cores: u32,
    pub ram_gib: u32,
    pub idle_w_per_gpu: u32,
    pub busy_w_per_gpu: u32,
    /// Topology group (rack, island, switch): gangs are packed inside one when they can be.
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    pub sites: Vec<Site>,
    pub partitions: Vec<Partition>,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster file is not valid TOML or has a wrong field: {0}")]
    Toml(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ClusterError {
    ClusterError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    #[serde(default)]
    sites: Vec<SiteFile>,
    #[serde(default)]
    partitions: Vec<PartitionFile>,
    #[serde(default)]
    nodes: Vec<NodeFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteFile {
    name: String,
    country: String,
    #[serde(default = "default_pue")]
    pue: f64,
    carbon_g_per_kwh: u32,
    carbon_hourly_g_per_kwh: Option<Vec<u32>>,
    #[serde(default)]
    energy_price_eur_per_mwh: u32,
    gpu_hour_price_cents: Option<u32>,
}

fn default_pue() -> f64 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionFile {
    name: String,
    site: String,
    max_walltime_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    /// The node's name, or with `count` the prefix of `name-0000`, `name-0001`, ...
    name: String,
    #[serde(default = "one")]
    count: u32,
    site: String,
    partition: Option<String>,
    gpu_model: String,
    gpus: u16,
    gpu_memory_gib: Option<u32>,
    #[serde(default)]
    cpu_cores: u32,
    #[serde(default)]
    ram_gib: u32,
    idle_w_per_gpu: Option<u32>,
    busy_w_per_gpu: Option<u32>,
    group: Option<String>,
    /// Splits the nodes of this entry into groups of this many: `group-0`, `group-1`, ...
    nodes_per_group: Option<u32>,
}

fn one() -> u32 {
    1
}

impl Cluster {
    /// Parses and validates a TOML cluster description (see `docs/cluster-format.md`).
    pub fn from_toml(text: &str) -> Result<Cluster, ClusterError> {
        let file: ClusterFile = toml::from_str(text).map_err(|e| ClusterError::Toml(e.to_string()))?;
        let mut sites = Vec::with_capacity(file.sites.len());
        for (i, s) in file.sites.into_iter().enumerate() {
            if !(s.pue.is_finite() && (1.0..=3.0).contains(&s.pue)) {
                return Err(invalid(format!("sites[{i}].pue"), "must be between 1.0 and 3.0"));
            }
            sites.push(Site {
                name: s.name,
                country: s.country,
                pue_milli: (s.pue * 1000.0).round() as u32,
                carbon_g_per_kwh: s.carbon_g_per_kwh,
                carbon_hourly_g_per_kwh: s.carbon_hourly_g_per_kwh,
                energy_price_eur_per_mwh: s.energy_price_eur_per_mwh,
                gpu_hour_price_cents: s.gpu_hour_price_cents,
            });
        }
        let site_idx = |name: &str, field: String| -> Result<SiteIdx, ClusterError> {
            sites
                .iter()
                .position(|s| s.name == name)
                .map(|i| i as SiteIdx)
                .ok_or_else(|| invalid(field, format!("unknown site `{name}`")))
        };
        let mut partitions = Vec::new();
        for (i, p) in file.partitions.into_iter().enumerate() {
            let site = site_idx(&p.site, format!("partitions[{i}].site"))?;
            partitions.push(Partition {
                name: p.name,
                site,
                max_walltime_s: p.max_walltime_s,
            });
        }
        let mut nodes = Vec::new();
        for (i, n) in file.nodes.into_iter().enumerate() {
            let field = |f: &str| format!("nodes[{i}].{f}");
            let site = site_idx(&n.site, field("site"))?;
            let partition = match &n.partition {
                Some(name) => partitions
                    .iter()
                    .position(|p| &p.name == name && p.site == site)
                    .ok_or_else(|| {
                        invalid(
                            field("partition"),
                            format!("no partition `{name}` at site `{}`", n.site),
                        )
                    })?,
                None => match partitions.iter().position(|p| p.site == site) {
                    Some(p) => p,
                    None => {
                        partitions.push(Partition {
                            name: format!("{}-default", n.site),
                            site,
                            max_walltime_s: None,
                        });
                        partitions.len() - 1
                    }
                },
            } as PartitionIdx;
            let known = gpu::lookup(&n.gpu_model);
            if n.count == 0 {
                return Err(invalid(field("count"), "must be at least 1"));
            }
            if n.gpus == 0 || n.gpus > MAX_GPUS_PER_NODE {
                return Err(invalid(
                    field("gpus"),
                    format!("must be between 1 and {MAX_GPUS_PER_NODE}"),
                ));
            }
            for k in 0..n.count {
                let name = if n.count == 1 {
                    n.name.clone()
                } else {
                    format!("{}-{k:04}", n.name)
                };
                let group_base = n.group.clone().unwrap_or_else(|| n.site.clone());
                let group = match n.nodes_per_group {
                    Some(0) => return Err(invalid(field("nodes_per_group"), "must be at least 1")),
                    Some(per) => format!("{group_base}-{}", k / per),
                    None => group_base,
                };
                nodes.push(Node {
                    name,
                    site,
                    partition,
                    gpu_model: known.map_or_else(|| n.gpu_model.clone(), |m| m.name.to_string()),
                    gpus: n.gpus,
                    gpu_memory_gib: n.gpu_memory_gib.or(known.map(|m| m.memory_gib)).unwrap_or(0),
                    cpu_cores: n.cpu_cores,
                    ram_gib: n.ram_gib,
                    idle_w_per_gpu: n
                        .idle_w_per_gpu
                        .or(known.map(|m| m.idle_w))
                        .unwrap_or(gpu::UNKNOWN_MODEL_IDLE_W),
                    busy_w_per_gpu: n
                        .busy_w_per_gpu
                        .or(known.map(|m| m.busy_w))
                        .unwrap_or(gpu::UNKNOWN_MODEL_BUSY_W),
                    group,
                });
            }
        }
        let cluster = Cluster {
            sites,
            partitions,
            nodes,
        };
        cluster.validate()?;
        Ok(cluster)
    }

    /// Checks what every cluster, however built, must satisfy.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.sites.is_empty() {
            return Err(invalid("sites", "a cluster needs at least one site"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.sites.iter().enumerate() {
            if !names.insert(&s.name) {
                return Err(invalid(
                    format!("sites[{i}].name"),
                    format!("duplicate site `{}`", s.name),
                ));
            }
            if s.country.len() != 2 || !s.country.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(invalid(
                    format!("sites[{i}].country"),
                    "must be an ISO 3166-1 alpha-2 code such as `IT`",
                ));
            }
            if let Some(h) = &s.carbon_hourly_g_per_kwh
                && h.len() != 24
            {
                return Err(invalid(
                    format!("sites[{i}].carbon_hourly_g_per_kwh"),
                    format!("needs 24 values (one per UTC hour), got {}", h.len()),
                ));
            }
        }
        if self.nodes.is_empty() {
            return Err(invalid("nodes", "a cluster needs at least one GPU node"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if !names.insert(&n.name) {
                return Err(invalid(
                    format!("nodes[{i}].name"),
                    format!("duplicate node `{}`", n.name),
                ));
            }
            if n.gpus == 0 || n.gpus > MAX_GPUS_PER_NODE {
                return Err(invalid(
                    format!("nodes[{i}].gpus"),
                    format!("must be between 1 and {MAX_GPUS_PER_NODE}"),
                ));
            }
            if n.busy_w_per_gpu < n.idle_w_per_gpu {
                return Err(invalid(
                    format!("nodes[{i}].busy_w_per_gpu"),
                    "must not be below idle_w_per_gpu",
                ));
            }
            if usize::from(n.site) >= self.sites.len() || usize::from(n.partition) >= self.partitions.len() {
                return Err(invalid(format!("nodes[{i}]"), "refers to a missing site or partition"));
            }
        }
        Ok(())
    }

    pub fn total_gpus(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.gpus)).sum()
    }

    /// A smaller cluster for what-if studies: keeps `fraction` (rounded up) of the nodes of
    /// each (site, partition, GPU model) group, the first ones in list order.
    pub fn scaled(&self, fraction: f64) -> Result<Cluster, ClusterError> {
        if !(fraction.is_finite() && fraction > 0.0 && fraction <= 1.0) {
            return Err(invalid("fraction", "must be above 0 and at most 1"));
        }
        let mut totals: std::collections::HashMap<(SiteIdx, PartitionIdx, &str), usize> = Default::default();
        for n in &self.nodes {
            *totals.entry((n.site, n.partition, n.gpu_model.as_str())).or_default() += 1;
        }
        let mut kept: std::collections::HashMap<(SiteIdx, PartitionIdx, &str), usize> = Default::default();
        let nodes = self
            .nodes
            .iter()
            .filter(|n| {
                let key = (n.site, n.partition, n.gpu_model.as_str());
                let quota = (totals[&key] as f64 * fraction).ceil() as usize;
                let k = kept.entry(key).or_default();
                *k += 1;
                *k <= quota
            })
            .cloned()
            .collect();
        Ok(Cluster {
            sites: self.sites.clone(),
            partitions: self.partitions.clone(),
            nodes,
        })
    }

    pub fn site_by_name(&self, name: &str) -> Option<SiteIdx> {
        self.sites.iter().position(|s| s.name == name).map(|i| i as SiteIdx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [[sites]]
        name = "bologna"
        country = "IT"
        pue = 1.08
        carbon_g_per_kwh = 250
        energy_price_eur_per_mwh = 140

        [[sites]]
        name = "kajaani"
        country = "FI"
        pue = 1.03
        carbon_g_per_kwh = 60

        [[partitions]]
        name = "booster"
        site = "bologna"
        max_walltime_s = 86400

        [[nodes]]
        name = "bo"
        count = 5
        site = "bologna"
        gpu_model = "h100"
        gpus = 8
        cpu_cores = 112
        ram_gib = 2048
        group = "rack"
        nodes_per_group = 2

        [[nodes]]
        name = "kaj-1"
        site = "kajaani"
        gpu_model = "G2"
        gpus = 4
    "#;

    #[test]
    fn parses_expands_and_fills_power_from_the_table() {
        let c = Cluster::from_toml(EXAMPLE).unwrap();
        assert_eq!(c.nodes.len(), 6);
        assert_eq!(c.total_gpus(), 44);
        assert_eq!(c.nodes[0].name, "bo-0000");
        assert_eq!(c.nodes[0].gpu_model, "H100-SXM");
        assert_eq!(c.nodes[0].busy_w_per_gpu, 700);
        assert_eq!(c.nodes[4].group, "rack-2");
        assert_eq!(c.sites[0].pue_milli, 1080);
        // a node at a site with no partition gets a default one
        assert_eq!(c.partitions[usize::from(c.nodes[5].partition)].name, "kajaani-default");
        assert_eq!(c.nodes[5].busy_w_per_gpu, gpu::UNKNOWN_MODEL_BUSY_W);
    }

    #[test]
    fn bad_files_name_the_field_at_fault() {
        let err = Cluster::from_toml(&EXAMPLE.replace("site = \"kajaani\"", "site = \"oslo\"")).unwrap_err();
        assert!(err.to_string().contains("nodes[1].site"), "{err}");
        let err = Cluster::from_toml(&EXAMPLE.replace("gpus = 4", "gpus = 0")).unwrap_err();
        assert!(err.to_string().contains("nodes[1].gpus"), "{err}");
        let err = Cluster::from_toml(&EXAMPLE.replace("pue = 1.03", "pue = 0.5")).unwrap_err();
        assert!(err.to_string().contains("pue"), "{err}");
        assert!(matches!(Cluster::from_toml("nodes = 3"), Err(ClusterError::Toml(_))));
        assert!(Cluster::from_toml("").is_err());
    }

    #[test]
    fn scaling_keeps_a_share_of_every_node_group() {
        let c = Cluster::from_toml(EXAMPLE).unwrap();
        let half = c.scaled(0.5).unwrap();
        assert_eq!(half.nodes.len(), 4, "3 of 5 bologna nodes and the single kajaani node");
        assert_eq!(half.nodes[0].name, "bo-0000");
        assert!(c.scaled(0.0).is_err() && c.scaled(1.5).is_err());
        assert_eq!(c.scaled(1.0).unwrap(), c);
    }

    #[test]
    fn hourly_profile_is_indexed_by_utc_hour() {
        let mut c = Cluster::from_toml(EXAMPLE).unwrap();
        c.sites[0].carbon_hourly_g_per_kwh = Some((0..24).map(|h| 100 + h).collect());
        assert_eq!(c.sites[0].carbon_at(0), 100);
        assert_eq!(c.sites[0].carbon_at(3 * 3600 + 59), 103);
        assert_eq!(c.sites[0].carbon_at(25 * 3600), 101);
        assert_eq!(c.sites[1].carbon_at(7 * 3600), 60);
    }
}
