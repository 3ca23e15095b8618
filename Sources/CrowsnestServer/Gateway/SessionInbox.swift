import CrowsnestWire
import NIOCore

/// The batches one agent session has received and not yet stored, in arrival order.
///
/// The session's reader pushes what arrives; the writer takes everything that is already waiting and stores it in
/// one transaction, so an agent with a backlog costs one COMMIT per group rather than per batch. Bounded: when
/// `capacity` batches, or `maxBytes` of encoded batches, wait, the reader waits too and stops reading from the
/// socket, so TCP pushes back on the agent (a window of 24 frames of 4 MiB would otherwise be 96 MiB a session).
actor SessionInbox {
    enum Item: Sendable {
        case batch(Crowsnest_V1_SampleBatch)
        /// The agent closed the connection or said goodbye: store what came before, then end the session.
        case closed
        /// The session must end with this error once what came before it is stored.
        case failed(any Error)
    }

    let capacity: Int
    let maxBytes: Int
    private var items = CircularBuffer<(item: Item, bytes: Int)>()
    private var batchCount = 0
    private var queuedBytes = 0
    private var consumer: CheckedContinuation<Void, Never>?
    private var producer: CheckedContinuation<Void, Never>?
    private var cancelled = false

    init(capacity: Int, maxBytes: Int = 16 * 1024 * 1024) {
        precondition(capacity > 0, "a session inbox must hold at least one batch")
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    /// Appends `item` (a batch of `bytes` encoded bytes), waiting while `capacity` batches or `maxBytes` are
    /// already waiting; one batch is always let in, whatever its size (returns at once after `cancel()`).
    func push(_ item: Item, bytes: Int = 0) async {
        if case .batch = item {
            while (batchCount >= capacity || (batchCount > 0 && queuedBytes + bytes > maxBytes)) && !cancelled {
                await withCheckedContinuation { producer = $0 }
            }
            batchCount += 1
            queuedBytes += bytes
        }
        items.append((item, bytes))
        consumer?.resume()
        consumer = nil
    }

    /// Waits until something arrived, then takes the waiting batches in order — at most `maxBatches`, and no
    /// more samples than `maxSamples` unless the first batch alone has more — plus the item that ends the
    /// session if it comes next. Empty only after `cancel()`.
    func take(maxBatches: Int, maxSamples: Int) async -> [Item] {
        while items.isEmpty && !cancelled {
            await withCheckedContinuation { consumer = $0 }
        }
        var taken: [Item] = []
        var samples = 0
        var batches = 0
        var bytes = 0
        while let next = items.first {
            if case .batch(let batch) = next.item {
                guard batches == 0 || (batches < maxBatches && samples + batch.containers.count <= maxSamples) else { break }
                batches += 1
                samples += batch.containers.count
                bytes += next.bytes
                taken.append(items.removeFirst().item)
            } else {
                taken.append(items.removeFirst().item)
                break
            }
        }
        batchCount -= batches
        queuedBytes -= bytes
        producer?.resume()
        producer = nil
        return taken
    }

    /// Wakes both sides for good: the session is ending.
    func cancel() {
        cancelled = true
        consumer?.resume()
        consumer = nil
        producer?.resume()
        producer = nil
    }
}
