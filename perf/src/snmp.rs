//! The host-loss guard (test-plan §2.1): UDP receive-buffer drops from `/proc/net/snmp`.

/// `Udp: RcvbufErrors` of this network namespace, or None where the file or field is missing.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    parse_udp_field(&text, "RcvbufErrors")
}

/// The value of `field` in the `Udp:` header/value line pair of `/proc/net/snmp` text.
pub fn parse_udp_field(text: &str, field: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let header = lines.next()?;
    let values = lines.next()?;
    let pos = header.split_whitespace().position(|h| h == field)?;
    values.split_whitespace().nth(pos)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_udp_field_not_the_udplite_one() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
            Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
            Udp: 100 2 3 400 17 0\n\
            UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
            UdpLite: 0 0 0 0 99 0\n";
        assert_eq!(parse_udp_field(text, "RcvbufErrors"), Some(17));
        assert_eq!(parse_udp_field(text, "InDatagrams"), Some(100));
        assert_eq!(parse_udp_field(text, "Missing"), None);
        assert_eq!(parse_udp_field("Ip: 1\n", "RcvbufErrors"), None);
    }
}
