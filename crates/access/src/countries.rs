//! Country lists a call can name: ISO 3166-1 alpha-2 codes, or the groups `EU`, `EEA` and
//! `associated` (the countries associated to Horizon Europe and Digital Europe).

/// The 27 member states (Greece as `GR`, as ISO writes it; `EL` is accepted too).
pub const EU: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT",
    "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// The EEA beyond the EU.
pub const EEA_NON_EU: &[&str] = &["IS", "LI", "NO"];

/// Countries associated to Horizon Europe (as of 2026; a factory configures its own list
/// when a call follows another programme's).
pub const ASSOCIATED: &[&str] = &[
    "AL", "AM", "BA", "CA", "CH", "FO", "GB", "GE", "IL", "KR", "MD", "ME", "MK", "NZ", "RS", "TN", "TR", "UA", "XK",
];

/// Normalises a code (`el` → `GR`, `uk` → `GB`) or returns `None` when it is not two letters.
pub fn normalise(code: &str) -> Option<String> {
    let c = code.trim().to_ascii_uppercase();
    if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
        return None;
    }
    Some(match c.as_str() {
        "EL" => "GR".into(),
        "UK" => "GB".into(),
        _ => c,
    })
}

/// Whether `country` is in a list of codes and groups (`EU`, `EEA`, `associated`).
pub fn listed(list: &[String], country: &str) -> bool {
    let Some(country) = normalise(country) else {
        return false;
    };
    list.iter()
        .any(|entry| match entry.trim().to_ascii_lowercase().as_str() {
            "eu" => EU.contains(&country.as_str()),
            "eea" => EU.contains(&country.as_str()) || EEA_NON_EU.contains(&country.as_str()),
            "associated" => ASSOCIATED.contains(&country.as_str()),
            _ => normalise(entry).as_deref() == Some(country.as_str()),
        })
}

/// Checks a list a call names: each entry a group or a two-letter code.
pub fn check_list(list: &[String]) -> Result<(), String> {
    for entry in list {
        let group = matches!(entry.trim().to_ascii_lowercase().as_str(), "eu" | "eea" | "associated");
        if !group && normalise(entry).is_none() {
            return Err(format!(
                "`{entry}` is neither a two-letter country code nor one of EU, EEA, associated"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_and_codes() {
        assert_eq!(EU.len(), 27);
        assert!(listed(&l(&["EU"]), "it"));
        assert!(listed(&l(&["EU"]), "EL"), "Greece under its EU code");
        assert!(!listed(&l(&["EU"]), "NO"));
        assert!(listed(&l(&["EEA"]), "NO"));
        assert!(!listed(&l(&["EEA"]), "CH"));
        assert!(listed(&l(&["EEA", "associated"]), "CH"));
        assert!(
            listed(&l(&["associated"]), "UK"),
            "the United Kingdom under its common code"
        );
        assert!(listed(&l(&["FI", "SE"]), "se"));
        assert!(!listed(&l(&["FI", "SE"]), "DE"));
        assert!(!listed(&l(&["EU"]), "ITA"));
        assert!(check_list(&l(&["EU", "ch"])).is_ok());
        assert!(check_list(&l(&["Europe"])).is_err());
    }
}
