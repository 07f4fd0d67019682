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
        ),
        e(
            "get",
            "/api/v1/nodes",
            "Nodes and their GPUs",
            true,
            &[],
            None,
            get(list_nodes),
        ),
        e(
            "post",
            "/api/v1/nodes/{name}/drain",
            "Drain a node (site operator)",
            true,
            &[],
            None,
            post(drain_node),
        ),
        e(
            "post",
            "/api/v1/nodes/{name}/resume",
            "Resume a node (site operator)",
            true,
            &[],
            None,
            post(resume_node),
        ),
    ]
}

pub(crate) fn node_view(state: &AppState, i: usize, status: Option<sched::NodeStatus>, used: &[u16]) -> Value {
    let n = &state.cluster.nodes[i];
    json!({
        "name": n.name, "site": state.cluster.sites[usize::from(n.site)].name,
        "partition": state.cluster.partitions[usize::from(n.partition)].name, "gpu_model": n.gpu_model, "gpus": n.gpus,
        "gpu_memory_gib": n.gpu_memory_gib, "cpu_cores": n.cpu_cores, "ram_gib": n.ram_gib, "group": n.group,
        "status": status, "gpus_used_milli": used,
    })
}

pub(crate) async fn list_sites(State(state): State<AppState>, _caller: Caller) -> ApiResult {
    let c = &state.cluster;
    let items: Vec<Value> = c
        .sites
        .iter()
        .enumerate()
        .map(|(i, site)| {
            let nodes: Vec<&domain::Node> = c.nodes.iter().filter(|n| usize::from(n.site) == i).collect();
            let mut gpus: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
            for n in &nodes {
                *gpus.entry(n.gpu_model.as_str()).or_default() += u64::from(n.gpus);
            }
            let partitions: Vec<Value> = c
                .partitions
                .iter()
                .filter(|p| usize::from(p.site) == i)
                .map(|p| json!({"name": p.name, "max_walltime_s": p.max_walltime_s}))
                .collect();
            json!({
                "name": site.name, "country": site.country, "pue": f64::from(site.pue_milli) / 1000.0,
                "carbon_g_per_kwh": site.carbon_at(unix_now()),
                "gpu_hour_price_cents": site.gpu_hour_price_cents.map_or(state.config.cents_per_gpu_hour, i64::from),
                "nodes": nodes.len(), "gpus": gpus, "partitions": partitions,
            })
        })
        .collect();
    ok(json!({"items": items}))
}

pub(crate) async fn list_nodes(State(state): State<AppState>, _caller: Caller) -> ApiResult {
    let control = state.control.lock().await;
    let items: Vec<Value> = (0..state.cluster.nodes.len())
        .map(|i| {
            let used = control.engine.node_usage(i as u32).unwrap_or_default();
            node_view(&state, i, control.engine.node_status(i as u32), used)
        })
        .collect();
    ok(json!({"items": items}))
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
