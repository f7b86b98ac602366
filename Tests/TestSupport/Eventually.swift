/// Waits until `condition` holds, looking every 10 ms, for state that has no notification of its own (a counter of
/// the client, a peer's log); throws ``TestFailure`` naming `what` once `limit` has passed. The one polling wait of the
/// suites: each use waits for an event, never for time to pass.
public func eventually(_ what: String, within limit: Duration = .seconds(30), _ condition: () async throws -> Bool)
    async throws
{
    let deadline = ContinuousClock.now + limit
    while !(try await condition()) {
        guard ContinuousClock.now < deadline else { throw TestFailure("\(what) did not happen within \(limit)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}
