// The one table of policy rules (SPEC §8): the findings, the SARIF `rules[]` and the README's
// rule table are all made from it, so a rule's words are written once.

public enum Severity: String, Sendable, Hashable, CaseIterable, Comparable {
    case critical, high, medium, low

    /// Higher = worse, for sorting and `--fail-on`.
    var rank: Int {
        switch self {
        case .critical: 3
        case .high: 2
        case .medium: 1
        case .low: 0
        }
    }

    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }

    /// SARIF's level for this severity.
    var sarifLevel: String {
        switch self {
        case .critical, .high: "error"
        case .medium: "warning"
        case .low: "note"
        }
    }
}

public struct RuleDefinition: Sendable, Hashable {
    public enum Status: Sendable, Hashable {
        /// Reported by `gateway check` as a finding.
        case active
        /// Refused at load (exit 2, the error names the rule); listed so every id has a home.
        case loadError
        /// Applies once this directive exists; not checked yet.
        case pending(directive: String)
    }

    public let id: String
    /// The default severity; a rule with several (GW.Cert.Expiring) says so in `severityText`.
    public let severity: Severity
    public let severityText: String
    public let title: String
    public let trigger: String
    public let fix: String
    public let status: Status

    init(_ id: String, _ severity: Severity, severityText: String? = nil, _ title: String,
         trigger: String, fix: String, status: Status = .active) {
        self.id = id; self.severity = severity; self.severityText = severityText ?? severity.rawValue
        self.title = title; self.trigger = trigger; self.fix = fix; self.status = status
    }
}

public enum RuleCatalog {
    public static let all: [RuleDefinition] = [
        RuleDefinition("GW.Backend.HTTPS", .critical, "Backend server is not HTTPS",
                       trigger: "a backend `server` URL is not `https://`",
                       fix: "Use `https://` and give the backend's TLS settings in `tls { }`.", status: .loadError),
        RuleDefinition("GW.Backend.Verify", .critical, "Backend certificate verification is off",
                       trigger: "`verify off` in a backend's `tls { }`",
                       fix: "Remove `verify off`; trust the backend's CA with `ca PATH` (and `server_name` if the URL host is not in its certificate)."),
        RuleDefinition("GW.Backend.MinTLS", .high, "Backend TLS floor below TLSv1.2",
                       trigger: "a backend's `min_version` is TLSv1 or TLSv1.1",
                       fix: "Set `min_version TLSv1.2;` (or remove it: TLSv1.2 is the default) and upgrade the backend."),
        RuleDefinition("GW.Backend.ClientCert", .low, "Backend without a client certificate",
                       trigger: "a backend has no `certificate` in `tls { }`: the backend cannot tell the gateway from any other client",
                       fix: "Give the backend a client certificate (`certificate CERT KEY;` in `tls { }`) and make the backend require it."),
        RuleDefinition("GW.Host.MinTLS", .high, "Host TLS floor below TLSv1.2",
                       trigger: "a host's effective `min_version` (its own or inherited from `tls_defaults`) is TLSv1 or TLSv1.1",
                       fix: "Set `min_version TLSv1.2;` or higher; keep old clients on a separate host name if you must."),
        RuleDefinition("GW.Host.WeakCipher", .high, "Cipher without forward secrecy or AEAD",
                       trigger: "a host's cipher list, as OpenSSL expands it for the host's versions, enables a suite with RSA key exchange, CBC, 3DES, RC4, NULL or export-grade encryption, or no authentication",
                       fix: "Use ECDHE with AES-GCM or ChaCha20-Poly1305 only, e.g. remove `ciphers` to get the default list."),
        RuleDefinition("GW.mTLS.NoCA", .critical, "client_auth without client_ca",
                       trigger: "`client_auth optional|required` with no `client_ca` (its own or inherited)",
                       fix: "Add `client_ca PATH;` next to `client_auth`, or set `client_auth off;`.", status: .loadError),
        RuleDefinition("GW.Cert.Expired", .critical, "Certificate expired",
                       trigger: "a certificate the configuration names (host, backend client, client CA, backend CA) is past its notAfter",
                       fix: "Renew the certificate and reload (SIGHUP)."),
        RuleDefinition("GW.Cert.Expiring", .high, severityText: "high (14 days) / medium (30 days)", "Certificate expires soon",
                       trigger: "a certificate the configuration names expires within 14 days (high) or 30 days (medium)",
                       fix: "Renew the certificate before it expires and reload (SIGHUP)."),
        RuleDefinition("GW.Cert.NameMismatch", .high, "Host name not covered by its certificate",
                       trigger: "a name of a `host` block is not in the DNS (or IP) subject alternative names of one of its certificates (RFC 6125: `*` only as the whole left-most label, matching exactly one label; a `*.x` host needs a `*.x` SAN)",
                       fix: "Issue the certificate with every name of the host block as a SAN, or move the name to a host block whose certificate covers it."),
        RuleDefinition("GW.Cert.WeakKey", .high, "Weak certificate key or signature",
                       trigger: "a certificate presented by the gateway (host or backend client chain) has an RSA key under 2048 bits or a SHA-1 (or MD5) signature (OpenSSL itself refuses a SHA-1 chain at load unless the floor is below TLSv1.2)",
                       fix: "Reissue it with an ECDSA P-256 or RSA 2048+ key, signed with SHA-256."),
        RuleDefinition("GW.Key.Permissions", .medium, "Private key readable by others",
                       trigger: "a private key or `ticket_key_file` is readable by its group or by other users (others: loads only with `allow_insecure_key_permissions on`)",
                       fix: "`chmod 600` the file, owned by the gateway's user."),
        RuleDefinition("GW.Admin.Exposed", .critical, "Admin endpoint exposed without a token",
                       trigger: "`admin` on a non-loopback TCP address without `admin_token_file`",
                       fix: "Bind `admin` to 127.0.0.1, ::1 or `unix:PATH`, or set `admin_token_file PATH;`."),
        RuleDefinition("GW.Listen.ProxyProtocolOpen", .critical, "PROXY protocol accepted from anyone",
                       trigger: "`proxy_protocol on` in a `listen` block without `proxy_protocol_from`: any peer could claim any client address",
                       fix: "List the load balancers' addresses with `proxy_protocol_from CIDR ...;`.",
                       status: .loadError),
        RuleDefinition("GW.mTLS.AllowWithoutAuth", .high, "client_allow without client_auth",
                       trigger: "`client_allow` on a host whose effective `client_auth` is `off` (its own or inherited)",
                       fix: "Set `client_auth required;` (and `client_ca`) on that host, or remove `client_allow`.",
                       status: .loadError),
        RuleDefinition("GW.Host.Fronting", .medium, "Two host blocks cover one name with different policies",
                       trigger: "certificates of two host blocks whose effective policies differ both cover one name (the 421 rule protects, but clients that reuse connections will see 421s)",
                       fix: "Give the hosts certificates that do not overlap (e.g. no wildcard over a stricter host), or the same policy."),
        RuleDefinition("GW.Ticket.NoSharedKey", .low, "Session tickets without a shared key",
                       trigger: "`session_tickets on` with more than one `listen` address and no `ticket_key_file` (tickets do not survive a restart or cross a fleet)",
                       fix: "Set `ticket_key_file PATH;` in `tls_defaults` (160 hex digits: `openssl rand -hex 80`), or `session_tickets off;`."),
        RuleDefinition("GW.Host.Groups", .low, "No key-exchange group of 128-bit strength",
                       trigger: "a host's effective `groups` (its own or inherited; default `X25519:P-256:P-384`) has no group of at least 128-bit strength as this OpenSSL rates it (e.g. only `ffdhe2048`, `P-224`)",
                       fix: "Include X25519, P-256 or P-384 (or ffdhe3072 and up) in `groups`."),
        RuleDefinition("GW.JWT.NoBinding", .low, "JWT not bound to the client certificate",
                       trigger: "`bind_client_cert off` in a host's `jwt { }` while its `client_auth` is not `off`: a stolen token works without the client's key (RFC 8705)",
                       fix: "Set `bind_client_cert on;` (the default) and have the issuer put `cnf.x5t#S256` in tokens for certificate-holding clients."),
    ]

    public static func rule(_ id: String) -> RuleDefinition? { all.first { $0.id == id } }

    static let byID: [String: RuleDefinition] = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })
}
