//! Who a request comes from when it passed through proxies this server trusts.

use axum::http::HeaderMap;

/// The client's address: the peer's, or, when the peer is a trusted proxy, the last address
/// before the trusted ones in `X-Forwarded-For` (the ones a client could forge come first).
pub fn client_ip(peer: std::net::IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> std::net::IpAddr {
    // A listener on [::] sees IPv4 peers as ::ffff:a.b.c.d.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().parse::<std::net::IpAddr>().ok().map(|ip| ip.to_canonical()))
        .collect::<Vec<_>>();
    for hop in forwarded.into_iter().rev() {
        match hop {
            Some(ip) if is_trusted(&ip) => continue,
            Some(ip) => return ip,
            // An unreadable hop: stop trusting the chain there.
            None => break,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_behind_trusted_proxies() {
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.7".parse().unwrap());
        assert_eq!(client_ip(proxy, &h, &trusted), "203.0.113.9".parse::<std::net::IpAddr>().unwrap());
        let stranger: std::net::IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(stranger, &h, &trusted), stranger, "untrusted peers cannot claim an address");
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }
}
