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

/// Asks to register; the account exists once the code sent by e-mail comes back (`verify`).
pub fn register(conn: &Conn, a: RegisterArgs) -> Result<()> {
    let c = Client::new(conn);
    let body = json!({
        "email": a.email, "name": a.name,
        "organisation": {"name": a.org_name, "type": a.org_type, "country": a.country, "sectors": a.sectors},
    });
    let out = c.call("POST", "/api/v1/signup", Some(&body))?;
    if c.output == Output::Json {
        println!("{out}");
    } else {
        println!(
            "a confirmation code was sent to {}: run `aifactory verify CODE` to create your account",
            a.email
        );
    }
    Ok(())
}

/// Confirms the address: the account and organisation are created, and the new token is
/// saved like `login` does.
pub fn verify(conn: &Conn, code: String) -> Result<()> {
    let c = Client::new(conn);
    let out = c.call("POST", "/api/v1/signup/verify", Some(&json!({"code": code})))?;
    let token = out["token"].as_str().unwrap_or_default().to_string();
    let path = save_login(c.base.clone(), token)?;
    if c.output == Output::Json {
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} is confirmed: {} ({}) is registered; your token is saved in {}. Next: `aifactory call list`",
        out["user"]["email"].as_str().unwrap_or("?"),
        out["organisation"]["name"].as_str().unwrap_or("?"),
        out["organisation"]["id"].as_str().unwrap_or("?"),
        path.display()
    );
    Ok(())
}
