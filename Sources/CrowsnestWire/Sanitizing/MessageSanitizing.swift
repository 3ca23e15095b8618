/// Applies `WireTextBounds` to every string of the messages an agent sends. The agent calls these before
/// encoding, the server after decoding: the same bounds on both sides, so an old or foreign agent cannot send
/// what a current one would not.
extension Crowsnest_V1_SampleBatch {
    /// Cleans and bounds every string; returns how many values were shortened or dropped.
    @discardableResult
    public mutating func sanitize() -> UInt64 {
        var cleaner = WireTextCleaner()
        for index in containers.indices {
            containers[index].sanitize(&cleaner)
        }
        for index in events.indices {
            var event = events[index]
            event.dockerID = cleaner.text(event.dockerID, maxBytes: WireTextBounds.tokenBytes)
            event.name = cleaner.name(event.name)
            event.action = cleaner.text(event.action, maxBytes: WireTextBounds.tokenBytes)
            event.detail = cleaner.text(event.detail, maxBytes: WireTextBounds.textBytes)
            events[index] = event
        }
        if hasHost {
            host.sanitize(&cleaner)
        }
        containersUnavailableReason = cleaner.text(containersUnavailableReason, maxBytes: WireTextBounds.textBytes)
        if missing.count > WireTextBounds.missingContainers {
            cleaner.countDropped(UInt64(missing.count - WireTextBounds.missingContainers))
            missing.removeLast(missing.count - WireTextBounds.missingContainers)
        }
        for index in missing.indices {
            missing[index].name = cleaner.name(missing[index].name)
            missing[index].dockerID = cleaner.text(missing[index].dockerID, maxBytes: WireTextBounds.tokenBytes)
            missing[index].reason = cleaner.text(missing[index].reason, maxBytes: WireTextBounds.textBytes)
        }
        return cleaner.truncated
    }
}

extension Crowsnest_V1_ContainerSample {
    mutating func sanitize(_ cleaner: inout WireTextCleaner) {
        dockerID = cleaner.text(dockerID, maxBytes: WireTextBounds.tokenBytes)
        name = cleaner.name(name)
        image = cleaner.text(image, maxBytes: WireTextBounds.imageBytes)
        if !labels.isEmpty {
            labels = cleaner.labels(labels)
        }
        state = cleaner.text(state, maxBytes: WireTextBounds.tokenBytes)
        health = cleaner.text(health, maxBytes: WireTextBounds.tokenBytes)
        healthOutput = cleaner.text(healthOutput, maxBytes: WireTextBounds.healthOutputBytes)
        // Times outside years 1970–9999 are not times (an agent may send any integer): unknown instead.
        if !(0 ... WireTextBounds.latestMillis).contains(startedAtUnixMs) { startedAtUnixMs = 0; cleaner.countDropped(1) }
        if !(0 ... WireTextBounds.latestMillis).contains(finishedAtUnixMs) { finishedAtUnixMs = 0; cleaner.countDropped(1) }
        statsSource = cleaner.text(statsSource, maxBytes: WireTextBounds.tokenBytes)
    }
}

extension Crowsnest_V1_HostSample {
    mutating func sanitize(_ cleaner: inout WireTextCleaner) {
        bootID = cleaner.text(bootID, maxBytes: WireTextBounds.tokenBytes)
        for index in filesystems.indices {
            filesystems[index].mountpoint = cleaner.name(filesystems[index].mountpoint)
            filesystems[index].device = cleaner.name(filesystems[index].device)
            filesystems[index].fstype = cleaner.text(filesystems[index].fstype, maxBytes: WireTextBounds.tokenBytes)
        }
        for index in interfaces.indices {
            interfaces[index].name = cleaner.name(interfaces[index].name)
        }
    }
}

extension Crowsnest_V1_HostFacts {
    /// Cleans and bounds the host facts of a `Hello` or an enrollment request.
    @discardableResult
    public mutating func sanitize() -> UInt64 {
        var cleaner = WireTextCleaner()
        hostname = cleaner.name(hostname)
        os = cleaner.text(os, maxBytes: WireTextBounds.textBytes)
        kernel = cleaner.text(kernel, maxBytes: WireTextBounds.textBytes)
        architecture = cleaner.text(architecture, maxBytes: WireTextBounds.tokenBytes)
        dockerVersion = cleaner.text(dockerVersion, maxBytes: WireTextBounds.tokenBytes)
        return cleaner.truncated
    }
}

extension Crowsnest_V1_Hello {
    /// Cleans and bounds every string of a `Hello`.
    @discardableResult
    public mutating func sanitize() -> UInt64 {
        var cleaner = WireTextCleaner()
        agentVersion = cleaner.text(agentVersion, maxBytes: WireTextBounds.tokenBytes)
        bootID = cleaner.text(bootID, maxBytes: WireTextBounds.tokenBytes)
        return cleaner.truncated + host.sanitize()
    }
}
