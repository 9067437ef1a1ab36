import Testing
@testable import GatewayProxy

/// `DurationHistogram.bucket` compares against literals; it must agree with `boundsMs`, which
/// `/metrics` prints as the `le` labels.
@Suite struct DurationHistogramTests {
    @Test func bucketsAgreeWithTheBounds() {
        let bounds = DurationHistogram.boundsMs
        #expect(DurationHistogram.bucket(0) == 0)
        for (i, bound) in bounds.enumerated() {
            #expect(DurationHistogram.bucket(bound) == i, "\(bound) ms is within le=\(bound)")
            #expect(DurationHistogram.bucket(bound + 1) == i + 1, "\(bound + 1) ms is over le=\(bound)")
        }
        #expect(DurationHistogram.bucket(Int.max) == bounds.count)
        #expect(DurationHistogram().buckets.count == bounds.count + 1, "a bucket per bound and +Inf")
    }

    @Test func observeCountsIntoTheBucket() {
        var h = DurationHistogram()
        h.observe(ms: 3); h.observe(ms: 5); h.observe(ms: 90_000)
        #expect(h.buckets[1] == 2 && h.buckets[DurationHistogram.boundsMs.count] == 1)
        #expect(h.count == 3 && h.sumMs == 90_008)
    }
}
