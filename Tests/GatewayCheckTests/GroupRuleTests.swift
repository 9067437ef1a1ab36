import Testing
import GatewayTLS

/// GW.Host.Groups judges groups by the security bits this OpenSSL gives them.
@Suite struct GroupStrengthTests {
    @Test(arguments: [("X25519", 128), ("x25519", 128), ("X448", 224), ("P-256", 128), ("secp256r1", 128), ("P-384", 192),
                      ("P-521", 256), ("ffdhe2048", 112), ("ffdhe3072", 128), ("ffdhe8192", 192)])
    func securityBitsComeFromOpenSSL(_ name: String, _ bits: Int) {
        #expect(KeyExchangeGroups.securityBits(name) == bits, "\(name)")
    }

    @Test func unknownNamesHaveNoStrength() {
        #expect(KeyExchangeGroups.securityBits("nosuchgroup") == nil)
        #expect(KeyExchangeGroups.names("X25519:P-256") == ["X25519", "P-256"])
    }
}
