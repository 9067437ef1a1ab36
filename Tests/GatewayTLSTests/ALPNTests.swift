import Testing
import GatewayTLS

/// SPEC §12: ALPN follows the host's `http2` setting, not the client's order.
@Suite struct ALPNTests {
    func wire(_ names: [String]) -> [UInt8] { names.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) } }

    func choose(_ names: [String], http2: Bool) -> ALPN.Choice? {
        let w = wire(names)
        return w.withUnsafeBytes { b in
            ALPN.select(b, http2: http2).map { sel in
                #expect(Array(b[sel.range]) == Array((sel.choice == .h2 ? "h2" : "http/1.1").utf8))
                return sel.choice
            }
        }
    }

    @Test func selection() {
        #expect(choose(["h2", "http/1.1"], http2: true) == .h2)
        #expect(choose(["http/1.1", "h2"], http2: true) == .h2, "the host decides, whatever the client's order")
        #expect(choose(["http/1.1", "h2"], http2: false) == .http11)
        #expect(choose(["h2"], http2: false) == nil, "http2 off and no http/1.1 offered: no ALPN")
        #expect(choose(["spdy/3", "http/1.0"], http2: true) == nil)
        #expect(choose(["h2c", "h2x", "http/1.1"], http2: true) == .http11, "only the exact name h2")
    }

    @Test func aMalformedListSelectsNothing() {
        let bad: [UInt8] = [2, UInt8(ascii: "h"), UInt8(ascii: "2"), 9, UInt8(ascii: "h")]
        #expect(bad.withUnsafeBytes { ALPN.select($0, http2: true) }?.choice == .h2, "h2 before the broken entry is taken")
        let broken: [UInt8] = [9, UInt8(ascii: "h"), UInt8(ascii: "2")]
        #expect(broken.withUnsafeBytes { ALPN.select($0, http2: true) } == nil)
        let empty: [UInt8] = [0, 2, UInt8(ascii: "h"), UInt8(ascii: "2")]
        #expect(empty.withUnsafeBytes { ALPN.select($0, http2: true) } == nil)
    }
}
