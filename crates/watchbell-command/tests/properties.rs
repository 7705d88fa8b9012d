//! Properties of what reaches `execve`: any text becomes an argument and an environment
//! variable the kernel takes (no NUL, bounded), unchanged when it already was one.
use proptest::prelude::*;
use watchbell_command::{env_name, safe_value};

proptest! {
    #[test]
    fn any_text_becomes_a_value_the_kernel_takes(s in any::<String>(), big in 0usize..3) {
        let s = s.repeat(1 + big * 4000);
        let v = safe_value(&s);
        prop_assert!(!v.contains('\0'));
        prop_assert!(v.len() <= 16 * 1024);
        if !s.contains('\0') && s.len() <= 16 * 1024 {
            prop_assert_eq!(&v, &s);
        } else if s.len() > 16 * 1024 {
            prop_assert!(v.ends_with("…[truncated]"));
        }
    }

    #[test]
    fn any_field_name_becomes_an_environment_name(name in any::<String>()) {
        let n = env_name("WATCHBELL_FIELD_", &name);
        prop_assert!(n.starts_with("WATCHBELL_FIELD_"));
        prop_assert!(n.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'), "{n:?}");
        prop_assert_eq!(n.len() - "WATCHBELL_FIELD_".len(), name.chars().count());
    }
}
