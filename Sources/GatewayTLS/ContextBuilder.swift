import COpenSSL
import CGatewayShims
import GatewayConfig

/// The OpenSSL calls that turn a configured TLS setting into an SSL_CTX, shared by
/// server (per host) and client (per backend) contexts. Each failure becomes a
/// diagnostic at the directive's location.
struct ContextBuilder {
    let ctx: OpaquePointer
    let location: SourceLocation
    var diagnostics: [ConfigDiagnostic] = []

    init(server: Bool, location: SourceLocation) throws(TLSError) {
        guard let c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) else {
            throw TLSError("SSL_CTX_new")
        }
        ctx = c
        self.location = location
        // Nothing inherited from the system openssl.cnf: every field below is set explicitly.
        _ = SSL_CTX_clear_options(ctx, gw_ssl_op_no_tls_versions())
        _ = SSL_CTX_set_options(ctx, gw_ssl_op_no_renegotiation() | gw_ssl_op_no_compression()
                                  | gw_ssl_op_cipher_server_preference() | gw_ssl_op_ignore_unexpected_eof())
        // OpenSSL's record buffers are freed between records, on both sides: an idle connection
        // holds ~35 KB less (as nginx does). Keeping them on backend connections saves two of
        // OpenSSL's allocations per request (12 -> 10, scripts/allocs) but left 1.3 MB more
        // resident after a load peak (scripts/soak over its 5 % bound): memory won.
        _ = gw_ssl_ctx_set_mode(ctx, gw_ssl_mode_release_buffers() | gw_ssl_mode_enable_partial_write()
                                     | gw_ssl_mode_accept_moving_write_buffer())
        _ = gw_ssl_ctx_set1_groups_list(ctx, TLSPolicy.defaultGroups)
        // One read syscall per record instead of two. Safe because the connection driver retries
        // reads whenever it wants input, never only on epoll readiness (OpenSSL may hold the bytes).
        gw_ssl_ctx_set_read_ahead(ctx, 1)
        // With read-ahead, one read syscall takes up to four full records instead of one: a
        // 1 MiB body through h2 costs 96 syscalls instead of 135. The buffer is still released
        // when empty, so an idle connection holds none of it.
        SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024)
    }

    mutating func fail(_ message: String, at loc: SourceLocation? = nil) {
        let reasons = OpenSSLErrors.drain()
        diagnostics.append(ConfigDiagnostic(loc ?? location, reasons.isEmpty ? message : "\(message): \(reasons)"))
    }

    mutating func versions(min: TLSVersion, max: TLSVersion) {
        _ = gw_ssl_ctx_set_min_proto_version(ctx, Int32(min.rawValue))
        _ = gw_ssl_ctx_set_max_proto_version(ctx, Int32(max.rawValue))
        // TLSv1/TLSv1.1 need security level 0 (SHA-1 signatures); only for a context that asks for them.
        SSL_CTX_set_security_level(ctx, min < .tls1_2 ? 0 : 1)
    }

    /// Key-exchange groups (already checked at parse time; a failure here is reported all the same).
    mutating func groups(_ list: String) {
        if list != TLSPolicy.defaultGroups, gw_ssl_ctx_set1_groups_list(ctx, list) != 1 { fail("invalid groups \"\(list)\"") }
    }

    mutating func ciphers(_ list: String?, suites: String?) {
        if let list, SSL_CTX_set_cipher_list(ctx, list) != 1 { fail("invalid cipher list \"\(list)\"") }
        if let suites, SSL_CTX_set_ciphersuites(ctx, suites) != 1 { fail("invalid TLS 1.3 ciphersuites \"\(suites)\"") }
    }

    mutating func certificate(_ files: CertificateFiles, password: String? = nil) {
        guard SSL_CTX_use_certificate_chain_file(ctx, files.certificate) == 1 else {
            fail("cannot load certificate \(files.certificate)", at: files.location); return
        }
        guard let key = loadPrivateKey(files.key, password: password) else {
            fail("cannot load private key \(files.key)", at: files.location); return
        }
        defer { EVP_PKEY_free(key) }
        guard SSL_CTX_use_PrivateKey(ctx, key) == 1 else {
            fail("private key \(files.key) does not match certificate \(files.certificate)", at: files.location); return
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            fail("private key \(files.key) does not match certificate \(files.certificate)", at: files.location); return
        }
    }

    /// Loads trust anchors; with `names`, also the CA names sent in a CertificateRequest.
    mutating func trust(caFile: String, depth: Int, crl: String?) {
        guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else { fail("cannot load CA file \(caFile)"); return }
        SSL_CTX_set_verify_depth(ctx, Int32(depth))
        if let crl {
            guard let store = SSL_CTX_get_cert_store(ctx),
                  X509_STORE_load_file(store, crl) == 1 else { fail("cannot load CRL \(crl)"); return }
            X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
        }
    }

    func free() { SSL_CTX_free(ctx) }
}

/// Reads a PEM private key, decrypting with `password` when given; never logs key material.
func loadPrivateKey(_ path: String, password: String?) -> OpaquePointer? {
    guard let bio = BIO_new_file(path, "r") else { return nil }
    defer { BIO_free(bio) }
    guard var pw = password.map({ Array($0.utf8CString) }) else {
        return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
    }
    defer { for i in pw.indices { pw[i] = 0 } }
    return pw.withUnsafeMutableBytes { PEM_read_bio_PrivateKey(bio, nil, nil, $0.baseAddress) }
}
