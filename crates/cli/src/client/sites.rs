//! `aifactory site` and `aifactory node`: sites, nodes, draining.

use super::*;

#[derive(Debug, Subcommand)]
pub enum SiteCmd {
    List,
}

pub fn site(conn: &Conn, cmd: SiteCmd) -> Result<()> {
    let c = Client::new(conn);
    match cmd {
        SiteCmd::List => c.print(
            &gpus_in_words(c.call("GET", "/api/v1/sites", None)?),
            &[
                "name",
                "country",
                "nodes",
                "gpus",
                "gpu_hour_price_cents",
                "carbon_g_per_kwh",
                "pue",
            ],
        ),
    }
    Ok(())
}

/// `{"H100-SXM": 8}` as `8 H100-SXM` for a table.
fn gpus_in_words(mut sites: Value) -> Value {
    for site in sites["items"].as_array_mut().into_iter().flatten() {
        if let Some(models) = site["gpus"].as_object() {
            let words: Vec<String> = models.iter().map(|(model, n)| format!("{n} {model}")).collect();
            site["gpus"] = json!(words.join(", "));
        }
    }
    sites
}

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    List,
    /// Take no new work on the node; running jobs go on.
    Drain {
        name: String,
    },
    Resume {
        name: String,
    },
}

pub fn node(conn: &Conn, cmd: NodeCmd) -> Result<()> {
    let c = Client::new(conn);
    let v = match cmd {
        NodeCmd::List => c.call("GET", "/api/v1/nodes", None)?,
        NodeCmd::Drain { name } => c.call("POST", &format!("/api/v1/nodes/{name}/drain"), None)?,
        NodeCmd::Resume { name } => c.call("POST", &format!("/api/v1/nodes/{name}/resume"), None)?,
    };
    c.print(
        &v,
        &[
            "name",
            "site",
            "partition",
            "gpu_model",
            "gpus",
            "status",
            "gpus_used_milli",
            "group",
        ],
    );
    Ok(())
}
