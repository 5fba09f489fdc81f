//! T7 (test-plan): TLS on the command channel refuses every unauthorised subscriber before a
//! single application byte, logs one security event with the reason per refusal, and serves
//! authorised subscribers. A negative control runs the same refused clients against a publisher
//! with an accept-everything verifier and shows they are then *accepted* — the checks can fail.
//!
//! Every refused probe comes from its own loopback source address (127.0.0.x), so a
//! per-source failure throttle in the publisher cannot be what refuses it, and the good
//! subscriber on 127.0.0.1 is never throttled by the probes' failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
    UnixTime,
};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sttp_control::client::{Subscriber, SubscriberConfig};
use sttp_control::server::{PublisherConfig, Transport};
use sttp_control::tls::{
    fingerprint, ClientIdentity, ClientTrust, ServerTrust, TlsClientSettings, TlsServer,
    TlsServerSettings,
};
use sttp_proto::command::Command;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::opmodes::OperationalModes;
use sttp_tests::{check_points, collect_for, TestPublisher};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

// ---------------------------------------------------------------------------------------------
// Certificates

/// A key pair and the certificate made for it.
struct Made {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Made {
    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }
    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
    fn identity(&self) -> ClientIdentity {
        ClientIdentity {
            cert_chain: vec![self.der()],
            key: self.key_der(),
        }
    }
    fn fingerprint(&self) -> String {
        fingerprint::sha256_hex(self.cert.der())
    }
}

static SERIAL: AtomicU8 = AtomicU8::new(1);

fn params(cn: &str, from_days: i64, to_days: i64) -> CertificateParams {
    let mut p = CertificateParams::new(vec![cn.to_owned(), "localhost".into(), "127.0.0.1".into()])
        .unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    let now = OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(from_days);
    p.not_after = now + time::Duration::days(to_days);
    p.serial_number = Some(SerialNumber::from_slice(&[
        0x10,
        SERIAL.fetch_add(1, Ordering::Relaxed),
    ]));
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    p
}

fn self_signed(cn: &str, from_days: i64, to_days: i64) -> Made {
    let key = KeyPair::generate().unwrap();
    let cert = params(cn, from_days, to_days).self_signed(&key).unwrap();
    Made { cert, key }
}

fn new_ca(cn: &str) -> Made {
    let key = KeyPair::generate().unwrap();
    let mut p = params(cn, -1, 365);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.extended_key_usages = vec![];
    let cert = p.self_signed(&key).unwrap();
    Made { cert, key }
}

fn issued(ca: &Made, cn: &str, from_days: i64, to_days: i64) -> Made {
    let key = KeyPair::generate().unwrap();
    let cert = params(cn, from_days, to_days)
        .signed_by(&key, &ca.cert, &ca.key)
        .unwrap();
    Made { cert, key }
}

/// Issued by `ca` for TLS *server* use only (extended key usage serverAuth, no clientAuth).
fn issued_server_only(ca: &Made, cn: &str) -> Made {
    let key = KeyPair::generate().unwrap();
    let mut p = params(cn, -1, 30);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    Made { cert, key }
}

fn crl_revoking(ca: &Made, revoked: &Made) -> CertificateRevocationListDer<'static> {
    let now = OffsetDateTime::now_utc();
    let crl = CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(7),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: revoked.cert.params().serial_number.clone().unwrap(),
            revocation_time: now - time::Duration::hours(1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.cert, &ca.key)
    .unwrap();
    crl.der().clone()
}

/// Every certificate the tests use, made once per test.
struct Pki {
    publisher: Made,
    good: Made,
    expired: Made,
    not_yet_valid: Made,
    unpinned: Made,
    same_subject: Made,
    ca: Made,
    ca_good: Made,
    ca_expired: Made,
    ca_not_yet_valid: Made,
    ca_revoked: Made,
    ca_server_only: Made,
    rogue_issued: Made,
}

impl Pki {
    fn new() -> Self {
        let ca = new_ca("sttp test CA");
        let rogue_ca = new_ca("rogue CA");
        Self {
            publisher: self_signed("publisher", -1, 30),
            good: self_signed("sub-good", -1, 30),
            expired: self_signed("sub-expired", -30, -1),
            not_yet_valid: self_signed("sub-future", 2, 30),
            unpinned: self_signed("sub-stranger", -1, 30),
            same_subject: self_signed("sub-good", -1, 30),
            ca_good: issued(&ca, "ca-sub-good", -1, 30),
            ca_expired: issued(&ca, "ca-sub-expired", -30, -1),
            ca_not_yet_valid: issued(&ca, "ca-sub-future", 2, 30),
            ca_revoked: issued(&ca, "ca-sub-revoked", -1, 30),
            ca_server_only: issued_server_only(&ca, "ca-sub-server-only"),
            rogue_issued: issued(&rogue_ca, "sub-good", -1, 30),
            ca,
        }
    }

    /// Pinned mode: the good subscriber, plus the expired and not-yet-valid ones (so that
    /// their refusal can only come from the validity check, not from the pin set).
    fn pinned_server(&self) -> TlsServer {
        let fingerprints: HashSet<String> = [&self.good, &self.expired, &self.not_yet_valid]
            .iter()
            .map(|m| m.fingerprint())
            .collect();
        TlsServer::new(TlsServerSettings {
            cert_chain: vec![self.publisher.der()],
            key: self.publisher.key_der(),
            trust: ClientTrust::Pinned { fingerprints },
        })
        .unwrap()
    }

    fn ca_server(&self) -> TlsServer {
        TlsServer::new(TlsServerSettings {
            cert_chain: vec![self.publisher.der()],
            key: self.publisher.key_der(),
            trust: ClientTrust::Ca {
                roots: vec![self.ca.der()],
                crls: vec![crl_revoking(&self.ca, &self.ca_revoked)],
            },
        })
        .unwrap()
    }

    fn accept_any_server(&self) -> TlsServer {
        TlsServer::accept_any_client_for_tests(vec![self.publisher.der()], self.publisher.key_der())
            .unwrap()
    }

    /// A subscriber that pins this publisher and presents `who` (or no certificate).
    fn client(&self, who: Option<&Made>) -> TlsClientSettings {
        TlsClientSettings::new(
            who.map(Made::identity),
            ServerTrust::Pinned {
                fingerprints: [self.publisher.fingerprint()].into(),
            },
        )
        .unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Clients that misbehave on purpose

/// Trusts any publisher: the probes test the publisher, not the client's checks.
#[derive(Debug)]
struct TrustAnyServer;

impl ServerCertVerifier for TrustAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Presents `cert` (someone else's, e.g. the pinned one) but signs with `key`: the client
/// cannot prove it holds the certificate's key. `tls12` forces TLS 1.2 (its own signature path).
fn stolen_cert_client(cert: &Made, key: &Made, tls12: bool) -> TlsClientSettings {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing = provider
        .key_provider
        .load_private_key(key.key_der())
        .unwrap();
    let certified = rustls::sign::CertifiedKey::new(vec![cert.der()], signing);
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnyServer))
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    TlsClientSettings::from_client_config(Arc::new(config))
}

/// A TLS 1.2-only client presenting `who`.
fn tls12_client(who: &Made) -> TlsClientSettings {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustAnyServer))
            .with_client_auth_cert(vec![who.der()], who.key_der())
            .unwrap();
    TlsClientSettings::from_client_config(Arc::new(config))
}

/// The first STTP command of every session (wire.md §2), which a publisher answers.
fn modes_frame() -> Vec<u8> {
    let mut out = Vec::new();
    Command::DefineOperationalModes(OperationalModes(0xE000_0262))
        .encode(StringEncoding::Utf8, &mut out);
    out
}

/// A ClientHello record offering only `version` (no supported_versions extension): 0x0302 is
/// TLS 1.1, 0x0303 TLS 1.2. ECDHE-ECDSA/RSA suites, P-256/X25519 groups.
fn client_hello(version: u16) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    body.extend([0x5A; 32]); // random
    body.push(0); // session id
    let suites: [u16; 5] = [0xC02B, 0xC02F, 0xC009, 0xC013, 0x002F];
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]); // compression: null
    let mut ext = Vec::new();
    let mut push = |kind: u16, data: &[u8]| {
        ext.extend(kind.to_be_bytes());
        ext.extend((data.len() as u16).to_be_bytes());
        ext.extend(data);
    };
    push(0x000A, &[0, 4, 0x00, 0x1D, 0x00, 0x17]); // supported_groups
    push(0x000B, &[1, 0]); // ec_point_formats: uncompressed
    push(0x000D, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]); // signature_algorithms
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut handshake = vec![0x01];
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

// ---------------------------------------------------------------------------------------------
// Probing

static NEXT_SOURCE: AtomicU8 = AtomicU8::new(0);

/// A TCP connection from a loopback source address no other probe uses.
async fn connect_from_fresh_source(addr: SocketAddr) -> TcpStream {
    let n = 10 + NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % 240;
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, n], 0))).unwrap();
    tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// What a probing client got.
#[derive(Debug)]
struct Outcome {
    /// The client side considered the handshake complete (in TLS 1.3 a client learns of its
    /// own certificate's rejection only after that).
    handshake_done: bool,
    /// Application bytes the TLS layer yielded after the client sent DefineOperationalModes.
    app_bytes: usize,
}

/// Handshakes with `settings`, sends DefineOperationalModes and counts what comes back until
/// the first bytes, a close, an error or 3 s.
async fn probe(addr: SocketAddr, settings: &TlsClientSettings) -> Outcome {
    let tcp = connect_from_fresh_source(addr).await;
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        settings.connect(tcp, &addr.to_string()),
    )
    .await
    .expect("handshake ends in time");
    let Ok(mut tls) = connected else {
        return Outcome {
            handshake_done: false,
            app_bytes: 0,
        };
    };
    let _ = tls.write_all(&modes_frame()).await;
    let _ = tls.flush().await;
    let mut buf = [0u8; 4096];
    let app_bytes = match tokio::time::timeout(Duration::from_secs(3), tls.read(&mut buf)).await {
        Ok(Ok(n)) => n,
        Ok(Err(_)) | Err(_) => 0,
    };
    Outcome {
        handshake_done: true,
        app_bytes,
    }
}

/// Sends `bytes` over raw TCP and returns what arrives until a close, an error or `wait`.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut tcp = connect_from_fresh_source(addr).await;
    tcp.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

// ---------------------------------------------------------------------------------------------
// The publisher's log

/// Collects the publisher's log lines (the tests run on a current-thread runtime, so the
/// publisher's connection tasks log on this thread).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Log {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits (up to 3 s) for exactly one new refusal event with `reason` and, if given,
    /// `fingerprint`; lines before `from` were already checked.
    async fn expect_refusal(&self, from: usize, reason: &str, fingerprint: Option<&str>) -> usize {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let lines = self.lines();
            let refusals: Vec<&String> = lines[from.min(lines.len())..]
                .iter()
                .filter(|l| l.contains("TLS client refused"))
                .collect();
            if let Some(line) = refusals.first() {
                assert_eq!(refusals.len(), 1, "one event per failure: {refusals:#?}");
                assert!(
                    line.contains("WARN"),
                    "security events are warnings: {line}"
                );
                assert!(
                    line.contains("peer=127.0.0."),
                    "peer address logged: {line}"
                );
                assert!(
                    line.contains(&format!("reason={reason}"))
                        || line.contains(&format!("reason=\"{reason}")),
                    "expected reason {reason:?}: {line}"
                );
                if let Some(fp) = fingerprint {
                    assert!(
                        line.contains(&format!("fingerprint={fp}")),
                        "fingerprint {fp}: {line}"
                    );
                }
                return lines.len();
            }
            assert!(
                Instant::now() < deadline,
                "no refusal logged for {reason:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The real subscriber client, pinning the publisher and presenting the pinned certificate.
fn good_subscriber(addr: SocketAddr, pki: &Pki) -> Subscriber {
    let mut config = SubscriberConfig::new(addr.to_string());
    config.tls = Some(pki.client(Some(&pki.good)));
    config.reconnect.enabled = false;
    config.session.settings = SubscriptionSettings {
        filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
        ..SubscriptionSettings::default()
    };
    Subscriber::start(config)
}

async fn tls_publisher(server: TlsServer) -> TestPublisher {
    TestPublisher::start_with(
        PublisherConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            transport: Transport::Tls(Arc::new(server)),
            ..PublisherConfig::default()
        },
        30,
    )
    .await
}

/// A subscriber case: its name, the client, the reason the publisher must log and the
/// fingerprint it must log.
struct Case {
    name: &'static str,
    client: TlsClientSettings,
    reason: &'static str,
    fingerprint: Option<String>,
}

async fn assert_refused(addr: SocketAddr, log: &Log, cases: &[Case]) {
    let mut seen = log.lines().len();
    for case in cases {
        let out = probe(addr, &case.client).await;
        assert_eq!(
            out.app_bytes, 0,
            "{}: a refused peer got application bytes ({out:?})",
            case.name
        );
        seen = log
            .expect_refusal(seen, case.reason, case.fingerprint.as_deref())
            .await;
    }
}

async fn assert_accepted(addr: SocketAddr, cases: &[Case]) {
    for case in cases {
        let out = probe(addr, &case.client).await;
        assert!(
            out.handshake_done && out.app_bytes > 0,
            "negative control: {} must be accepted by the accept-everything publisher ({out:?})",
            case.name
        );
    }
}

fn pinned_mode_cases(pki: &Pki) -> Vec<Case> {
    let fp = |m: &Made| Some(m.fingerprint());
    vec![
        Case {
            name: "no client certificate",
            client: pki.client(None),
            reason: "no client certificate",
            fingerprint: None,
        },
        Case {
            name: "certificate from an unknown CA",
            client: pki.client(Some(&pki.rogue_issued)),
            reason: "certificate not pinned",
            fingerprint: fp(&pki.rogue_issued),
        },
        Case {
            name: "self-signed, not pinned",
            client: pki.client(Some(&pki.unpinned)),
            reason: "certificate not pinned",
            fingerprint: fp(&pki.unpinned),
        },
        Case {
            name: "pinned subject, different key",
            client: pki.client(Some(&pki.same_subject)),
            reason: "certificate not pinned",
            fingerprint: fp(&pki.same_subject),
        },
        Case {
            name: "pinned certificate without its key (TLS 1.3)",
            client: stolen_cert_client(&pki.good, &pki.unpinned, false),
            reason: "bad signature",
            fingerprint: fp(&pki.good),
        },
        Case {
            name: "pinned certificate without its key (TLS 1.2)",
            client: stolen_cert_client(&pki.good, &pki.unpinned, true),
            reason: "bad signature",
            fingerprint: fp(&pki.good),
        },
        Case {
            name: "pinned but expired",
            client: pki.client(Some(&pki.expired)),
            reason: "expired",
            fingerprint: fp(&pki.expired),
        },
        Case {
            name: "pinned but not yet valid",
            client: pki.client(Some(&pki.not_yet_valid)),
            reason: "not yet valid",
            fingerprint: fp(&pki.not_yet_valid),
        },
    ]
}

fn ca_mode_cases(pki: &Pki) -> Vec<Case> {
    let fp = |m: &Made| Some(m.fingerprint());
    vec![
        Case {
            name: "no client certificate",
            client: pki.client(None),
            reason: "no client certificate",
            fingerprint: None,
        },
        Case {
            name: "certificate from an unknown CA",
            client: pki.client(Some(&pki.rogue_issued)),
            reason: "unknown CA",
            fingerprint: fp(&pki.rogue_issued),
        },
        Case {
            name: "self-signed",
            client: pki.client(Some(&pki.unpinned)),
            reason: "unknown CA",
            fingerprint: fp(&pki.unpinned),
        },
        Case {
            name: "CA-issued certificate without its key",
            client: stolen_cert_client(&pki.ca_good, &pki.unpinned, false),
            reason: "bad signature",
            fingerprint: fp(&pki.ca_good),
        },
        Case {
            name: "expired",
            client: pki.client(Some(&pki.ca_expired)),
            reason: "expired",
            fingerprint: fp(&pki.ca_expired),
        },
        Case {
            name: "not yet valid",
            client: pki.client(Some(&pki.ca_not_yet_valid)),
            reason: "not yet valid",
            fingerprint: fp(&pki.ca_not_yet_valid),
        },
        Case {
            name: "wrong key usage (server-only certificate)",
            client: pki.client(Some(&pki.ca_server_only)),
            reason: "wrong key usage",
            fingerprint: fp(&pki.ca_server_only),
        },
        Case {
            name: "revoked",
            client: pki.client(Some(&pki.ca_revoked)),
            reason: "revoked",
            fingerprint: fp(&pki.ca_revoked),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn pinned_mode_serves_the_pinned_subscriber_and_refuses_every_other() {
    let log = Log::default();
    let _guard = log.install();
    let pki = Pki::new();
    let mut tp = tls_publisher(pki.pinned_server()).await;
    let addr = tp.publisher().local_addr();
    tp.stream(Duration::from_millis(10), 0);

    // The pinned subscriber, through the real client, receives exactly what was published.
    let mut sub = good_subscriber(addr, &pki);
    let mut got = Vec::new();
    collect_for(&mut sub, Duration::from_secs(2), &mut got).await;
    assert!(
        !got.is_empty(),
        "the pinned subscriber received data: {:#?}",
        log.lines()
    );
    check_points(&tp, &got).unwrap();
    let fp = pki.good.fingerprint();
    assert!(
        log.lines()
            .iter()
            .any(|l| l.contains("TLS client authenticated")
                && l.contains(&format!("fingerprint={fp}"))
                && l.contains("cn=sub-good")),
        "success is logged with fingerprint and CN"
    );
    // TLS 1.2 works too.
    let out = probe(addr, &tls12_client(&pki.good)).await;
    assert!(out.app_bytes > 0, "TLS 1.2 pinned client accepted: {out:?}");

    assert_refused(addr, &log, &pinned_mode_cases(&pki)).await;

    // The subscriber was never disturbed.
    let mut more = Vec::new();
    collect_for(&mut sub, Duration::from_millis(500), &mut more).await;
    assert!(
        !more.is_empty(),
        "the pinned subscriber still receives data"
    );
    sub.stop().await;
    tp.shutdown().await;
}

#[tokio::test]
async fn ca_mode_validates_the_chain_and_honours_the_crl() {
    let log = Log::default();
    let _guard = log.install();
    let pki = Pki::new();
    let tp = tls_publisher(pki.ca_server()).await;
    let addr = tp.publisher().local_addr();
    let out = probe(addr, &pki.client(Some(&pki.ca_good))).await;
    assert!(
        out.app_bytes > 0,
        "a CA-issued certificate is accepted: {out:?}"
    );
    let out = probe(addr, &tls12_client(&pki.ca_good)).await;
    assert!(out.app_bytes > 0, "also over TLS 1.2: {out:?}");
    assert_refused(addr, &log, &ca_mode_cases(&pki)).await;
    tp.shutdown().await;
}

#[tokio::test]
async fn negative_control_accept_everything_publisher_accepts_the_refused_clients() {
    let pki = Pki::new();
    let tp = tls_publisher(pki.accept_any_server()).await;
    let addr = tp.publisher().local_addr();
    assert_accepted(addr, &pinned_mode_cases(&pki)).await;
    assert_accepted(addr, &ca_mode_cases(&pki)).await;
    tp.shutdown().await;
}

#[tokio::test]
async fn plaintext_and_old_tls_get_no_sttp_bytes() {
    let log = Log::default();
    let _guard = log.install();
    let pki = Pki::new();
    let tls = tls_publisher(pki.pinned_server()).await;
    let plain = TestPublisher::start(30).await;
    let tls_addr = tls.publisher().local_addr();
    let wait = Duration::from_secs(2);

    // Plaintext STTP: the plain publisher answers it (control), the TLS port says nothing.
    let answer = raw_exchange(plain.publisher().local_addr(), &modes_frame(), wait).await;
    assert!(!answer.is_empty(), "control: a plain publisher answers");
    let seen = log.lines().len();
    let answer = raw_exchange(tls_addr, &modes_frame(), wait).await;
    assert!(
        answer.is_empty(),
        "plaintext to the TLS port got {answer:02X?}"
    );
    let seen = log.expect_refusal(seen, "not TLS", None).await;

    // A TLS 1.2 hello gets a ServerHello (control); a TLS 1.1 hello only an alert or a close.
    let answer = raw_exchange(tls_addr, &client_hello(0x0303), wait).await;
    assert_eq!(
        answer.first(),
        Some(&0x16),
        "control: TLS 1.2 hello answered with a handshake record"
    );
    // (The control client then hung up mid-handshake, which is logged too.)
    let seen = log
        .expect_refusal(
            seen,
            "peer closed the connection during the handshake",
            None,
        )
        .await;
    let answer = raw_exchange(tls_addr, &client_hello(0x0302), wait).await;
    assert!(
        answer.is_empty() || (answer[0] == 0x15 && answer.len() <= 7),
        "a TLS 1.1 hello must get an alert or nothing, got {answer:02X?}"
    );
    log.expect_refusal(seen, "protocol version", None).await;
    tls.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test]
async fn stalled_handshakes_time_out_and_garbage_does_not_hurt_a_good_subscriber() {
    let log = Log::default();
    let _guard = log.install();
    let pki = Pki::new();
    let timeout = Duration::from_millis(300);
    let mut tp = tls_publisher(pki.pinned_server().with_handshake_timeout(timeout)).await;
    let addr = tp.publisher().local_addr();
    tp.stream(Duration::from_millis(10), 0);
    let mut sub = good_subscriber(addr, &pki);
    let mut got = Vec::new();
    collect_for(&mut sub, Duration::from_secs(1), &mut got).await;
    assert!(!got.is_empty());

    // Half a ClientHello, then silence: closed by the handshake timeout.
    let hello = client_hello(0x0303);
    let mut tcp = connect_from_fresh_source(addr).await;
    let started = Instant::now();
    tcp.write_all(&hello[..hello.len() / 2]).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "half-open handshake closed: {closed:?}"
    );
    assert!(
        started.elapsed() >= timeout - Duration::from_millis(50),
        "closed by the timeout, not at once"
    );
    let seen = log.expect_refusal(0, "handshake timeout", None).await;

    // Valid TLS, then garbage inside the TLS stream: the session closes the connection.
    let tcp = connect_from_fresh_source(addr).await;
    let mut tls = pki
        .client(Some(&pki.good))
        .connect(tcp, &addr.to_string())
        .await
        .unwrap();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = tls.write_all(&garbage).await;
    let _ = tls.flush().await;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "garbage inside TLS gets the connection closed");

    // Valid TLS, then garbage under it on the raw socket: rustls refuses the records.
    let tcp = connect_from_fresh_source(addr).await;
    let mut tls = pki
        .client(Some(&pki.good))
        .connect(tcp, &addr.to_string())
        .await
        .unwrap();
    tls.get_mut().0.write_all(&garbage).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "raw garbage after the handshake gets the connection closed"
    );
    let _ = seen;

    // The good subscriber kept receiving, without a disconnect (collect_for panics on one).
    let mut more = Vec::new();
    collect_for(&mut sub, Duration::from_millis(700), &mut more).await;
    assert!(!more.is_empty(), "the good subscriber still receives data");
    check_points(&tp, &more).unwrap();
    sub.stop().await;
    tp.shutdown().await;
}
