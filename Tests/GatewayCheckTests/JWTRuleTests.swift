import Foundation
import Testing
@testable import GatewayCheck

/// GW.JWT.NoBinding: `bind_client_cert off` on a host whose client_auth is not off.
@Suite struct CheckJWTRuleTests {
    @Test func unboundTokensOnAnMTLSHost() throws {
        let f = try CheckFixture()
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let jwks = try String(contentsOf: here.appendingPathComponent("../GatewayJWTTests/Fixtures/jwks.json"), encoding: .utf8)
        let jwksPath = try f.pki.write(jwks, as: "jwks.json")
        let caPath = try f.pki.write(try String(contentsOfFile: f.pki.path("ca.pem"), encoding: .utf8), as: "clients-ca.pem")
        func config(auth: String, bind: String) -> String {
            f.config(hostExtra: """
            client_auth \(auth);
                client_ca \(caPath);
                jwt {
                    issuer https://login.example.test/;
                    audience api://orders;
                    jwks_file \(jwksPath);
                    \(bind)
                }
            """)
        }
        let text = config(auth: "optional", bind: "bind_client_cert off;")
        let found = only("GW.JWT.NoBinding", try f.findings(text))
        #expect(found.count == 1 && found.first?.severity == .low, "\(found)")
        #expect(found.first?.line == line(of: "bind_client_cert off", in: text))
        #expect(only("GW.JWT.NoBinding", try f.findings(config(auth: "optional", bind: ""))).isEmpty, "on by default")
        #expect(only("GW.JWT.NoBinding", try f.findings(config(auth: "off", bind: "bind_client_cert off;"))).isEmpty,
                "no client certificate to bind to")
    }
}
