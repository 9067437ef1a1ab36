import Foundation
import Testing

/// Real gRPC on both ends (grpcio, which scripts/test installs): grpcserver.py is the backend,
/// grpcclient.py the client, both beside this file. Generic handlers on raw bytes, no protobuf:
/// the calls are ordinary gRPC over HTTP/2 (length-prefixed messages, trailers, grpc-status).
enum GRPC {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let serverScript = dir.appendingPathComponent("grpcserver.py").path
    static let clientScript = dir.appendingPathComponent("grpcclient.py").path

    /// grpcserver.py on `port` (the echo certificate), once it has said it listens.
    static func startServer(_ s: Stack, port: UInt16) throws -> ServerProcess {
        let p = try ServerProcess("/usr/bin/env", ["python3", serverScript, String(port)], dir: s.dir)
        try p.waitForStderr("grpcserver ready 127.0.0.1:\(port)")
        return p
    }

    /// What the server logged of its calls (one JSON line per call, as each ends).
    static func calls(_ server: ServerProcess, _ method: String) -> [[String: Any]] {
        jsonLines(server.stdout).filter { $0["method"] as? String == method }
    }

    /// One grpcclient.py call through the gateway (SNI and :authority api.example.test, the dev CA).
    static func call(_ s: Stack, _ command: [String], service: String = "test.Echo", metadata: [String] = [],
                     deadline: Double? = nil) throws -> GRPCResult {
        var args = ["python3", clientScript, "--target", "127.0.0.1:\(s.gatewayPort)", "--ca", Repo.cert("ca.pem"),
                    "--authority", "api.example.test", "--service", service]
        args += metadata.flatMap { ["--metadata", $0] }
        if let deadline { args += ["--timeout", String(deadline)] }
        let r = try run(args + command, timeout: 60)
        guard r.status == 0, let line = r.out.split(separator: "\n").last,
              let result = try? JSONDecoder().decode(GRPCResult.self, from: Data(line.utf8)) else {
            throw HarnessError("grpcclient.py \(command) failed (\(r.status)): \(r.err.suffix(1500)) \(r.out.suffix(500))")
        }
        return result
    }

    /// A gRPC request as raw HTTP/2 with nghttp -v (its frame log on stdout): POST `path` to the
    /// gateway with one message, `content-type: application/grpc` and `te: trailers`.
    static func nghttp(_ s: Stack, _ path: String, message: String = "hello", _ extra: [String] = []) throws -> String {
        let file = "\(s.dir)/grpc-\(UUID().uuidString.prefix(8)).bin"
        let m = Array(message.utf8)
        try Data([0] + withUnsafeBytes(of: UInt32(m.count).bigEndian, Array.init) + m).write(to: URL(fileURLWithPath: file))
        // No SNI for an IP literal: the listener's default host, api.example.test.
        let r = try run(["nghttp", "-v", "-H", ":authority: api.example.test", "-H", "content-type: application/grpc",
                         "-H", "te: trailers", "-d", file] + extra + ["https://127.0.0.1:\(s.gatewayPort)\(path)"])
        #expect(r.status == 0, "\(r.err)")
        return r.out
    }

    /// The shape of a gRPC trailers-only answer in nghttp's frame log: one HEADERS frame with
    /// END_STREAM (flags 0x05), `:status: 200`, `content-type: application/grpc`, the status, no DATA.
    static func isTrailersOnly(_ out: String, status: Int) -> Bool {
        let headers = out.split(separator: "\n").filter { $0.contains("recv HEADERS frame") }
        return headers.count == 1 && headers[0].contains("flags=0x05") && !out.contains("recv DATA frame")
            && out.contains(":status: 200") && out.contains("content-type: application/grpc")
            && out.contains("grpc-status: \(status)\n") && out.contains("grpc-message: ")
    }
}

/// grpcclient.py's JSON: what came back and how the call ended.
struct GRPCResult: Decodable, CustomStringConvertible {
    struct Digest: Decodable, Equatable { let length: Int; let sha256: String }
    let code: String
    let code_number: Int
    let details: String
    let initial_metadata: [String: String]
    let trailing_metadata: [String: String]
    /// The messages as text (nil for one over 4 KiB: see `digests`).
    let messages: [String?]
    let digests: [Digest]
    /// unary-bytes: the request's length and sha256.
    let sent: Digest?
    let elapsed: Double
    var description: String {
        "\(code)(\(code_number)) \"\(details)\" messages=\(messages.prefix(10)) initial=\(initial_metadata) trailing=\(trailing_metadata) elapsed=\(elapsed)"
    }
}

extension Stack {
    /// The default test config with routes for gRPC: `/test.Echo` to backend `grpc` (grpcserver.py,
    /// `protocol h2`), and what `routes` adds; no `route /`, so any other path has no route (404).
    func grpcConfig(grpcPort: UInt16, routes: String = "", backends: String = "", topExtra: String = "") -> String {
        config(topExtra: topExtra, routes: "route /test.Echo backend grpc;\n    \(routes)") + "\n"
            + Self.h2Backend("grpc", port: grpcPort) + backends
    }

    /// An `h2` backend block named `name` toward `port` (the echo certificate's name and CA).
    static func h2Backend(_ name: String, port: UInt16, extra: String = "") -> String {
        """
        backend \(name) {
            server https://127.0.0.1:\(port);
            protocol h2;
            connect_timeout 2s;
            response_timeout 3s;
            \(extra)
            tls {
                ca \(Repo.certs)/backend-ca.pem;
                server_name echo.internal.test;
                certificate \(Repo.certs)/gateway-client.pem \(Repo.certs)/gateway-client.key;
            }
        }

        """
    }
}
