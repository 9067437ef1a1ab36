import CGatewayShims

/// `groups` validated by the OpenSSL the gateway runs with: the shim sets the list on a throwaway
/// SSL_CTX, which refuses names it does not know.
enum GroupList {
    static func problem(_ list: String) -> String? {
        guard !list.isEmpty, !list.hasPrefix(":"), !list.hasSuffix(":"), !list.contains("::") else {
            return "groups \"\(list)\" is not a colon-separated list of group names"
        }
        switch gw_groups_list_supported(list) {
        case 1: return nil
        case -1: return "cannot check groups: SSL_CTX_new failed"
        default: return "groups \"\(list)\" names a group this OpenSSL does not offer (see `openssl list -kem-algorithms`; names like X25519, P-256, P-384, ffdhe3072)"
        }
    }
}
