import Testing
import TestSupport
@testable import GatewayProxyProtocol

/// Headers as real senders write them (HAProxy `send-proxy` / `send-proxy-v2`, an AWS NLB-style v2
/// header with its VPC endpoint TLV, a LOCAL health check), fed whole, byte by byte and in random
/// splits, with the start of a TLS ClientHello behind them that must not be counted.
@Suite struct ProxyProtocolParserTests {
    static let clientHelloStart: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03]

    static let haproxyV1 = Array("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".utf8)
    static let haproxyV1v6 = Array("PROXY TCP6 2001:db8::1 2001:db8:0:1::11 56324 443\r\n".utf8)
    static let v1Unknown = Array("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".utf8)

    static let sig: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// HAProxy `send-proxy-v2`, TCP over IPv4: 203.0.113.7:51000 -> 10.0.0.5:443, no TLV.
    static let haproxyV2: [UInt8] = sig + [0x21, 0x11, 0x00, 0x0C, 203, 0, 113, 7, 10, 0, 0, 5, 0xC7, 0x38, 0x01, 0xBB]
    /// AWS NLB style: TCP over IPv4 plus a PP2_TYPE_AWS (0xEA) TLV with a VPC endpoint id, and a NOOP TLV.
    static let awsV2: [UInt8] = {
        let endpoint = Array("\u{01}vpce-08d2bf15fac5001c9".utf8)
        let tlvs: [UInt8] = [0xEA, 0x00, UInt8(endpoint.count)] + endpoint + [0x04, 0x00, 0x02, 0x00, 0x00]
        let addr: [UInt8] = [198, 51, 100, 22, 172, 31, 0, 9, 0xD4, 0x31, 0x01, 0xBB]
        let len = addr.count + tlvs.count
        return sig + [0x21, 0x11, UInt8(len >> 8), UInt8(len & 0xFF)] + addr + tlvs
    }()
    /// HAProxy `send-proxy-v2`, TCP over IPv6: 2001:db8::7 port 40000 -> 2001:db8::1 port 8443.
    static let v2v6: [UInt8] = {
        var src = [UInt8](repeating: 0, count: 16); src[0] = 0x20; src[1] = 0x01; src[2] = 0x0D; src[3] = 0xB8; src[15] = 7
        var dst = src; dst[15] = 1
        return sig + [0x21, 0x21, 0x00, 0x24] + src + dst + [0x9C, 0x40, 0x20, 0xFB]
    }()
    /// A LOCAL command (a load balancer's health check) with an address block it should not have: skipped.
    static let v2Local: [UInt8] = sig + [0x20, 0x11, 0x00, 0x0C] + [UInt8](repeating: 9, count: 12)

    static func parse(_ b: [UInt8]) -> ProxyProtocolResult { ProxyProtocolParser.parse(b) }

    /// Every strict prefix is needMore; the whole (with a ClientHello behind) is the header, same consumed.
    static func expectFedAllWays(_ header: [UInt8], _ expected: ProxyHeader) {
        for n in 0..<header.count {
            #expect(parse(Array(header[..<n])) == .needMore, "prefix of \(n) bytes")
        }
        #expect(parse(header) == .header(expected, consumed: header.count))
        #expect(parse(header + clientHelloStart) == .header(expected, consumed: header.count))
        // Random splits, as a reader accumulating segments sees them.
        var rng = SplitMix(seed: UInt64(header.count))
        for _ in 0..<50 {
            var seen: [UInt8] = []
            let stream = header + clientHelloStart
            var result = ProxyProtocolResult.needMore
            while result == .needMore && seen.count < stream.count {
                let take = min(Int(rng.next() % 9) + 1, stream.count - seen.count)
                seen += stream[seen.count..<seen.count + take]
                result = parse(seen)
            }
            #expect(result == .header(expected, consumed: header.count))
        }
    }

    @Test func haproxyV1IPv4() {
        Self.expectFedAllWays(Self.haproxyV1, ProxyHeader(version: 1, command: .proxy,
            source: ProxyAddress(bytes: [192, 168, 0, 1], port: 56324), destination: ProxyAddress(bytes: [192, 168, 0, 11], port: 443)))
    }

    @Test func haproxyV1IPv6() {
        var src = [UInt8](repeating: 0, count: 16); src[0] = 0x20; src[1] = 0x01; src[2] = 0x0D; src[3] = 0xB8; src[15] = 1
        var dst = [UInt8](repeating: 0, count: 16); dst[0] = 0x20; dst[1] = 0x01; dst[2] = 0x0D; dst[3] = 0xB8; dst[7] = 1; dst[15] = 0x11
        Self.expectFedAllWays(Self.haproxyV1v6, ProxyHeader(version: 1, command: .proxy,
            source: ProxyAddress(bytes: src, port: 56324), destination: ProxyAddress(bytes: dst, port: 443)))
    }

    @Test func v1UnknownKeepsThePeer() {
        Self.expectFedAllWays(Self.v1Unknown, ProxyHeader(version: 1, command: .proxy, source: nil, destination: nil))
        #expect(Self.parse(Array("PROXY UNKNOWN\r\n".utf8)) == .header(ProxyHeader(version: 1, command: .proxy, source: nil, destination: nil), consumed: 15))
    }

    @Test func haproxyV2IPv4() {
        Self.expectFedAllWays(Self.haproxyV2, ProxyHeader(version: 2, command: .proxy,
            source: ProxyAddress(bytes: [203, 0, 113, 7], port: 51000), destination: ProxyAddress(bytes: [10, 0, 0, 5], port: 443)))
    }

    @Test func v2WithTLVsSkipsThem() {
        Self.expectFedAllWays(Self.awsV2, ProxyHeader(version: 2, command: .proxy,
            source: ProxyAddress(bytes: [198, 51, 100, 22], port: 54321), destination: ProxyAddress(bytes: [172, 31, 0, 9], port: 443)))
    }

    @Test func v2IPv6() {
        var src = [UInt8](repeating: 0, count: 16); src[0] = 0x20; src[1] = 0x01; src[2] = 0x0D; src[3] = 0xB8; src[15] = 7
        var dst = src; dst[15] = 1
        Self.expectFedAllWays(Self.v2v6, ProxyHeader(version: 2, command: .proxy,
            source: ProxyAddress(bytes: src, port: 40000), destination: ProxyAddress(bytes: dst, port: 8443)))
    }

    @Test func v2LocalKeepsThePeer() {
        Self.expectFedAllWays(Self.v2Local, ProxyHeader(version: 2, command: .local, source: nil, destination: nil))
        Self.expectFedAllWays(Self.sig + [0x20, 0x00, 0x00, 0x00], ProxyHeader(version: 2, command: .local, source: nil, destination: nil))
    }

    @Test func v2UnspecAndUnixKeepThePeer() {
        Self.expectFedAllWays(Self.sig + [0x21, 0x00, 0x00, 0x00], ProxyHeader(version: 2, command: .proxy, source: nil, destination: nil))
        Self.expectFedAllWays(Self.sig + [0x21, 0x31, 0x00, 0xD8] + [UInt8](repeating: 0x2F, count: 216),
                              ProxyHeader(version: 2, command: .proxy, source: nil, destination: nil))
    }

    @Test(arguments: [
        ("a TLS ClientHello", clientHelloStart, "not a PROXY protocol header"),
        ("HTTP", Array("GET / HTTP/1.1\r\n".utf8), "not a PROXY protocol header"),
        ("lower-case proxy", Array("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n".utf8), "not a PROXY protocol header"),
        ("PROXY then garbage", Array("PROXYZ".utf8), "not a PROXY protocol header"),
        ("unknown protocol", Array("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n".utf8), "v1: unknown protocol (expected TCP4, TCP6 or UNKNOWN)"),
        ("unknown protocol early", Array("PROXY TCP5".utf8), "v1: unknown protocol (expected TCP4, TCP6 or UNKNOWN)"),
        ("two spaces", Array("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n".utf8), "v1: expected 5 fields separated by single spaces, got 6"),
        ("missing port", Array("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n".utf8), "v1: expected 5 fields separated by single spaces, got 4"),
        ("v6 in TCP4", Array("PROXY TCP4 ::1 ::1 1 2\r\n".utf8), "v1: bad source address"),
        ("v4 in TCP6", Array("PROXY TCP6 ::1 1.2.3.4 1 2\r\n".utf8), "v1: bad destination address"),
        ("octet over 255", Array("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n".utf8), "v1: bad source address"),
        ("leading zero octet", Array("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n".utf8), "v1: bad source address"),
        ("port over 65535", Array("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n".utf8), "v1: bad source port"),
        ("leading zero port", Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 02\r\n".utf8), "v1: bad destination port"),
        ("signed port", Array("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n".utf8), "v1: bad source port"),
        ("bare LF", Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".utf8), "v1: LF without CR"),
        ("CR without LF", Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX".utf8), "v1: CR not followed by LF"),
        ("NUL in line", Array("PROXY TCP4 1.2.3.4\u{0} 5.6.7.8 1 2\r\n".utf8), "v1: non-printable byte in the header line"),
        ("over 107 bytes", Array(("PROXY UNKNOWN " + String(repeating: "x", count: 100)).utf8), "v1: no CRLF within 107 bytes"),
        ("v2 version 1", sig + [0x11, 0x11, 0x00, 0x0C], "v2: unsupported version 1"),
        ("v2 command 2", sig + [0x22, 0x11, 0x00, 0x0C], "v2: unknown command 2"),
        ("v2 UDP", sig + [0x21, 0x12, 0x00, 0x0C] + [UInt8](repeating: 1, count: 12), "v2: a datagram (UDP) transport on a TCP listener"),
        ("v2 family 4", sig + [0x21, 0x41, 0x00, 0x00], "v2: unknown address family/transport 0x41"),
        ("v2 short IPv4 block", sig + [0x21, 0x11, 0x00, 0x08] + [UInt8](repeating: 1, count: 8), "v2: TCP over IPv4 needs 12 address bytes, got 8"),
        ("v2 short IPv6 block", sig + [0x21, 0x21, 0x00, 0x0C] + [UInt8](repeating: 1, count: 12), "v2: TCP over IPv6 needs 36 address bytes, got 12"),
        ("v2 truncated TLV", sig + [0x21, 0x11, 0x00, 0x0E] + [UInt8](repeating: 1, count: 12) + [0x04, 0x00], "v2: truncated TLV header at offset 0"),
        ("v2 TLV overrun", sig + [0x21, 0x11, 0x00, 0x10] + [UInt8](repeating: 1, count: 12) + [0xEA, 0x00, 0x05, 0x01], "v2: TLV 0xea of 5 bytes overruns the header"),
        ("v2 too long", sig + [0x21, 0x11, 0xFF, 0xFF], "v2: header of 65551 bytes over the 4096-byte limit"),
        ("v2 bad signature", [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0B], "not a PROXY protocol header"),
    ] as [(String, [UInt8], String)])
    func malformedHeadersAreRefused(_ name: String, _ bytes: [UInt8], _ reason: String) {
        #expect(Self.parse(bytes) == .invalid(reason), "\(name)")
    }

    @Test func invalidIsReportedAsSoonAsTheBytesShowIt() {
        #expect(Self.parse([0x16]) == .invalid("not a PROXY protocol header"))
        #expect(Self.parse(Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r".utf8)) == .needMore, "the LF may be in the next segment")
        #expect(Self.parse(Self.sig + [0x21]) == .needMore)
    }

    @Test func ipv6TextForms() {
        func v6(_ s: String) -> [UInt8]? { Array(s.utf8).withUnsafeBytes { IPText.v6($0) } }
        #expect(v6("::") == [UInt8](repeating: 0, count: 16))
        #expect(v6("::1") == [UInt8](repeating: 0, count: 15) + [1])
        #expect(v6("1::") == [0, 1] + [UInt8](repeating: 0, count: 14))
        #expect(v6("::ffff:192.0.2.1") == [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, 192, 0, 2, 1])
        #expect(v6("1:2:3:4:5:6:7:8") == [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8])
        for bad in [":", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "1:", ":1", "g::", "1:2:3:4:5:6:7", "::1.2.3"] {
            #expect(v6(bad) == nil, "\(bad)")
        }
    }
}

