import GatewayConfig

// GW.Backend.Verify, GW.Backend.MinTLS, GW.Backend.ClientCert: each backend's own TLS settings.
// (GW.Backend.HTTPS is a load error: an http:// server never reaches the checks.)
extension PolicyCheck {
    func backendFindings() -> [Finding] {
        var out: [Finding] = []
        for b in config.backends {
            let tls = b.tls
            let tlsBlock = b.directiveLocations["tls"] ?? b.location
            if !tls.verify {
                out.append(Finding("GW.Backend.Verify", at: tls.verifyLocation ?? tls.directiveLocations["verify"] ?? tlsBlock,
                                   "backend \"\(b.name)\": certificate verification is off; anyone on the path can impersonate it"))
            }
            if tls.minVersion < .tls1_2 {
                out.append(Finding("GW.Backend.MinTLS", at: tls.directiveLocations["min_version"] ?? tlsBlock,
                                   "backend \"\(b.name)\" accepts \(tls.minVersion) (min_version \(tls.minVersion))"))
            }
            if tls.clientCertificate == nil {
                out.append(Finding("GW.Backend.ClientCert", at: tlsBlock,
                                   "backend \"\(b.name)\" gets no client certificate from the gateway"))
            }
        }
        return out
    }
}
