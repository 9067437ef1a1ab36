import Testing
@testable import GatewayConfig

/// SPEC §12 directives: `http2` (a policy field: inherited, part of the 421 identity),
/// `http2_max_concurrent_streams` and `max_requests_per_connection` (limits), `public_port` (listen).
@Suite struct HTTP2ConfigTests {
    @Test func http2IsOnByDefaultInheritedAndOverridden() throws {
        let f = Fixture()
        f.config(minimalConfig)
        #expect(try f.load().hosts[0].policy.http2)
        f.config("tls_defaults {\n    http2 off;\n}\n" + minimalConfig)
        #expect(try !f.load().hosts[0].policy.http2, "inherited from tls_defaults")
        f.config("tls_defaults {\n    http2 off;\n}\n" + minimalConfig.replacing("    route /", with: "    http2 on;\n    route /"))
        #expect(try f.load().hosts[0].policy.http2, "the host's own value wins")
    }

    @Test func http2IsPartOfThePolicyIdentity() {
        var legacy = TLSPolicy()
        legacy.http2 = false
        #expect(legacy.misdirectionDifferences(from: TLSPolicy()) == ["http2"])
        #expect(TLSPolicy().misdirectionDifferences(from: TLSPolicy()).isEmpty)
    }

    @Test func limitsAndPublicPort() throws {
        let f = Fixture()
        f.config(minimalConfig)
        let defaults = try f.load()
        #expect(defaults.limits.http2MaxConcurrentStreams == 128 && defaults.limits.maxRequestsPerConnection == 10_000)
        #expect(defaults.listeners[0].publicPort == nil)
        f.config("limits {\n    http2_max_concurrent_streams 16;\n    max_requests_per_connection 3;\n}\n"
                 + minimalConfig.replacing("listen 127.0.0.1:8443;", with: "listen 127.0.0.1:8443 {\n    public_port 443;\n}"))
        let c = try f.load()
        #expect(c.limits.http2MaxConcurrentStreams == 16 && c.limits.maxRequestsPerConnection == 3)
        #expect(c.listeners[0].publicPort == 443)
    }

    @Test func badValuesNameTheirPlace() {
        let f = Fixture()
        f.config("limits {\n    http2_max_concurrent_streams 0;\n}\n"
                 + minimalConfig.replacing("    route /", with: "    http2 maybe;\n    route /")
                     .replacing("listen 127.0.0.1:8443;", with: "listen 127.0.0.1:8443 {\n    public_port 70000;\n}"))
        let errors = f.errors()
        #expect(errors.count == 3, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("\(f.main):2:34: error:") && $0.contains("http2_max_concurrent_streams") })
        #expect(errors.contains { $0.hasPrefix("\(f.main):5:17: error:") && $0.contains("public_port") })
        #expect(errors.contains { $0.contains("invalid value \"maybe\" for \"http2\"; expected on or off") })
    }
}
