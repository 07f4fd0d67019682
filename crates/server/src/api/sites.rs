//! Sites, nodes, and operators draining and resuming nodes.

use super::prelude::*;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "get",
            "/api/v1/sites",
            "Sites, their partitions, GPUs, prices and carbon intensity",
            true,
            &[],
            None,
            get(list_sites),
        )
        .returns::<Items<SiteView>>(),
        e(
            "get",
            "/api/v1/nodes",
            "Nodes and their GPUs",
            true,
            &[],
            None,
            get(list_nodes),
        )
        .returns::<Items<NodeView>>(),
        e(
            "post",
            "/api/v1/nodes/{name}/drain",
            "Drain a node (site operator)",
            true,
            &[],
            None,
            post(drain_node),
        )
        .returns::<NodeView>(),
        e(
            "post",
            "/api/v1/nodes/{name}/resume",
            "Resume a node (site operator)",
            true,
            &[],
            None,
            post(resume_node),
        )
        .returns::<NodeView>(),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct NodeView {
    name: String,
    site: String,
    partition: String,
    gpu_model: String,
    gpus: u16,
    gpu_memory_gib: u32,
    cpu_cores: u32,
    ram_gib: u32,
    /// Topology group (rack, island, switch).
    group: String,
    /// up, drained or down.
    status: Option<String>,
    /// Thousandths of each GPU in use, GPU by GPU.
    gpus_used_milli: Vec<u16>,
}

pub(crate) fn node_view(state: &AppState, i: usize, status: Option<sched::NodeStatus>, used: &[u16]) -> NodeView {
    let n = &state.cluster.nodes[i];
    NodeView {
        name: n.name.clone(),
        site: state.cluster.sites[usize::from(n.site)].name.clone(),
        partition: state.cluster.partitions[usize::from(n.partition)].name.clone(),
        gpu_model: n.gpu_model.clone(),
        gpus: n.gpus,
        gpu_memory_gib: n.gpu_memory_gib,
        cpu_cores: n.cpu_cores,
        ram_gib: n.ram_gib,
        group: n.group.clone(),
        status: status.map(|s| {
            match s {
                sched::NodeStatus::Up => "up",
                sched::NodeStatus::Drained => "drained",
                sched::NodeStatus::Down => "down",
            }
            .to_string()
        }),
        gpus_used_milli: used.to_vec(),
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SiteView {
    name: String,
    country: String,
    /// Power usage effectiveness.
    pue: f64,
    /// Carbon intensity of the site's electricity now.
    carbon_g_per_kwh: u32,
    gpu_hour_price_cents: i64,
    nodes: usize,
    /// GPUs by model.
    gpus: std::collections::BTreeMap<String, u64>,
    partitions: Vec<PartitionView>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct PartitionView {
    name: String,
    max_walltime_s: Option<u64>,
}

pub(crate) async fn list_sites(State(state): State<AppState>, _caller: Caller) -> ApiResult {
    let c = &state.cluster;
    let sites: Vec<SiteView> = c
        .sites
        .iter()
        .enumerate()
        .map(|(i, site)| {
            let nodes: Vec<&domain::Node> = c.nodes.iter().filter(|n| usize::from(n.site) == i).collect();
            let mut gpus: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
            for n in &nodes {
                *gpus.entry(n.gpu_model.clone()).or_default() += u64::from(n.gpus);
            }
            let partitions: Vec<PartitionView> = c
                .partitions
                .iter()
                .filter(|p| usize::from(p.site) == i)
                .map(|p| PartitionView {
                    name: p.name.clone(),
                    max_walltime_s: p.max_walltime_s,
                })
                .collect();
            SiteView {
                name: site.name.clone(),
                country: site.country.clone(),
                pue: f64::from(site.pue_milli) / 1000.0,
                carbon_g_per_kwh: site.carbon_at(unix_now()),
                gpu_hour_price_cents: site
                    .gpu_hour_price_cents
                    .map_or(state.config.cents_per_gpu_hour, i64::from),
                nodes: nodes.len(),
                gpus,
                partitions,
            }
        })
        .collect();
    ok(items(sites))
}

pub(crate) async fn list_nodes(State(state): State<AppState>, _caller: Caller) -> ApiResult {
    let control = state.control.lock().await;
    let nodes: Vec<NodeView> = (0..state.cluster.nodes.len())
        .map(|i| {
            let used = control.engine.node_usage(i as u32).unwrap_or_default();
            node_view(&state, i, control.engine.node_status(i as u32), used)
        })
        .collect();
    ok(items(nodes))
}

pub(crate) async fn set_node(state: AppState, caller: Caller, name: String, drain: bool) -> ApiResult {
    operator(&caller, "drain and resume nodes")?;
    let i = state
        .cluster
        .nodes
        .iter()
        .position(|n| n.name == name)
        .ok_or_else(|| ApiError::not_found("node", &name))?;
    // Persist first: a restart must find the node as the operator left it.
    state
        .store
        .set_node_state(&name, if drain { "drained" } else { "up" }, Some(&caller.user.id))
        .await?;
    let mut control = state.control.lock().await;
    let event = if drain {
        control.operator_drained.insert(i as u32);
        Event::NodeDrain { node: i as u32 }
    } else {
        control.operator_drained.remove(&(i as u32));
        Event::NodeUp { node: i as u32 }
    };
    control.engine.apply(unix_now(), event).map_err(ApiError::internal)?;
    lifecycle::schedule(&state, &mut control).await;
    let used = control.engine.node_usage(i as u32).unwrap_or_default();
    ok(node_view(&state, i, control.engine.node_status(i as u32), used))
}

pub(crate) async fn drain_node(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult {
    set_node(state, caller, name, true).await
}

pub(crate) async fn resume_node(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult {
    set_node(state, caller, name, false).await
}
