import Glibc
import COpenSSL
import CGatewayShims

enum EchoTLS {
    /// The origin's SSL_CTX: certificate, version range, optional client verification.
    static func context(_ o: EchoOptions) -> OpaquePointer {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { fail("SSL_CTX_new failed") }
        _ = SSL_CTX_clear_options(ctx, gw_ssl_op_no_tls_versions())
        _ = gw_ssl_ctx_set_min_proto_version(ctx, o.minVersion)
        _ = gw_ssl_ctx_set_max_proto_version(ctx, o.maxVersion)
        // TLS 1.0/1.1 need SHA-1 signatures, allowed only at security level 0.
        if o.minVersion < 0x0303 { SSL_CTX_set_security_level(ctx, 0); _ = SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") }
        guard SSL_CTX_use_certificate_chain_file(ctx, o.cert) == 1 else { fail("cannot load certificate \(o.cert)") }
        guard SSL_CTX_use_PrivateKey_file(ctx, o.key, SSL_FILETYPE_PEM) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
            fail("cannot load private key \(o.key)")
        }
        if let ca = o.clientCA {
            guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1, let names = SSL_load_client_CA_file(ca) else { fail("cannot load CA \(ca)") }
            SSL_CTX_set_client_CA_list(ctx, names)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (o.clientAuthRequired ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), nil)
        }
        SSL_CTX_set_alpn_select_cb(ctx, selectALPN, nil)
        _ = gw_ssl_ctx_set_session_cache_mode(ctx, gw_ssl_sess_cache_server())
        let sid = Array("gateway-echo".utf8)
        _ = SSL_CTX_set_session_id_context(ctx, sid, UInt32(sid.count))
        return ctx
    }

    /// ALPN selected `h2`: the connection is served by EchoH2Connection.
    static func negotiatedH2(_ ssl: OpaquePointer) -> Bool {
        var p: UnsafePointer<UInt8>?
        var n: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &n)
        return n == 2 && p?[0] == UInt8(ascii: "h") && p?[1] == UInt8(ascii: "2")
    }

    /// The peer certificate's subject in RFC 4514 form, or nil.
    static func peerSubject(_ ssl: OpaquePointer) -> String? {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        guard let bio = BIO_new(BIO_s_mem()) else { return nil }
        defer { BIO_free(bio) }
        X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, gw_xn_flag_rfc2253())
        var p: UnsafeMutablePointer<CChar>?
        let n = gw_bio_get_mem_data(bio, &p)
        guard let p, n > 0 else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }
}

/// ALPN: `h2` whenever the client offers it (whatever its order), else `http/1.1`; neither:
/// no ALPN, and the connection speaks HTTP/1.1. The result points into the client's list.
private func selectALPN(_ ssl: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?, _ outLen: UnsafeMutablePointer<UInt8>?,
                        _ inp: UnsafePointer<UInt8>?, _ inLen: UInt32, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let inp else { return gw_ssl_tlsext_err_noack() }
    var i = 0, http11: Int?
    while i < Int(inLen) {
        let n = Int(inp[i])
        guard n > 0, i + 1 + n <= Int(inLen) else { break }
        let name = String(decoding: UnsafeBufferPointer(start: inp + i + 1, count: n), as: UTF8.self)
        if name == "h2" { out?.pointee = inp + i + 1; outLen?.pointee = 2; return gw_ssl_tlsext_err_ok() }
        if name == "http/1.1" && http11 == nil { http11 = i }
        i += 1 + n
    }
    guard let j = http11 else { return gw_ssl_tlsext_err_noack() }
    out?.pointee = inp + j + 1
    outLen?.pointee = 8
    return gw_ssl_tlsext_err_ok()
}
