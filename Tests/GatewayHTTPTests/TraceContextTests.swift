import Testing
import GatewayHTTP

@Suite struct TraceContextTests {
    static let w3cExample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func theSpecificationsExampleParsesAndPrintsTheSame() throws {
        let t = try #require(TraceContext.parse(Self.w3cExample))
        #expect(t.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(t.parentID == 0x00f0_67aa_0ba9_02b7 && t.flags == 1)
        #expect(t.headerValue == Self.w3cExample)
        #expect(TraceContext.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.flags == 0)
    }

    @Test(arguments: [
        "",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // version other than 00
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",       // upper-case hex
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",       // all-zero trace-id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",       // all-zero parent-id
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",        // 31 hex
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",      // trailing
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bg-01",       // not hex
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
    ])
    func invalidValuesAreRefused(_ value: String) {
        #expect(TraceContext.parse(value) == nil, "\(value)")
    }

    @Test func aGeneratedContextIsValidSampledAndUsesTheRandomBytes() throws {
        let random: [UInt8] = Array(1...24)
        let t = random.withUnsafeBytes { TraceContext.generate(random: $0) }
        #expect(t.headerValue == "00-0102030405060708090a0b0c0d0e0f10-1112131415161718-01")
        #expect(TraceContext.parse(t.headerValue) == t)
        let zeros = [UInt8](repeating: 0, count: 24)
        let z = zeros.withUnsafeBytes { TraceContext.generate(random: $0) }
        #expect(TraceContext.parse(z.headerValue) != nil, "never an invalid context, whatever the bytes")
    }
}
