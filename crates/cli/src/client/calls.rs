//! `aifactory call`: browse calls; open and close them (programme managers).

use super::*;

#[derive(Debug, Subcommand)]
pub enum CallCmd {
    /// Calls, open ones first, with their budgets left.
    List,
    /// A call's rules, form and promises.
    Show { call: String },
    /// Open a call with a mode's defaults (programme managers).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        title: String,
        /// playground, fast-lane, large-scale or custom.
        #[arg(long)]
        mode: String,
        #[arg(long)]
        site: String,
        #[arg(long)]
        gpu_hours: i64,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Close a call to new applications (programme managers).
    Close { call: String },
}

pub fn call_cmd(conn: &Conn, cmd: CallCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = ["name", "mode", "accepting", "title", "decision_working_days", "id"];
    match cmd {
        CallCmd::List => c.print(&c.call("GET", "/api/v1/calls", None)?, &cols),
        CallCmd::Show { call } => {
            let v = c.call("GET", &format!("/api/v1/calls/{call}"), None)?;
            if c.output == Output::Json {
                println!("{v}");
                return Ok(());
            }
            c.print(&v, &cols);
            println!();
            c.print(&json!({"items": v["budgets"]}), &["site", "gpu_hours", "awarded_gpu_hours", "left_gpu_hours"]);
            println!();
            c.print(&json!({"items": v["spec"]["form"]}), &["name", "kind", "required", "label"]);
        }
        CallCmd::Create {
            name,
            title,
            mode,
            site,
            gpu_hours,
            description,
        } => c.print(
            &c.call(
                "POST",
                "/api/v1/calls",
                Some(&json!({"name": name, "title": title, "mode": mode, "site": site, "gpu_hours": gpu_hours, "description": description})),
            )?,
            &cols,
        ),
        CallCmd::Close { call } => c.print(&c.call("POST", &format!("/api/v1/calls/{call}/close"), None)?, &cols),
    }
    Ok(())
}
