import Testing
import GatewaySystem
@testable import GatewayProxy
import GatewayConfig
import GatewayTLS
import GatewayHTTP

/// The resolver as the connection calls it (with the asked authority's bytes), from a String.
extension HostResolver {
    mutating func resolve(asked: String?, connectionHost: Int?, table: HostTable, policies: [TLSPolicy]) -> Decision {
        guard let asked else { return resolve(asked: nil as UnsafeRawBufferPointer?, connectionHost: connectionHost, table: table, policies: policies) }
        return Array(asked.utf8).withUnsafeBytes { resolve(asked: $0, connectionHost: connectionHost, table: table, policies: policies) }
    }
}

/// The pure steps of an exchange, without sockets.
@Suite struct HostResolverTests {
    // 0: api.example.test (mTLS), 1: *.example.test, 2: other.example.test (same policy as 1), 3: strict.test (TLS 1.3)
    let table = HostTable(names: [["api.example.test"], ["*.example.test"], ["other.example.test", "alias.test"], ["strict.test"]])
    var policies: [TLSPolicy] {
        var mtls = TLSPolicy(); mtls.clientAuth = .required; mtls.clientCA = "/ca.pem"
        var strict = TLSPolicy(); strict.minVersion = .tls1_3
        return [mtls, TLSPolicy(), TLSPolicy(), strict]
    }

    func decide(_ asked: String?, on connection: Int?) -> HostResolver.Decision {
        var r = HostResolver()
        return r.resolve(asked: asked, connectionHost: connection, table: table, policies: policies)
    }

    @Test func misdirectionMatrix() {
        // (Host sent, connection's SNI host, expected)
        let cases: [(String?, Int?, HostResolver.Decision)] = [
            ("api.example.test", 0, .serve(0)),
            ("API.Example.Test.:8443", 0, .serve(0)),                  // case, trailing dot and port do not matter
            ("api.example.test", 1, .misdirected(requested: "api.example.test")),  // SNI public, Host mTLS: the bypass
            ("foo.example.test", 0, .misdirected(requested: "foo.example.test")),
            ("bar.example.test", 1, .serve(1)),                          // same wildcard block
            ("other.example.test", 1, .serve(2)),                        // another block, identical policy
            ("alias.test", 1, .serve(2)),
            ("strict.test", 2, .misdirected(requested: "strict.test")),
            ("a.b.example.test", 0, .serve(0)),                          // matches no block: the connection's host
            ("127.0.0.1:8443", 3, .serve(3)),
            ("[::1]:8443", 1, .serve(1)),
            (nil, 1, .serve(1)),                                         // HTTP/1.0 without Host
            ("api.example.test", nil, .serve(0)),                        // no connection host at all
        ]
        for (asked, conn, expected) in cases {
            #expect(decide(asked, on: conn) == expected, "Host \(asked ?? "none") on host \(conn.map(String.init) ?? "none")")
        }
    }

    @Test func decisionIsKeptForARepeatedHost() {
        var r = HostResolver()
        #expect(r.resolve(asked: "api.example.test", connectionHost: 1, table: table, policies: policies) == .misdirected(requested: "api.example.test"))
        #expect(r.resolve(asked: "bar.example.test", connectionHost: 1, table: table, policies: policies) == .serve(1))
        #expect(r.resolve(asked: "api.example.test", connectionHost: 1, table: table, policies: policies) == .misdirected(requested: "api.example.test"))
    }

    /// `cached` answers only a repeat of the last authority (the connection skips gathering the
    /// table and policies then), and never a different one.
    @Test func cachedAnswersOnlyTheLastAuthority() {
        var r = HostResolver()
        func cached(_ s: String?) -> HostResolver.Decision? {
            guard let s else { return r.cached(nil) }
            return Array(s.utf8).withUnsafeBytes { r.cached($0) }
        }
        #expect(cached("api.example.test") == nil)   // nothing decided yet
        _ = r.resolve(asked: "api.example.test", connectionHost: 1, table: table, policies: policies)
        #expect(cached("api.example.test") == .misdirected(requested: "api.example.test"))
        #expect(cached("bar.example.test") == nil && cached("api.example.tes") == nil && cached(nil) == nil)
    }

    @Test func normalisation() {
        #expect(HostResolver.normaliseHost("Example.TEST.:443") == "example.test")
        #expect(HostResolver.normaliseHost("[2001:DB8::1]:443") == "2001:db8::1")
        #expect(HostResolver.normaliseHost("") == nil)
        #expect(HostResolver.normaliseHost(nil) == nil)
    }
}

/// The byte-level Router steps on a String, for readable cases.
enum Routing {
    static func route(_ target: String, in routes: [Route]) -> Route? {
        Array(target.utf8).withUnsafeBytes { b in Router.route(b, Router.splitTarget(b, 0..<b.count).path, in: routes) }
    }
    static func upstreamPath(_ target: String, _ route: Route) -> String {
        Array(target.utf8).withUnsafeBytes { b in
            var out = ByteBuffer()
            Router.writeUpstreamPath(b, Router.splitTarget(b, 0..<b.count).path, route, into: &out)
            return String(decoding: out.readable, as: UTF8.self)
        }
    }
    static func splitTarget(_ target: String) -> (String?, String) {
        Array(target.utf8).withUnsafeBytes { b in
            let (authority, path) = Router.splitTarget(b, 0..<b.count)
            return (authority.map { String(decoding: b[$0], as: UTF8.self) }, path.string(b))
        }
    }
}

@Suite struct RouterTests {
    let here = SourceLocation(file: "t", line: 1, column: 1)
    var routes: [Route] {
        [Route(prefix: "/echo/deep", backend: "deep", stripPrefix: false, location: here),
         Route(prefix: "/strip", backend: "s", stripPrefix: true, location: here),
         Route(prefix: "/echo", backend: "echo", stripPrefix: false, location: here),
         Route(prefix: "/dir/", backend: "dir", stripPrefix: false, location: here),
         Route(prefix: "/", backend: "root", stripPrefix: false, location: here)]
    }

    @Test func longestPrefixOnSegmentBoundary() {
        let cases: [(String, String)] = [
            ("/echo", "echo"), ("/echo/x", "echo"), ("/echo?q=1", "echo"), ("/echoes", "root"),
            ("/echo/deep/er", "deep"), ("/echo/deeper", "echo"), ("/dir/a", "dir"), ("/Echo", "root"), ("/", "root"),
        ]
        for (path, backend) in cases { #expect(Routing.route(path, in: routes)?.backend == backend, "\(path)") }
        #expect(Routing.route("/x", in: Array(routes.dropLast())) == nil)
    }

    @Test func stripPrefixLeavesAtLeastASlash() {
        let strip = routes[1]
        #expect(Routing.upstreamPath("/strip", strip) == "/")
        #expect(Routing.upstreamPath("/strip?q=1", strip) == "/?q=1")
        #expect(Routing.upstreamPath("/strip/x", strip) == "/x")
        #expect(Routing.upstreamPath("/echo/x", routes[2]) == "/echo/x")
    }

    @Test func absoluteFormTargets() {
        #expect(Routing.splitTarget("/a?b") == (nil, "/a?b"))
        #expect(Routing.splitTarget("https://api.example.test:8443/a/b?c") == ("api.example.test:8443", "/a/b?c"))
        #expect(Routing.splitTarget("https://api.example.test?x") == ("api.example.test", "/?x"))
        #expect(Routing.splitTarget("https://api.example.test") == ("api.example.test", "/"))
        #expect(Routing.route("https://api.example.test?x", in: routes)?.backend == "root")
        #expect(Routing.upstreamPath("https://api.example.test/strip/x?y", routes[1]) == "/x?y")
    }
}

@Suite struct RetryPolicyTests {
    func attempt(_ f: ProxyError, pooled: Bool = false, servers: Int = 2, body: Bool = false, started: Bool = false, attempts: Int = 1) -> RetryPolicy.Attempt {
        RetryPolicy.Attempt(failure: f, pooled: pooled, failedServer: 0, serverCount: servers, bodyForwarded: body,
                            responseStarted: started, attempts: attempts)
    }
    let refused = ProxyError(.badGateway, "refused", retrySafe: true, metric: .refused)
    let midBody = ProxyError(.badGateway, "reset", retrySafe: false, metric: .reset)
    let timeout = ProxyError(.timeout, "timeout", metric: .timeout)

    @Test func decisions() {
        #expect(RetryPolicy.decide(attempt(refused), usable: { _ in true }) == .retry(excluding: 0), "another server")
        #expect(RetryPolicy.decide(attempt(refused, servers: 1), usable: { _ in true }) == .fail, "a refused only server is not retried")
        #expect(RetryPolicy.decide(attempt(refused, pooled: true, servers: 1), usable: { _ in true }) == .retry(excluding: nil),
                "a stale pooled connection: the same server again")
        #expect(RetryPolicy.decide(attempt(refused, body: true), usable: { _ in true }) == .fail, "body already sent")
        #expect(RetryPolicy.decide(attempt(refused, started: true), usable: { _ in true }) == .fail)
        #expect(RetryPolicy.decide(attempt(refused, attempts: 2), usable: { _ in true }) == .fail, "once only")
        #expect(RetryPolicy.decide(attempt(refused), usable: { _ in false }) == .fail, "no other server usable")
        #expect(RetryPolicy.decide(attempt(midBody), usable: { _ in true }) == .fail)
        #expect(RetryPolicy.decide(attempt(timeout), usable: { _ in true }) == .fail)
    }

    @Test func healthAccounting() {
        #expect(RetryPolicy.countsAgainstServer(attempt(refused)))
        #expect(!RetryPolicy.countsAgainstServer(attempt(refused, pooled: true)), "a stale pooled connection says nothing")
        #expect(!RetryPolicy.countsAgainstServer(attempt(ProxyError(.unavailable, "none", metric: nil))))
        #expect(RetryPolicy.countsAgainstServer(attempt(timeout)))
    }
}

@Suite struct ProxyErrorTests {
    @Test func sideKindAndStatus() {
        let parse = ProxyError.client(HTTPParseError(431, "too many headers"))
        #expect(parse.side == .client && parse.status == 431 && !parse.retrySafe && parse.metric == nil)
        #expect(ProxyError.client(421, "misdirected").kind == .refused(status: 421))
        let refused = ProxyError(.badGateway, "refused", retrySafe: true, metric: .refused)
        #expect(refused.side == .backend && refused.status == 502 && refused.retrySafe)
        #expect(ProxyError(.unavailable, "none", metric: nil).status == 503)
        #expect(ProxyError(.timeout, "slow", metric: .timeout).status == 504)
    }
}

@Suite struct BalancerTests {
    @Test func weightedRoundRobinFollowsTheSchedule() {
        let schedule = [0, 0, 0, 1]   // weights 3 and 1
        var cursor = 0
        let picks = (0..<8).map { _ in Balancer.roundRobin(schedule: schedule, cursor: &cursor, usable: { _ in true }) }
        #expect(picks == [0, 0, 0, 1, 0, 0, 0, 1])
    }

    @Test func roundRobinSkipsServersThatAreDownAndGivesUpWhenAllAre() {
        var cursor = 0
        let picks = (0..<4).map { _ in Balancer.roundRobin(schedule: [0, 1, 2], cursor: &cursor, usable: { $0 != 1 }) }
        #expect(picks == [0, 2, 0, 2])
        #expect(Balancer.roundRobin(schedule: [0, 1], cursor: &cursor, usable: { _ in false }) == nil)
        #expect(Balancer.roundRobin(schedule: [], cursor: &cursor, usable: { _ in true }) == nil)
    }

    @Test func leastConnectionsWeighsLoadAndBreaksTiesRoundRobin() {
        var cursor = 0
        let busy = [4, 1, 2]
        #expect(Balancer.leastConnections(weights: [1, 1, 1], cursor: &cursor, inFlight: { busy[$0] }, usable: { _ in true }) == 1)
        // Server 0 has weight 8: 4 in flight is half a request per unit, the least.
        #expect(Balancer.leastConnections(weights: [8, 1, 1], cursor: &cursor, inFlight: { busy[$0] }, usable: { _ in true }) == 0)
        // Equal loads: the first from the cursor on, which moves every call.
        var c = 0
        let ties = (0..<3).map { _ in Balancer.leastConnections(weights: [1, 1, 1], cursor: &c, inFlight: { _ in 0 }, usable: { _ in true }) }
        #expect(ties == [0, 1, 2])
        #expect(Balancer.leastConnections(weights: [1, 1], cursor: &c, inFlight: { _ in 0 }, usable: { $0 == 1 }) == 1)
        #expect(Balancer.leastConnections(weights: [1, 1], cursor: &c, inFlight: { _ in 0 }, usable: { _ in false }) == nil)
    }
}

@Suite struct ExchangeTableTests {
    @Test func exchangesAreKeptByStreamAndComeBackReset() {
        let pool = ExchangePool(buffers: BufferPool(slabBlocks: 4))
        var table = ExchangeTable()
        // Weak: the test must not hold the exchange, or the table would rightly not reuse it.
        weak var one = table.open(HTTP1Downstream.stream, startedAt: 5, pool: pool).takeUnretainedValue()
        let three = table.open(3, startedAt: 7, pool: pool).takeUnretainedValue()   // a second stream, as HTTP/2 would open
        #expect(table[HTTP1Downstream.stream] === one && table[3] === three && table[5] == nil)
        table[HTTP1Downstream.stream]!.state.status = 502
        table[HTTP1Downstream.stream]!.outgoingHead.append(Array("GET / HTTP/1.1\r\n".utf8))
        table.close(HTTP1Downstream.stream, pool: pool)
        #expect(table[HTTP1Downstream.stream] == nil && table[3] === three)
        // The pool hands the same object out again, with nothing of the last request left.
        let again = pool.take(startedAt: 9)
        #expect(one != nil && again === one)
        #expect(again.state == ExchangeState() && again.state.status == 0 && again.outgoingHead.isEmpty && again.backend == nil && again.startedAt == 9)
    }

    @Test func sparesCoverABatchOfStreamsAndAreCutBackAfterASurge() {
        let pool = ExchangePool(buffers: BufferPool(slabBlocks: 4))
        var table = ExchangeTable()
        // 500 streams in flight at once (h2load -c4 -m250 gives a worker ~512), all answered.
        for s in 0..<500 { _ = table.open(StreamID(1 + 2 * s), startedAt: 1, pool: pool) }
        var objects: [ObjectIdentifier] = []
        for s in 0..<500 {
            objects.append(ObjectIdentifier(table[StreamID(1 + 2 * s)]!))
            table.close(StreamID(1 + 2 * s), pool: pool)
        }
        #expect(pool.spareCount == 500, "every one kept for the next batch")
        let known = Set(objects)
        let next = (0..<500).map { _ in pool.take(startedAt: 2) }
        #expect(next.allSatisfy { known.contains(ObjectIdentifier($0)) }, "the next batch allocated none")
        next.forEach { pool.give($0) }
        pool.trim(to: ExchangePool.keptAfterSurge)
        #expect(pool.spareCount == ExchangePool.keptAfterSurge)
    }

    /// An h2 backend's batch of answers closes hundreds of exchanges while each is still held by
    /// the step that finished it: once let go, every one comes back (none freed and reallocated).
    @Test func aBatchClosedWhileHeldComesBackWhole() {
        let pool = ExchangePool(buffers: BufferPool(slabBlocks: 4))
        var table = ExchangeTable()
        var held: [Exchange] = []
        for s in 0..<500 { held.append(table.open(StreamID(1 + 2 * s), startedAt: 1, pool: pool).takeUnretainedValue()) }
        for s in 0..<500 { table.close(StreamID(1 + 2 * s), pool: pool) }
        #expect(pool.spareCount == 0 && pool.retiredCount == 500, "every one kept, none dropped to be freed")
        let known = Set(held.map(ObjectIdentifier.init))
        held.removeAll()
        let next = (0..<500).map { _ in pool.take(startedAt: 2) }
        #expect(next.allSatisfy { known.contains(ObjectIdentifier($0)) }, "the next batch allocated none")
        #expect(next.allSatisfy { $0.startedAt == 2 && $0.state == ExchangeState() })
        #expect(pool.retiredCount == 0)
    }

    /// With a loop, a closed exchange waits for the end of the batch: a step that closed it may
    /// still be using it (at +0), so the same batch never gets it again, reset or not.
    @Test func aClosedExchangeComesBackAtTheEndOfTheBatch() throws {
        let loop = try EventLoop()
        let pool = ExchangePool(buffers: BufferPool(slabBlocks: 4))
        pool.loop = .passUnretained(loop)
        var table = ExchangeTable()
        let closed = ObjectIdentifier(table.open(HTTP1Downstream.stream, startedAt: 1, pool: pool).takeUnretainedValue())
        table[HTTP1Downstream.stream]!.state.status = 200
        table.close(HTTP1Downstream.stream, pool: pool)
        #expect(pool.batchQueued && pool.spareCount == 0)
        let next = pool.take(startedAt: 2)
        #expect(ObjectIdentifier(next) != closed, "not handed out again within the batch")
        pool.endOfBatch()   // what the loop runs once the batch's events are handled
        #expect(pool.spareCount == 1 && pool.retiredCount == 0)
        let again = pool.take(startedAt: 3)
        #expect(ObjectIdentifier(again) == closed && again.state.status == 0 && again.startedAt == 3)
    }

    @Test func anExchangeStillHeldElsewhereIsNotReused() {
        let pool = ExchangePool(buffers: BufferPool(slabBlocks: 4))
        var table = ExchangeTable()
        let held = table.open(HTTP1Downstream.stream, startedAt: 1, pool: pool).takeUnretainedValue()
        table.close(HTTP1Downstream.stream, pool: pool)
        #expect(pool.take(startedAt: 2) !== held)
    }
}
