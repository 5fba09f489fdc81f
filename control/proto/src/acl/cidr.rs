//! Source address ranges in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a bare address for
//! one host), which restrict where an identity may connect from.

use std::net::IpAddr;

/// One address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl AddressRange {
    /// Parses `ADDR/PREFIX` or a bare `ADDR`. Host bits set below the prefix are an error, since
    /// `10.1.2.3/8` is more likely a typo than a wish for `10.0.0.0/8`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("\"{addr}\" is not an IPv4 or IPv6 address"))?;
        let max = max_prefix(&network);
        let prefix =
            match prefix {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    format!("prefix length \"{p}\" must be a number from 0 to {max}")
                })?,
            };
        let range = Self { network, prefix };
        if bits(&network) & !mask(prefix, max) != 0 {
            return Err(format!(
                "\"{text}\" has host bits set below the /{prefix} prefix (did you mean {}?)",
                range.normalised()
            ));
        }
        Ok(range)
    }

    /// True when `addr` is inside the range. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what
    /// a dual-stack listener reports for IPv4 peers) are compared as IPv4.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        let network = self.network.to_canonical();
        if addr.is_ipv4() != network.is_ipv4() {
            return false;
        }
        let max = max_prefix(&network);
        let m = mask(self.prefix, max);
        bits(&addr) & m == bits(&network) & m
    }

    fn normalised(&self) -> String {
        let max = max_prefix(&self.network);
        let masked = bits(&self.network) & mask(self.prefix, max);
        let ip: IpAddr = match self.network {
            IpAddr::V4(_) => IpAddr::from((masked as u32).to_be_bytes()),
            IpAddr::V6(_) => IpAddr::from(masked.to_be_bytes()),
        };
        format!("{ip}/{}", self.prefix)
    }
}

impl std::fmt::Display for AddressRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn max_prefix(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

/// The network mask of `prefix` bits within an address of `max` bits.
fn mask(prefix: u8, max: u8) -> u128 {
    let all = if max == 128 {
        u128::MAX
    } else {
        (1u128 << max) - 1
    };
    if prefix == 0 {
        0
    } else {
        all & !((1u128 << (max - prefix)) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_they_should() {
        let r = AddressRange::parse("10.0.0.0/8").unwrap();
        assert!(r.contains(ip("10.255.1.2")));
        assert!(r.contains(ip("::ffff:10.0.0.1")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(!r.contains(ip("::1")));
        let host = AddressRange::parse("127.0.0.2").unwrap();
        assert!(host.contains(ip("127.0.0.2")));
        assert!(!host.contains(ip("127.0.0.1")));
        let any = AddressRange::parse("0.0.0.0/0").unwrap();
        assert!(any.contains(ip("192.168.1.1")));
        let v6 = AddressRange::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
        assert!(AddressRange::parse("::/0").unwrap().contains(ip("::1")));
        assert!(AddressRange::parse("::1/128").unwrap().contains(ip("::1")));
    }

    #[test]
    fn bad_ranges_say_why() {
        assert_eq!(
            AddressRange::parse("10.0.0.300/8").unwrap_err(),
            "\"10.0.0.300\" is not an IPv4 or IPv6 address"
        );
        assert_eq!(
            AddressRange::parse("10.0.0.0/33").unwrap_err(),
            "prefix length \"33\" must be a number from 0 to 32"
        );
        assert_eq!(
            AddressRange::parse("10.1.2.3/8").unwrap_err(),
            "\"10.1.2.3/8\" has host bits set below the /8 prefix (did you mean 10.0.0.0/8?)"
        );
    }
}
