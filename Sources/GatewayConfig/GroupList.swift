import COpenSSL

/// `groups` validated by the OpenSSL the gateway runs with: the list is set on a throwaway
/// SSL_CTX, which refuses names it does not know (what `SSL_CTX_set1_groups_list`, a macro, does).
enum GroupList {
    static func problem(_ list: String) -> String? {
        guard !list.isEmpty, !list.hasPrefix(":"), !list.hasSuffix(":"), !list.contains("::") else {
            return "groups \"\(list)\" is not a colon-separated list of group names"
        }
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { return "cannot check groups: SSL_CTX_new failed" }
        defer { SSL_CTX_free(ctx) }
        let ok = list.withCString { SSL_CTX_ctrl(ctx, SSL_CTRL_SET_GROUPS_LIST, 0, UnsafeMutableRawPointer(mutating: $0)) } == 1
        while ERR_get_error() != 0 {}
        return ok ? nil : "groups \"\(list)\" names a group this OpenSSL does not offer (see `openssl list -kem-algorithms`; names like X25519, P-256, P-384, ffdhe3072)"
    }
}
