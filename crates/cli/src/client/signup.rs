//! `aifactory register` and `verify`: self-service sign-up and proof of the e-mail address.

use super::*;

#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    #[arg(long)]
    pub email: String,
    /// Your name.
    #[arg(long)]
    pub name: String,
    /// Your organisation's name.
    #[arg(long)]
    pub org_name: String,
    /// startup, sme, industry, research or public.
    #[arg(long)]
    pub org_type: String,
    /// ISO 3166-1 alpha-2 code (IT, FI, DE...).
    #[arg(long)]
    pub country: String,
    #[arg(long = "sector")]
    pub sectors: Vec<String>,
}

/// Registers, saves the new token like `login`, and says how to confirm the address.
pub fn register(conn: &Conn, a: RegisterArgs) -> Result<()> {
    let c = Client::new(conn);
    let body = json!({
        "email": a.email, "name": a.name,
        "organisation": {"name": a.org_name, "type": a.org_type, "country": a.country, "sectors": a.sectors},
    });
    let out = c.call("POST", "/api/v1/signup", Some(&body))?;
    let token = out["token"].as_str().unwrap_or_default().to_string();
    let path = save_login(c.base.clone(), token)?;
    if c.output == Output::Json {
        println!("{out}");
        return Ok(());
    }
    println!(
        "registered {} for {} ({}); token saved in {}",
        out["user"]["email"].as_str().unwrap_or("?"),
        out["organisation"]["name"].as_str().unwrap_or("?"),
        out["organisation"]["id"].as_str().unwrap_or("?"),
        path.display()
    );
    println!(
        "a confirmation code was sent to {}: run `aifactory verify CODE`",
        a.email
    );
    Ok(())
}

pub fn verify(conn: &Conn, code: String) -> Result<()> {
    let c = Client::new(conn);
    let out = c.call("POST", "/api/v1/signup/verify", Some(&json!({"code": code})))?;
    if c.output == Output::Json {
        println!("{out}");
    } else {
        println!(
            "{} is confirmed: you can apply to calls (`aifactory call list`)",
            out["email"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
