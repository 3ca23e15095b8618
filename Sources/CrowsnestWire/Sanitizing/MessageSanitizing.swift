/// Applies `WireTextBounds` to every string of the messages an agent sends. The agent calls these before
/// encoding, the server after decoding: the same bounds on both sides, so an old or foreign agent cannot send
/// what a current one would not.
extension Crowsnest_V1_SampleBatch {
    /// Cleans and bounds every string; returns how many values were shortened or dropped.
    ///
    /// Each part is checked first and written to only when something needs cleaning: a batch from a current agent
    /// is clean already, and writing to its messages would copy their storage (measured: a tenth of the server's
    /// ingest CPU went to those copies and their exclusivity checks).
    @discardableResult
    public mutating func sanitize() -> UInt64 {
        var cleaner = WireTextCleaner()
        for index in containers.indices where !containers[index].isClean {
            containers[index].sanitize(&cleaner)
        }
        for index in events.indices where !events[index].isClean {
            var event = events[index]
            event.dockerID = cleaner.text(event.dockerID, maxBytes: WireTextBounds.tokenBytes)
            event.name = cleaner.name(event.name)
            event.action = cleaner.text(event.action, maxBytes: WireTextBounds.tokenBytes)
            event.detail = cleaner.text(event.detail, maxBytes: WireTextBounds.textBytes)
            events[index] = event
        }
        if hasHost && !host.isClean {
            host.sanitize(&cleaner)
        }
        if !WireTextCleaner.isClean(containersUnavailableReason, maxBytes: WireTextBounds.textBytes) {
            containersUnavailableReason = cleaner.text(containersUnavailableReason, maxBytes: WireTextBounds.textBytes)
        }
        if missing.count > WireTextBounds.missingContainers {
            cleaner.countDropped(UInt64(missing.count - WireTextBounds.missingContainers))
            missing.removeLast(missing.count - WireTextBounds.missingContainers)
        }
        for index in missing.indices where !missing[index].isClean {
            missing[index].name = cleaner.name(missing[index].name)
            missing[index].dockerID = cleaner.text(missing[index].dockerID, maxBytes: WireTextBounds.tokenBytes)
            missing[index].reason = cleaner.text(missing[index].reason, maxBytes: WireTextBounds.textBytes)
        }
        if checkResults.count > WireTextBounds.checkResults {
            cleaner.countDropped(UInt64(checkResults.count - WireTextBounds.checkResults))
            checkResults.removeLast(checkResults.count - WireTextBounds.checkResults)
        }
        for index in checkResults.indices where !checkResults[index].isClean {
            checkResults[index].sanitize(&cleaner)
        }
        return cleaner.truncated
    }
}

extension Crowsnest_V1_CheckResult {
    /// Cleans and bounds every string of one result (a server replica's own run, outside any batch).
    @discardableResult
    public mutating func sanitize() -> UInt64 {
        var cleaner = WireTextCleaner()
        sanitize(&cleaner)
        return cleaner.truncated
    }

    var isClean: Bool {
        WireTextCleaner.isClean(checkID, maxBytes: WireTextBounds.tokenBytes)
            && WireTextCleaner.isClean(error, maxBytes: WireTextBounds.textBytes)
            && figures.count <= WireTextBounds.checkFigures && details.count <= WireTextBounds.checkFigures
            && figures.keys.allSatisfy { !$0.isEmpty && WireTextCleaner.isClean($0, maxBytes: WireTextBounds.labelKeyBytes) }
            && figures.values.allSatisfy(\.isFinite)
            && details.allSatisfy {
                !$0.key.isEmpty && WireTextCleaner.isClean($0.key, maxBytes: WireTextBounds.labelKeyBytes)
                    && WireTextCleaner.isClean($0.value, maxBytes: WireTextBounds.labelValueBytes)
            }
    }

    /// Bounds the run's texts; figures that are not finite numbers, and entries past the count bound (in key
    /// order), are dropped and counted.
    mutating func sanitize(_ cleaner: inout WireTextCleaner) {
        checkID = cleaner.text(checkID, maxBytes: WireTextBounds.tokenBytes)
        error = cleaner.text(error, maxBytes: WireTextBounds.textBytes)
        var keptFigures: [String: Double] = [:]
        for key in figures.keys.sorted() {
            let name = cleaner.text(key, maxBytes: WireTextBounds.labelKeyBytes)
            guard let value = figures[key], value.isFinite, !name.isEmpty, keptFigures.count < WireTextBounds.checkFigures
            else {
                cleaner.countDropped(1)
                continue
            }
            keptFigures[name] = value
        }
        figures = keptFigures
        var keptDetails: [String: String] = [:]
        for key in details.keys.sorted() {
            let name = cleaner.text(key, maxBytes: WireTextBounds.labelKeyBytes)
            guard let value = details[key], !name.isEmpty, keptDetails.count < WireTextBounds.checkFigures else {
                cleaner.countDropped(1)
                continue
            }
            keptDetails[name] = cleaner.text(value, maxBytes: WireTextBounds.labelValueBytes)
        }
        details = keptDetails
    }
}

extension Crowsnest_V1_ContainerEvent {
    var isClean: Bool {
        WireTextCleaner.isClean(dockerID, maxBytes: WireTextBounds.tokenBytes)
            && WireTextCleaner.isClean(name, maxBytes: WireTextBounds.nameBytes)
            && WireTextCleaner.isClean(action, maxBytes: WireTextBounds.tokenBytes)
            && WireTextCleaner.isClean(detail, maxBytes: WireTextBounds.textBytes)
    }
}

extension Crowsnest_V1_MissingContainer {
    var isClean: Bool {
        WireTextCleaner.isClean(name, maxBytes: WireTextBounds.nameBytes)
            && WireTextCleaner.isClean(dockerID, maxBytes: WireTextBounds.tokenBytes)
            && WireTextCleaner.isClean(reason, maxBytes: WireTextBounds.textBytes)
    }
}

extension Crowsnest_V1_ContainerSample {
    /// Whether `sanitize` would change nothing.
    var isClean: Bool {
        WireTextCleaner.isClean(dockerID, maxBytes: WireTextBounds.tokenBytes)
            && WireTextCleaner.isClean(name, maxBytes: WireTextBounds.nameBytes)
            && WireTextCleaner.isClean(image, maxBytes: WireTextBounds.imageBytes)
            && WireTextCleaner.areClean(labels)
            && WireTextCleaner.isClean(state, maxBytes: WireTextBounds.tokenBytes)
            && WireTextCleaner.isClean(health, maxBytes: WireTextBounds.tokenBytes)
            && WireTextCleaner.isClean(healthOutput, maxBytes: WireTextBounds.healthOutputBytes)
            && (0 ... WireTextBounds.latestMillis).contains(startedAtUnixMs)
            && (0 ... WireTextBounds.latestMillis).contains(finishedAtUnixMs)
            && WireTextCleaner.isClean(statsSource, maxBytes: WireTextBounds.tokenBytes)
    }

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
    /// Whether `sanitize` would change nothing.
    var isClean: Bool {
        WireTextCleaner.isClean(bootID, maxBytes: WireTextBounds.tokenBytes)
            && filesystems.allSatisfy {
                WireTextCleaner.isClean($0.mountpoint, maxBytes: WireTextBounds.nameBytes)
                    && WireTextCleaner.isClean($0.device, maxBytes: WireTextBounds.nameBytes)
                    && WireTextCleaner.isClean($0.fstype, maxBytes: WireTextBounds.tokenBytes)
            }
            && interfaces.allSatisfy { WireTextCleaner.isClean($0.name, maxBytes: WireTextBounds.nameBytes) }
    }

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
        // Labels that break the rule (or past the 20th) are dropped whole, not repaired: a repaired label could
        // place checks on an agent the operator did not mean.
        let valid = Array(Set(labels.filter { AgentLabels.problem($0) == nil })).sorted().prefix(AgentLabels.maximumCount)
        let dropped = UInt64(labels.count - valid.count)
        if dropped > 0 { labels = Array(valid) }
        return cleaner.truncated + dropped + host.sanitize()
    }
}
