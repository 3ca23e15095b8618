import Crypto
import CrowsnestWire
import NIOCore
import NIOSSL
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `postgres` checks: connect (TLS as `sslmode` says), authenticate (trust, password, md5 or SCRAM-SHA-256), run
/// `SELECT 1`, and read connections, commits and rollbacks of the database from `pg_stat_database` and the
/// replication lag (a standby's replay delay, or the largest `replay_lag` a primary sees in
/// `pg_stat_replication`). Written on SwiftNIO with the frontend/backend protocol's startup, authentication and
/// simple-query messages only: postgres-nio would pull Foundation into the agent.
struct PostgresProber: Sendable {
    let dialer: ProbeDialer
    let resolver: GuardedResolver
    let tls: ProbeTLS

    /// The statements one run sends, in one simple query.
    static let statements = """
        SELECT 1; \
        SELECT numbackends, xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database(); \
        SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END, \
        CASE WHEN pg_is_in_recovery() THEN COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) \
        ELSE (SELECT COALESCE(MAX(EXTRACT(EPOCH FROM replay_lag)), 0) FROM pg_stat_replication) END, \
        (SELECT count(*) FROM pg_stat_replication)
        """

    func probe(_ target: String, options: [String: String], deadline: ContinuousClock.Instant) async throws -> ProbeOutcome {
        let start = ContinuousClock.now
        let url = try PostgresURL(target)
        let maximumLag = try ProbeOptions(options).number("max_replication_lag_seconds")
        let addresses = try await resolver.resolve(host: url.host, port: url.port)
        let (channel, address) = try await dialer.connect(to: addresses, deadline: deadline) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        let rows = try await channel.executeThenClose { inbound, outbound in
            var connection = PostgresConnection(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            if url.sslMode != .disable {
                try await connection.startTLS(channel: channel.channel, url: url, tls: tls)
            }
            try await connection.authenticate(url: url)
            let rows = try await connection.simpleQuery(Self.statements)
            try? await outbound.write(PostgresConnection.message("X", ByteBuffer()))
            return rows
        }
        var outcome = ProbeOutcome(ok: true, latencyMs: (ContinuousClock.now - start).milliseconds)
        outcome.details["address"] = ProbeDialer.describe(address)
        func figure(_ row: Int, _ column: Int) -> Double? {
            guard row < rows.count, column < rows[row].count, let text = rows[row][column] else { return nil }
            return Double(text)
        }
        // Rows: [SELECT 1], [numbackends, commits, rollbacks] (absent when the database has no stats row yet),
        // [in recovery, lag, replicas].
        let statsRow = rows.count >= 3 ? 1 : nil
        let replicationRow = rows.count >= 3 ? 2 : 1
        if let statsRow {
            outcome.figures["connections"] = figure(statsRow, 0)
            outcome.figures["commits"] = figure(statsRow, 1)
            outcome.figures["rollbacks"] = figure(statsRow, 2)
        }
        outcome.figures["in_recovery"] = figure(replicationRow, 0)
        outcome.figures["replication_lag_seconds"] = figure(replicationRow, 1)
        outcome.figures["replicas"] = figure(replicationRow, 2)
        if let maximumLag, let lag = outcome.figures["replication_lag_seconds"], lag > maximumLag {
            outcome.ok = false
            outcome.error = "replication lag is \(Int(lag.rounded())) s, over the limit of \(Int(maximumLag)) s"
        }
        return outcome
    }
}

/// `postgres://user:password@host:port/database?sslmode=…` as a check names its target.
struct PostgresURL: Sendable {
    enum SSLMode: String, Sendable { case disable, prefer, require }

    var user: String
    var password: String?
    var host: String
    var port: Int
    var database: String
    var sslMode: SSLMode

    init(_ text: String) throws {
        guard let schemeEnd = text.firstRange(of: "://"),
              ["postgres", "postgresql"].contains(text[..<schemeEnd.lowerBound].lowercased()) else {
            throw ProbeFailure("target is not a postgres:// URL")
        }
        var rest = text[schemeEnd.upperBound...]
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let path = rest[authorityEnd...].dropFirst()
        var user = "postgres"
        if let at = authority.lastIndex(of: "@") {
            let info = authority[..<at]
            if let colon = info.firstIndex(of: ":") {
                user = HTTPProber.percentDecoded(String(info[..<colon]))
                password = HTTPProber.percentDecoded(String(info[info.index(after: colon)...]))
            } else {
                user = HTTPProber.percentDecoded(String(info))
            }
            authority = authority[authority.index(after: at)...]
        }
        let hostPort = try ProbeHostPort(String(authority), defaultPort: 5432)
        self.user = user
        self.host = hostPort.host
        self.port = hostPort.port
        self.database = path.isEmpty ? user : HTTPProber.percentDecoded(String(path))
        var sslMode = SSLMode.prefer
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "sslmode":
                switch parts[1] {
                case "disable", "allow": sslMode = .disable
                case "prefer": sslMode = .prefer
                case "require", "verify-ca", "verify-full": sslMode = .require
                default: throw ProbeFailure("sslmode \(parts[1]) is not one of disable, prefer, require")
                }
            default:
                continue
            }
        }
        self.sslMode = sslMode
    }
}

/// One probe's conversation with a PostgreSQL backend: messages in and out over an async channel.
struct PostgresConnection {
    /// Largest backend message read; anything larger is not a check's answer.
    static let maximumMessageBytes = 1 << 20

    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var buffer = ByteBuffer()

    init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.inbound = inbound
        self.outbound = outbound
    }

    static func message(_ type: Character, _ body: ByteBuffer) -> ByteBuffer {
        var out = ByteBuffer()
        out.writeInteger(type.asciiValue!)
        out.writeInteger(Int32(body.readableBytes + 4))
        out.writeImmutableBuffer(body)
        return out
    }

    private mutating func fill(_ count: Int) async throws {
        while buffer.readableBytes < count {
            guard var chunk = try await inbound.next() else {
                throw ProbeFailure("the server closed the connection")
            }
            buffer.writeBuffer(&chunk)
        }
    }

    /// The next backend message: its type and body.
    mutating func next() async throws -> (type: UInt8, body: ByteBuffer) {
        try await fill(5)
        let type = buffer.readInteger(as: UInt8.self)!
        let length = Int(buffer.readInteger(as: Int32.self)!)
        guard length >= 4, length - 4 <= Self.maximumMessageBytes else {
            throw ProbeFailure("the server sent a message of \(length) bytes, which is not PostgreSQL's protocol")
        }
        try await fill(length - 4)
        return (type, buffer.readSlice(length: length - 4)!)
    }

    /// SSLRequest; on 'S' the channel is switched to TLS (no certificate verification, as libpq's `require`).
    mutating func startTLS(channel: any Channel, url: PostgresURL, tls: ProbeTLS) async throws {
        var request = ByteBuffer()
        request.writeInteger(Int32(8))
        request.writeInteger(Int32(80_877_103))
        try await outbound.write(request)
        try await fill(1)
        let answer = buffer.readInteger(as: UInt8.self)!
        guard answer == UInt8(ascii: "S") else {
            if url.sslMode == .require { throw ProbeFailure("the server does not offer TLS, and sslmode is require") }
            return
        }
        guard buffer.readableBytes == 0 else { throw ProbeFailure("the server sent data before the TLS handshake") }
        let context = try tls.inspectingContext()
        let serverName = IPAddress(url.host) == nil ? url.host : nil
        let handshake = channel.eventLoop.makePromise(of: Void.self)
        try await channel.eventLoop.submit {
            let handler = try ProbeTLS.clientHandler(context: context, serverName: serverName, recorder: PeerChainRecorder())
            try channel.pipeline.syncOperations.addHandler(handler, position: .first)
            try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(promise: handshake), position: .after(handler))
        }.get()
        try await handshake.futureResult.get(closingOnCancel: channel)
    }

    mutating func authenticate(url: PostgresURL) async throws {
        var startup = ByteBuffer()
        startup.writeInteger(Int32(0))
        startup.writeInteger(Int32(196_608))
        for (key, value) in [("user", url.user), ("database", url.database), ("application_name", "crowsnest-probe")] {
            startup.writeNullTerminatedString(key)
            startup.writeNullTerminatedString(value)
        }
        startup.writeInteger(UInt8(0))
        startup.setInteger(Int32(startup.readableBytes), at: 0)
        try await outbound.write(startup)
        var scram: SCRAMClient?
        while true {
            var (type, body) = try await next()
            switch type {
            case UInt8(ascii: "R"):
                let code = body.readInteger(as: Int32.self) ?? -1
                switch code {
                case 0: continue
                case 3:
                    var reply = ByteBuffer()
                    reply.writeNullTerminatedString(try password(url))
                    try await outbound.write(Self.message("p", reply))
                case 5:
                    guard let salt = body.readBytes(length: 4) else { throw ProbeFailure("the server's md5 request is malformed") }
                    let inner = Self.md5Hex(Array((try password(url) + url.user).utf8))
                    var reply = ByteBuffer()
                    reply.writeNullTerminatedString("md5" + Self.md5Hex(Array(inner.utf8) + salt))
                    try await outbound.write(Self.message("p", reply))
                case 10:
                    var mechanisms: [String] = []
                    while let name = body.readNullTerminatedString(), !name.isEmpty { mechanisms.append(name) }
                    guard mechanisms.contains("SCRAM-SHA-256") else {
                        throw ProbeFailure("the server offers \(mechanisms.joined(separator: ", ")), not SCRAM-SHA-256")
                    }
                    let client = SCRAMClient(password: try password(url))
                    scram = client
                    let first = client.clientFirst
                    var reply = ByteBuffer()
                    reply.writeNullTerminatedString("SCRAM-SHA-256")
                    reply.writeInteger(Int32(first.utf8.count))
                    reply.writeString(first)
                    try await outbound.write(Self.message("p", reply))
                case 11:
                    guard var client = scram else { throw ProbeFailure("the server continued an authentication never started") }
                    let final = try client.clientFinal(serverFirst: String(buffer: body))
                    scram = client
                    try await outbound.write(Self.message("p", ByteBuffer(string: final)))
                case 12:
                    guard let client = scram else { throw ProbeFailure("the server finished an authentication never started") }
                    try client.verify(serverFinal: String(buffer: body))
                default:
                    throw ProbeFailure("the server asks for an authentication this probe does not speak (code \(code))")
                }
            case UInt8(ascii: "E"):
                throw ProbeFailure(Self.errorText(body))
            case UInt8(ascii: "Z"):
                return
            default:
                continue  // ParameterStatus, BackendKeyData, notices
            }
        }
    }

    private func password(_ url: PostgresURL) throws -> String {
        guard let password = url.password else {
            throw ProbeFailure("the server asks for a password and the URL gives none (postgres://user:password@host/db)")
        }
        return password
    }

    /// The rows of every statement of `sql`, each as its columns' texts (nil for NULL), in order.
    mutating func simpleQuery(_ sql: String) async throws -> [[String?]] {
        var body = ByteBuffer()
        body.writeNullTerminatedString(sql)
        try await outbound.write(Self.message("Q", body))
        var rows: [[String?]] = []
        var failure: String?
        while true {
            var (type, body) = try await next()
            switch type {
            case UInt8(ascii: "D"):
                let count = Int(body.readInteger(as: Int16.self) ?? 0)
                var row: [String?] = []
                for _ in 0..<max(0, count) {
                    let length = Int(body.readInteger(as: Int32.self) ?? -1)
                    row.append(length < 0 ? nil : body.readString(length: length))
                }
                rows.append(row)
            case UInt8(ascii: "E"):
                failure = Self.errorText(body)
            case UInt8(ascii: "Z"):
                if let failure { throw ProbeFailure(failure) }
                return rows
            default:
                continue
            }
        }
    }

    /// An ErrorResponse as "SQLSTATE: message".
    static func errorText(_ body: ByteBuffer) -> String {
        var body = body
        var fields: [UInt8: String] = [:]
        while let code = body.readInteger(as: UInt8.self), code != 0, let value = body.readNullTerminatedString() {
            fields[code] = value
        }
        let message = WireTextCleaner.excerpt(fields[UInt8(ascii: "M")] ?? "an error without a message")
        return "PostgreSQL said \(fields[UInt8(ascii: "C")] ?? "?"): \(message)"
    }

    static func md5Hex(_ bytes: [UInt8]) -> String {
        Insecure.MD5.hash(data: bytes).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

/// The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: no channel binding, the user
/// name left empty (the startup message carries it).
struct SCRAMClient {
    let password: String
    let clientNonce: String
    var authMessage = ""
    var saltedPassword: [UInt8] = []

    init(password: String, clientNonce: String? = nil) {
        self.password = password
        let bytes = (0..<18).map { _ in UInt8.random(in: 0...255) }
        self.clientNonce = clientNonce ?? Data(bytes).base64EncodedString()
    }

    var clientFirstBare: String { "n=,r=\(clientNonce)" }
    var clientFirst: String { "n,," + clientFirstBare }

    /// `clientFirstBare` is the one sent (a test gives the RFC's, which names a user).
    mutating func clientFinal(serverFirst: String, clientFirstBare: String? = nil) throws -> String {
        var fields: [Character: String] = [:]
        for part in serverFirst.split(separator: ",") where part.count >= 2 {
            fields[part.first!] = String(part.dropFirst(2))
        }
        guard let nonce = fields["r"], nonce.hasPrefix(clientNonce), let saltText = fields["s"],
              let salt = Data(base64Encoded: saltText), let iterationText = fields["i"], let iterations = Int(iterationText),
              (1...1_000_000).contains(iterations)
        else { throw ProbeFailure("the server's SCRAM challenge is malformed") }
        saltedPassword = Self.pbkdf2(password: Array(password.utf8), salt: Array(salt), iterations: iterations)
        let withoutProof = "c=biws,r=\(nonce)"
        authMessage = (clientFirstBare ?? self.clientFirstBare) + "," + serverFirst + "," + withoutProof
        let clientKey = Self.hmac(saltedPassword, Array("Client Key".utf8))
        let storedKey = Array(SHA256.hash(data: clientKey))
        let signature = Self.hmac(storedKey, Array(authMessage.utf8))
        let proof = zip(clientKey, signature).map { $0 ^ $1 }
        return withoutProof + ",p=" + Data(proof).base64EncodedString()
    }

    func verify(serverFinal: String) throws {
        if serverFinal.hasPrefix("e=") { throw ProbeFailure("SCRAM authentication failed: \(serverFinal.dropFirst(2))") }
        let serverKey = Self.hmac(saltedPassword, Array("Server Key".utf8))
        let expected = Data(Self.hmac(serverKey, Array(authMessage.utf8))).base64EncodedString()
        guard serverFinal == "v=" + expected else {
            throw ProbeFailure("the server's SCRAM signature is wrong: it does not know the password (or is not the server)")
        }
    }

    static func hmac(_ key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    static func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        let key = SymmetricKey(data: password)
        var block = Array(HMAC<SHA256>.authenticationCode(for: salt + [0, 0, 0, 1], using: key))
        var result = block
        for _ in 1..<iterations {
            block = Array(HMAC<SHA256>.authenticationCode(for: block, using: key))
            for index in result.indices { result[index] ^= block[index] }
        }
        return result
    }
}
