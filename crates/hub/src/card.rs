//! Model and dataset cards: a README whose YAML front matter (between `---` lines, as on the
//! Hugging Face Hub) carries licence, datasets, base model, metrics and the like. The Hub
//! shows the front matter as `cardData`; the catalogue takes a licence and keywords from it
//! when its own metadata names none; and a model a factory job produced gets the job's
//! compute, energy and carbon written into it, from the factory's ledger.

use serde_json::Value;

/// The file a repository's card lives in.
pub const README: &str = "README.md";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CardError {
    #[error("the README's front matter is not valid YAML: {0}")]
    Yaml(String),
    #[error("the README's front matter must be a mapping (`key: value` lines), not {0}")]
    NotAMapping(&'static str),
}

/// The front matter's YAML text and what follows it; no front matter → `None` and the
/// whole text.
pub fn split(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n")) else {
        return (None, text);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    (None, text)
}

/// The card's front matter as JSON (`cardData`); `None` without front matter.
pub fn card_data(text: &str) -> Result<Option<Value>, CardError> {
    let Some(yaml) = split(text).0 else { return Ok(None) };
    if yaml.trim().is_empty() {
        return Ok(Some(Value::Object(Default::default())));
    }
    let value: Value = serde_norway::from_str(yaml).map_err(|e| CardError::Yaml(e.to_string()))?;
    match value {
        Value::Object(_) => Ok(Some(value)),
        Value::Null => Ok(Some(Value::Object(Default::default()))),
        Value::Array(_) => Err(CardError::NotAMapping("a list")),
        _ => Err(CardError::NotAMapping("a single value")),
    }
}

/// What the catalogue takes from a card when its own metadata is silent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CardFacts {
    pub licence: Option<String>,
    pub tags: Vec<String>,
    pub languages: Vec<String>,
    pub datasets: Vec<String>,
    pub base_models: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

pub fn facts(card: &Value) -> CardFacts {
    CardFacts {
        licence: card.get("license").and_then(Value::as_str).map(str::to_ascii_lowercase),
        tags: strings(card.get("tags")),
        languages: strings(card.get("language")),
        datasets: strings(card.get("datasets")),
        base_models: strings(card.get("base_model")),
    }
}

/// The catalogue metadata with what the card says where the metadata is silent: the
/// licence, the tags as keywords, the README's first heading as the English title. `None`
/// when nothing changes or the result would not be valid metadata.
pub fn fill_metadata(
    metadata: &crate::catalogue::Metadata,
    card: Option<&Value>,
    readme: &str,
) -> Option<crate::catalogue::Metadata> {
    let mut m = metadata.clone();
    if let Some(f) = card.map(facts) {
        if m.licence.is_none() {
            m.licence = f.licence;
        }
        if m.keywords.is_empty() {
            m.keywords = f.tags;
        }
    }
    if m.titles.is_empty()
        && let Some(title) = split(readme)
            .1
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    {
        m.titles.insert("en".into(), title.to_string());
    }
    if m == *metadata {
        return None;
    }
    // A card's value the catalogue does not take (a licence outside the EU table, say)
    // is left out rather than refused: the card is the owner's, the metadata checked.
    let problems = m.problems();
    if problems.iter().any(|(field, _)| field == "licence") {
        m.licence = metadata.licence.clone();
    }
    if problems.iter().any(|(field, _)| field == "keywords") {
        m.keywords = metadata.keywords.clone();
    }
    (m != *metadata && m.problems().is_empty()).then_some(m)
}

/// What a factory job cost, from the ledger: the figures a model card carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compute {
    pub job_id: String,
    /// Where it ran (the factory's site) and the country of the site.
    pub site: String,
    pub country: String,
    /// What it ran on, e.g. `8 x H100-SXM`.
    pub hardware: String,
    pub gpu_seconds: i64,
    pub energy_wh: i64,
    pub carbon_g: i64,
    /// The job's page on the factory (provenance).
    pub job_url: String,
}

/// The card with the job's figures in its front matter: the Hub's own
/// `co2_eq_emissions` (grams, as the Hub's card specification counts them) and an
/// `aifactory` block with GPU-hours and kWh; everything else in the card is kept.
pub fn with_compute(text: &str, compute: &Compute) -> Result<String, CardError> {
    let mut card = card_data(text)?.unwrap_or_else(|| Value::Object(Default::default()));
    let map = card.as_object_mut().expect("card data is a mapping");
    map.insert(
        "co2_eq_emissions".into(),
        serde_json::json!({
            "emissions": compute.carbon_g,
            "source": "aifactory ledger (metered GPU energy × the site's grid intensity)",
            "training_type": "training",
            "geographical_location": format!("{} ({})", compute.site, compute.country),
            "hardware_used": compute.hardware,
        }),
    );
    map.insert(
        "aifactory".into(),
        serde_json::json!({
            "job": compute.job_id,
            "job_url": compute.job_url,
            "gpu_hours": thousandths(compute.gpu_seconds, 3600),
            "energy_kwh": thousandths(compute.energy_wh, 1000),
            "co2e_kg": thousandths(compute.carbon_g, 1000),
        }),
    );
    let yaml = serde_norway::to_string(&card).map_err(|e| CardError::Yaml(e.to_string()))?;
    let body = split(text).1;
    let body = if split(text).0.is_none() { text } else { body };
    Ok(format!("---\n{yaml}---\n{body}"))
}

/// `n / per` to three decimals, as a YAML number (integers stay exact in the ledger; the
/// card shows the usual units).
fn thousandths(n: i64, per: i64) -> Value {
    let milli = (i128::from(n) * 1000 + i128::from(per) / 2) / i128::from(per);
    let text = format!("{}.{:03}", milli / 1000, (milli % 1000).abs());
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = "---\nlicense: Apache-2.0\ntags:\n- robotics\n- control\ndatasets: nebula/arm-demos\nbase_model: [a/b, c/d]\n---\n# Arm policy\n\nText.\n";

    #[test]
    fn front_matter_is_split_from_the_body() {
        let (yaml, body) = split(CARD);
        assert!(yaml.unwrap().starts_with("license: Apache-2.0\n"));
        assert_eq!(body, "# Arm policy\n\nText.\n");
        assert_eq!(split("# No card\n---\n"), (None, "# No card\n---\n"));
        assert_eq!(split("---\nunterminated: yes\n"), (None, "---\nunterminated: yes\n"));
    }

    #[test]
    fn card_data_and_facts() {
        let card = card_data(CARD).unwrap().unwrap();
        let f = facts(&card);
        assert_eq!(f.licence.as_deref(), Some("apache-2.0"));
        assert_eq!(f.tags, ["robotics", "control"]);
        assert_eq!(f.datasets, ["nebula/arm-demos"]);
        assert_eq!(f.base_models, ["a/b", "c/d"]);
        assert_eq!(card_data("no card").unwrap(), None);
        assert!(matches!(
            card_data("---\nkey: [unclosed\n---\n"),
            Err(CardError::Yaml(_))
        ));
        assert_eq!(card_data("---\n- a\n- b\n---\n"), Err(CardError::NotAMapping("a list")));
    }

    #[test]
    fn the_card_fills_what_the_metadata_does_not_say() {
        let empty = crate::catalogue::Metadata::default();
        let card = card_data(CARD).unwrap();
        let m = fill_metadata(&empty, card.as_ref(), CARD).unwrap();
        assert_eq!(m.licence.as_deref(), Some("apache-2.0"));
        assert_eq!(m.keywords, ["robotics", "control"]);
        assert_eq!(m.titles["en"], "Arm policy");
        // What the owner described stays; nothing new: no change.
        assert_eq!(fill_metadata(&m, card.as_ref(), CARD), None);
        // A licence the catalogue does not know is left out, the rest taken.
        let odd = "---\nlicense: my-own-terms\n---\n# Odd\n";
        let m = fill_metadata(&empty, card_data(odd).unwrap().as_ref(), odd).unwrap();
        assert_eq!((m.licence, m.titles["en"].as_str()), (None, "Odd"));
    }

    #[test]
    fn compute_goes_into_the_front_matter_and_keeps_the_rest() {
        let compute = Compute {
            job_id: "job_1".into(),
            site: "local".into(),
            country: "EU".into(),
            hardware: "2 x H100-SXM".into(),
            gpu_seconds: 5400,
            energy_wh: 1250,
            carbon_g: 313,
            job_url: "http://f/api/v1/jobs/job_1".into(),
        };
        let out = with_compute(CARD, &compute).unwrap();
        let card = card_data(&out).unwrap().unwrap();
        assert_eq!(card["license"], "Apache-2.0");
        assert_eq!(card["co2_eq_emissions"]["emissions"], 313);
        assert_eq!(card["aifactory"]["gpu_hours"], 1.5);
        assert_eq!(card["aifactory"]["energy_kwh"], 1.25);
        assert_eq!(card["aifactory"]["co2e_kg"], 0.313);
        assert!(out.ends_with("---\n# Arm policy\n\nText.\n"));
        // Written again with new figures: replaced, not repeated.
        let again = with_compute(
            &out,
            &Compute {
                carbon_g: 400,
                ..compute.clone()
            },
        )
        .unwrap();
        assert_eq!(
            card_data(&again).unwrap().unwrap()["co2_eq_emissions"]["emissions"],
            400
        );
        assert_eq!(again.matches("co2_eq_emissions").count(), 1);
        // A README without a card gets one.
        let plain = with_compute("# Plain\n", &compute).unwrap();
        assert!(plain.starts_with("---\n") && plain.ends_with("---\n# Plain\n"));
    }
}
