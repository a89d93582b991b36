//! The client's address: the TCP peer, or, when the peer is a configured proxy, the right-most
//! `X-Forwarded-For` entry that is not itself a trusted proxy. A client talking to us directly
//! cannot pick its own rate-limit bucket by sending the header.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request};

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The address of `req`'s client.
    pub fn of(req: &Request, trusted: &[IpAddr]) -> Self {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| c.0.ip());
        Self(resolve(
            peer,
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok()),
            trusted,
        ))
    }
}

fn resolve<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[IpAddr],
) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = forwarded
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let got = resolve(ip("10.0.0.9"), ["1.2.3.4"].into_iter(), &[ip("10.0.0.1")]);
        assert_eq!(got, ip("10.0.0.9"));
    }

    #[test]
    fn forwarded_for_names_the_client_behind_trusted_proxies() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let got = resolve(
            ip("10.0.0.1"),
            ["6.6.6.6, 1.2.3.4", "10.0.0.2"].into_iter(),
            &trusted,
        );
        assert_eq!(
            got,
            ip("1.2.3.4"),
            "the spoofable left-most entry is not believed"
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), std::iter::empty(), &trusted),
            ip("10.0.0.1")
        );
    }
}
