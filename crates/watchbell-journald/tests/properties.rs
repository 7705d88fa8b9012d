//! Properties of the native-protocol encoding, over generated records: every entry parses back
//! (as journald parses it) into exactly the fields and values that were given, with valid names.
use proptest::prelude::*;
use watchbell_core::{Level, Record, Value};
use watchbell_journald::{encode_entry, field_name};
use watchbell_test::journald::parse_entry;

fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

proptest! {
    #[test]
    fn field_names_are_valid_journal_names(name in any::<String>()) {
        match field_name(&name) {
            Some(n) => prop_assert!(valid(&n), "{n:?}"),
            None => prop_assert!(name.is_empty()),
        }
    }

    #[test]
    fn every_entry_parses_back_to_its_fields(
        message in any::<String>(),
        target in "[a-z:_]{1,20}",
        fields in proptest::collection::vec(("[a-zA-Z_.][a-zA-Z0-9_.]{0,20}", any::<String>()), 0..6),
        suppressed in 0u64..3,
    ) {
        let mut r = Record::new(Level::WARN, target.clone(), message.clone());
        r.suppressed = suppressed;
        for (k, v) in &fields {
            r.fields.set(k.clone(), Value::Str(v.clone()));
        }
        let entry = encode_entry(&r, "ident", &[("EXTRA".to_owned(), "x\ny".to_owned())]);
        let parsed = parse_entry(&entry).map_err(TestCaseError::fail)?;
        for (n, _) in &parsed {
            prop_assert!(valid(n), "{n:?}");
        }
        let get = |name: &str| parsed.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect::<Vec<_>>();
        let want_message = if suppressed > 0 { format!("{message} ({suppressed} similar suppressed)") } else { message.clone() };
        prop_assert_eq!(get("MESSAGE"), vec![want_message.into_bytes()]);
        prop_assert_eq!(get("PRIORITY"), vec![b"4".to_vec()]);
        prop_assert_eq!(get("TARGET"), vec![target.into_bytes()]);
        prop_assert_eq!(get("EXTRA"), vec![b"x\ny".to_vec()]);
        // Each field's last value (a name set twice keeps the last) under its journal name.
        for (i, (k, _)) in r.fields.iter().enumerate() {
            let v = r.fields.iter().nth(i).unwrap().1.to_string();
            let name = field_name(k).unwrap();
            let values = get(&name).into_iter().chain(get(&format!("F_{name}"))).collect::<Vec<_>>();
            prop_assert!(values.contains(&v.into_bytes()), "{k} as {name}");
        }
    }
}
