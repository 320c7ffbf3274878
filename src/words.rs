//! Counted nouns in messages: "1 problem", "2 problems". Every message that counts something
//! goes through [`count`] (or [`noun`] when the number is formatted another way), so that no
//! count of one reads "1 problems".

/// `n` and the noun in the form `n` takes: `count(1, "retry", "retries")` is `1 retry`.
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", noun(n, one, many))
}

/// The form of a noun for `n` of it: `one` for 1, `many` for anything else (0 included).
pub(crate) fn noun<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_takes_the_singular_and_everything_else_the_plural() {
        assert_eq!(count(1, "problem", "problems"), "1 problem");
        assert_eq!(count(0, "problem", "problems"), "0 problems");
        assert_eq!(count(2, "retry", "retries"), "2 retries");
        assert_eq!(noun(1_000, "account", "accounts"), "accounts");
    }
}
