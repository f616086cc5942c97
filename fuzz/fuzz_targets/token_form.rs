//! The token-endpoint form parser (`oauth_server::form::Params::parse`).
//!
//! Properties: a body is accepted exactly when no parameter has two
//! non-empty values (empty values count as absent, RFC 6749 §3.1); an
//! accepted body answers every parameter with its one non-empty value; a
//! refused one names the repeated parameter (at most 40 characters).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use oauth_server::form::Params;

fuzz_target!(|body: &[u8]| {
    // The reference: every non-empty value per decoded name, in order.
    let mut values: HashMap<String, Vec<String>> = HashMap::new();
    let mut first_repeat = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        if v.is_empty() {
            continue;
        }
        let seen = values.entry(k.to_string()).or_default();
        seen.push(v.into_owned());
        if seen.len() == 2 && first_repeat.is_none() {
            first_repeat = Some(k.to_string());
        }
    }
    match (Params::parse(body), first_repeat) {
        (Ok(params), None) => {
            for (name, vals) in &values {
                assert_eq!(
                    params.get(name),
                    Some(vals[0].as_str()),
                    "value of {name:?}"
                );
            }
        }
        (Err(e), Some(name)) => {
            let shown: String = name.chars().take(40).collect();
            assert_eq!(e.description, format!("parameter `{shown}` is repeated"));
        }
        (Ok(_), Some(name)) => panic!("repeated parameter {name:?} was accepted"),
        (Err(e), None) => panic!("refused a body without repeats: {}", e.description),
    }
});
