//! Where requests go: the documented regional domains, or an explicit base URL.
//!
//! The UserSig travels in the query string, so a plain-HTTP endpoint is accepted only when its
//! host is loopback (the emulator); anything else must be HTTPS.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use reqwest::Url;

/// A documented region and its domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Region {
    China,
    Singapore,
    Seoul,
    Frankfurt,
    SiliconValley,
    Jakarta,
    Tokyo,
}

impl Region {
    pub(crate) const ALL: [Region; 7] = [
        Region::China,
        Region::Singapore,
        Region::Seoul,
        Region::Frankfurt,
        Region::SiliconValley,
        Region::Jakarta,
        Region::Tokyo,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Region::China => "china",
            Region::Singapore => "singapore",
            Region::Seoul => "seoul",
            Region::Frankfurt => "frankfurt",
            Region::SiliconValley => "silicon-valley",
            Region::Jakarta => "jakarta",
            Region::Tokyo => "tokyo",
        }
    }

    pub(crate) fn domain(self) -> &'static str {
        match self {
            Region::China => "console.tim.qq.com",
            Region::Singapore => "adminapisgp.im.qcloud.com",
            Region::Seoul => "adminapikr.im.qcloud.com",
            Region::Frankfurt => "adminapiger.im.qcloud.com",
            Region::SiliconValley => "adminapiusa.im.qcloud.com",
            Region::Jakarta => "adminapiidn.im.qcloud.com",
            Region::Tokyo => "adminapijpn.im.qcloud.com",
        }
    }
}

impl FromStr for Region {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| EndpointError::UnknownRegion(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("unknown region {}; use one of: {names}", crate::quote::quote(.0), names = region_names())]
    UnknownRegion(String),
    #[error("endpoint {0} is not a URL; give a base URL such as https://adminapisgp.im.qcloud.com")]
    NotAUrl(String),
    #[error(
        "endpoint {0} uses plain http on a non-loopback host, which would expose the UserSig; use https"
    )]
    PlainHttp(String),
    #[error("endpoint {0} must use https (or http on a loopback address)")]
    Scheme(String),
    #[error("endpoint {0} must be a base URL without a query or fragment")]
    Query(String),
    #[error(
        "endpoint {0} carries a user name or password; remove them (the API authenticates with the UserSig, and credentials in a URL end up in logs)"
    )]
    Credentials(String),
}

fn region_names() -> String {
    Region::ALL.map(Region::name).join(", ")
}

/// A validated base URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint(Url);

impl Endpoint {
    pub(crate) fn for_region(region: Region) -> Endpoint {
        // A constant https URL always parses.
        Endpoint(
            Url::parse(&format!("https://{}/", region.domain())).unwrap_or_else(|_| unreachable!()),
        )
    }

    pub fn parse(raw: &str) -> Result<Endpoint, EndpointError> {
        let shown = || crate::quote::quote(raw);
        let url = Url::parse(raw.trim()).map_err(|_| EndpointError::NotAUrl(shown()))?;
        if !url.username().is_empty() || url.password().is_some() {
            let mut bare = url.clone();
            let _ = bare.set_username("");
            let _ = bare.set_password(None);
            return Err(EndpointError::Credentials(bare.to_string()));
        }
        let raw = url.as_str().to_owned();
        if url.query().is_some() || url.fragment().is_some() {
            return Err(EndpointError::Query(raw));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => return Err(EndpointError::PlainHttp(raw)),
            _ => return Err(EndpointError::Scheme(raw)),
        }
        Ok(Endpoint(url))
    }

    /// True when requests never leave the machine.
    pub(crate) fn is_loopback(&self) -> bool {
        is_loopback(&self.0)
    }

    /// The URL of `/v4/<service>/<command>` under this base (without query).
    pub(crate) fn command_url(&self, service: &str, command: &str) -> Url {
        let mut url = self.0.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/v4/{service}/{command}"));
        url
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.0)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_resolve_to_their_domains() {
        assert_eq!(
            "singapore".parse::<Region>().unwrap().domain(),
            "adminapisgp.im.qcloud.com"
        );
        assert_eq!(
            "Silicon-Valley".parse::<Region>().unwrap(),
            Region::SiliconValley
        );
        let err = "mars".parse::<Region>().unwrap_err().to_string();
        assert!(err.contains("mars") && err.contains("tokyo"), "{err}");
    }

    #[test]
    fn plain_http_is_refused_unless_loopback() {
        assert!(Endpoint::parse("http://127.0.0.1:8080").is_ok());
        assert!(Endpoint::parse("http://[::1]:8080/").is_ok());
        assert!(Endpoint::parse("http://localhost:1").is_ok());
        assert!(Endpoint::parse("https://example.com").is_ok());
        assert!(matches!(
            Endpoint::parse("http://example.com"),
            Err(EndpointError::PlainHttp(_))
        ));
        assert!(matches!(
            Endpoint::parse("ftp://127.0.0.1"),
            Err(EndpointError::Scheme(_))
        ));
        assert!(matches!(
            Endpoint::parse("https://x/?a=1"),
            Err(EndpointError::Query(_))
        ));
        assert!(matches!(
            Endpoint::parse("not a url"),
            Err(EndpointError::NotAUrl(_))
        ));
    }

    #[test]
    fn credentials_in_the_endpoint_are_refused_and_never_echoed() {
        let err = Endpoint::parse("https://user:hunter2@adminapisgp.im.qcloud.com/")
            .unwrap_err()
            .to_string();
        assert!(err.contains("user name or password"), "{err}");
        assert!(!err.contains("hunter2") && !err.contains("user:"), "{err}");
    }

    #[test]
    fn command_url_keeps_a_base_path() {
        let e = Endpoint::parse("http://127.0.0.1:1/prefix/").unwrap();
        assert_eq!(
            e.command_url("svc", "cmd").as_str(),
            "http://127.0.0.1:1/prefix/v4/svc/cmd"
        );
        let r = Endpoint::for_region(Region::China);
        assert_eq!(
            r.command_url("svc", "cmd").as_str(),
            "https://console.tim.qq.com/v4/svc/cmd"
        );
    }
}
