import Testing
@testable import GatewayProxy

/// SPEC §12's gRPC rules as pure values: the grpc-timeout header and the grpc-status of the
/// gateway's own answers.
@Suite struct GRPCMappingTests {
    func timeout(_ s: String) -> Int? {
        Array(s.utf8).withUnsafeBytes { Exchange.grpcTimeoutMs($0, 0..<$0.count) }
    }

    @Test func grpcTimeoutUnitsRoundUpToMilliseconds() {
        #expect(timeout("1H") == 3_600_000)
        #expect(timeout("2M") == 120_000)
        #expect(timeout("3S") == 3000)
        #expect(timeout("250m") == 250)
        #expect(timeout("1500u") == 2)
        #expect(timeout("1n") == 1, "a positive timeout never rounds down to none")
        #expect(timeout("99999999S") == 99_999_999_000, "eight digits is the most gRPC allows")
    }

    @Test func malformedGrpcTimeoutsAreIgnored() {
        for bad in ["", "S", "10", "10s", "1.5S", "-1S", "123456789S", " 1S"] {
            #expect(timeout(bad) == nil, "\(bad)")
        }
    }

    @Test func localAnswersMapToGrpcStatus() {
        func answer(_ e: ProxyError) -> Int? { var e = e; e.grpc = true; return e.grpcAnswer }
        #expect(answer(.client(404, "no route")) == 12)
        #expect(answer(.client(401, "token")) == 16)
        #expect(answer(.client(403, "forbidden")) == 7)
        #expect(answer(.client(413, "body")) == 8 && answer(.client(431, "head")) == 8)
        #expect(answer(.client(400, "bad")) == 13)
        #expect(answer(ProxyError(.badGateway, "down", metric: nil)) == 14)
        #expect(answer(ProxyError(.unavailable, "grpc needs an h2 backend", metric: nil)) == 14)
        #expect(answer(ProxyError(.timeout, "slow", metric: nil)) == 14)
        #expect(answer(.client(408, "slow client")) == 2)
        #expect(answer(.client(421, "misdirected")) == nil, "a 421 stays a 421")
        var deadline = ProxyError(.timeout, "grpc-timeout expired", metric: nil)
        deadline.grpcCode = 4
        #expect(answer(deadline) == 4)
        #expect(ProxyError.client(404, "not grpc").grpcAnswer == nil)
    }
}
