import COpenSSL

/// What OpenSSL says about a key-exchange group's strength, for `gateway check` (GW.Host.Groups):
/// a parameter set (EC, finite-field DH) or a key (X25519, X448, provider groups) is made for the
/// name and its security bits read back, so the judgement follows this OpenSSL, not a table.
public enum KeyExchangeGroups {
    /// Security bits of a TLS group name (`X25519`, `P-256`, `secp384r1`, `ffdhe3072`); nil if unknown here.
    public static func securityBits(_ name: String) -> Int? {
        let lower = name.lowercased()
        if lower == "x25519" || lower == "x448" { return keyBits(algorithm: lower.uppercased(), group: nil) }
        if lower.hasPrefix("ffdhe") { return paramBits(algorithm: "DH", group: lower) }
        // TLS calls two curves by their SECG names, which OpenSSL's EC code knows by their X9.62 ones.
        let curve = ["secp256r1": "prime256v1", "secp192r1": "prime192v1"][lower] ?? name
        if let bits = paramBits(algorithm: "EC", group: curve) { return bits }
        // Provider groups (post-quantum hybrids where this OpenSSL has them) name their own algorithm.
        return keyBits(algorithm: name, group: nil)
    }

    /// Splits a `groups` list.
    public static func names(_ list: String) -> [String] { list.split(separator: ":").map(String.init) }

    private static func paramBits(algorithm: String, group: String) -> Int? {
        defer { OpenSSLErrors.clear() }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, algorithm, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_paramgen_init(ctx) == 1, EVP_PKEY_CTX_set_group_name(ctx, group) == 1,
              EVP_PKEY_paramgen(ctx, &key) == 1, let key else { return nil }
        defer { EVP_PKEY_free(key) }
        let bits = Int(EVP_PKEY_get_security_bits(key))
        return bits > 0 ? bits : nil
    }

    private static func keyBits(algorithm: String, group: String?) -> Int? {
        defer { OpenSSLErrors.clear() }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, algorithm, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_keygen(ctx, &key) == 1, let key else { return nil }
        defer { EVP_PKEY_free(key) }
        let bits = Int(EVP_PKEY_get_security_bits(key))
        return bits > 0 ? bits : nil
    }
}

/// OpenSSL's CSPRNG (RAND_bytes), the one the session ticket keys come from.
public enum SecureRandom {
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return true }
        return RAND_bytes(base.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)) == 1
    }
}
