import Testing
import Glibc
@testable import GatewayConfig

@Suite struct ValidConfigurationTests {
    @Test func fullConfigurationLoadsWithEffectiveValues() throws {
        let f = Fixture()
        f.config("""
        # every block, with inheritance
        workers 4;
        error_log logs/error.log warn;
        access_log stdout text;
        admin 127.0.0.1:9901;
        admin_token_file token;
        shutdown_timeout 2m;
        limits {
            max_connections 500;
            handshake_timeout 250ms;
            header_timeout 5;            # bare number: seconds
            idle_timeout 1h;
            max_header_size 16k;
            max_headers 50;
            max_body_size 1m;
            max_uri_size 512;
        }
        tls_defaults {
            min_version 1.2;
            max_version TLS1.3;
            ciphers "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
            client_ca certs/clients-ca.pem;
            verify_depth 5;
            session_tickets off;
            ticket_key_file certs/tickets.key;
        }
        listen *:8443 {
            default_host API.Example.Test.;
            unknown_sni default;
            allow 10.0.0.0/8;
            allow 192.168.1.7;
            deny all;
        }
        listen [::1]:8444;
        host API.example.test api2.example.test {
            certificate certs/api.pem certs/api.key;
            min_version TLSv1.3;
            client_auth required;
            route / backend echo;
            route /echo/deep backend echo strip_prefix;
            route /echo backend "echo";
            compress on;
            compress_types text/plain application/json;
            compress_min_length 2k;
        }
        host *.example.test {
            certificate certs/api.pem certs/api.key;
            ciphers "ECDHE-ECDSA-AES128-GCM-SHA256";
            route / backend echo;
        }
        backend echo {
            server https://127.0.0.1:9443 weight 3;
            server https://[::1];
            server https://echo.internal.test:10443/;
            balance least_conn;
            connect_timeout 2s;
            response_timeout 30s;
            keepalive 8;
            keepalive_timeout 90s;
            max_fails 2;
            fail_timeout 20s;
            health_check /healthz interval 3s timeout 500ms;
            tls {
                min_version TLSv1.3;
                ca certs/ca.pem;
                server_name echo.internal.test;
                certificate certs/client.pem certs/client.key;
                session_reuse off;
            }
        }

        """)
        let c = try f.load()
        #expect(c.workers == 4)
        #expect(c.errorLog == .file(f.path("logs/error.log")))
        #expect(c.errorLogLevel == .warn)
        #expect(c.accessLog == .stdout)
        #expect(c.accessLogFormat == .text)
        #expect(c.admin == .tcp(address: "127.0.0.1", port: 9901))
        #expect(c.adminTokenFile == f.path("token"))
        #expect(c.shutdownTimeoutMs == 120_000)
        #expect(c.limits.maxConnections == 500)
        #expect(c.limits.handshakeTimeoutMs == 250)
        #expect(c.limits.headerTimeoutMs == 5_000)
        #expect(c.limits.idleTimeoutMs == 3_600_000)
        #expect(c.limits.maxHeaderSize == 16_384)
        #expect(c.limits.maxHeaders == 50)
        #expect(c.limits.maxBodySize == 1_048_576)
        #expect(c.limits.maxURISize == 512)
        #expect(c.ticketKeyFile == f.path("certs/tickets.key"))
        #expect(c.tlsDefaults.verifyDepth == 5)
        #expect(c.tlsDefaults.sessionTickets == false)
        #expect(c.warnings.isEmpty)

        #expect(c.listeners.count == 2)
        let l = c.listeners[0]
        #expect(l.address == "0.0.0.0" && l.port == 8443)
        #expect(l.defaultHost == "api.example.test")
        #expect(l.unknownSNI == .default)
        #expect(l.access == [AccessRule(allow: true, network: IPNetwork(address: [10, 0, 0, 0], bits: 8)),
                             AccessRule(allow: true, network: IPNetwork(address: [192, 168, 1, 7], bits: 32)),
                             AccessRule(allow: false, network: nil)])
        #expect(c.listeners[1].address == "::1" && c.listeners[1].port == 8444)
        #expect(c.listeners[1].location == SourceLocation(file: f.main, line: 34, column: 1))

        #expect(c.hosts.count == 2)
        let api = c.hosts[0]
        #expect(api.names == ["api.example.test", "api2.example.test"])
        #expect(api.certificates == [CertificateFiles(certificate: f.path("certs/api.pem"), key: f.path("certs/api.key"),
                                                      location: SourceLocation(file: f.main, line: 36, column: 5))])
        // Overridden in the host, inherited from tls_defaults, and the built-in default.
        #expect(api.policy.minVersion == .tls1_3)
        #expect(api.policy.maxVersion == .tls1_3)
        #expect(api.policy.ciphers == "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
        #expect(api.policy.ciphersuites == TLSPolicy.defaultCiphersuites)
        #expect(api.policy.clientAuth == .required)
        #expect(api.policy.clientCA == f.path("certs/clients-ca.pem"))
        #expect(api.policy.sessionTickets == false)
        #expect(api.routes.map(\.prefix) == ["/echo/deep", "/echo", "/"])
        #expect(api.routes.map(\.stripPrefix) == [true, false, false])
        #expect(api.routes[0].location.line == 40)
        #expect(api.compression.enabled)
        #expect(api.compression.types == ["text/plain", "application/json"])
        #expect(api.compression.minLength == 2048)
        let wildcard = c.hosts[1]
        #expect(wildcard.names == ["*.example.test"])
        #expect(wildcard.policy.minVersion == .tls1_2)
        #expect(wildcard.policy.ciphers == "ECDHE-ECDSA-AES128-GCM-SHA256")
        #expect(wildcard.policy.clientAuth == .off)

        let b = try #require(c.backend(named: "echo"))
        #expect(b.servers.map(\.host) == ["127.0.0.1", "::1", "echo.internal.test"])
        #expect(b.servers.map(\.port) == [9443, 443, 10443])
        #expect(b.servers.map(\.weight) == [3, 1, 1])
        #expect(b.balance == .leastConn)
        #expect(b.connectTimeoutMs == 2_000 && b.responseTimeoutMs == 30_000)
        #expect(b.keepalive == 8 && b.keepaliveTimeoutMs == 90_000)
        #expect(b.maxFails == 2 && b.failTimeoutMs == 20_000)
        #expect(b.healthCheck == {
            var h = HealthCheck(path: "/healthz"); h.intervalMs = 3_000; h.timeoutMs = 500; return h
        }())
        #expect(b.tls.minVersion == .tls1_3 && b.tls.maxVersion == .tls1_3)
        #expect(b.tls.ca == .file(f.path("certs/ca.pem")))
        #expect(b.tls.serverName == "echo.internal.test")
        #expect(b.tls.clientCertificate?.certificate == f.path("certs/client.pem"))
        #expect(b.tls.clientCertificate?.key == f.path("certs/client.key"))
        #expect(b.tls.verify && b.tls.verifyLocation == nil)
        #expect(b.tls.sessionReuse == false)

        #expect(c.files == [f.main])
        #expect(c.sha256.count == 64)
    }

    @Test func defaultsApplyWhenBlocksAreOmitted() throws {
        let f = Fixture()
        f.config(minimalConfig)
        let c = try f.load()
        #expect(c.workers == nil)
        #expect(c.errorLog == .stderr && c.accessLog == .stdout)
        #expect(c.limits == Limits())
        #expect(c.tlsDefaults == TLSPolicy())
        #expect(c.hosts[0].policy == TLSPolicy())
        #expect(c.backends[0].tls.ca == .system)
        #expect(c.backends[0].servers[0].port == 9443)
        #expect(c.ticketKeyFile == nil)
    }

    @Test func backendVerifyOffIsAWarning() throws {
        let f = Fixture()
        f.config(minimalConfig + """
        backend other {
            server https://10.0.0.2:8443;
            tls {
                verify off;
            }
        }
        """)
        let c = try f.load()
        let tls = try #require(c.backend(named: "other")).tls
        #expect(tls.verify == false)
        #expect(tls.verifyLocation == SourceLocation(file: f.main, line: 12, column: 9))
        #expect(c.warnings.map(\.description) == [
            "\(f.main):12:9: warning: backend \"other\": certificate verification is off (GW.Backend.Verify)",
        ])
    }

    @Test func includesAreRelativeToTheIncludingFileAndHashedInOrder() throws {
        let f = Fixture()
        f.config("""
        include conf.d/*.conf;
        listen 127.0.0.1:8443;
        include hosts/api.conf;
        include conf.d/none-*.conf;
        backend echo {
            include backend.d/servers.conf;
        }

        """)
        f.write("conf.d/b.conf", "shutdown_timeout 5s;\n")
        f.write("conf.d/a.conf", "workers 2;\n")
        f.write("hosts/api.conf", """
        host api.example.test {
            certificate ../certs/api.pem ../certs/api.key;
            route / backend echo;
        }

        """)
        f.write("backend.d/servers.conf", "server https://127.0.0.1:9443;\n")
        let c = try f.load()
        #expect(c.workers == 2)
        #expect(c.shutdownTimeoutMs == 5_000)
        #expect(c.hosts[0].certificates[0].certificate == f.dir + "/hosts/../certs/api.pem")
        #expect(c.hosts[0].location == SourceLocation(file: f.dir + "/hosts/api.conf", line: 1, column: 1))
        #expect(c.backends[0].servers[0].location == SourceLocation(file: f.dir + "/backend.d/servers.conf", line: 1, column: 1))
        #expect(c.files == [f.main, f.dir + "/conf.d/a.conf", f.dir + "/conf.d/b.conf",
                            f.dir + "/hosts/api.conf", f.dir + "/backend.d/servers.conf"])
        // sha256sum of the five files concatenated in that order.
        #expect(c.sha256 == includeDigest)
    }

    @Test func groupReadableKeyLoadsWithAWarning() throws {
        let f = Fixture()
        f.write("certs/api.key", "dummy\n", mode: 0o640)
        f.config(minimalConfig)
        let c = try f.load()
        #expect(c.warnings.map(\.description) == [
            "\(f.main):3:31: warning: private key file \"\(f.path("certs/api.key"))\" is readable by its group (mode 0640) (GW.Key.Permissions)",
        ])
    }

    @Test func worldReadableKeyLoadsWhenExplicitlyAllowed() throws {
        let f = Fixture()
        f.write("certs/api.key", "dummy\n", mode: 0o644)
        f.config(minimalConfig + "allow_insecure_key_permissions on;\n")
        let c = try f.load()
        #expect(c.allowInsecureKeyPermissions)
        #expect(c.warnings.count == 1)
        #expect(c.warnings[0].description.contains("GW.Key.Permissions"))
        #expect(c.warnings[0].severity == .warning)
    }
}

@Suite struct LoadErrorTests {
    @Test func unterminatedString() {
        let f = Fixture()
        f.config(minimalConfig + "error_log \"logs/x.log;\n")
        #expect(f.errors() == ["\(f.main):9:11: error: unterminated string: missing closing '\"'"])
    }

    @Test func missingSemicolonBeforeNextDirective() {
        let f = Fixture()
        f.config("workers 4\n" + minimalConfig)
        #expect(f.errors() == ["\(f.main):1:10: error: missing \";\" after \"workers\""])
    }

    @Test func missingSemicolonBeforeClosingBrace() {
        let f = Fixture()
        f.config(minimalConfig + "limits {\n    max_headers 10\n}\n")
        #expect(f.errors() == ["\(f.main):10:19: error: missing \";\" after \"max_headers\""])
    }

    @Test func unexpectedClosingBrace() {
        let f = Fixture()
        f.config(minimalConfig + "}\n")
        #expect(f.errors() == ["\(f.main):9:1: error: unexpected \"}\""])
    }

    @Test func unterminatedBlock() {
        let f = Fixture()
        f.config(minimalConfig + "limits {\n    max_headers 10;\n")
        #expect(f.errors() == ["\(f.main):9:8: error: unterminated block: missing \"}\" for this \"{\""])
    }

    @Test func unknownDirectiveSuggestsTheNearestName() {
        let f = Fixture()
        f.config(minimalConfig + "wrokers 4;\nlimits {\n    max_header 10;\n}\nroute / backend echo;\n")
        #expect(f.errors() == [
            "\(f.main):9:1: error: unknown directive \"wrokers\" in top level; did you mean \"workers\"?",
            "\(f.main):11:5: error: unknown directive \"max_header\" in limits; did you mean \"max_headers\"?",
            "\(f.main):13:1: error: \"route\" is not allowed in top level; it belongs in host",
        ])
    }

    @Test func wrongArgumentCount() {
        let f = Fixture()
        f.config(minimalConfig + "workers 1 2;\nshutdown_timeout;\nerror_log a b c;\n")
        #expect(f.errors() == [
            "\(f.main):9:1: error: \"workers\" takes 1 argument, got 2",
            "\(f.main):10:1: error: \"shutdown_timeout\" takes 1 argument, got 0",
            "\(f.main):11:1: error: \"error_log\" takes 1 or 2 arguments, got 3",
        ])
    }

    @Test func badValuesNameWhatIsAccepted() {
        let f = Fixture()
        f.config(minimalConfig + """
        tls_defaults {
            client_auth maybe;
            min_version SSLv3;
            session_tickets yes;
        }
        limits {
            idle_timeout 5x;
            max_body_size 10q;
        }
        listen 300.0.0.1:8443;

        """)
        #expect(f.errors() == [
            "\(f.main):10:17: error: invalid value \"maybe\" for \"client_auth\"; expected off, optional or required",
            "\(f.main):11:17: error: invalid value \"SSLv3\" for \"min_version\"; expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3",
            "\(f.main):12:21: error: invalid value \"yes\" for \"session_tickets\"; expected on or off",
            "\(f.main):15:18: error: invalid value \"5x\" for \"idle_timeout\"; expected a duration such as 250ms, 5s, 2m or 1h",
            "\(f.main):16:19: error: invalid value \"10q\" for \"max_body_size\"; expected a size such as 512, 16k, 1m or 1g",
            "\(f.main):18:8: error: invalid value \"300.0.0.1:8443\" for \"listen\"; expected ADDR:PORT with an IPv4 address, [IPv6] or *, e.g. 0.0.0.0:8443",
        ])
    }

    @Test func duplicatesThatCannotRepeat() {
        let f = Fixture()
        f.config(minimalConfig + """
        workers 2;
        workers 3;
        host API.example.test. {
            certificate certs/api.pem certs/api.key;
        }
        backend echo {
            server https://127.0.0.1:9444;
        }

        """)
        #expect(f.errors() == [
            "\(f.main):10:1: error: duplicate \"workers\" in top level (first at \(f.main):9:1); it may appear once",
            "\(f.main):11:6: error: duplicate host name \"api.example.test\" (first at \(f.main):2:6)",
            "\(f.main):14:1: error: duplicate backend \"echo\" (first at \(f.main):6:1)",
        ])
    }

    @Test func missingCertificateFile() {
        let f = Fixture()
        f.config(minimalConfig.replacing("certs/api.pem", with: "certs/missing.pem"))
        #expect(f.errors() == [
            "\(f.main):3:17: error: cannot read certificate file \"\(f.path("certs/missing.pem"))\": No such file or directory",
        ])
    }

    @Test func httpBackendNamesTheRule() {
        let f = Fixture()
        f.config(minimalConfig.replacing("https://127.0.0.1:9443", with: "http://127.0.0.1:9443"))
        #expect(f.errors() == [
            "\(f.main):7:12: error: backend server must be https:// (GW.Backend.HTTPS): \"http://127.0.0.1:9443\"",
        ])
    }

    @Test func badBackendURLs() {
        let f = Fixture()
        f.config(minimalConfig + """
        backend b {
            server https://10.0.0.1:8443/api;
            server https://[::1:8443;
            server https://10.0.0.1:99999;
            server https://10.0.0.1 weight 0;
        }

        """)
        #expect(f.errors() == [
            "\(f.main):10:12: error: invalid backend server URL \"https://10.0.0.1:8443/api\": must be https://HOST[:PORT] without path, query or user",
            "\(f.main):11:12: error: invalid backend server URL \"https://[::1:8443\": unclosed \"[\" in IPv6 address",
            "\(f.main):12:12: error: invalid backend server URL \"https://10.0.0.1:99999\": invalid port \"99999\" (expected 1-65535)",
            "\(f.main):13:36: error: invalid value \"0\" for \"server\"; expected an integer from 1 to 1000",
        ])
    }

    @Test func clientAuthWithoutCA() {
        let f = Fixture()
        f.config(minimalConfig.replacing("    route /", with: "    client_auth optional;\n    route /")
                 + "tls_defaults {\n    client_auth required;\n}\nhost b.example.test {\n    certificate certs/api.pem certs/api.key;\n}\n")
        #expect(f.errors() == [
            "\(f.main):4:5: error: client_auth optional without client_ca (GW.mTLS.NoCA)",
            "\(f.main):13:1: error: host \"b.example.test\" inherits client_auth required from tls_defaults but has no client_ca (GW.mTLS.NoCA)",
        ])
    }

    @Test func worldReadableKeyIsRefused() {
        let f = Fixture()
        f.write("certs/client.key", "dummy\n", mode: 0o604)
        f.config(minimalConfig.replacing(
            "    server https://127.0.0.1:9443;",
            with: "    server https://127.0.0.1:9443;\n    tls {\n        certificate certs/client.pem certs/client.key;\n    }"))
        #expect(f.errors() == [
            "\(f.main):9:38: error: private key file \"\(f.path("certs/client.key"))\" is readable by other users (mode 0604) (GW.Key.Permissions); chmod 600 it, or set allow_insecure_key_permissions on",
        ])
    }

    @Test func errorInsideAnIncludedFileIsLocatedThere() {
        let f = Fixture()
        f.config(minimalConfig + "include extra/limits.conf;\ninclude extra/missing.conf;\n")
        f.write("extra/limits.conf", "limits {\n    max_headers lots;\n}\n")
        let included = f.dir + "/extra/limits.conf"
        #expect(f.errors() == [
            "\(f.main):10:9: error: cannot read included file \"\(f.dir)/extra/missing.conf\": No such file or directory",
            "\(included):2:17: error: invalid value \"lots\" for \"max_headers\"; expected an integer from 1 to 100000",
        ])
    }

    @Test func includeCycleIsAnError() {
        let f = Fixture()
        f.config(minimalConfig + "include a.conf;\n")
        f.write("a.conf", "include gateway.conf;\n")
        #expect(f.errors() == [
            "\(f.dir)/a.conf:1:9: error: include cycle: \(f.main) -> \(f.dir)/a.conf -> \(f.dir)/gateway.conf",
        ])
    }

    @Test func crossBlockReferences() {
        let f = Fixture()
        f.config("""
        listen 127.0.0.1:8443 {
            default_host nope.example.test;
        }
        host api.example.test {
            route /api backend ecoh;
            route api backend echo;
            max_version TLSv1.2;
            min_version TLSv1.3;
        }
        backend echo {
            server https://127.0.0.1:9443;
        }

        """)
        #expect(f.errors() == [
            "\(f.main):2:18: error: default_host \"nope.example.test\" names no host block",
            "\(f.main):4:1: error: host \"api.example.test\" has no \"certificate\"",
            "\(f.main):5:24: error: route to undefined backend \"ecoh\"; did you mean \"echo\"?",
            "\(f.main):6:11: error: route prefix \"api\" must start with \"/\"",
            "\(f.main):8:5: error: min_version TLSv1.3 is above max_version TLSv1.2",
        ])
    }

    @Test func noListenIsAnError() {
        let f = Fixture()
        f.config(minimalConfig.replacing("listen 127.0.0.1:8443;\n", with: ""))
        #expect(f.errors() == ["\(f.main):1:1: error: no \"listen\" directive: the gateway would accept no connection"])
    }

    @Test func everyErrorIsReportedInFileOrder() {
        let f = Fixture()
        f.config("""
        workers many;
        listen 127.0.0.1:8443;
        host api.example.test {
            certificate certs/api.pem certs/nokey.key;
            client_auth required;
            route / backend echo;
        }
        backend echo {
            server http://127.0.0.1:9443;
            balance random;
        }
        frobnicate on;

        """)
        #expect(f.errors() == [
            "\(f.main):1:9: error: invalid value \"many\" for \"workers\"; expected auto or an integer from 1 to 1024",
            "\(f.main):4:31: error: cannot read private key file \"\(f.path("certs/nokey.key"))\": No such file or directory",
            "\(f.main):5:5: error: client_auth required without client_ca (GW.mTLS.NoCA)",
            "\(f.main):9:12: error: backend server must be https:// (GW.Backend.HTTPS): \"http://127.0.0.1:9443\"",
            "\(f.main):10:13: error: invalid value \"random\" for \"balance\"; expected round_robin or least_conn",
            "\(f.main):12:1: error: unknown directive \"frobnicate\" in top level",
        ])
    }

    @Test func unreadableMainFile() {
        let f = Fixture()
        #expect(f.errors() == ["\(f.main):1:1: error: cannot read configuration file \"\(f.main)\": No such file or directory"])
    }
}

@Suite struct ValueTests {
    @Test func durations() {
        #expect(Values.durationMs("250ms") == 250)
        #expect(Values.durationMs("5s") == 5_000)
        #expect(Values.durationMs("5") == 5_000)
        #expect(Values.durationMs("2m") == 120_000)
        #expect(Values.durationMs("1h") == 3_600_000)
        #expect(Values.durationMs("5x") == nil)
        #expect(Values.durationMs("s") == nil)
        #expect(Values.durationMs("-1s") == nil)
    }

    @Test func sizes() {
        #expect(Values.size("512") == 512)
        #expect(Values.size("16k") == 16_384)
        #expect(Values.size("1M") == 1_048_576)
        #expect(Values.size("1g") == 1_073_741_824)
        #expect(Values.size("1t") == nil)
    }

    @Test func tlsVersions() {
        #expect(Values.tlsVersion("TLSv1") == .tls1_0)
        #expect(Values.tlsVersion("TLSv1.1") == .tls1_1)
        #expect(Values.tlsVersion("1.2") == .tls1_2)
        #expect(Values.tlsVersion("TLS1.2") == .tls1_2)
        #expect(Values.tlsVersion("tlsv1.3") == .tls1_3)
        #expect(Values.tlsVersion("SSLv3") == nil)
    }

    @Test func hostNames() throws {
        #expect(try Values.hostName("API.Example.TEST.").get() == "api.example.test")
        #expect(try Values.hostName("*.example.test").get() == "*.example.test")
        #expect((try? Values.hostName("a.*.example.test").get()) == nil)
        #expect((try? Values.hostName("*a.example.test").get()) == nil)
        #expect((try? Values.hostName("*").get()) == nil)
        #expect((try? Values.hostName("a..b").get()) == nil)
    }

    @Test func networksAndAddresses() {
        #expect(Values.network("10.0.0.0/8") == IPNetwork(address: [10, 0, 0, 0], bits: 8))
        #expect(Values.network("::1")?.bits == 128)
        #expect(Values.network("10.0.0.0/33") == nil)
        #expect(Values.listenAddress("*:80")?.address == "0.0.0.0")
        #expect(Values.listenAddress("*:80")?.port == 80)
        #expect(Values.listenAddress("[::]:443")?.address == "::")
        #expect(Values.listenAddress("::1:443") == nil)
        #expect(Values.listenAddress("1.2.3.4:0") == nil)
    }

    @Test func backendAuthority() throws {
        let plain = try Values.backendAuthority("example.test").get()
        #expect(plain.host == "example.test" && plain.port == 443)
        let v6 = try Values.backendAuthority("[fd00::1]:8443").get()
        #expect(v6.host == "fd00::1" && v6.port == 8443)
        #expect((try? Values.backendAuthority("a.test/x").get()) == nil)
        #expect((try? Values.backendAuthority("user@a.test").get()) == nil)
    }

    @Test func suggestions() {
        #expect(Suggest.closest(to: "wrokers", among: ["workers", "admin"]) == "workers")
        #expect(Suggest.closest(to: "zzz", among: ["workers", "admin"]) == nil)
    }
}

/// SHA-256 of the files of `includesAreRelativeToTheIncludingFileAndHashedInOrder`, concatenated in include order.
private let includeDigest = "994e9d5c26a72b05f5e94fa6feb3c17be023dd5dae6b91899f27de8c66f0d5e2"
