import Testing
@testable import GatewayProxy

/// The exchange's decisions as a value: retry or answer, abort or wait, and what the
/// connection does next — events in, actions out, no sockets.
@Suite struct ExchangeStateTests {
    let refused = ProxyError(.badGateway, "connect refused", retrySafe: true, metric: .refused)
    let midBody = ProxyError(.badGateway, "reset while sending", retrySafe: false, metric: .reset)
    let timeout = ProxyError(.timeout, "timed out", metric: .timeout)

    /// An exchange that has connected once, to `server`.
    func connected(server: Int = 0) -> ExchangeState {
        var s = ExchangeState()
        s.attempts = 1
        s.serverIndex = server
        s.headSent = true
        return s
    }

    @Test func aRefusedConnectIsRetriedOnceOnAnotherServerThenAnswered() {
        var s = connected(server: 0)
        #expect(s.backendFailed(refused, pooled: false, serverCount: 2, usable: { _ in true }) == .connect(excluding: 0))
        #expect(!s.headSent)   // the head goes again on the new connection
        s.attempts = 2; s.serverIndex = 1; s.headSent = true
        #expect(s.backendFailed(refused, pooled: false, serverCount: 2, usable: { _ in true }) == .answer(close: false))
        #expect(s.status == 502 && s.local && s.responseEnded)
    }

    @Test func aStalePooledConnectionIsRetriedOnTheOnlyServer() {
        var s = connected()
        #expect(s.backendFailed(refused, pooled: true, serverCount: 1, usable: { _ in true }) == .connect(excluding: nil))
        var fresh = connected()
        #expect(fresh.backendFailed(refused, pooled: false, serverCount: 1, usable: { _ in true }) == .answer(close: false))
    }

    @Test func noRetryOnceBodyWasSentOrNoServerIsLeft() {
        var sent = connected()
        sent.bodyForwarded = true
        #expect(sent.backendFailed(refused, pooled: true, serverCount: 2, usable: { _ in true }) == .answer(close: false))
        var unsafe = connected()
        #expect(unsafe.backendFailed(midBody, pooled: false, serverCount: 2, usable: { _ in true }) == .answer(close: false))
        var allDown = connected()
        #expect(allDown.backendFailed(refused, pooled: false, serverCount: 2, usable: { _ in false }) == .answer(close: false))
        #expect(allDown.status == 502)
    }

    @Test func aFailureAfterTheResponseStartedAborts() {
        var s = connected()
        s.responseHead(status: 200, keepAlive: true)
        #expect(s.backendFailed(refused, pooled: true, serverCount: 2, usable: { _ in true }) == .abort)
        #expect(s.status == 200 && !s.local)
    }

    @Test func aDeadlineBeforeTheResponseIsA504NeverRetried() {
        var s = connected(server: 0)
        let cutOff = s.deadlinePassed()
        #expect(!cutOff)
        #expect(s.backendFailed(timeout, pooled: false, serverCount: 3, usable: { _ in true }) == .answer(close: false))
        #expect(s.status == 504)
    }

    @Test func aDeadlineAfterTheResponseStartedOrALocalAnswerAborts() {
        var streaming = connected()
        streaming.responseHead(status: 200, keepAlive: true)
        let cutOff = streaming.deadlinePassed()
        #expect(cutOff)
        var answered = ExchangeState()
        _ = answered.answer(404, close: false)
        let answeredCutOff = answered.deadlinePassed()
        #expect(answeredCutOff)
    }

    @Test func localAnswers() {
        var notFound = ExchangeState()
        #expect(notFound.answer(404, close: false) == .answer(close: false))
        #expect(notFound.local && notFound.responseEnded && notFound.status == 404)
        var tooLarge = ExchangeState()
        tooLarge.requestEnded = false   // a body was announced
        #expect(tooLarge.answer(413, close: true) == .answer(close: true))
        #expect(tooLarge.requestEnded)   // the gateway stops reading it
        var started = connected()
        started.responseHead(status: 200, keepAlive: true)
        #expect(started.answer(502, close: false) == .abort)
    }

    @Test func whatFollowsAnExchange() {
        var s = connected()
        s.responseHead(status: 200, keepAlive: true)
        #expect(s.next(flushed: true, closeAfterResponse: false, draining: false, hasUpstream: true) == nil)   // body still coming
        s.responseEnded = true
        #expect(s.next(flushed: false, closeAfterResponse: false, draining: false, hasUpstream: true) == nil)  // not written yet
        #expect(s.next(flushed: true, closeAfterResponse: false, draining: false, hasUpstream: true) == .nextRequest)
        #expect(s.next(flushed: true, closeAfterResponse: true, draining: false, hasUpstream: true) == .close)
        #expect(s.next(flushed: true, closeAfterResponse: false, draining: true, hasUpstream: true) == .close)
        s.clientKeepAlive = false
        #expect(s.next(flushed: true, closeAfterResponse: false, draining: false, hasUpstream: true) == .close)

        // A local answer while the client's body is unread: the framing is lost, so the connection ends.
        var early = ExchangeState()
        early.requestEnded = false
        _ = early.answer(404, close: false)
        #expect(early.next(flushed: true, closeAfterResponse: false, draining: false, hasUpstream: false) == .close)

        var upgrade = connected()
        upgrade.upgradeRequested = true
        upgrade.switched()
        #expect(upgrade.next(flushed: true, closeAfterResponse: false, draining: false, hasUpstream: true) == .tunnel)
        var unasked = connected()
        unasked.switched()
        #expect(unasked.next(flushed: true, closeAfterResponse: false, draining: false, hasUpstream: true) == .nextRequest)
    }

    @Test func theBackendConnectionIsPooledOnlyAfterACleanExchange() {
        var s = connected()
        s.responseHead(status: 200, keepAlive: true)
        #expect(s.keepsUpstream(upstreamReady: true, draining: false))
        #expect(!s.keepsUpstream(upstreamReady: true, draining: true))
        #expect(!s.keepsUpstream(upstreamReady: false, draining: false))
        s.responseEndedByClose()
        #expect(!s.keepsUpstream(upstreamReady: true, draining: false))
        var unread = connected()
        unread.requestEnded = false
        unread.responseHead(status: 200, keepAlive: true)
        #expect(!unread.keepsUpstream(upstreamReady: true, draining: false))
    }
}
