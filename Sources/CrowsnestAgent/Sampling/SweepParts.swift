import CrowsnestWire

/// Splits one sweep into batches (parts) that each fit the frame limit, so a host with hundreds of containers and
/// long labels never produces a frame the server must refuse.
///
/// Every part carries the sweep's time, interval and `part`/`part_count`; the first carries the host figures,
/// the events and the spool-drop count, the last the containers missing from the sweep. Containers are packed in
/// order, greedily. A sweep that fits is one part with `part = part_count = 1`.
public enum SweepParts {
    /// Room kept for a part's own fields (sequence, time, counts) and the frame wrapper.
    static let overheadBytes = 1_024

    /// The encoded size of a message (0 if it cannot be encoded, which generated messages always can).
    static func size(_ message: Crowsnest_V1_SampleBatch) -> Int {
        ((try? message.serializedBytes()) as [UInt8]?)?.count ?? 0
    }

    static func size(_ message: Crowsnest_V1_ContainerSample) -> Int {
        ((try? message.serializedBytes()) as [UInt8]?)?.count ?? 0
    }

    /// The parts of `batch` (whose strings are already bounded), none encoding to more than `maxBytes`.
    public static func split(_ batch: Crowsnest_V1_SampleBatch, maxBytes: Int) -> [Crowsnest_V1_SampleBatch] {
        var whole = batch
        whole.part = 1
        whole.partCount = 1
        if size(whole) + overheadBytes <= maxBytes {
            return [whole]
        }
        var first = batch
        first.containers = []
        first.missing = []
        var last = Crowsnest_V1_SampleBatch()
        last.missing = batch.missing
        let firstSize = size(first)
        let lastSize = size(last)

        var parts: [[Crowsnest_V1_ContainerSample]] = [[]]
        var used = firstSize + overheadBytes
        for container in batch.containers {
            // A repeated field costs its bytes plus a tag and a length prefix of at most 5 bytes.
            let size = Self.size(container) + 6
            if used + size > maxBytes && !parts[parts.count - 1].isEmpty {
                parts.append([])
                used = overheadBytes
            }
            parts[parts.count - 1].append(container)
            used += size
        }
        if used + lastSize > maxBytes {
            parts.append([])
        }
        let count = UInt32(parts.count)
        return parts.enumerated().map { index, containers in
            var part: Crowsnest_V1_SampleBatch
            if index == 0 {
                part = first
            } else {
                part = Crowsnest_V1_SampleBatch()
                part.tsUnixMs = batch.tsUnixMs
                part.intervalSeconds = batch.intervalSeconds
                part.containersUnavailableReason = batch.containersUnavailableReason
            }
            part.containers = containers
            part.part = UInt32(index + 1)
            part.partCount = count
            if index == parts.count - 1 { part.missing = batch.missing }
            return part
        }
    }
}
