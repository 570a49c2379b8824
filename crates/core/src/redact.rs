//! Secret redaction: the one place that decides what of a URL or a driver's message may be shown.
//!
//! Every log line, error and status output that names a service goes through here:
//!
//! - [`url`]: a URL, or a comma-separated list of them (as `FERRY_AMQP_URL` takes several broker
//!   nodes), with every password and every query string replaced by `***`
//!   (`amqp://guest:***@host:5672/%2f`), so an operator still sees which hosts are meant;
//! - [`secret`]: the same for configuration text kept as a `Secret`, where anything that is not a
//!   URL is shown as `***` whole;
//! - [`userinfo`]: a URL with only its password hidden, for HTTP base URLs whose query is public;
//! - [`host`]: `scheme://host:port` only, for webhook URLs whose path carries a token;
//! - [`passwords`] and [`scrub`]: the passwords in a URL list, and a text (a driver's error, which
//!   may quote the URL it failed on) with every one of them replaced by `***`.

/// `text` (a URL or a comma-separated list of URLs) with every password and query replaced by
/// `***`. A part that is not a URL is kept as it is.
pub fn url(text: &str) -> String {
    each_part(text, |part| {
        redact_one(part).unwrap_or_else(|| part.to_string())
    })
}

/// What a `Secret` shows: [`url`] for URLs, `***` for anything else (a token, a password).
pub fn secret(text: &str) -> String {
    each_part(text, |part| {
        redact_one(part).unwrap_or_else(|| "***".to_string())
    })
}

/// `url` with only the password of its user info hidden (`https://user:***@host/a?b=c`).
pub fn userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// `scheme://host:port` of a URL, without user info (shown as `***@`), path or query.
pub fn host(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let authority = &url[..end];
    match authority.rfind('@') {
        Some(at) => format!("{}***@{}", &url[..after_scheme], &authority[at + 1..]),
        None => authority.to_string(),
    }
}

/// The password in the user info of `url`, if any.
pub fn password(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let password = &userinfo[userinfo.find(':')? + 1..];
    (!password.is_empty()).then(|| password.to_string())
}

/// The passwords of every URL in a comma-separated list.
pub fn passwords(text: &str) -> Vec<String> {
    text.split(',')
        .filter_map(|part| password(part.trim()))
        .collect()
}

/// `text` with every occurrence of each of `secrets` replaced by `***`.
pub fn scrub<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        let secret = secret.as_ref();
        if !secret.is_empty() {
            out = out.replace(secret, "***");
        }
    }
    out
}

/// Apply `redact` to each comma-separated part of `text`, keeping the separators.
fn each_part(text: &str, redact: impl Fn(&str) -> String) -> String {
    if !text.contains(',') {
        return redact(text);
    }
    text.split(',')
        .map(|part| {
            let trimmed = part.trim();
            if trimmed.is_empty() {
                part.to_string()
            } else {
                part.replace(trimmed, &redact(trimmed))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `scheme://user:password@host/path?query` with the password and the query replaced by `***`.
/// `None` when the text is not a URL.
fn redact_one(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    // Query strings carry tokens (`?access_token=...`): hide them whole.
    let tail = match tail.split_once('?') {
        Some((path, _query)) => format!("{path}?***"),
        None => tail.to_string(),
    };
    Some(format!("{scheme}://{authority}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_hides_the_password_only() {
        assert_eq!(
            url("amqp://guest:s3cr3t@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            url("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(url("amqp://user@host"), "amqp://user@host");
        assert_eq!(url("not a url"), "not a url");
        assert_eq!(
            url("mysql://root:hunter2@db:3306/ferry"),
            "mysql://root:***@db:3306/ferry"
        );
        assert_eq!(url("mysql://root@db/ferry"), "mysql://root@db/ferry");
    }

    #[test]
    fn every_url_of_a_list_is_redacted() {
        let nodes = "amqp://guest:g1@127.0.0.1:5681/%2f,amqp://guest:g2@127.0.0.1:5682/%2f, \
                     amqp://ferry:密码🔑@127.0.0.1:5683/%2f";
        let shown = url(nodes);
        assert_eq!(
            shown,
            "amqp://guest:***@127.0.0.1:5681/%2f,amqp://guest:***@127.0.0.1:5682/%2f, \
             amqp://ferry:***@127.0.0.1:5683/%2f"
        );
        for leaked in ["g1", "g2", "密码"] {
            assert!(!shown.contains(leaked), "{shown}");
        }
        assert_eq!(passwords(nodes), ["g1", "g2", "密码🔑"]);
        assert_eq!(
            scrub("login g2 refused; tried g1", &passwords(nodes)),
            "login *** refused; tried ***"
        );
    }

    #[test]
    fn a_secret_that_is_no_url_is_hidden_whole() {
        assert_eq!(secret("7ba55a29f8bc"), "***");
        assert_eq!(
            secret("https://oapi.dingtalk.com/robot/send?access_token=abc"),
            "https://oapi.dingtalk.com/robot/send?***"
        );
    }

    #[test]
    fn passwords_are_found_and_scrubbed() {
        let one = "amqp://u:p%40ss@host:5672/%2f";
        assert_eq!(password(one).as_deref(), Some("p%40ss"));
        assert_eq!(
            scrub("bad login p%40ss at rabbit", &passwords(one)),
            "bad login *** at rabbit"
        );
        assert_eq!(password("amqp://guest@host/"), None);
    }

    #[test]
    fn userinfo_and_host_keep_what_is_public() {
        assert_eq!(
            userinfo("https://bot:s3cret@hooks.example.com:8443/a?b=c"),
            "https://bot:***@hooks.example.com:8443/a?b=c"
        );
        assert_eq!(userinfo("http://127.0.0.1:9180"), "http://127.0.0.1:9180");
        assert_eq!(
            host("https://hooks.example.com/services/T0/B0/secret?x=1"),
            "https://hooks.example.com"
        );
        assert_eq!(
            host("http://user:pw@127.0.0.1:9000/hook"),
            "http://***@127.0.0.1:9000"
        );
    }
}
