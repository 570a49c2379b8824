//! `Secret`: configuration text that must never reach a log, an error message or `Debug` output.
//!
//! Passwords, tokens and app secrets are read into this newtype. Printing one shows `***`; a URL
//! shows everything but its password and query string (`amqp://guest:***@host:5672/%2f`), so an
//! operator can still see which host a connection points at. Code that needs the text calls
//! [`Secret::expose`], which makes every use easy to find.

use std::fmt;

/// Text that is shown redacted everywhere except through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    /// The secret text itself, for the one place that sends it to a service.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for an empty secret (an unset optional `${VAR:-}`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What `Display` and `Debug` print: a URL without its password and query, or `***`.
    pub fn redacted(&self) -> String {
        crate::redact::secret(&self.0)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Secret::new(text)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_secrets_print_as_stars() {
        let s = Secret::new("7ba55a29f8bc");
        assert_eq!(s.to_string(), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "7ba55a29f8bc");
    }

    #[test]
    fn urls_hide_only_the_password_and_query() {
        let s = Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(s.to_string(), "amqp://guest:***@127.0.0.1:5672/%2f");
        let s = Secret::new("mysql://root@127.0.0.1:3306/www");
        assert_eq!(s.to_string(), "mysql://root@127.0.0.1:3306/www");
        let s = Secret::new("mysql://u:p%40ss@db:3306/x?ssl-mode=required");
        assert_eq!(s.to_string(), "mysql://u:***@db:3306/x?***");
        let s = Secret::new("https://oapi.dingtalk.com/robot/send?access_token=abc");
        assert_eq!(s.to_string(), "https://oapi.dingtalk.com/robot/send?***");
        assert_eq!(
            format!("{s:?}"),
            "Secret(https://oapi.dingtalk.com/robot/send?***)"
        );
    }
}
