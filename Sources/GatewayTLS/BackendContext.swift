import COpenSSL
import GatewaySystem
import CGatewayShims
import GatewayConfig
import Glibc

/// A backend's client-side TLS settings as one SSL_CTX: floor and ceiling, ciphers, trust
/// (its CA file or the system store), client certificate, verification on by default.
public final class TLSBackendContext: @unchecked Sendable {
    // @unchecked: immutable after init; the SSL_CTX is shared read-only across worker threads.
    let ctx: OpaquePointer
    public let settings: BackendTLS

    public init(_ t: BackendTLS, location: SourceLocation) throws(ConfigLoadError) {
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
    }
    deinit { SSL_CTX_free(ctx) }

    /// The name to send as SNI and to verify for a server: `server_name`, else the URL host.
    /// An IP literal is verified as an IP and sent without SNI.
    func prepare(_ ssl: OpaquePointer, urlHost: String) {
        let name = settings.serverName ?? urlHost
        let isIP = name.contains(":") || name.split(separator: ".").allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
        let alpn: [UInt8] = [8] + Array("http/1.1".utf8)
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
