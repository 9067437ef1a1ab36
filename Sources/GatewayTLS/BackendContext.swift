import COpenSSL
import GatewaySystem
import CGatewayShims
import GatewayConfig
import Glibc

/// A backend's client-side TLS settings as one SSL_CTX: floor and ceiling, ciphers, trust
/// (its CA file or the system store), client certificate, verification on by default; and the
/// ALPN list its `protocol` calls for.
public final class TLSBackendContext: @unchecked Sendable {
    // @unchecked: immutable after init; the SSL_CTX is shared read-only across worker threads.
    let ctx: OpaquePointer
    public let settings: BackendTLS
    /// What the connections speak: `h2` offers only `h2` by ALPN (SPEC §12: a backend that does
    /// not select it is a 502, never a silent HTTP/1.1), `http/1.1` only `http/1.1`.
    public let `protocol`: BackendProtocol
    /// The ALPN list in wire form (length-prefixed names).
    let alpn: [UInt8]

    /// The reason a handshake that ended well still cannot serve this backend (logged, and the
    /// exchange answers 502), or nil: an `h2` backend whose server did not select `h2`.
    public func protocolMismatch(_ session: TLSSession) -> String? {
        `protocol` == .h2 && !session.negotiatedHTTP2 ? "backend did not negotiate h2" : nil
    }

    public init(_ t: BackendTLS, protocol: BackendProtocol = .http11, location: SourceLocation) throws(ConfigLoadError) {
        var b: ContextBuilder
        do { b = try ContextBuilder(server: false, location: location) } catch {
            throw ConfigLoadError([ConfigDiagnostic(location, error.description)])
        }
        b.versions(min: t.minVersion, max: t.maxVersion)
        b.ciphers(t.ciphers, suites: t.ciphersuites)
        switch t.ca {
        case .system:
            if SSL_CTX_set_default_verify_paths(b.ctx) != 1 { b.fail("cannot load the system CA store") }
        case .file(let path):
            b.trust(caFile: path, depth: 9, crl: nil)
        }
        if let cert = t.clientCertificate {
            let password = t.keyPasswordFile.flatMap(Self.readPassword)
            b.certificate(cert, password: password)
        }
        SSL_CTX_set_verify(b.ctx, t.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        _ = gw_ssl_ctx_set_session_cache_mode(b.ctx, t.sessionReuse ? gw_ssl_sess_cache_client() : gw_ssl_sess_cache_off())
        guard b.diagnostics.isEmpty else { b.free(); throw ConfigLoadError(b.diagnostics) }
        ctx = b.ctx
        settings = t
        self.protocol = `protocol`
        let name = Array(`protocol`.rawValue.utf8)
        alpn = [UInt8(name.count)] + name
    }
    deinit { SSL_CTX_free(ctx) }

    /// The name to send as SNI and to verify for a server: `server_name`, else the URL host.
    /// An IP literal is verified as an IP and sent without SNI.
    func prepare(_ ssl: OpaquePointer, urlHost: String) {
        let name = settings.serverName ?? urlHost
        let isIP = name.contains(":") || name.split(separator: ".").allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
        _ = SSL_set_alpn_protos(ssl, alpn, UInt32(alpn.count))
        if isIP {
            if settings.verify { _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) }
        } else {
            _ = gw_ssl_set_tlsext_host_name(ssl, name)
            if settings.verify { _ = SSL_set1_host(ssl, name) }
        }
    }

    private static func readPassword(_ path: String) -> String? {
        Files.firstLine(path).map { String(decoding: $0, as: UTF8.self) }
    }
}
