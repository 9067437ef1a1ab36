import Foundation
import Testing
import GatewayTLS

/// ServerNameParser and HostTable on real ClientHellos captured from curl, openssl s_client,
/// Python's ssl module and h2load (ALPN h2, like a browser), committed under Captures/.
@Suite struct ClientHelloTests {
    static func capture(_ name: String) throws -> [UInt8] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Captures/\(name).bin")
        return Array(try Data(contentsOf: url))
    }

    /// The server_name extension's bytes from a TLS record holding a ClientHello; nil without one.
    static func serverNameExtension(_ r: [UInt8]) -> [UInt8]? {
        var i = 5 + 4 + 2 + 32                          // record header, handshake header, version, random
        i += 1 + Int(r[i])                              // session id
        i += 2 + (Int(r[i]) << 8 | Int(r[i + 1]))       // cipher suites
        i += 1 + Int(r[i])                              // compression methods
        let end = i + 2 + (Int(r[i]) << 8 | Int(r[i + 1]))
        i += 2
        while i + 4 <= end {
            let type = Int(r[i]) << 8 | Int(r[i + 1]), len = Int(r[i + 2]) << 8 | Int(r[i + 3])
            if type == 0 { return Array(r[(i + 4)..<(i + 4 + len)]) }
            i += 4 + len
        }
        return nil
    }

    func parse(_ b: [UInt8]) -> ServerNameParser.Result { b.withUnsafeBytes { ServerNameParser.parse($0) } }

    @Test(arguments: ["curl", "openssl", "python", "h2load"])
    func realClientHellosGiveTheirName(_ client: String) throws {
        let record = try Self.capture(client)
        #expect(record[0] == 0x16 && record[5] == 0x01, "a handshake record with a ClientHello")
        let ext = try #require(Self.serverNameExtension(record), "\(client) sent SNI")
        #expect(parse(ext) == .name("api.example.test"))
        // Byte by byte: every proper prefix of the extension is refused, never misread.
        for n in 0..<ext.count {
            guard case .malformed = parse(Array(ext[0..<n])) else { Issue.record("\(client): prefix of \(n) bytes accepted"); continue }
        }
        let table = HostTable(names: [["api.example.test"], ["*.example.test"]])
        if case .name(let name) = parse(ext) { #expect(table.lookup(name) == 0) }
    }

    @Test func noSNIClientHello() throws {
        #expect(Self.serverNameExtension(try Self.capture("nosni")) == nil)
    }

    @Test func damagedNamesAreRefused() throws {
        var ext = try #require(Self.serverNameExtension(try Self.capture("curl")))
        ext[ext.count - 3] = 0                          // a NUL inside the name
        guard case .malformed = parse(ext) else { Issue.record("NUL accepted"); return }
    }

    @Test func hostTableLookups() {
        let t = HostTable(names: [["api.example.test", "b.test"], ["*.example.test"]])
        #expect(t.lookup("api.example.test") == 0)
        #expect(t.lookup("b.test") == 0)
        #expect(t.lookup("x.example.test") == 1)
        #expect(t.lookup("a.b.example.test") == nil, "one label only")
        #expect(t.lookup("example.test") == nil)
        #expect(t.lookup(HostTable.normalise("X.Example.Test.")) == 1)
    }
}
