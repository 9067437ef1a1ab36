import GatewayConfig

// GW.JWT.NoBinding (SPEC §13): a host that asks for client certificates but accepts tokens
// not bound to them leaves the one defence against a stolen bearer token unused.
extension PolicyCheck {
    func jwtFindings() -> [Finding] {
        config.hosts.compactMap { h in
            guard let j = h.jwt, !j.policy.bindClientCert, h.policy.clientAuth != .off else { return nil }
            return Finding("GW.JWT.NoBinding", at: j.directiveLocations["bind_client_cert"] ?? j.location,
                           "host \(h.displayName) asks for client certificates (client_auth \(h.policy.clientAuth.rawValue)) "
                           + "but bind_client_cert is off: a token's cnf.x5t#S256 is not checked, so a stolen token works from any client")
        }
    }
}
