import Glibc
import COpenSSL
import CGatewayShims
import GatewayConfig

/// One host block made ready for handshakes: its SSL_CTX (certificates, trust store,
/// session id context) and its effective policy. Immutable once built.
public final class TLSHost: @unchecked Sendable {
    // @unchecked: ctx and caNames are only read after init; OpenSSL reference-counts and locks them internally.
    public let config: HostConfig
    public let index: Int
    let ctx: OpaquePointer
    let caNames: OpaquePointer?   // STACK_OF(X509_NAME) for the CertificateRequest
    let verifyMode: Int32

    init(config: HostConfig, index: Int, ctx: OpaquePointer, caNames: OpaquePointer?) {
        self.config = config; self.index = index; self.ctx = ctx; self.caNames = caNames
        verifyMode = Self.verifyMode(config.policy.clientAuth)
    }

    /// The allow-list check in OpenSSL's verify path, for a policy with `client_allow` only.
    static func verifyCallback(_ p: TLSPolicy) -> SSL_verify_cb? {
        p.clientAllow.isEmpty || p.clientAuth == .off ? nil : clientAllowVerifyCallback
    }

    static func verifyMode(_ auth: ClientAuth) -> Int32 {
        switch auth {
        case .off: SSL_VERIFY_NONE
        case .optional: SSL_VERIFY_PEER
        case .required: SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
        }
    }
    deinit {
        SSL_CTX_free(ctx)
        if let caNames { OPENSSL_sk_pop_free(caNames, x509NameFree) }
    }

    public var policy: TLSPolicy { config.policy }
    public var name: String { config.displayName }
}

/// A listening socket's TLS side: the context every connection starts from, whose
/// ClientHello callback picks the host and applies its policy.
public final class TLSListener: @unchecked Sendable {
    // @unchecked: immutable after init; the SSL_CTX is shared read-only by all worker threads.
    let ctx: OpaquePointer
    /// Unowned, no cycle: the contexts own their listeners, and the ClientHello callback's argument
    /// (this listener) stays alive because every SSL made from `ctx` belongs to a connection that
    /// holds the snapshot that owns the contexts.
    public unowned let contexts: TLSServerContexts
    public let defaultHost: TLSHost?
    public let unknownSNI: UnknownSNI

    /// The host whose policy the listener's own context already carries (the default host):
    /// a handshake for it needs no per-connection policy calls, the common case made cheap.
    let entryHost: TLSHost?

    init(contexts: TLSServerContexts, defaultHost: TLSHost?, unknownSNI: UnknownSNI) throws(TLSError) {
        if let defaultHost {
            let (built, _) = try TLSServerContexts.makeContext(defaultHost.config)
            guard let built else { throw TLSError("building the listener context for \(defaultHost.name)") }
            ctx = built.ctx
            if let names = built.caNames { OPENSSL_sk_pop_free(names, x509NameFree) }
        } else {
            var b = try ContextBuilder(server: true, location: SourceLocation(file: "", line: 0, column: 0))
            b.versions(min: .tls1_0, max: .tls1_3)
            ctx = b.ctx
        }
        entryHost = defaultHost
        // The session cache lives in the context the SSL was created from; the per-policy
        // session id context (carried by each host's SSL_CTX, and sealed into every ticket)
        // keeps sessions apart. While every host issues tickets, tickets carry resumption (TLS 1.3,
        // and TLS 1.2 clients that offer the extension; OpenSSL caches neither) and the cache would
        // only hold the sessions of TLS 1.2 clients without tickets: up to 20,000 of them, ~1 KB
        // each, that a flood of such handshakes fills. Off then, as nginx's default; a host with
        // `session_tickets off` resumes through it, so it stays on for such a configuration.
        _ = gw_ssl_ctx_set_session_cache_mode(ctx, Self.sessionCacheMode(hosts: contexts.hosts))
        _ = gw_ssl_ctx_sess_set_cache_size(ctx, 20_000)
        self.contexts = contexts
        self.defaultHost = defaultHost
        self.unknownSNI = unknownSNI
        SSL_CTX_set_client_hello_cb(ctx, clientHelloCallback, Unmanaged.passUnretained(self).toOpaque())
        // Tickets are sealed with the key ring attached to each SSL (TicketKeyRing), not a per-context random key.
        _ = gw_ssl_ctx_use_ticket_keys(ctx)
        // One TLS 1.3 ticket per handshake, not OpenSSL's two: a client resumes with one, and
        // each ticket costs an encryption, a MAC and a session serialisation.
        if defaultHost?.policy.sessionTickets ?? true { _ = SSL_CTX_set_num_tickets(ctx, 1) }
    }
    deinit { SSL_CTX_free(ctx) }

    /// SSL_SESS_CACHE_OFF while every host issues tickets, else the server-side cache.
    static func sessionCacheMode(hosts: [TLSHost]) -> Int {
        hosts.allSatisfy(\.policy.sessionTickets) ? gw_ssl_sess_cache_off() : gw_ssl_sess_cache_server()
    }

    /// The listener context's session cache mode and options (tests, `gateway check`).
    var sessionCacheMode: Int { gw_ssl_ctx_get_session_cache_mode(ctx) }
    var options: UInt64 { SSL_CTX_get_options(ctx) }
}

/// Every host's context, the name table, and one TLSListener per listen block.
public final class TLSServerContexts: @unchecked Sendable {
    // @unchecked: built once, then read-only.
    public let hosts: [TLSHost]
    public let table: HostTable
    public private(set) var listeners: [TLSListener] = []

    /// Builds every context; all certificate, key and cipher problems are reported together.
    public init(config: GatewayConfiguration) throws(ConfigLoadError) {
        var diagnostics: [ConfigDiagnostic] = []
        var hosts: [TLSHost] = []
        for (i, h) in config.hosts.enumerated() {
            do {
                let (host, d) = try Self.buildHost(h, index: i)
                diagnostics += d
                if let host { hosts.append(host) }
            } catch {
                diagnostics.append(ConfigDiagnostic(h.location, error.description))
            }
        }
        self.hosts = hosts
        table = HostTable(names: hosts.map(\.config.names))
        guard diagnostics.isEmpty else { throw ConfigLoadError(diagnostics) }
        for l in config.listeners {
            let def = l.defaultHost.flatMap { name in table.lookup(name).map { hosts[$0] } } ?? hosts.first
            do {
                listeners.append(try TLSListener(contexts: self, defaultHost: def, unknownSNI: l.unknownSNI))
            } catch {
                diagnostics.append(ConfigDiagnostic(l.location, error.description))
            }
        }
        guard diagnostics.isEmpty else { throw ConfigLoadError(diagnostics) }
    }

    public func host(named name: String) -> TLSHost? { table.lookup(name).map { hosts[$0] } }

    private static func buildHost(_ h: HostConfig, index: Int) throws(TLSError) -> (TLSHost?, [ConfigDiagnostic]) {
        let (built, diagnostics) = try makeContext(h)
        guard let built else { return (nil, diagnostics) }
        return (TLSHost(config: h, index: index, ctx: built.ctx, caNames: built.caNames), [])
    }

    /// A context carrying a host's whole policy: certificates, versions, ciphers, client
    /// verification, tickets, session id context. Built once per host at load.
    static func makeContext(_ h: HostConfig) throws(TLSError) -> ((ctx: OpaquePointer, caNames: OpaquePointer?)?, [ConfigDiagnostic]) {
        var b = try ContextBuilder(server: true, location: h.location)
        let p = h.policy
        b.versions(min: p.minVersion, max: p.maxVersion)
        b.ciphers(p.ciphers, suites: p.ciphersuites)
        for c in h.certificates { b.certificate(c) }
        var caNames: OpaquePointer?
        if let ca = p.clientCA {
            b.trust(caFile: ca, depth: p.verifyDepth, crl: p.crl)
            caNames = SSL_load_client_CA_file(ca)
            if let caNames { SSL_CTX_set_client_CA_list(b.ctx, SSL_dup_CA_list(caNames)) } else { b.fail("no CA names in \(ca)") }
        }
        b.groups(p.groups)
        SSL_CTX_set_verify(b.ctx, TLSHost.verifyMode(p.clientAuth), TLSHost.verifyCallback(p))
        SSL_CTX_set_verify_depth(b.ctx, Int32(p.verifyDepth))
        if !p.sessionTickets {
            _ = SSL_CTX_set_options(b.ctx, gw_ssl_op_no_ticket())
            _ = SSL_CTX_set_num_tickets(b.ctx, 0)
        }
        // One session id context per distinct policy: a session never resumes under another policy.
        // A digest of the policy's text, so it is the same in every process of a fleet and after a reload.
        var policyText = "\(p.minVersion)|\(p.maxVersion)|\(p.ciphers)|\(p.ciphersuites)|\(p.clientAuth)|\(p.clientCA ?? "")|\(p.verifyDepth)|\(p.crl ?? "")|\(p.sessionTickets)"
        // Appended only when set, so the contexts (and the sessions) of policies without them stay as they were.
        if !p.clientAllow.isEmpty { policyText += "|allow:" + p.clientAllow.map(\.description).joined(separator: ",") }
        if p.groups != TLSPolicy.defaultGroups { policyText += "|groups:" + p.groups }
        if !p.http2 { policyText += "|http2:off" }
        var sid = [UInt8](repeating: 0, count: 32)
        _ = SHA256(policyText, policyText.utf8.count, &sid)
        _ = SSL_CTX_set_session_id_context(b.ctx, sid, UInt32(sid.count))
        SSL_CTX_set_alpn_select_cb(b.ctx, alpnSelectCallback, nil)
        _ = gw_ssl_ctx_set_servername_callback(b.ctx, servernameCallback)
        guard b.diagnostics.isEmpty else {
            b.free()
            if let caNames { OPENSSL_sk_pop_free(caNames, x509NameFree) }
            return (nil, b.diagnostics)
        }
        return ((b.ctx, caNames), [])
    }
}

/// X509_NAME_free as a stack free function.
let x509NameFree = unsafeBitCast(X509_NAME_free as (@convention(c) (OpaquePointer?) -> Void), to: OPENSSL_sk_freefunc.self)

// MARK: - Callbacks (no captures: state arrives through the arg or ex-data pointers)

/// Picks the host for a ClientHello and applies its whole policy on the SSL before the
/// version and cipher are chosen (SSL_set_SSL_CTX alone would only swap the certificate).
private func clientHelloCallback(_ ssl: OpaquePointer?, _ alert: UnsafeMutablePointer<Int32>?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let ssl, let arg else { return gw_ssl_client_hello_error() }
    let listener = Unmanaged<TLSListener>.fromOpaque(arg).takeUnretainedValue()
    let session = TLSSession.from(ssl)
    var ext: UnsafePointer<UInt8>?
    var extLen = 0
    var host: TLSHost?
    if SSL_client_hello_get0_ext(ssl, 0, &ext, &extLen) == 1, let ext {
        switch ServerNameParser.parse(UnsafeRawBufferPointer(start: ext, count: extLen)) {
        case .malformed(let why, let kind):
            session?.failureReason = .malformedServerName(why)
            alert?.pointee = kind == .decodeError ? gw_ssl_ad_decode_error() : gw_ssl_ad_illegal_parameter()
            return gw_ssl_client_hello_error()
        case .name(let name):
            session?.serverName = name
            host = listener.contexts.host(named: name)
            if host == nil {
                guard listener.unknownSNI == .default else {
                    session?.failureReason = .unrecognizedName
                    alert?.pointee = gw_ssl_ad_unrecognized_name()
                    return gw_ssl_client_hello_error()
                }
                host = listener.defaultHost
            }
        }
    } else {
        host = listener.defaultHost
    }
    guard let host else {
        session?.failureReason = .noHost
        alert?.pointee = gw_ssl_ad_unrecognized_name()
        return gw_ssl_client_hello_error()
    }
    session?.host = host
    // The listener's context already carries the entry host's policy: nothing to re-apply
    // (SSL_set_cipher_list re-parses its string on every call, so skipping it matters).
    if host !== listener.entryHost { apply(host, to: ssl, entry: listener.entryHost) }
    return gw_ssl_client_hello_success()
}

private func apply(_ host: TLSHost, to ssl: OpaquePointer, entry: TLSHost?) {
    let p = host.policy
    _ = SSL_set_SSL_CTX(ssl, host.ctx)
    _ = gw_ssl_set_min_proto_version(ssl, Int32(p.minVersion.rawValue))
    _ = gw_ssl_set_max_proto_version(ssl, Int32(p.maxVersion.rawValue))
    SSL_set_security_level(ssl, p.minVersion < .tls1_2 ? 0 : 1)
    _ = SSL_set_cipher_list(ssl, p.ciphers)
    _ = SSL_set_ciphersuites(ssl, p.ciphersuites)
    SSL_set_verify(ssl, host.verifyMode, TLSHost.verifyCallback(p))
    // The SSL starts with the entry context's groups: a list is parsed only when it differs.
    if p.groups != (entry?.policy.groups ?? TLSPolicy.defaultGroups) { _ = gw_ssl_set1_groups_list(ssl, p.groups) }
    SSL_set_verify_depth(ssl, Int32(p.verifyDepth))
    if let names = host.caNames { SSL_set_client_CA_list(ssl, SSL_dup_CA_list(names)) }
    if !p.sessionTickets {
        _ = SSL_set_options(ssl, gw_ssl_op_no_ticket())
        _ = SSL_set_num_tickets(ssl, 0)
    }
}

/// Acknowledges the server name (the host was already chosen by the ClientHello callback).
private func servernameCallback(_ ssl: OpaquePointer?, _ alert: UnsafeMutablePointer<Int32>?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    gw_ssl_tlsext_err_ok()
}


/// ALPN after the ClientHello callback chose the host (SPEC §12): `h2` where the host allows it
/// and the cipher may carry it, else `http/1.1`; with no overlap the handshake goes on without ALPN.
private func alpnSelectCallback(_ ssl: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?, _ outLen: UnsafeMutablePointer<UInt8>?,
                                _ inp: UnsafePointer<UInt8>?, _ inLen: UInt32, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let ssl, let inp else { return gw_ssl_tlsext_err_noack() }
    let http2 = TLSSession.from(ssl)?.host?.policy.http2 == true && ALPN.cipherAllowsHTTP2(ssl)
    guard let (_, r) = ALPN.select(UnsafeRawBufferPointer(start: inp, count: Int(inLen)), http2: http2) else {
        return gw_ssl_tlsext_err_noack()
    }
    out?.pointee = inp + r.lowerBound
    outLen?.pointee = UInt8(r.count)
    return gw_ssl_tlsext_err_ok()
}
