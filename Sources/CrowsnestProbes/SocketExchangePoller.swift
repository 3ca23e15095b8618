#if os(Linux)
import CEpoll
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What one connection of a `SocketExchangePoller` says and makes of the answer: the bytes it sends once
/// connected are given to `exchange`; the conversation is fed what arrives until it is satisfied or the peer
/// closes.
protocol SocketConversation: Sendable {
    /// The connection is up; true when that is all the conversation wanted (a TCP check).
    mutating func connected() -> Bool
    /// The next bytes received; true once nothing more is wanted (the connection is then closed).
    mutating func received(_ bytes: UnsafeRawBufferPointer) throws -> Bool
    /// The peer closed its side before the conversation was satisfied; throws when that cut an answer short.
    mutating func peerClosed() throws
}

/// Why an exchange of a `SocketExchangePoller` failed, with the system's error code.
struct SocketExchangeError: Error, CustomStringConvertible, Sendable {
    enum Stage: Sendable {
        /// No socket could be made (out of file descriptors, most likely).
        case socket
        /// The connection was not established: refused, unreachable.
        case connect
        /// The connection broke while sending or receiving.
        case transfer
    }

    let stage: Stage
    let code: Int32

    /// The failure in a few words ("connection refused").
    var reason: String {
        switch code {
        case ECONNREFUSED: return "connection refused"
        case ECONNRESET: return "connection reset by the peer"
        case ENETUNREACH: return "network unreachable"
        case EHOSTUNREACH: return "host unreachable"
        case ETIMEDOUT: return "timed out"
        case EMFILE, ENFILE: return "no file descriptor left for a socket"
        default: return String(cString: strerror(code)) + " (errno \(code))"
        }
    }

    var description: String {
        switch stage {
        case .socket: return "cannot open a socket: \(reason)"
        case .connect: return reason
        case .transfer: return "the connection failed: \(reason)"
        }
    }
}

/// One-shot TCP exchanges for probes — connect, send one request, read the answer, close — on non-blocking
/// sockets watched by one epoll thread. A probe on a NIO channel pays for a channel, a pipeline, handlers and
/// promises set up and torn down per connection, and about 28 system calls per plain HTTP probe; here it is
/// six (socket, connect, epoll_ctl, send, recv, close) plus the waits, which is what a plain-HTTP or TCP check
/// run every few seconds across a fleet spends most of its CPU on (docs/BENCHMARKS.md, section 6). TLS,
/// PostgreSQL and DNS probes stay on NIO.
///
/// The caller's task waits on a continuation; the poller thread resumes it when the conversation is satisfied,
/// the peer closes, or the connection fails. Cancelling the task (a run's deadline) takes the connection out of the
/// table under the lock and closes its socket at once (or, when the caller is still adding it to epoll, as soon
/// as that returns).
/// Every connection is known by a number that is never reused, so an event of a closed socket whose descriptor
/// was reused is never taken for the new one's.
final class SocketExchangePoller: Sendable {
    /// The process's poller, its thread started on first use; nil when no epoll instance could be made (the
    /// probes then use NIO channels).
    static let shared: SocketExchangePoller? = SocketExchangePoller()

    /// Bytes read per `recv`; a probe's answer is read in as many as it needs.
    static let readBufferSize = 64 * 1024
    private static let eventsPerWait: Int32 = 64

    /// A connection in flight. Its fields are touched only with `connections` locked.
    private final class Connection: @unchecked Sendable {
        let fd: Int32
        var isConnected: Bool
        var output: ByteBuffer
        var conversation: any SocketConversation
        let continuation: CheckedContinuation<any SocketConversation, any Error>
        /// How many of the two parties are done with the descriptor: the caller once `epoll_ctl` has added it, and
        /// whoever took the connection out of the table (the poller when it ended, or the cancellation). The
        /// second closes it, so a descriptor is never closed while it is still being added (its number, reused
        /// by another socket meanwhile, would be added in its place).
        private let releases = Atomic<UInt8>(0)

        init(fd: Int32, isConnected: Bool, output: ByteBuffer, conversation: any SocketConversation,
             continuation: CheckedContinuation<any SocketConversation, any Error>) {
            self.fd = fd
            self.isConnected = isConnected
            self.output = output
            self.conversation = conversation
            self.continuation = continuation
        }

        /// One party is done with the descriptor; the second to say so closes it.
        func release() {
            if releases.add(1, ordering: .acquiringAndReleasing).newValue == 2 { close(fd) }
        }
    }

    private enum Step {
        case waiting
        case finished(Result<any SocketConversation, any Error>)
    }

    private let epollFD: Int32
    private let connections = Mutex<[UInt64: Connection]>([:])
    /// Connection and timer numbers; 0 is the wake-up descriptor's.
    let nextID = Atomic<UInt64>(0)

    /// An eventfd in the epoll set: written to wake the thread for work handed over from other threads.
    let wakeFD: Int32
    /// `pthread_self()` of the poller thread, once it runs: work enqueued from it needs no wake-up.
    let pollerThread = Atomic<UInt>(0)
    /// Jobs and timers handed over from other threads.
    let inbox = Mutex<PollerInbox>(PollerInbox())
    /// Jobs and timers of the poller thread, touched only by it.
    let own = PollerThreadState()

    private init?() {
        let epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { return nil }
        let wakeFD = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        var event = epoll_event()
        event.events = UInt32(EPOLLIN.rawValue)
        event.data.u64 = 0
        guard wakeFD >= 0, epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event) == 0 else {
            if wakeFD >= 0 { close(wakeFD) }
            close(epollFD)
            return nil
        }
        self.epollFD = epollFD
        self.wakeFD = wakeFD
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { argument in
            let poller = Unmanaged<SocketExchangePoller>.fromOpaque(argument!).takeRetainedValue()
            cepoll_name_this_thread("probe-sockets")
            poller.pollerThread.store(UInt(pthread_self()), ordering: .releasing)
            poller.run()
            return nil
        }, Unmanaged.passRetained(self).toOpaque())
        guard started == 0 else {
            close(wakeFD)
            close(epollFD)
            return nil
        }
        pthread_detach(thread)
    }

    /// Connects to `address`, sends `request` once connected, and feeds the answer to `conversation` until it is
    /// satisfied or the peer closes; returns the conversation as it ended. Throws `SocketExchangeError` (stage
    /// `connect` when the connection never came up), what the conversation threw, or `CancellationError`.
    func exchange<Conversation: SocketConversation>(
        to address: SocketAddress, sending request: ByteBuffer, conversation: Conversation
    ) async throws -> Conversation {
        try Task.checkCancellation()
        let family = Int32(address.protocol.rawValue)
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketExchangeError(stage: .socket, code: errno) }
        let connectCode: Int32 = address.withSockAddr { pointer, size in
            connect(fd, pointer, socklen_t(size)) == 0 ? 0 : errno
        }
        // EINTR: a signal came first; the connection goes on being made, as with EINPROGRESS.
        guard connectCode == 0 || connectCode == EINPROGRESS || connectCode == EINTR else {
            close(fd)
            throw SocketExchangeError(stage: .connect, code: connectCode)
        }
        // The request goes out at once when the connection is already up, as it is on loopback and local
        // networks by the time connect returns: the poller thread is then woken only by the answer.
        var conversation = conversation
        var output = request
        var isConnected = connectCode == 0
        if output.readableBytes > 0 {
            let sent = output.withUnsafeReadableBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent >= 0 {
                output.moveReaderIndex(forwardBy: sent)
                isConnected = true
            } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                // Still connecting is EAGAIN; anything else is the connection failing (refused, unreachable).
                let code = errno
                close(fd)
                throw SocketExchangeError(stage: .connect, code: code)
            }
        }
        if isConnected && conversation.connected() {
            close(fd)
            return conversation
        }
        // Edge-triggered: an event each time bytes arrive, and while connecting or sending, when that can go on.
        var interest = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLET.rawValue)
        if !isConnected || output.readableBytes > 0 { interest |= UInt32(EPOLLOUT.rawValue) }
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let ended = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any SocketConversation, any Error>) in
                let connection = Connection(fd: fd, isConnected: isConnected, output: output,
                                            conversation: conversation, continuation: continuation)
                let admitted = connections.withLock { connections in
                    // Checked with the lock held: a cancellation either comes before (and is seen here) or after
                    // the connection is in the table (and finds it there).
                    if Task.isCancelled { return false }
                    connections[id] = connection
                    return true
                }
                guard admitted else {
                    close(fd)
                    continuation.resume(throwing: CancellationError())
                    return
                }
                // Added outside the lock: on a near peer the answer is often in before this returns, and the
                // poller, woken at once, would otherwise wait for the lock (a futex sleep and wake per probe).
                var event = epoll_event()
                event.events = interest
                event.data.u64 = id
                if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) != 0 {
                    let failure = SocketExchangeError(stage: .transfer, code: errno)  // before errno can change
                    // Unless a cancellation took it meanwhile (and resumed the task itself).
                    if let taken = connections.withLock({ $0.removeValue(forKey: id) }) {
                        taken.release()
                        taken.continuation.resume(throwing: failure)
                    }
                }
                connection.release()
            }
        } onCancel: {
            guard let connection = connections.withLock({ $0.removeValue(forKey: id) }) else { return }
            connection.release()
            connection.continuation.resume(throwing: CancellationError())
        }
        return ended as! Conversation
    }

    /// The poller thread: runs the jobs and due timers it was given, waits for events until the next timer, and
    /// advances the connections they concern; never returns.
    private func run() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readBufferSize, alignment: 16)
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(Self.eventsPerWait))
        while true {
            let timeout = runJobsAndTimers()
            let count = epoll_wait(epollFD, events, Self.eventsPerWait, timeout)
            guard count > 0 else {
                // 0: a timer is due. EINTR: wait again. Anything else means the epoll instance broke, which should
                // never happen; the pause keeps this loop from spinning.
                if count < 0 && errno != EINTR { usleep(100_000) }
                continue
            }
            var finished: [(Connection, Result<any SocketConversation, any Error>)] = []
            connections.withLock { connections in
                for index in 0..<Int(count) {
                    let id = events[index].data.u64
                    if id == 0 {
                        var value: UInt64 = 0
                        _ = read(wakeFD, &value, 8)  // handed-over work is taken at the top of the loop
                        continue
                    }
                    guard let connection = connections[id] else { continue }  // cancelled meanwhile
                    if case .finished(let result) = Self.advance(connection, events: events[index].events, buffer: buffer) {
                        connections[id] = nil
                        finished.append((connection, result))
                    }
                }
            }
            // Resumed outside the lock: a resumed task may start its next exchange at once. A task that runs on this
            // thread (see `enqueue`) goes on at the top of the loop, no other thread woken.
            for (connection, result) in finished {
                connection.release()  // first: the socket is closed (or closing) by the time the exchange returns
                connection.continuation.resume(with: result)
            }
        }
    }

    /// Completes the connection, sends what is left of the request, and reads what arrived.
    private static func advance(_ connection: Connection, events: UInt32, buffer: UnsafeMutableRawBufferPointer) -> Step {
        let fd = connection.fd
        let failed = events & (UInt32(EPOLLERR.rawValue) | UInt32(EPOLLHUP.rawValue)) != 0
        if !connection.isConnected {
            if failed {
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
                return .finished(.failure(SocketExchangeError(stage: .connect, code: code == 0 ? ECONNRESET : code)))
            }
            guard events & UInt32(EPOLLOUT.rawValue) != 0 else { return .waiting }
            connection.isConnected = true
            if connection.conversation.connected() { return .finished(.success(connection.conversation)) }
        }
        sending: while connection.output.readableBytes > 0 {
            let sent = connection.output.withUnsafeReadableBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent >= 0 {
                connection.output.moveReaderIndex(forwardBy: sent)
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                // The next EPOLLOUT edge goes on sending. What has arrived is read now all the same: a server may
                // answer early (413, 401) and stop reading, and this edge would not be reported again.
                break sending
            } else if errno != EINTR {
                return .finished(.failure(SocketExchangeError(stage: .transfer, code: errno)))
            }
        }
        let readable = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue)
        guard events & readable != 0 else { return .waiting }
        while true {
            let received = recv(fd, buffer.baseAddress, buffer.count, 0)
            do {
                if received > 0 {
                    if try connection.conversation.received(UnsafeRawBufferPointer(rebasing: buffer[0..<received])) {
                        return .finished(.success(connection.conversation))
                    }
                } else if received == 0 {
                    try connection.conversation.peerClosed()
                    return .finished(.success(connection.conversation))
                } else if errno == EAGAIN || errno == EWOULDBLOCK {
                    return .waiting  // the next EPOLLIN edge continues
                } else if errno != EINTR {
                    return .finished(.failure(SocketExchangeError(stage: .transfer, code: errno)))
                }
            } catch {
                return .finished(.failure(error))
            }
        }
    }
}
#endif
