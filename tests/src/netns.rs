//! A private three-namespace network for fault tests (test-plan.md §3.3): a publisher namespace,
//! a router namespace and a subscriber namespace joined by two veth pairs, with loss injected by
//! nftables rules in the router's **forward** hook.
//!
//! Why a router: `netem` does not exist on these machines, and dropping on the sender's own
//! output hook makes `sendto` fail with `EPERM` instead of losing the datagram silently
//! (test-plan.md §3.2). Dropping while forwarding is the closest thing to a lossy link.
//!
//! Addresses come from the RFC 2544 benchmarking range 198.18.0.0/15 and exist only inside the
//! namespaces this module creates. Everything is removed on drop (processes still running in the
//! namespaces are killed by pid first), so a failing test leaves nothing behind.
//!
//! The host-loss guard (test-plan.md §2.1) reads `/proc/net/snmp` inside each namespace: a
//! non-zero `RcvbufErrors`/`SndbufErrors` delta means the *host* lost datagrams, which must never
//! be counted as injected loss.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The publisher's address (namespace [`Role::Pub`]).
pub const PUB_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// The router's address on the publisher side.
pub const ROUTER_PUB_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The router's address on the subscriber side.
pub const ROUTER_SUB_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 1);
/// The subscriber's address (namespace [`Role::Sub`]).
pub const SUB_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 2);

/// nft table and chain holding the fault rules in the router ('fwd' is an nft keyword).
const TABLE: &str = "fault";
const CHAIN: &str = "fchain";

/// One of the three namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Pub,
    Router,
    Sub,
}

impl Role {
    const ALL: [Role; 3] = [Role::Pub, Role::Router, Role::Sub];

    fn short(self) -> &'static str {
        match self {
            Role::Pub => "pub",
            Role::Router => "rtr",
            Role::Sub => "sub",
        }
    }
}

/// UDP counters of one namespace, from the `Udp:` lines of `/proc/net/snmp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpSnmp {
    pub in_datagrams: u64,
    pub no_ports: u64,
    pub in_errors: u64,
    pub out_datagrams: u64,
    pub rcvbuf_errors: u64,
    pub sndbuf_errors: u64,
}

impl UdpSnmp {
    /// Parses the text of `/proc/net/snmp`: the `Udp:` header line names the columns of the
    /// `Udp:` value line that follows it.
    pub fn parse(snmp: &str) -> Result<Self> {
        let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let header = lines.next().ok_or_else(|| anyhow!("no Udp: header line"))?;
        let values = lines.next().ok_or_else(|| anyhow!("no Udp: value line"))?;
        let map: HashMap<&str, u64> = header
            .split_whitespace()
            .skip(1)
            .zip(values.split_whitespace().skip(1))
            .map(|(k, v)| Ok((k, v.parse::<u64>().with_context(|| format!("Udp {k}={v}"))?)))
            .collect::<Result<_>>()?;
        let get = |k: &str| {
            map.get(k)
                .copied()
                .ok_or_else(|| anyhow!("/proc/net/snmp has no Udp {k}"))
        };
        Ok(Self {
            in_datagrams: get("InDatagrams")?,
            no_ports: get("NoPorts")?,
            in_errors: get("InErrors")?,
            out_datagrams: get("OutDatagrams")?,
            rcvbuf_errors: get("RcvbufErrors")?,
            sndbuf_errors: get("SndbufErrors")?,
        })
    }
}

/// Host-drop counters of every namespace at one moment.
#[derive(Debug, Clone, Default)]
pub struct HostDrops(pub HashMap<Role, UdpSnmp>);

impl HostDrops {
    /// Buffer drops (`RcvbufErrors` + `SndbufErrors`) in any namespace since `before`.
    pub fn buffer_drops_since(&self, before: &HostDrops) -> u64 {
        self.0
            .iter()
            .map(|(role, now)| {
                let b = before.0.get(role).copied().unwrap_or_default();
                now.rcvbuf_errors.saturating_sub(b.rcvbuf_errors)
                    + now.sndbuf_errors.saturating_sub(b.sndbuf_errors)
            })
            .sum()
    }
}

/// The statistical tolerance of test-plan.md §2.1: a fraction measured over `m` independent
/// samples with expected value `q` must satisfy |measured − q| ≤ 3·√(q(1−q)/m). Returns the
/// bound.
pub fn three_sigma(q: f64, m: u64) -> f64 {
    3.0 * (q * (1.0 - q) / m.max(1) as f64).sqrt()
}

/// Checks that `lost` of `m` matches the injected probability `q` within [`three_sigma`] (for
/// q = 0: exactly 0 lost). The message says seed-independent facts: M, q, measured and bound.
pub fn loss_matches(lost: u64, m: u64, q: f64) -> std::result::Result<String, String> {
    let measured = lost as f64 / m.max(1) as f64;
    let bound = three_sigma(q, m);
    let line = format!("M={m} q={q} lost={lost} measured={measured:.5} 3σ={bound:.5}");
    if (measured - q).abs() <= bound {
        Ok(line)
    } else {
        Err(line)
    }
}

/// Whether this process can build namespaces: root, and `ip netns add` works.
fn can_build() -> std::result::Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("?");
    if euid != "0" {
        return Err(format!("not root (effective uid {euid})"));
    }
    static PROBE: AtomicU32 = AtomicU32::new(0);
    let probe = format!(
        "stprobe-{}-{}",
        std::process::id(),
        PROBE.fetch_add(1, Ordering::Relaxed)
    );
    let out = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip netns add` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    Ok(())
}

/// Runs `ip` (or any command) and fails with its stderr if it does not succeed.
fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The pub — router — sub topology. Dropping it deletes the namespaces.
#[derive(Debug)]
pub struct Topology {
    names: HashMap<Role, String>,
}

impl Topology {
    /// Builds the topology, or returns `None` after printing why this machine cannot (not root,
    /// or `ip netns` impossible). With `CI=true` or `STTP_REQUIRE_NETNS=1` that is a failure
    /// instead: CI must never pass a fault test it did not run. A missing `nft` is always a
    /// failure, with the package to install named.
    pub fn create() -> Option<Self> {
        if let Err(why) = can_build() {
            let required = std::env::var("CI").is_ok_and(|v| v == "true")
                || std::env::var("STTP_REQUIRE_NETNS").is_ok_and(|v| v == "1");
            if required {
                panic!("network namespaces are required here but unavailable: {why}");
            }
            eprintln!("SKIPPED: network-namespace fault test: {why}");
            return None;
        }
        if Command::new("nft").arg("--version").output().is_err() {
            panic!("`nft` is not installed: run `apt-get install -y nftables` (test-plan.md §3.2)");
        }
        match Self::build() {
            Ok(t) => Some(t),
            Err(e) => panic!("building the test namespaces failed: {e:#}"),
        }
    }

    fn build() -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let names: HashMap<Role, String> = Role::ALL
            .iter()
            .map(|r| (*r, format!("st{}-{pid}-{n}", r.short())))
            .collect();
        // From here on, Drop cleans up whatever was created.
        let topo = Self { names };
        for role in Role::ALL {
            run("ip", &["netns", "add", topo.name(role)])?;
            run("ip", &["-n", topo.name(role), "link", "set", "lo", "up"])?;
        }
        let (p, r, s) = (
            topo.name(Role::Pub),
            topo.name(Role::Router),
            topo.name(Role::Sub),
        );
        // Veth ends are created directly inside the namespaces, so parallel topologies never
        // collide on interface names in the root namespace.
        run(
            "ip",
            &[
                "link", "add", "stp0", "netns", p, "type", "veth", "peer", "name", "str0", "netns",
                r,
            ],
        )?;
        run(
            "ip",
            &[
                "link", "add", "sts0", "netns", s, "type", "veth", "peer", "name", "str1", "netns",
                r,
            ],
        )?;
        let cidr = |a: Ipv4Addr| format!("{a}/24");
        run(
            "ip",
            &["-n", p, "addr", "add", &cidr(PUB_ADDR), "dev", "stp0"],
        )?;
        run("ip", &["-n", p, "link", "set", "stp0", "up"])?;
        run(
            "ip",
            &[
                "-n",
                p,
                "route",
                "add",
                "default",
                "via",
                &ROUTER_PUB_ADDR.to_string(),
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                r,
                "addr",
                "add",
                &cidr(ROUTER_PUB_ADDR),
                "dev",
                "str0",
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                r,
                "addr",
                "add",
                &cidr(ROUTER_SUB_ADDR),
                "dev",
                "str1",
            ],
        )?;
        run("ip", &["-n", r, "link", "set", "str0", "up"])?;
        run("ip", &["-n", r, "link", "set", "str1", "up"])?;
        run(
            "ip",
            &["netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
        )?;
        run(
            "ip",
            &["-n", s, "addr", "add", &cidr(SUB_ADDR), "dev", "sts0"],
        )?;
        run("ip", &["-n", s, "link", "set", "sts0", "up"])?;
        run(
            "ip",
            &[
                "-n",
                s,
                "route",
                "add",
                "default",
                "via",
                &ROUTER_SUB_ADDR.to_string(),
            ],
        )?;
        // One datagram per frame on every link, as on a real wire: without this a UDP GSO send
        // crosses the veth and the router as one super-packet, so an nft rule would count and
        // drop whole GSO trains instead of single datagrams.
        for (ns, dev) in [(p, "stp0"), (r, "str0"), (r, "str1"), (s, "sts0")] {
            run("ip", &["-n", ns, "link", "set", dev, "gso_max_segs", "1"])?;
        }
        let table = format!(
            "add table inet {TABLE}; add chain inet {TABLE} {CHAIN} \
             {{ type filter hook forward priority 0; policy accept; }}"
        );
        run("ip", &["netns", "exec", r, "nft", &table])?;
        topo.wait_reachable()?;
        Ok(topo)
    }

    /// Waits until all four veth ends report operational state UP (they take a moment after
    /// `link set up`; datagrams sent before that would be lost outside any counter).
    fn wait_reachable(&self) -> Result<()> {
        let ends = [
            (Role::Pub, "stp0"),
            (Role::Router, "str0"),
            (Role::Router, "str1"),
            (Role::Sub, "sts0"),
        ];
        let deadline = Instant::now() + Duration::from_secs(5);
        for (role, dev) in ends {
            loop {
                let out = run(
                    "ip",
                    &["-n", self.name(role), "-o", "link", "show", "dev", dev],
                )?;
                if out.contains("state UP") {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{dev} in {} not up after 5 s: {out}", self.name(role));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The namespace name of `role`.
    pub fn name(&self, role: Role) -> &str {
        self.names.get(&role).map(String::as_str).unwrap_or("")
    }

    /// A command running `program` inside the namespace of `role` (`ip netns exec` execs the
    /// program, so the child's pid is the program's own).
    pub fn command(&self, role: Role, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.name(role)]).arg(program);
        c
    }

    /// Adds `<matcher> counter drop comment "<name>"` to the router's forward chain, e.g.
    /// `udp dport 9600 numgen random mod 1000 < 50`.
    pub fn add_drop(&self, name: &str, matcher: &str) -> Result<()> {
        let rule =
            format!("add rule inet {TABLE} {CHAIN} {matcher} counter drop comment \"{name}\"");
        run(
            "ip",
            &["netns", "exec", self.name(Role::Router), "nft", &rule],
        )?;
        Ok(())
    }

    /// Like [`Topology::add_drop`], but placed right after the rule at `index` (0 = the first),
    /// so rules further down no longer see what it drops.
    pub fn add_drop_after(&self, index: usize, name: &str, matcher: &str) -> Result<()> {
        let rule = format!(
            "add rule inet {TABLE} {CHAIN} index {index} {matcher} counter drop comment \"{name}\""
        );
        run(
            "ip",
            &["netns", "exec", self.name(Role::Router), "nft", &rule],
        )?;
        Ok(())
    }

    /// Adds `<matcher> counter comment "<name>"` (count only, no verdict) to the router's
    /// forward chain: placed before a drop rule, it counts everything offered to the link.
    pub fn add_counter(&self, name: &str, matcher: &str) -> Result<()> {
        let rule = format!("add rule inet {TABLE} {CHAIN} {matcher} counter comment \"{name}\"");
        run(
            "ip",
            &["netns", "exec", self.name(Role::Router), "nft", &rule],
        )?;
        Ok(())
    }

    /// Removes every fault rule (the chain stays, with policy accept).
    pub fn flush_rules(&self) -> Result<()> {
        let flush = format!("flush chain inet {TABLE} {CHAIN}");
        run(
            "ip",
            &["netns", "exec", self.name(Role::Router), "nft", &flush],
        )?;
        Ok(())
    }

    /// Packets dropped so far by each named rule: the router's nft counters, the ground truth of
    /// injected loss.
    pub fn drop_counts(&self) -> Result<HashMap<String, u64>> {
        let json = run(
            "ip",
            &[
                "netns",
                "exec",
                self.name(Role::Router),
                "nft",
                "-j",
                "list",
                "chain",
                "inet",
                TABLE,
                CHAIN,
            ],
        )?;
        parse_rule_counters(&json)
    }

    /// `/proc/net/snmp` UDP counters inside the namespace of `role`.
    pub fn udp_snmp(&self, role: Role) -> Result<UdpSnmp> {
        let text = run(
            "ip",
            &["netns", "exec", self.name(role), "cat", "/proc/net/snmp"],
        )?;
        UdpSnmp::parse(&text).with_context(|| format!("namespace {}", self.name(role)))
    }

    /// The host-loss guard: UDP counters of the publisher and subscriber namespaces.
    pub fn host_drops(&self) -> Result<HostDrops> {
        let mut all = HashMap::new();
        for role in [Role::Pub, Role::Sub] {
            all.insert(role, self.udp_snmp(role)?);
        }
        Ok(HostDrops(all))
    }
}

/// Packet counters of the commented rules in `nft -j list chain` output.
pub fn parse_rule_counters(json: &str) -> Result<HashMap<String, u64>> {
    let v: serde_json::Value = serde_json::from_str(json).context("nft -j output is not JSON")?;
    let items = v
        .get("nftables")
        .and_then(|n| n.as_array())
        .ok_or_else(|| anyhow!("nft -j output has no nftables array"))?;
    let mut out = HashMap::new();
    for item in items {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        let Some(name) = rule.get("comment").and_then(|c| c.as_str()) else {
            continue;
        };
        let packets = rule
            .get("expr")
            .and_then(|e| e.as_array())
            .and_then(|e| {
                e.iter()
                    .find_map(|x| x.get("counter")?.get("packets")?.as_u64())
            })
            .ok_or_else(|| anyhow!("rule {name} has no counter"))?;
        out.insert(name.to_owned(), packets);
    }
    Ok(out)
}

impl Drop for Topology {
    fn drop(&mut self) {
        for role in Role::ALL {
            let name = self.name(role).to_owned();
            // Processes a failed test left behind in our namespace: kill them by pid.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &name]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// A child process with a hard deadline, killed (and reaped) on drop.
#[derive(Debug)]
pub struct Child {
    child: std::process::Child,
    deadline: Instant,
    what: String,
}

impl Child {
    /// Spawns `cmd`; it must exit within `limit`.
    pub fn spawn(mut cmd: Command, what: &str, limit: Duration) -> Result<Self> {
        let child = cmd.spawn().with_context(|| format!("spawning {what}"))?;
        Ok(Self {
            child,
            deadline: Instant::now() + limit,
            what: what.to_owned(),
        })
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its standard output, if piped.
    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Waits for the exit; past the deadline the child is killed and this fails.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > self.deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "{} did not exit before its deadline and was killed",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the child to stop (SIGTERM), then waits as [`Child::wait`].
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        if self.child.try_wait()?.is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
        }
        self.wait()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_columns_are_found_by_name() {
        let text = "Ip: Forwarding\nIp: 1\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors\n\
                    Udp: 10 2 3 40 5 6 0\nUdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdpLite: 0 0 0 0 0 0\n";
        let s = UdpSnmp::parse(text).unwrap();
        assert_eq!(
            s,
            UdpSnmp {
                in_datagrams: 10,
                no_ports: 2,
                in_errors: 3,
                out_datagrams: 40,
                rcvbuf_errors: 5,
                sndbuf_errors: 6
            }
        );
        assert!(UdpSnmp::parse("Udp: InDatagrams\nUdp: x\n").is_err());
    }

    #[test]
    fn host_drop_delta_counts_both_buffers() {
        let mk = |r, s| UdpSnmp {
            rcvbuf_errors: r,
            sndbuf_errors: s,
            ..UdpSnmp::default()
        };
        let before = HostDrops([(Role::Pub, mk(1, 1)), (Role::Sub, mk(5, 0))].into());
        let after = HostDrops([(Role::Pub, mk(1, 3)), (Role::Sub, mk(9, 0))].into());
        assert_eq!(after.buffer_drops_since(&before), 6);
        assert_eq!(before.buffer_drops_since(&before), 0);
    }

    #[test]
    fn three_sigma_accepts_and_rejects() {
        assert!(loss_matches(0, 20_000, 0.0).is_ok());
        assert!(loss_matches(1, 20_000, 0.0).is_err());
        // 3σ at q = 5 %, M = 20 000 is 0.46 %.
        assert!(loss_matches(1_042, 20_000, 0.05).is_ok());
        assert!(loss_matches(1_100, 20_000, 0.05).is_err());
        assert!(loss_matches(0, 20_000, 0.2).is_err());
    }

    #[test]
    fn rule_counters_are_read_by_comment() {
        let json = r#"{"nftables":[{"metainfo":{}},{"chain":{"name":"fchain"}},
            {"rule":{"chain":"fchain","comment":"loss","expr":[{"match":{}},{"counter":{"packets":42,"bytes":9}},{"drop":null}]}},
            {"rule":{"chain":"fchain","expr":[{"counter":{"packets":1,"bytes":1}}]}}]}"#;
        let c = parse_rule_counters(json).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c["loss"], 42);
    }
}
