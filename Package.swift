// swift-tools-version:6.0
import PackageDescription

// The request path's modules: dynamic exclusivity checks off in release builds (each event-loop
// object is touched by one thread only; the checks cost a few percent per request).
let hot: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "tls-gateway",
    products: [
        .executable(name: "gateway", targets: ["gateway"]),
        .executable(name: "gateway-echo", targets: ["gateway-echo"]),
    ],
    // The one package dependency: the command line (subcommands, --help, unknown-flag errors).
    dependencies: [.package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")],
    targets: [
        // C: the system libraries, and the one shim target for what Swift cannot import (macros).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CNGHTTP2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        .systemLibrary(name: "CCJose", pkgConfig: "cjose", providers: [.apt(["libcjose-dev", "libjansson-dev"])]),
        .target(name: "CGatewayShims", cSettings: [.define("_GNU_SOURCE")],
                linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto"), .linkedLibrary("z")]),

        // Swift modules, one job each.
        .target(name: "GatewaySystem", dependencies: ["CGatewayShims"], swiftSettings: hot),          // syscalls, sockets, epoll loop, timers
        .target(name: "GatewayHTTP", swiftSettings: hot),                                               // HTTP/1.1 byte parser and framing
        .target(name: "GatewayHTTP2", dependencies: ["CNGHTTP2", "CGatewayShims", "GatewayHTTP", "GatewaySystem"], swiftSettings: hot), // HTTP/2 framing on libnghttp2
        .target(name: "GatewayProxyProtocol"),                                                          // PROXY protocol v1/v2 byte parser
        .target(name: "GatewayJWT", dependencies: ["CCJose", "COpenSSL"]),                                   // JWT check: the only module calling cjose/jansson
        .target(name: "GatewayConfig", dependencies: ["COpenSSL", "CGatewayShims", "GatewaySystem", "GatewayJWT"]),            // config language -> immutable values
        .target(name: "GatewayTLS", dependencies: ["COpenSSL", "CGatewayShims", "GatewayConfig", "GatewaySystem"], swiftSettings: hot), // OpenSSL wrappers, policy contexts (TLSSession reads and writes every record)
        .target(name: "GatewayProxy", dependencies: ["GatewaySystem", "GatewayTLS", "GatewayHTTP", "GatewayHTTP2", "GatewayProxyProtocol", "GatewayConfig", "GatewayJWT", "COpenSSL", "CZlib", "CGatewayShims"], swiftSettings: hot),
        .target(name: "GatewayCheck", dependencies: ["GatewayConfig", "GatewayTLS", "GatewayProxy", "GatewaySystem"]),                 // `gateway check` policy rules, text/JSON/SARIF
        .target(name: "GatewayCLI", dependencies: ["GatewayProxy", "GatewayConfig", "GatewayTLS", "GatewayCheck", "GatewaySystem", "COpenSSL",
                                                  .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "gateway", dependencies: ["GatewayCLI"]),
        .executableTarget(name: "gateway-echo", dependencies: ["GatewayHTTP", "GatewayHTTP2", "GatewaySystem", "COpenSSL", "CGatewayShims"]),

        .testTarget(name: "GatewaySystemTests", dependencies: ["GatewaySystem"]),
        .testTarget(name: "GatewayConfigTests", dependencies: ["GatewayConfig"]),
        // Table tests of the token check, with tokens and keys made by PyJWT (an independent implementation).
        .testTarget(name: "GatewayJWTTests", dependencies: ["GatewayJWT"],
                    exclude: ["Fixtures"]),   // keys and tokens read by path
        .testTarget(name: "GatewayHTTPTests", dependencies: ["GatewayHTTP", "TestSupport"],
                    exclude: ["Captures"]),   // captured byte streams read by path
        // Real OpenSSL client and server sessions over memory BIOs: the typed handshake failures.
        .testTarget(name: "GatewayTLSTests", dependencies: ["GatewayTLS", "GatewayConfig", "GatewaySystem", "COpenSSL", "CGatewayShims", "TestSupport"]),
        .testTarget(name: "GatewayProxyTests", dependencies: ["GatewayProxy", "GatewayTLS", "GatewayConfig", "GatewaySystem", "GatewayHTTP"],
                    exclude: ["Captures"]),   // ClientHellos read by path
        // The server session against a real nghttp2 client session and raw frames, no sockets.
        .testTarget(name: "GatewayHTTP2Tests", dependencies: ["GatewayHTTP2", "GatewayHTTP", "GatewaySystem", "CNGHTTP2"]),
        .testTarget(name: "GatewayProxyProtocolTests", dependencies: ["GatewayProxyProtocol", "TestSupport"]),
        // A temporary PKI made with the openssl command, for the check rule and integration tests.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "GatewayCheckTests", dependencies: ["GatewayCheck", "GatewayConfig", "GatewayTLS", "GatewayProxy", "TestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["COpenSSL", "CGatewayShims", "TestSupport"],
                    exclude: ["grpcclient.py", "grpcserver.py", "h2abuse.py", "h2client.py", "h2conn.py", "jwtmint.py"]),   // run by path
    ],
    swiftLanguageModes: [.v6]
)
