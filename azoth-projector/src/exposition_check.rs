//! A checker of the Prometheus text exposition format, for the tests of
//! [`DatabaseStats::metrics_text`](crate::DatabaseStats::metrics_text): the format's rules,
//! written out so that a test fails on a line Prometheus would reject or misread.

/// Checks `text` against the Prometheus text exposition format 0.0.4: every family has one
/// HELP and one TYPE line before its samples, and its samples are together; names and
/// label values are well formed (only `\\`, `\"` and `\n` escapes); values are floats
/// as Prometheus spells them (`NaN`, `+Inf`, `-Inf`); a summary has quantiles, `_sum` and
/// `_count`; counters end in `_total` and only counters do.
pub(crate) fn check_exposition(text: &str) -> Result<(), String> {
    use std::collections::{HashMap, HashSet};

    fn valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    fn parse_value(v: &str) -> Result<f64, String> {
        match v {
            "NaN" => Ok(f64::NAN),
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            _ if v.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => {
                v.parse().map_err(|_| format!("bad value {v:?}"))
            }
            _ => Err(format!("bad value {v:?}")),
        }
    }
    /// Label names and their unescaped values.
    type Labels = Vec<(String, String)>;
    /// The labels of `{…}` and the rest of the line after the closing brace.
    fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
        let mut labels = Vec::new();
        let mut rest = s;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                return Ok((labels, after));
            }
            let eq = rest.find("=\"").ok_or("label without =\"")?;
            let name = &rest[..eq];
            if !valid_name(name) {
                return Err(format!("bad label name {name:?}"));
            }
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break eq + 2 + i + 1,
                    (_, '\\') => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    (_, '\n') => return Err("raw newline in a label".into()),
                    (_, c) => value.push(c),
                }
            };
            labels.push((name.to_owned(), value));
            rest = &rest[end..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }

    let body = text.strip_suffix('\n').ok_or("no final newline")?;
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut summary_parts: HashMap<String, (bool, bool, bool)> = HashMap::new();
    for line in body.split('\n') {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').ok_or("HELP without text")?;
            if !helps.insert(name.to_owned()) {
                return Err(format!("second HELP for {name}"));
            }
            let mut chars = help.chars();
            while let Some(c) = chars.next() {
                if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                    return Err(format!("bad escape in HELP of {name}"));
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE without a type")?;
            if !valid_name(name) {
                return Err(format!("bad metric name {name:?}"));
            }
            if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                return Err(format!("bad type {kind} for {name}"));
            }
            if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err(format!("second TYPE for {name}"));
            }
            if !helps.contains(name) {
                return Err(format!("TYPE of {name} without HELP before it"));
            }
            if (kind == "counter") != name.ends_with("_total") {
                return Err(format!("{kind} {name}: only counters end in _total"));
            }
            if let Some(previous) = current.replace(name.to_owned()) {
                finished.insert(previous);
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(format!("unexpected comment {line:?}"));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or(format!("bad sample {line:?}"))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(format!("bad metric name {name:?}"));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(after) => parse_labels(after)?,
            None => (Vec::new(), &line[name_end..]),
        };
        let value = rest
            .strip_prefix(' ')
            .ok_or(format!("no value in {line:?}"))?;
        let value = parse_value(value)?;
        let family = current
            .clone()
            .ok_or(format!("sample {name} before any TYPE"))?;
        let kind = &types[&family];
        let quantile = labels.iter().find(|(l, _)| l == "quantile");
        match (kind.as_str(), name.strip_prefix(family.as_str())) {
            ("summary", Some("")) => {
                let (_, q) = quantile.ok_or(format!("{name} without quantile"))?;
                parse_value(q)?;
                summary_parts.entry(family.clone()).or_default().0 = true;
            }
            ("summary", Some("_sum")) => {
                summary_parts.entry(family.clone()).or_default().1 = true;
            }
            ("summary", Some("_count")) => {
                summary_parts.entry(family.clone()).or_default().2 = true;
            }
            (_, Some("")) if quantile.is_none() => {}
            _ => {
                let owner = if finished.iter().any(|f| name.starts_with(f.as_str())) {
                    "a family that ended earlier"
                } else {
                    "no declared family"
                };
                return Err(format!("sample {name} belongs to {owner}, not {family}"));
            }
        }
        if name.contains("_seconds") && value < 0.0 {
            return Err(format!("negative duration {line:?}"));
        }
    }
    for (name, kind) in &types {
        if kind == "summary" && summary_parts.get(name) != Some(&(true, true, true)) {
            return Err(format!("summary {name} lacks quantiles, _sum or _count"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checker_catches_what_it_checks() {
        let good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n";
        assert_eq!(check_exposition(good), Ok(()));
        for bad in [
            "a_total 1\n",
            "# HELP a_total A.\n# TYPE a_total counter\n# TYPE a_total counter\na_total 1\n",
            "# HELP a_total A.\n# TYPE a_total counter\na_total inf\n",
            "# HELP a_total A.\n# TYPE a_total counter\na_total{l=\"x\\q\"} 1\n",
            "# HELP a_total A.\n# TYPE a_total counter\na_total 1",
            "# HELP s A.\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_count 1\n",
            "# HELP g A.\n# TYPE g gauge\ng 1\n# HELP h A.\n# TYPE h gauge\nh 1\ng 2\n",
            "# HELP g_seconds_total A.\n# TYPE g_seconds_total gauge\ng_seconds_total 1\n",
        ] {
            assert!(check_exposition(bad).is_err(), "accepted {bad:?}");
        }
    }
}
