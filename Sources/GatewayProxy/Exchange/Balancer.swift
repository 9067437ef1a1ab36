/// Choosing the server for the next request, as a pure step: weighted round robin over the
/// schedule (server indices repeated by weight), or least connections relative to weight
/// with ties going round robin. The pool supplies which servers are usable and their load,
/// and keeps the cursor.
enum Balancer {
    /// The server, or nil when none is usable; `cursor` moves on.
    static func roundRobin(schedule: [Int], cursor: inout Int, usable: (Int) -> Bool) -> Int? {
        guard !schedule.isEmpty else { return nil }
        for _ in 0..<schedule.count {
            let s = schedule[cursor % schedule.count]
            cursor += 1
            if usable(s) { return s }
        }
        return nil
    }

    /// Fewest requests in flight per unit of weight; among equals the first from `cursor` on.
    static func leastConnections(weights: [Int], cursor: inout Int, inFlight: (Int) -> Int, usable: (Int) -> Bool) -> Int? {
        var best: (server: Int, load: Double)?
        for i in 0..<weights.count {
            let s = (cursor + i) % weights.count
            guard usable(s) else { continue }
            let load = Double(inFlight(s)) / Double(max(1, weights[s]))
            if best == nil || load < best!.load { best = (s, load) }
        }
        cursor += 1
        return best?.server
    }
}
