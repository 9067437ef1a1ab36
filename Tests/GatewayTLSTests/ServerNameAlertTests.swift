import COpenSSL
import CGatewayShims
import Testing
@testable import GatewayTLS
import TestSupport

/// The alert a client reads when the ClientHello callback refuses its server_name: the real
/// callback and listener, fed a ClientHello whose extension was rewritten by hand (OpenSSL as
/// a client sends only names it accepts). decode_error for bytes that do not parse,
/// illegal_parameter for a name that parses but is refused; the log reason is the parser's.
@Suite struct ServerNameAlertTests {
    let f: HandshakeFixture
    init() throws { f = try HandshakeFixture() }

    static func name(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test(arguments: [
        (ClientHelloBytes.serverName([(0, name("a.tes\u{0}t"))]), AlertDescription.illegalParameter, "NUL byte in server name"),
        (ClientHelloBytes.serverName([(0, name("a.tes\u{7}t"))]), AlertDescription.illegalParameter, "invalid byte in server name"),
        (ClientHelloBytes.serverName([(0, name("a.tes\u{105}t"))]), AlertDescription.illegalParameter, "invalid byte in server name"),
        (ClientHelloBytes.serverName([(0, name("a.test\u{1B}[31mBAD\u{1B}[0;37m"))]), AlertDescription.illegalParameter, "invalid byte in server name"),
        (ClientHelloBytes.serverName([(0, name("a.test")), (0, name("www.a.test"))]), AlertDescription.illegalParameter, "two host_name entries"),
        (ClientHelloBytes.serverName([(0, name("a..test"))]), AlertDescription.illegalParameter, "empty label in server name"),
        ([], AlertDescription.decodeError, "server_name extension too short"),
        ([0, 0], AlertDescription.decodeError, "server_name list length mismatch"),
        ([0xFF, 0xFF, 0xFF, 0xFF], AlertDescription.decodeError, "server_name list length mismatch"),
        ([0, 5, 0, 0, 1, 0x61, 0x78], AlertDescription.decodeError, "truncated server_name entry"),
        (ClientHelloBytes.serverName([(0, [])]), AlertDescription.decodeError, "empty server name"),
    ] as [([UInt8], UInt8, String)])
    func refusedServerNameGetsItsAlert(_ body: [UInt8], _ alert: UInt8, _ why: String) throws {
        let (status, sent) = try f.answer(toClientHelloWithServerName: body)
        #expect(status == .failed(.malformedServerName(why)), "\(status)")
        #expect(ClientHelloBytes.plaintextAlerts(in: sent) == [alert], "\(sent)")
    }

    /// The same rewriting with a good name completes the ClientHello (the server answers with
    /// its hello, not an alert): the refusals above are the extension's, not the rewriting's.
    @Test func rewrittenHelloWithAGoodNameIsAnswered() throws {
        let (status, sent) = try f.answer(toClientHelloWithServerName: ClientHelloBytes.serverName([(0, Self.name("A.Test"))]))
        #expect(status == .wantRead, "\(status)")
        #expect(sent.first == 22 && ClientHelloBytes.plaintextAlerts(in: sent).isEmpty)
    }

    /// Through a whole handshake between two sessions: the client hears illegal_parameter.
    @Test func aClientHearsIllegalParameterForAnEmptyLabel() throws {
        let o = try f.handshake { _ = gw_ssl_set_tlsext_host_name($0, "a..test") }
        #expect(o.clientFailure == .other(library: ERR_LIB_SSL, reason: SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER,
                                          text: "sslv3 alert illegal parameter"))
    }
}

extension HandshakeFixture {
    /// A ClientHello as the backend context writes it for `a.test`, its server_name extension's
    /// body replaced by `body`, handed to a listener session: the server's status and the bytes it wrote.
    func answer(toClientHelloWithServerName body: [UInt8]) throws -> (TLSSession.Status, [UInt8]) {
        let (contexts, backendContext) = try self.contexts()
        let hello = try withExtensions(clientHello(backendContext)) { ClientHelloBytes.replacingServerName(in: $0, with: body) }
        var serverEnd: OpaquePointer?, testEnd: OpaquePointer?
        guard BIO_new_bio_pair(&serverEnd, 0, &testEnd, 0) == 1, let serverEnd, let testEnd else { throw TestError("BIO_new_bio_pair failed") }
        defer { BIO_free(testEnd) }
        let server = try TLSSession(accepting: .memory(serverEnd), listener: contexts.listeners[0], tickets: Self.tickets)
        _ = hello.withUnsafeBytes { BIO_write(testEnd, $0.baseAddress, Int32($0.count)) }
        let status = server.handshake()
        return (status, Self.readAll(testEnd))
    }

    private func withExtensions(_ hello: [UInt8], _ rewrite: ([UInt8]) -> [UInt8]?) throws -> [UInt8] {
        guard let out = rewrite(hello) else { throw TestError("not a ClientHello record: \(hello.prefix(16))") }
        return out
    }

    /// The first flight of a backend session: one ClientHello record.
    private func clientHello(_ backend: TLSBackendContext) throws -> [UInt8] {
        var clientEnd: OpaquePointer?, testEnd: OpaquePointer?
        guard BIO_new_bio_pair(&clientEnd, 0, &testEnd, 0) == 1, let clientEnd, let testEnd else { throw TestError("BIO_new_bio_pair failed") }
        defer { BIO_free(testEnd) }
        let client = try TLSSession(connecting: .memory(clientEnd), backend: backend, urlHost: "a.test", session: nil)
        _ = client.handshake()
        return Self.readAll(testEnd)
    }

    static func readAll(_ bio: OpaquePointer) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while case let n = buf.withUnsafeMutableBytes({ BIO_read(bio, $0.baseAddress, Int32($0.count)) }), n > 0 { out += buf[0..<Int(n)] }
        return out
    }
}
